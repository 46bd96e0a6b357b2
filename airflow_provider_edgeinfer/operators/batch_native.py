"""infrai native batches: budget check, one idempotent submit per round, export download.

The idempotency key (task instance + batch fingerprint + round) is written to the manifest before
the submit and the batch id after it, so a retried task reattaches to the batch, and a submit whose
answer was lost is repeated with the same key, which infrai deduplicates.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from airflow_provider_edgeinfer.exceptions import BudgetExceededError, UnexpectedResponseError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_edgeinfer.hooks.base import EdgeInferHook
    from airflow_provider_edgeinfer.operators.batch_inputs import BatchItem

#: Expected output tokens of a chat item without ``max_tokens`` (infrai's own estimate default).
DEFAULT_EXPECTED_OUTPUT_TOKENS = 256
#: One estimate call carries at most this much prompt text; larger groups are split.
MAX_ESTIMATE_TEXT = 1_000_000


def _text(messages: Any) -> str:
    if not isinstance(messages, list):
        return str(messages or "")
    parts: list[str] = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else message
        if isinstance(content, list):  # multimodal parts
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
        else:
            parts.append("" if content is None else str(content))
    return "\n".join(parts)


def estimate_cost(hook: EdgeInferHook, service: str, items: list[BatchItem]) -> float | None:
    """The batch's estimated cost from ``cost.estimate``, or None if infrai cannot estimate it.

    ``cost.estimate`` prices chat prompts: items are grouped by model and each group's prompts are
    estimated together (prices are per token, so one call per group gives the same sum as one per
    item), in as few calls as the text size allows. Other capabilities have no estimate before
    submission; the submit's own ``estimated_cost_usd`` is checked for them instead.
    """
    if service != "chat.completions":
        return None
    api: Any = hook.api
    groups: dict[str, list[tuple[str, int]]] = {}
    for item in items:
        body = item.input
        expected = (
            body.get("max_tokens") or body.get("max_completion_tokens") or DEFAULT_EXPECTED_OUTPUT_TOKENS
        )
        groups.setdefault(str(body.get("model") or ""), []).append(
            (_text(body.get("messages")), int(expected))
        )
    total = 0.0
    for model, prompts in groups.items():
        text: list[str] = []
        size = tokens = 0
        for prompt, expected in [*prompts, ("", -1)]:
            if expected < 0 or (text and size + len(prompt) > MAX_ESTIMATE_TEXT):
                call = api.cost_estimate("\n".join(text), model=model or None, expected_output_tokens=tokens)
                total += hook.run(call).data.breakdown.total_usd
                text, size, tokens = [], 0, 0
            if expected >= 0:
                text.append(prompt)
                size += len(prompt) + 1
                tokens += expected
    return round(total, 8)


def check_budget(hook: EdgeInferHook, service: str, items: list[BatchItem], budget: float) -> float | None:
    estimate = estimate_cost(hook, service, items)
    if estimate is not None and estimate > budget:
        raise BudgetExceededError(
            f"the batch of {len(items)} items is estimated at ${estimate:.6f}, above max_cost_usd "
            f"${budget:.6f}; it was not submitted",
            vendor=hook.vendor,
            operation="cost.estimate",
        )
    return estimate


def submit(
    hook: EdgeInferHook,
    service: str,
    items: list[BatchItem],
    *,
    key: str,
    metadata: dict[str, Any],
    batch_timeout: str | None,
) -> tuple[str, float | None]:
    """(batch id, infrai's estimated cost) of the submitted batch."""
    api: Any = hook.api
    requests = [{"capability": service, "body": item.input, "custom_id": item.custom_id} for item in items]
    answer = hook.run(
        api.batch_submit(requests, batch_timeout=batch_timeout, metadata=metadata, idempotency_key=key)
    ).data
    return answer.batch_id, answer.estimated_cost_usd


def over_budget_after_submit(
    hook: EdgeInferHook, batch_id: str, estimate: float | None, budget: float | None
) -> None:
    """For capabilities ``cost.estimate`` cannot price: cancel at once if infrai's estimate is too high."""
    if budget is None or estimate is None or estimate <= budget:
        return
    api: Any = hook.api
    hook.run(api.batch_cancel(batch_id))
    raise BudgetExceededError(
        f"infrai estimated the batch at ${estimate:.6f}, above max_cost_usd ${budget:.6f}; "
        "it was cancelled before it ran",
        vendor=hook.vendor,
        request_id=batch_id,
    )


def export(hook: EdgeInferHook, batch_id: str, format: str, output_dir: ObjectStoragePath) -> str:
    """infrai's own export of the batch, downloaded beside results.jsonl; returns its path."""
    from airflow_provider_edgeinfer.operators.outputs import _download

    api: Any = hook.api
    # Exporting the same batch twice (a retried task) is deduplicated by infrai.
    key = "edgeinfer-export-" + hashlib.sha256(json.dumps([batch_id, format]).encode()).hexdigest()[:32]
    job = hook.run(api.batch_export(batch_id, format=format, idempotency_key=key)).data
    target = output_dir / f"export.{format}"
    if not job.download_url:
        raise UnexpectedResponseError(
            f"the export of batch {batch_id} has no download URL (state {job.state})",
            vendor=hook.vendor,
            request_id=batch_id,
        )
    _download(job.download_url, target)
    return str(target)
