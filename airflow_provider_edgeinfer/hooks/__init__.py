"""One hook per vendor, found one way: by the connection's type (:data:`HOOKS`).

Operators never name a vendor: switching vendor is switching ``conn_id``. This is the registry, data
only, read when DAGs are parsed (which vendor a task's link belongs to); finding and building the
hook is :mod:`~airflow_provider_edgeinfer.hooks.base`'s (``hook_for_connection`` on a worker,
``alease_connection`` in a trigger).
"""

from __future__ import annotations

#: connection type -> (vendor, hook class path)
HOOKS: dict[str, tuple[str, str]] = {
    "edgeinfer_theta": ("theta", "airflow_provider_edgeinfer.hooks.theta.ThetaHook"),
    "edgeinfer_octoai": ("octoai", "airflow_provider_edgeinfer.hooks.octoai.OctoAIHook"),
    "edgeinfer_infrai": ("infrai", "airflow_provider_edgeinfer.hooks.infrai.InfraiHook"),
    "edgeinfer_omnitensor": ("omnitensor", "airflow_provider_edgeinfer.hooks.omnitensor.OmniTensorHook"),
}
