"""Writing a finished batch to ``output_path/results.jsonl`` and ``failures.jsonl``, page by page.

One line per item: ``custom_id``, ``index``, ``input_ref``, ``request_id``, ``state``, ``output`` or
``error``, ``cost_usd``. Media (base64 or linked) is written under ``media/`` beside the JSONL and
replaced by its path. Nothing holds a whole batch's results: native results are read a page at a
time; a fan-out's jobs are read through the vendor's listing of request states (when it has one) or
fetched in small chunks by a thread pool. Both files list items in input order, whatever order the
vendor answered in: each reader spools the answers by item index (:class:`~.index.Spool`) and hands
them to the writer in item order.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_edgeinfer.clients.retry import is_transient
from airflow_provider_edgeinfer.exceptions import (
    ConfigurationError,
    EdgeInferError,
    JobFailedError,
    NotFoundError,
    error_payload,
)

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_edgeinfer.batch.index import IdIndex, Spool
    from airflow_provider_edgeinfer.batch.inputs import BatchItem
    from airflow_provider_edgeinfer.batch.manifest import Header, ItemRecord, Manifest
    from airflow_provider_edgeinfer.clients.core import Job
    from airflow_provider_edgeinfer.hooks.base import EdgeInferHook

RESULTS = "results.jsonl"
FAILURES = "failures.jsonl"
MEDIA_DIR = "media"
#: Items fetched (and their media downloaded) per chunk: bounds memory and the thread pool's queue.
FETCH_CHUNK = 256
#: Threads fetching results and media: enough to hide latency, few enough to keep memory flat.
MAX_FETCH_THREADS = 16
NATIVE_PAGE_LIMIT = 1000
#: Rounds of (already retried) reads of one item's result before the task gives up on it.
RESULT_READ_ROUNDS = 4
#: Native batch item error codes worth resubmitting (``item_retries``): the input itself was fine.
TRANSIENT_ITEM_CODES = frozenset({"UPSTREAM_ERROR", "RATE_LIMITED", "EXPIRED", "CANCELLED", "INTERNAL"})


@dataclass
class Summary:
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    #: Sum of the costs the vendor stated; None while no item stated one (unknown, not $0).
    cost_usd: float | None = None
    #: Items whose cost the vendor did not state (including items that failed before running).
    items_without_cost: int = 0
    files: int = 0
    failure_examples: list[str] = field(default_factory=list)


@dataclass
class _Row:
    """One item's row, held until the next item's arrives (a later row of the item replaces it)."""

    index: int
    line: bytes
    succeeded: bool
    cost_usd: float | None
    files: int
    example: str


class ResultsWriter:
    """The two JSONL files, open for writing; :meth:`row` writes one item's row, in item order.

    The readers (:func:`write_native`, :func:`write_fanout`) put the vendor's answers back in item
    order through their spool by item index (:class:`~.index.Spool`) before they reach the writer, so
    rows stream straight to the files. An item may get several rows in a row: the last one counts.
    When the reading ends in an error, what was read is still written.
    """

    def __init__(self, output_dir: ObjectStoragePath, total: int) -> None:
        self.output_dir = output_dir
        self.media_dir = output_dir / MEDIA_DIR
        self.total = total
        self.summary = Summary()
        self._held: _Row | None = None

    def __enter__(self) -> ResultsWriter:
        self.media_dir.mkdir(parents=True, exist_ok=True)
        results: Any = self.output_dir / RESULTS
        failures: Any = self.output_dir / FAILURES
        self._results = results.open("wb")
        self._failures = failures.open("wb")
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._write_held()
        finally:
            self._results.close()
            self._failures.close()

    def media(self, item: BatchItem, output: Any) -> tuple[Any, int]:
        """Output with its media written to files (runs in pool threads)."""
        from airflow_provider_edgeinfer.outputs import MediaWriter

        if output is None:
            return None, 0
        # MediaWriter makes the stem one safe path segment (custom ids are arbitrary text).
        writer = MediaWriter(self.media_dir, f"{item.index:06d}_{item.custom_id}")
        return writer.walk(output), len(writer.files)

    def row(
        self,
        item: BatchItem,
        *,
        succeeded: bool,
        request_id: str | None,
        output: Any = None,
        error: dict[str, Any] | None = None,
        cost_usd: float | None = None,
        files: int = 0,
    ) -> None:
        held = self._held
        if held is not None and item.index < held.index:
            raise ValueError(f"the row of item {item.index} came after item {held.index}'s")
        if not succeeded:
            error = error or {"type": "JobFailedError", "message": "the request failed"}
        line: dict[str, Any] = {
            "custom_id": item.custom_id,
            "index": item.index,
            "input_ref": item.ref,
            "request_id": request_id,
            "state": "succeeded" if succeeded else "failed",
            "output": output if succeeded else None,
            "error": None if succeeded else error,
            "cost_usd": cost_usd,
        }
        if held is not None and held.index != item.index:
            self._write_held()
        # One line: JSON escapes every newline inside strings.
        data = json.dumps(line, default=str, separators=(",", ":")).encode() + b"\n"
        example = f"{item.custom_id}: {str((error or {}).get('message', ''))[:120]}"
        self._held = _Row(item.index, data, succeeded, cost_usd, files, example)

    def _write_held(self) -> None:
        held, self._held = self._held, None
        if held is None:
            return
        self._results.write(held.line)
        summary = self.summary
        summary.total += 1
        summary.files += held.files
        if held.cost_usd is None:
            summary.items_without_cost += 1
        else:
            summary.cost_usd = (summary.cost_usd or 0.0) + held.cost_usd
        if held.succeeded:
            summary.succeeded += 1
            return
        self._failures.write(held.line)
        summary.failed += 1
        if len(summary.failure_examples) < 3:
            summary.failure_examples.append(held.example)


# -- native batches -----------------------------------------------------------------------------


def write_native(
    hook: EdgeInferHook, header: Header, items: Iterable[BatchItem], total: int, writer: ResultsWriter
) -> None:
    """Every item from the last round that ran it, in item order.

    Results are read a page at a time and checked as they are read (:class:`~.native.NativeResults`):
    an item without a result gets a failed row, and a batch that ended with items missing fails the
    task. They arrive in each batch's order, so they are spooled by item index and written in item
    order (:class:`~.index.Spool`): memory holds one range of results, never the batch's.
    """
    from airflow_provider_edgeinfer.batch.index import Spool, zeros

    final_round = zeros("H", total)
    for number, batch_round in enumerate(header.rounds):
        for index in batch_round.indices if batch_round.indices is not None else range(total):
            final_round[index] = number
    with Spool(total) as spool:
        try:
            _spool_native(hook, header, total, final_round, spool)
        finally:
            # What was read is written even when a broken answer stops the reading (then re-raised).
            items_in_order = iter(items)
            for span, bucket in spool.buckets():
                for index in span:
                    item = _item_at(items_in_order, index)
                    for tag, payload in bucket.get(index, ()):
                        _native_row(hook, writer, item, tag, payload)


def _spool_native(
    hook: EdgeInferHook, header: Header, total: int, final_round: array[int], spool: Spool
) -> None:
    """Every native batch's results, checked page by page, into ``spool`` by item index."""
    from airflow_provider_edgeinfer.batch.native import NativeResults

    for number, batch_round in enumerate(header.rounds):
        for batch_id, positions in batch_round.native_batches(total):
            results = NativeResults(hook, batch_id, len(positions), NATIVE_PAGE_LIMIT)
            for result in results:
                index = positions[result.index]
                if final_round[index] == number:
                    error = result.error.model_dump() if result.error is not None else None
                    row = [
                        f"{batch_id}#{result.index}",
                        result.state,
                        result.response,
                        error,
                        result.cost_usd,
                    ]
                    spool.put(index, "n", json.dumps(row, default=str).encode())
            for position in results.missing:
                index = positions[position]
                if final_round[index] == number:
                    spool.put(index, "m", batch_id.encode())
            results.check_complete()


