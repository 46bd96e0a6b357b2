"""Provider metadata (``get_provider_info``): connection types with their form fields, and modules.

Plain data, no imports of hooks or clients: Airflow reads it in every process.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_edgeinfer import __version__

PACKAGE = "airflow_provider_edgeinfer"
INTEGRATION = "EdgeInfer (AI inference)"

_NUMBER = {"type": ["number", "null"]}
_INTEGER = {"type": ["integer", "null"]}
_STRING = {"type": ["string", "null"]}
_SECRET = {"type": ["string", "null"], "format": "password"}

#: Extras every connection type takes (see hooks/base.py COMMON_EXTRAS).
_COMMON_FIELDS: dict[str, Any] = {
    "timeout": {"label": "Read timeout (s)", "description": "Default 60.", "schema": _NUMBER},
    "max_retries": {
        "label": "Max retries per call",
        "description": "After the first attempt. Default 4.",
        "schema": _INTEGER,
    },
    "retry_max_total_delay": {
        "label": "Max total retry delay (s)",
        "description": "Upper bound of one call's retries, waits included. Default 120.",
        "schema": _NUMBER,
    },
    "max_response_bytes": {
        "label": "Max answer size (bytes)",
        "description": "Largest decoded API answer, counted as it arrives. Default 67108864 (64 MiB).",
        "schema": _INTEGER,
    },
    "call_deadline": {
        "label": "Call deadline (s)",
        "description": "Longest API exchange, connect to last byte, however slowly it drips. Default 300.",
        "schema": _NUMBER,
    },
    "max_download_bytes": {
        "label": "Max media download (bytes)",
        "description": "Largest media file downloaded from an output URL. Default 2147483648 (2 GiB).",
        "schema": _INTEGER,
    },
    "download_deadline": {
        "label": "Media download deadline (s)",
        "description": "Longest media download. Default 3600.",
        "schema": _NUMBER,
    },
}


def _connection_type(
    vendor: str,
    hook_class: str,
    hook_name: str,
    host_placeholder: str,
    fields: dict[str, Any],
) -> dict[str, Any]:
    return {
        "connection-type": f"edgeinfer_{vendor}",
        "hook-class-name": f"{PACKAGE}.hooks.{vendor}.{hook_class}",
        "hook-name": hook_name,
        "ui-field-behaviour": {
            "hidden-fields": ["login", "schema", "port"],
            "relabeling": {"host": "API base URL", "password": "API key"},
            "placeholders": {"host": host_placeholder, "password": "your API key"},
        },
        "conn-fields": {**fields, **_COMMON_FIELDS},
    }


CONNECTION_TYPES = [
    _connection_type(
        "theta",
        "ThetaHook",
        "Theta EdgeCloud (edgeinfer)",
        "https://ondemand.thetaedgecloud.com",
        {
            "project_id": {
                "label": "Project id",
                "description": "prj_..., used to list requests.",
                "schema": _STRING,
            }
        },
    ),
    _connection_type(
        "octoai",
        "OctoAIHook",
        "OctoAI (edgeinfer)",
        "https://image.octoai.run",
        {
            "async_host": {
                "label": "Async host",
                "description": "Default https://async.octoai.run.",
                "schema": _STRING,
            },
            "text_host": {
                "label": "Text host",
                "description": "Default https://text.octoai.run.",
                "schema": _STRING,
            },
            "deployment_url_template": {
                "label": "Deployment URL template",
                "description": "Default https://{name}.octoai.run.",
                "schema": _STRING,
            },
        },
    ),
    _connection_type("infrai", "InfraiHook", "infrai (edgeinfer)", "https://api.infrai.cc", {}),
    _connection_type(
        "omnitensor",
        "OmniTensorHook",
        "OmniTensor (edgeinfer)",
        "https://api.omnitensor.io",
        {
            "secret": {
                "label": "API secret",
                "description": "Exchanged with the key for a token.",
                "schema": _SECRET,
            }
        },
    ),
]


def _modules(kind: str, names: list[str]) -> list[dict[str, Any]]:
    return [{"integration-name": INTEGRATION, "python-modules": [f"{PACKAGE}.{kind}.{n}" for n in names]}]


PROVIDER_INFO: dict[str, Any] = {
    "package-name": "airflow-provider-edgeinfer",
    "name": "EdgeInfer",
    "description": "AI inference on Theta EdgeCloud, OctoAI, infrai and OmniTensor: hooks, deferrable "
    "operators, triggers, sensors and a local emulator.",
    "versions": [__version__],
    "integrations": [{"integration-name": INTEGRATION, "tags": ["service"]}],
    "hooks": _modules("hooks", ["theta", "octoai", "infrai", "omnitensor"]),
    "operators": _modules("operators", ["inference", "batch", "upload"]),
    "sensors": _modules("sensors", ["request", "batch"]),
    "triggers": _modules("triggers", ["inference", "batch"]),
    "extra-links": [
        f"{PACKAGE}.operators.links.VendorRequestLink",
        f"{PACKAGE}.operators.links.VendorBatchLink",
    ],
    "connection-types": CONNECTION_TYPES,
}
