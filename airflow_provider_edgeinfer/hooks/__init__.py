"""One hook per vendor; :func:`hook_for_connection` picks it from the connection's type.

Operators never name a vendor: switching vendor is switching ``conn_id``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from airflow_provider_edgeinfer.exceptions import ConfigurationError

if TYPE_CHECKING:
    from airflow_provider_edgeinfer.hooks.base import EdgeInferHook

#: connection type -> (vendor, hook class path)
HOOKS: dict[str, tuple[str, str]] = {
    "edgeinfer_theta": ("theta", "airflow_provider_edgeinfer.hooks.theta.ThetaHook"),
    "edgeinfer_octoai": ("octoai", "airflow_provider_edgeinfer.hooks.octoai.OctoAIHook"),
    "edgeinfer_infrai": ("infrai", "airflow_provider_edgeinfer.hooks.infrai.InfraiHook"),
    "edgeinfer_omnitensor": ("omnitensor", "airflow_provider_edgeinfer.hooks.omnitensor.OmniTensorHook"),
}
VENDORS = {vendor: path for vendor, path in HOOKS.values()}


def _load(path: str) -> type[EdgeInferHook]:
    module, _, name = path.rpartition(".")
    cls: type[EdgeInferHook] = getattr(import_module(module), name)
    return cls


def hook_class_for_vendor(vendor: str) -> type[EdgeInferHook]:
    try:
        return _load(VENDORS[vendor])
    except KeyError:
        raise ConfigurationError(f"unknown vendor {vendor!r} (known: {', '.join(sorted(VENDORS))})") from None


def hook_class_for_conn_type(conn_type: str | None, conn_id: str) -> type[EdgeInferHook]:
    key = (conn_type or "").replace("-", "_")
    if key not in HOOKS:
        raise ConfigurationError(
            f"connection {conn_id!r} is of type {conn_type!r}, which is not an edgeinfer connection",
            hint=f"Use one of: {', '.join(sorted(HOOKS))}.",
        )
    return _load(HOOKS[key][1])


def hook_for_connection(conn_id: str) -> EdgeInferHook:
    """The vendor hook for ``conn_id``, chosen by the connection's type (worker side, blocking)."""
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    hook = hook_class_for_conn_type(conn.conn_type, conn_id)(conn_id)
    hook._conn = hook._check_type(conn)
    return hook


def vendors_taking_files() -> str:
    """Every vendor that takes input files and how, each in its client's own words (for errors that
    send a user to a connection that can)."""
    from airflow_provider_edgeinfer.clients.core import api_classes

    ways = []
    for vendor, api in sorted(api_classes(VENDORS).items()):
        how = api.describe_file_inputs()
        if how:
            ways.append(f"{vendor} ({how})")
    return "; ".join(ways) or "none"