def _native_row(
    hook: EdgeInferHook, writer: ResultsWriter, item: BatchItem, tag: str, payload: bytes
) -> None:
    if tag == "m":
        message = f"{hook.vendor} batch {payload.decode()} returned no result for this item"
        writer.row(item, succeeded=False, request_id=None, error=_error(message))
        return
    request_id, state, response, error, cost_usd = json.loads(payload)
    ok = state == "succeeded"
    output, files = writer.media(item, response) if ok else (None, 0)
    writer.row(
        item,
        succeeded=ok,
        request_id=request_id,
        output=output,
        error={"type": "JobFailedError", **error} if error is not None else None,
        cost_usd=cost_usd,
        files=files,
    )


def native_retryable(hook: EdgeInferHook, batch_id: str, indices: Sequence[int]) -> list[int]:
    """Item indices of one native batch's items that failed for a reason worth another try."""
    from airflow_provider_edgeinfer.batch.native import NativeResults

    out = []
    results = NativeResults(hook, batch_id, len(indices), NATIVE_PAGE_LIMIT)
    for result in results:
        if result.state != "succeeded" and (
            result.error is None or result.error.code in TRANSIENT_ITEM_CODES
        ):
            out.append(indices[result.index])
    results.check_complete()
    return out


# -- fan-outs -------------------------------------------------------------------------------------


