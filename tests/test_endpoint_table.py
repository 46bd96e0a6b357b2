"""The README's endpoint table names a real client method for every endpoint of the seed documents."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
MODULES = {
    "ThetaAPI": "airflow_provider_edgeinfer.clients.theta",
    "OctoAIAPI": "airflow_provider_edgeinfer.clients.octoai",
    "InfraiAPI": "airflow_provider_edgeinfer.clients.infrai",
    "OmniTensorAPI": "airflow_provider_edgeinfer.clients.omnitensor",
}

#: Every (method, path) the seed documents name, vendor by vendor.
SEED_ENDPOINTS = {
    ("GET", "/service/list"),
    ("POST", "/infer_request/{alias}"),
    ("POST", "/infer_request/{alias}/{prediction}"),
    ("GET", "/infer_request/{infer_request_id}"),
    ("GET", "/infer_request/{project_id}/list"),
    ("POST", "/infer_request/{alias}/input_presigned_urls"),
    ("POST", "/infer_request/{alias}/{prediction}/input_presigned_urls"),
    ("POST", "/generate/sdxl"),
    ("GET", "/v1/requests/{response_id}"),
    ("GET", "/v1/responses/{response_id}"),
    *(
        ("POST", f"/v1/ai/{p}")
        for p in (
            "batch/submit",
            "batch/cancel/{id}",
            "batch/export/{id}",
            "batch/set_retention/{id}",
            "cost/estimate",
            "cost/compare",
            "tokens/count",
            "rerank",
            "image/upscale",
            "voice/session",
        )
    ),
    *(
        ("GET", f"/v1/ai/{p}")
        for p in ("batch/status/{id}", "batch/results/{id}", "batch/list", "tts/voices")
    ),
    ("POST", "/v1/account/topup"),
    ("POST", "/auth/token"),
    ("POST", "/ai/models/upload"),
    ("GET", "/ai/models"),
    ("POST", "/ai/models/{model_id}/inference"),
    ("POST", "/compute/allocate"),
    ("POST", "/data/upload"),
    ("GET", "/data/{dataset_id}/metadata"),
    ("GET", "/account/balance"),
    ("POST", "/account/transfer"),
}

ROW = re.compile(r"^\| (\w+) \| (GET|POST) \| `([^`]+)` \| (.+) \|$")


def _rows() -> list[tuple[str, str, str]]:
    rows = []
    for line in README.read_text().splitlines():
        match = ROW.match(line)
        if match:
            rows.append((match.group(2), match.group(3).split(" ")[0], match.group(4)))
    return rows


def test_every_seed_endpoint_is_in_the_table() -> None:
    covered = {(method, path) for method, path, _ in _rows()}
    assert SEED_ENDPOINTS - covered == set()


def test_every_named_client_method_exists() -> None:
    rows = _rows()
    assert len(rows) >= len(SEED_ENDPOINTS)
    for _, path, cell in rows:
        names = re.findall(r"`(\w+)\.(\w+)`", cell)
        assert names, f"no client method named for {path}"
        for cls_name, method in names:
            cls = getattr(importlib.import_module(MODULES[cls_name]), cls_name)
            assert callable(getattr(cls, method, None)), f"{cls_name}.{method} ({path}) does not exist"
