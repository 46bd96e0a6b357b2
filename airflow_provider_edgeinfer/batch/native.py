"""Native batches (a vendor that runs a whole batch itself): budget check, one idempotent submit per
round, export download.

The idempotency key (task instance + batch fingerprint + round) is written to the manifest before
the submit and the batch id after it, so a retried task reattaches to the batch, and a submit whose
answer was lost is repeated with the same key, which a vendor with native batches deduplicates.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from airflow_provider_edgeinfer.exceptions import BudgetExceededError, UnexpectedResponseError
from airflow_provider_edgeinfer.progress import usd

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_edgeinfer.batch.inputs import BatchItem
    from airflow_provider_edgeinfer.hooks.base import EdgeInferHook


#: The most requests one native batch holds. The vendor's documents name no limit; its emulator
#: refuses more than this, as batch APIs of its kind do. A round with more items is split into
#: native batches of :data:`NATIVE_PART_ITEMS`, submitted one after another (each with its own
#: idempotency key, recorded in the manifest before it is sent) and watched and written as one.
MAX_NATIVE_BATCH_ITEMS = 50_000
#: Items per native batch of a split round: a part's request body is built in memory while it is
#: sent (about 1 KB an item as objects), so parts stay small enough to keep the worker's memory flat.
NATIVE_PART_ITEMS = 10_000


def split(count: int) -> list[tuple[int, int]]:
    """(start, count) of each native batch of a round of ``count`` items (one unless too many)."""
    if count <= MAX_NATIVE_BATCH_ITEMS:
        return [(0, count)]
    return [(start, min(NATIVE_PART_ITEMS, count - start)) for start in range(0, count, NATIVE_PART_ITEMS)]


def estimate_cost(hook: EdgeInferHook, service: str, items: list[BatchItem]) -> float | None:
    """The vendor's estimate of the batch's cost before it is sent, or None if it gives none."""
    return hook.estimate_batch_cost(service, [item.input for item in items])


def check_budget(
    hook: EdgeInferHook, service: str, parts: Iterable[list[BatchItem]], budget: float
) -> float | None:
    """The vendor's estimate of a round (summed over its native batches); refused above ``budget``."""
    count, estimate = 0, None
    for items in parts:
        count += len(items)
        part = estimate_cost(hook, service, items)
        if part is not None:
            estimate = (estimate or 0.0) + part
    if estimate is not None and estimate > budget:
        raise BudgetExceededError(
            f"the batch of {count} items is estimated at {usd(estimate)}, above max_cost_usd "
            f"{usd(budget)}; it was not submitted",
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
    """(batch id, the vendor's estimated cost) of the submitted batch."""
    api = hook.api
    requests = [{"capability": service, "body": item.input, "custom_id": item.custom_id} for item in items]
    answer = hook.run(
        api.batch_submit(requests, batch_timeout=batch_timeout, metadata=metadata, idempotency_key=key)
    ).data
    return answer.batch_id, answer.estimated_cost_usd


def over_budget_after_submit(
    hook: EdgeInferHook, batch_id: str, estimate: float | None, budget: float | None
) -> None:
    """For services not priced before submission: cancel at once if the submit's estimate is too high."""
    if budget is None or estimate is None or estimate <= budget:
        return
    hook.run(hook.api.batch_cancel(batch_id))
    raise BudgetExceededError(
        f"{hook.vendor} estimated the batch at {usd(estimate)}, above max_cost_usd {usd(budget)}; "
        "it was cancelled before it ran",
        vendor=hook.vendor,
        request_id=batch_id,
    )


def export(
    hook: EdgeInferHook, batch_id: str, format: str, output_dir: ObjectStoragePath, *, part: int = 0
) -> str:
    """The vendor's own export of the batch, downloaded beside results.jsonl; returns its path."""
    from airflow_provider_edgeinfer.outputs import _download

    # Exporting the same batch twice (a retried task) is deduplicated by the key.
    key = "edgeinfer-export-" + hashlib.sha256(json.dumps([batch_id, format]).encode()).hexdigest()[:32]
    job = hook.run(hook.api.batch_export(batch_id, format=format, idempotency_key=key)).data
    target = output_dir / (f"export.{format}" if not part else f"export-{part}.{format}")
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
        #: One flag per position (a set of a million ints would hold ~60 MB).
        self.seen = bytearray(size)

    def _bad(self, what: str) -> UnexpectedResponseError:
        return UnexpectedResponseError(
            f"{self.hook.vendor} batch {self.batch_id} ({self.size} items): {what}; "
            "its results were not trusted",
            vendor=self.hook.vendor,
            operation="batch.results",
            request_id=self.batch_id,
        )

    def __iter__(self) -> Iterator[Any]:
        from airflow_provider_edgeinfer.batch.results import patient_read

        call: Any = self.hook.api.batch_results(self.batch_id, limit=self.limit)
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
                if self.seen[result.index]:
                    raise self._bad(f"the result of index {result.index} was sent twice")
                self.seen[result.index] = 1
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
        return [position for position, seen in enumerate(self.seen) if not seen]

    def check_complete(self) -> None:
        """Refuse missing results of a batch that has ended (one still cancelling may lack some)."""
        missing = self.missing
        if not missing:
            return
        job = self.hook.run(self.hook.api.batch_status_job(self.batch_id))
        if job.terminal and job.vendor_state != "cancelling":
            shown = ", ".join(str(i) for i in missing[:10]) + (", ..." if len(missing) > 10 else "")
            raise self._bad(
                f"the batch ended ({job.vendor_state}) but {len(missing)} of its items have no result "
                f"(index {shown})"
            )