@dataclass
class FanOutResults:
    """Final jobs of a fan-out's submitted items, found as cheaply as the vendor allows, streamed.

    :meth:`entries` joins, per range of item indices (:class:`~.index.Spool`), each item's latest
    journal record with its request's final job from the vendor's listing; what the listing did not
    give is read with one GET each as its range is written. Memory: a few bytes an item, plus one range.
    """

    hook: EdgeInferHook
    service: str
    concurrency: int = 8

    def _status(self, request_id: str) -> tuple[Job | None, dict[str, Any] | None]:
        call = self.hook.api.status(request_id)
        if call is None:
            return None, {"type": "ConfigurationError", "message": "the vendor has no status endpoint"}
        try:
            return patient_read(self.hook, call), None
        except (NotFoundError, JobFailedError) as exc:
            return None, error_payload(exc)

    def entries(self, manifest: Manifest, total: int) -> Iterator[tuple[int, ItemRecord | None, Job | None]]:
        """(index, latest record, listed final job) of every item, in index order."""
        from airflow_provider_edgeinfer.batch.index import SUB, IdIndex, Spool
        from airflow_provider_edgeinfer.batch.manifest import decode, encode
        from airflow_provider_edgeinfer.clients.core import Job

        states = manifest.states(total)
        with Spool(total) as spool:
            ids = IdIndex(states.count(SUB))
            since: float | None = None
            for index, latest in manifest.winners(states):
                spool.put(index, "r", encode(index, latest).rstrip(b"\n"))
                if latest.kind == "sub" and latest.request_id:
                    ids.add(latest.request_id, index)
                    at = latest.at or 0.0
                    since = at if since is None else min(since, at)
            if since is not None:
                self._listed(spool, ids, since, total)
            for span, bucket in spool.buckets():
                for index in span:
                    record: ItemRecord | None = None
                    job: Job | None = None
                    for tag, payload in bucket.get(index, ()):
                        if tag == "r" and (decoded := decode(payload)) is not None:
                            record = decoded[1]
                        elif tag == "j":
                            job = Job.model_validate_json(payload)
                    yield index, record, job

    def _listed(self, spool: Spool, ids: IdIndex, since: float, total: int) -> None:
        """Spool the final jobs of ``ids`` found in the vendor's listing (newest first).

        Only when the vendor lists request states. Listed requests stay unparsed; only this batch's
        are validated (most of a page's cost).
        """
        api = self.hook.api
        if not api.lists_request_states:
            return
        found = bytearray(total)
        wanted = len(ids)
        scan = api.scan_requests(since)
        for listed in scan.walk(lambda call: patient_read(self.hook, call)):
            index = ids.get(listed.id)
            if index is None or found[index]:
                continue
            found[index] = 1
            spool.put(index, "j", api.listed_job(listed, self.service).model_dump_json().encode())
            wanted -= 1
            if not wanted:
                return

    def final(self, record: ItemRecord, job: Job | None) -> tuple[Job | None, dict[str, Any] | None]:
        """A submitted item's final job: the listed one, else one GET (run in a pool thread)."""
        if job is not None or record.request_id is None:
            return job, None
        return self._status(record.request_id)


