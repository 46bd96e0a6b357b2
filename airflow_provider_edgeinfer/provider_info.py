"""Provider metadata (``get_provider_info``): connection types with their form fields, and modules.

Airflow reads it in every process: no imports of hooks or clients, only the connection models
(pydantic), which generate each connection type's form fields.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_edgeinfer import __version__
from airflow_provider_edgeinfer.hooks.connections import MODELS, conn_fields, placeholders

PACKAGE = "airflow_provider_edgeinfer"
INTEGRATION = "EdgeInfer (AI inference)"
#: Where the documentation is published; pyproject's ``[project.urls] documentation`` says the same.
DOCS_URL = "https://airflow-provider-edgeinfer.readthedocs.io/"
#: Pages of the repository's ``docs/`` (Airflow's convention: paths start with ``/docs/``).
HOW_TO_GUIDES = [
    "/docs/howto/inference-operator.md",
    "/docs/howto/batch-operator.md",
    "/docs/howto/presigned-upload-operator.md",
    "/docs/howto/inference-request-sensor.md",
    "/docs/howto/batch-sensor.md",
]
LOGO = "/docs/integration-logos/edgeinfer.svg"


def _connection_type(vendor: str, hook_class: str, host_placeholder: str) -> dict[str, Any]:
    model = MODELS[f"edgeinfer_{vendor}"]
    return {
        "connection-type": model.conn_type,
        "hook-class-name": f"{PACKAGE}.hooks.{vendor}.{hook_class}",
        "hook-name": model.hook_name,
        "ui-field-behaviour": {
            "hidden-fields": ["login", "schema", "port"],
            "relabeling": {"host": "API base URL", "password": "API key"},
            "placeholders": {"host": host_placeholder, "password": "your API key", **placeholders(model)},
        },
        "conn-fields": conn_fields(model),
    }


CONNECTION_TYPES = [
    _connection_type("theta", "ThetaHook", "https://ondemand.thetaedgecloud.com"),
    _connection_type("octoai", "OctoAIHook", "https://image.octoai.run"),
    _connection_type("infrai", "InfraiHook", "https://api.infrai.cc"),
    _connection_type("omnitensor", "OmniTensorHook", "https://api.omnitensor.io"),
]


def _modules(kind: str, names: list[str]) -> list[dict[str, Any]]:
    return [{"integration-name": INTEGRATION, "python-modules": [f"{PACKAGE}.{kind}.{n}" for n in names]}]


PROVIDER_INFO: dict[str, Any] = {
    "package-name": "airflow-provider-edgeinfer",
    "name": "EdgeInfer",
    "description": "AI inference on Theta EdgeCloud, OctoAI, infrai and OmniTensor: hooks, deferrable "
    "operators, triggers, sensors and a local emulator.",
    "versions": [__version__],
    "integrations": [
        {
            "integration-name": INTEGRATION,
            "external-doc-url": DOCS_URL,
            "how-to-guide": HOW_TO_GUIDES,
            "logo": LOGO,
            "tags": ["service"],
        }
    ],
    "hooks": _modules("hooks", ["theta", "octoai", "infrai", "omnitensor"]),
    "operators": _modules("operators", ["inference", "batch", "upload"]),
    "sensors": _modules("sensors", ["request", "batch"]),
    "triggers": _modules("triggers", ["inference", "batch"]),
    "extra-links": [
        f"{PACKAGE}.progress.VendorRequestLink",
        f"{PACKAGE}.progress.VendorBatchLink",
    ],
    # ``@task.edgeinfer_batch`` and ``@task.edgeinfer_inference``
    "task-decorators": [
        {"name": "edgeinfer_batch", "class-name": f"{PACKAGE}.decorators.batch.edgeinfer_batch_task"},
        {
            "name": "edgeinfer_inference",
            "class-name": f"{PACKAGE}.decorators.inference.edgeinfer_inference_task",
        },
    ],
    "connection-types": CONNECTION_TYPES,
}
