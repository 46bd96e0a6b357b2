"""Inputs of the production-check DAGs, shared with the harness (which must not import the DAG framework).

Sizes come from the environment the harness gives every Airflow process, so one DAG file serves the
full-size check and a quick one. Listed in ``.airflowignore``: a helper module, not a DAG file.
"""

from __future__ import annotations

import os
from typing import Any

MAPPED_ENV = "EDGEINFER_PROD_MAPPED"
BATCH_ENV = "EDGEINFER_PROD_BATCH"
COMPARE_ENV = "EDGEINFER_PROD_COMPARE"
#: The Celery queue only the first worker listens to: the harness kills that worker mid-submit.
CRASH_QUEUE = "crash"

#: One service per vendor: conn id, service, and a distinct input for item ``n``. Theta and OctoAI
#: (images) are submitted by the worker and polled; infrai's and OmniTensor's answer comes in the
#: submitting call, which a deferred task makes in the triggerer.
VENDOR_CALLS: dict[str, tuple[str, str]] = {
    "theta": ("edgeinfer_theta_default", "whisper"),
    "octoai": ("edgeinfer_octoai_default", "generate/sdxl"),
    "infrai": ("edgeinfer_infrai_default", "chat.completions"),
    "omnitensor": ("edgeinfer_omnitensor_default", "sentiment-v1"),
}
VENDORS = tuple(VENDOR_CALLS)


def mapped_count() -> int:
    return int(os.environ.get(MAPPED_ENV, "2000"))


def batch_count() -> int:
    return int(os.environ.get(BATCH_ENV, "10000"))


def compare_count() -> int:
    return int(os.environ.get(COMPARE_ENV, "2000"))


def vendor_input(vendor: str, tag: str) -> dict[str, Any]:
    if vendor == "theta":
        return {"audio_filename": f"https://example.invalid/{tag}.wav"}
    if vendor == "octoai":
        return {"prompt": f"lighthouse {tag}", "steps": 1, "width": 64, "height": 64, "num_images": 1}
    if vendor == "infrai":
        return {
            "model": "deepseek-chat",
            "messages": [{"role": "user", "content": f"say {tag}"}],
            "max_tokens": 8,
        }
    return {"text": f"review {tag}: works well"}


def mapped_kwargs() -> list[dict[str, Any]]:
    """``mapped_count()`` inferences, spread evenly over the four vendors."""
    out = []
    for n in range(mapped_count()):
        vendor = VENDORS[n % len(VENDORS)]
        conn_id, service = VENDOR_CALLS[vendor]
        out.append({"conn_id": conn_id, "service": service, "input": vendor_input(vendor, f"mapped-{n}")})
    return out


def batch_inputs() -> list[dict[str, str]]:
    return [{"audio_filename": f"https://example.invalid/batch/{n}.wav"} for n in range(batch_count())]


def compare_inputs() -> list[dict[str, str]]:
    return [{"audio_filename": f"https://example.invalid/compare/{n}.wav"} for n in range(compare_count())]


def crash_input(vendor: str) -> dict[str, Any]:
    return vendor_input(vendor, "worker-killed-mid-submit")


#: Waits on Theta for the triggerer-kill scenario: with four over two triggerers, one holds two or
#: more; one of those is marked failed while it is dead, another after adoption.
CANCEL_INPUTS = {f"wait_{n}": {"audio_filename": f"https://example.invalid/cancel-{n}.wav"} for n in range(4)}