def write_fanout(
    hook: EdgeInferHook,
    service: str,
    items: Iterable[BatchItem],
    manifest: Manifest,
    total: int,
    writer: ResultsWriter,
    *,
    concurrency: int = 8,
    unfinished_error: str = "the request had not finished when the batch ended",
) -> None:
    """Every item of a fan-out, in item order: settled records as they are, submitted ones from the
    vendor, a chunk at a time (outputs and media fetched by a thread pool)."""
    from airflow_provider_edgeinfer.clients.core import Job

    source = FanOutResults(hook, service, concurrency)

    def build(entry: tuple[BatchItem, ItemRecord | None, Job | None]) -> Callable[[], None]:
        item, record, job = entry
        if record is None:
            return lambda: writer.row(item, succeeded=False, request_id=None, error=_error("never submitted"))
        if record.kind == "err":
            return lambda: writer.row(item, succeeded=False, request_id=None, error=record.error)
        if record.kind == "intent":
            lost = _error(
                "the submission was sent but its answer was lost; the vendor offers no way to find "
                "the request, so it was not resubmitted (it may have run and been billed)",
                "OutcomeUnknownError",
            )
            return lambda: writer.row(item, succeeded=False, request_id=None, error=lost)
        if record.kind == "done" and record.job is not None:
            return _prepared(
                hook, writer, item, Job.model_validate(record.job), None, unfinished_error, service
            )
        found, error = source.final(record, job)
        return _prepared(hook, writer, item, found, error, unfinished_error, service)

    items_in_order = iter(items)
    joined = (
        (_item_at(items_in_order, index), record, job)
        for index, record, job in source.entries(manifest, total)
    )
    with ThreadPoolExecutor(concurrency) as pool:
        for chunk in chunked(joined, FETCH_CHUNK):
            for write in pool.map(build, chunk):
                write()


def _item_at(items: Iterator[BatchItem], index: int) -> BatchItem:
    """The next item of a stream that must be item ``index`` (items and entries go in step)."""
    item = next(items, None)
    if item is None or item.index != index:
        raise ConfigurationError(
            f"the batch's inputs changed while it ran: item {index} is "
            + ("missing" if item is None else f"at {item.index}"),
            hint="Keep a batch's inputs unchanged until it is finished.",
        )
    return item


def _prepared(
    hook: EdgeInferHook,
    writer: ResultsWriter,
    item: BatchItem,
    job: Job | None,
    error: dict[str, Any] | None,
    unfinished_error: str,
    service: str,
) -> Callable[[], None]:
    """Fetch output and media in a pool thread; return the (cheap) write for the main thread."""
    from airflow_provider_edgeinfer.clients.core import JobState

    if job is None:
        return lambda: writer.row(item, succeeded=False, request_id=None, error=error or _error("not found"))
    job = job.model_copy(update={"service": service})
    if job.state is not JobState.SUCCEEDED:
        message = (
            unfinished_error if not job.terminal else (job.error or f"the request ended {job.state.value}")
        )
        failure = _error(message, "JobFailedError" if job.terminal else "JobTimeoutError")
        return lambda: writer.row(
            item, succeeded=False, request_id=job.request_id, error=failure, cost_usd=job.cost_usd
        )
    try:
        read = hook.api.output_read(job, output_known=True)
        output = job.output if read is None else patient_read(hook, read).output
        output, files = writer.media(item, output)
    except EdgeInferError as exc:
        payload = error_payload(exc)
        return lambda: writer.row(item, succeeded=False, request_id=job.request_id, error=payload)
    return lambda: writer.row(
        item, succeeded=True, request_id=job.request_id, output=output, cost_usd=job.cost_usd, files=files
    )


def patient_read(hook: EdgeInferHook, call: Any) -> Any:
    """Send a read, with a few extra rounds on transient failures.

    Each round already retries with backoff; a paid result is worth a few more rounds before the
    task gives up on a flaky vendor (reads are free, losing a result is not).
    """
    from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

    rounds = Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(RESULT_READ_ROUNDS),
        wait=wait_random_exponential(multiplier=2.0, max=30.0),
        reraise=True,
    )
    return rounds(hook.run, call)


def _error(message: str, type_: str = "JobFailedError") -> dict[str, Any]:
    return {"type": type_, "message": message}


T = TypeVar("T")


def chunked(values: Iterable[T], size: int) -> Iterator[list[T]]:
    """``values`` in lists of ``size`` (the last one shorter), read lazily."""
    chunk: list[T] = []
    for value in values:
        chunk.append(value)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def fanout_retryable(hook: EdgeInferHook, service: str, manifest: Manifest, total: int) -> list[int]:
    """Indices worth another round: transient refusals, and requests the vendor accepted that then
    failed, were cancelled or expired. Refused inputs and lost answers are not retried."""
    from airflow_provider_edgeinfer.clients.core import JobState

    source = FanOutResults(hook, service)
    out = []
    for index, record, listed in source.entries(manifest, total):
        if record is None:
            continue
        if record.kind == "err":
            if record.transient:
                out.append(index)
        elif record.kind == "done":
            if (record.job or {}).get("state") != JobState.SUCCEEDED.value:
                out.append(index)
        elif record.kind == "sub":
            job, _ = source.final(record, listed)
            if job is not None and job.state in (JobState.FAILED, JobState.CANCELLED, JobState.EXPIRED):
                out.append(index)
    return out
