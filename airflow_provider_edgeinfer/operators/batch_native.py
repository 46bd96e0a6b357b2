"""infrai native batches: budget check, one idempotent submit per round, export download.

The idempotency key (task instance + batch fingerprint + round) is written to the manifest before
the submit and the batch id after it, so a retried task reattaches to the batch, and a submit whose
answer was lost is repeated with the same key, which infrai deduplicates.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from airflow_provider_edgeinfer.exceptions import BudgetExceededError, UnexpectedResponseError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_edgeinfer.clients.infrai_models import BatchResultItem
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


class NativeResults:
    """The results of one native batch of ``size`` items, read a page at a time, trusting nothing.

    A broken or hostile vendor could otherwise make the task read for ever (a ``next_cursor`` that
    never ends), write an answer to the wrong item (an index out of range, or negative, which
    Python would count from the end), or write an item twice. Each is an
    :class:`UnexpectedResponseError` naming the batch: an index outside ``0..size-1``, an index
    seen twice, a cursor seen twice, or more pages than a batch of ``size`` items can fill (each
    page but the last must bring at least one item). Iterate once; then :attr:`missing` lists the
    positions that got no result, and :meth:`check_complete` refuses them if the batch has ended.
    """

    def __init__(self, hook: EdgeInferHook, batch_id: str, size: int, limit: int) -> None:
        self.hook = hook
        self.batch_id = batch_id
        self.size = size
        self.limit = limit
        self.seen: set[int] = set()

    def _bad(self, what: str) -> UnexpectedResponseError:
        return UnexpectedResponseError(
            f"infrai batch {self.batch_id} ({self.size} items): {what}; its results were not trusted",
            vendor=self.hook.vendor,
            operation="batch.results",
            request_id=self.batch_id,
        )

    def __iter__(self) -> Iterator[BatchResultItem]:
        from airflow_provider_edgeinfer.operators.batch_results import patient_read

        api: Any = self.hook.api
        call: Any = api.batch_results(self.batch_id, limit=self.limit)
        cursors: set[Any] = set()
        max_pages = self.size + 1
        pages = 0
        while call is not None:
            pages += 1
            if pages > max_pages:
                raise self._bad(f"the vendor kept sending pages of results (more than {max_pages})")
            page = patient_read(self.hook, call)
            for result in page.items:
                if not 0 <= result.index < self.size:
                    raise self._bad(f"a result has index {result.index}, outside 0..{self.size - 1}")
                if result.index in self.seen:
                    raise self._bad(f"the result of index {result.index} was sent twice")
                self.seen.add(result.index)
                yield result
            call = page.next_call
            if call is not None:
                cursor = (call.params or {}).get("cursor")
                if cursor in cursors:
                    raise self._bad(f"the results cursor {cursor!r} came back: the pages would never end")
                cursors.add(cursor)

    @property
    def missing(self) -> list[int]:
        """Positions in the batch that no page carried."""
        return [position for position in range(self.size) if position not in self.seen]

    def check_complete(self) -> None:
        """Refuse missing results of a batch that has ended (one still cancelling may lack some)."""
        missing = self.missing
        if not missing:
            return
        api: Any = self.hook.api
        job = self.hook.run(api.batch_status_job(self.batch_id))
        if job.terminal and job.vendor_state != "cancelling":
            shown = ", ".join(str(i) for i in missing[:10]) + (", ..." if len(missing) > 10 else "")
            raise self._bad(
                f"the batch ended ({job.vendor_state}) but {len(missing)} of its items have no result "
                f"(index {shown})"
            )
