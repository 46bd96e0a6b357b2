"""Writing a finished batch to ``output_path/results.jsonl`` and ``failures.jsonl``, page by page.

One line per item: ``custom_id``, ``index``, ``input_ref``, ``request_id``, ``state``, ``output`` or
``error``, ``cost_usd``. Media (base64 or linked) is written under ``media/`` beside the JSONL and
replaced by its path. Nothing holds a whole batch's results: native results are read a page at a
time; a fan-out's jobs are read through the vendor's listing of request states (when it has one) or
fetched in small chunks by a thread pool, and each chunk is spooled before the next is fetched. Both
files list items in input order (:class:`~.index.Spool`), whatever order the vendor answered in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_edgeinfer.batch.index import Spool
from airflow_provider_edgeinfer.clients.retry import is_transient
from airflow_provider_edgeinfer.exceptions import EdgeInferError, JobFailedError, NotFoundError
from airflow_provider_edgeinfer.triggers.events import error_payload

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_edgeinfer.batch.inputs import BatchItem
    from airflow_provider_edgeinfer.batch.manifest import Header, ItemRecord
    from airflow_provider_edgeinfer.clients.jobs import Job
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


#: Spool tags of a row.
_SUCCEEDED, _FAILED = "ok", "failed"


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


class ResultsWriter:
    """The two JSONL files, open for writing; :meth:`row` writes one item, in any order.

    Rows of the batch's ``total`` items are spooled as they come (:class:`~.index.Spool`) and the
    files are written in input order when the writer closes (also when the results ended in an
    error: what was read is kept). A row written twice for one item: the later one counts.
    """

    def __init__(self, output_dir: ObjectStoragePath, total: int) -> None:
        self.output_dir = output_dir
        self.media_dir = output_dir / MEDIA_DIR
        self.total = total
        self.summary = Summary()

    def __enter__(self) -> ResultsWriter:
        self.media_dir.mkdir(parents=True, exist_ok=True)
        results: Any = self.output_dir / RESULTS
        failures: Any = self.output_dir / FAILURES
        self._results = results.open("wb")
        self._failures = failures.open("wb")
        self._spool = Spool(self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            for span, rows in self._spool.buckets():
                for index in span:
                    if index in rows:
                        tag, payload = rows[index][-1]
                        self._results.write(payload + b"\n")
                        if tag == _FAILED:
                            self._failures.write(payload + b"\n")
        finally:
            self._spool.close()
            self._results.close()
            self._failures.close()

    def media(self, item: BatchItem, output: Any) -> tuple[Any, int]:
        """Output with its media written to files (runs in pool threads)."""
        from airflow_provider_edgeinfer.operators.outputs import MediaWriter

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
        # One line: JSON escapes every newline inside strings.
        data = json.dumps(line, default=str, separators=(",", ":")).encode()
        self._spool.put(item.index, _SUCCEEDED if succeeded else _FAILED, data)
        summary = self.summary
        summary.total += 1
        summary.files += files
        if cost_usd is None:
            summary.items_without_cost += 1
        else:
            summary.cost_usd = (summary.cost_usd or 0.0) + cost_usd
        if succeeded:
            summary.succeeded += 1
        else:
            summary.failed += 1
            if len(summary.failure_examples) < 3:
                message = (error or {}).get("message", "")
                summary.failure_examples.append(f"{item.custom_id}: {str(message)[:120]}")


# -- native batches -----------------------------------------------------------------------------


def round_items(header: Header, total: int) -> list[list[int]]:
    """Per round, the global item index of each position in that round's batch."""
    return [r.indices if r.indices is not None else list(range(total)) for r in header.rounds]


def write_native(hook: EdgeInferHook, header: Header, items: list[BatchItem], writer: ResultsWriter) -> None:
    """Every item from the last round that ran it, read a page at a time.

    Results are checked as they are read (:class:`~.native.NativeResults`): an item without a
    result gets a failed row, and a batch that ended with items missing fails the task.
    """
    from airflow_provider_edgeinfer.batch.native import NativeResults

    positions = round_items(header, len(items))
    final_round = [0] * len(items)
    for number, indices in enumerate(positions):
        for index in indices:
            final_round[index] = number
    for number, batch_round in enumerate(header.rounds):
        if batch_round.batch_id is None:
            continue
        results = NativeResults(hook, batch_round.batch_id, len(positions[number]), NATIVE_PAGE_LIMIT)
        for result in results:
            index = positions[number][result.index]
            if final_round[index] != number:
                continue
            item = items[index]
            ok = result.state == "succeeded"
            output, files = writer.media(item, result.response) if ok else (None, 0)
            error = result.error.model_dump() if result.error is not None else None
            if error is not None:
                error = {"type": "JobFailedError", **error}
            writer.row(
                item,
                succeeded=ok,
                request_id=f"{batch_round.batch_id}#{result.index}",
                output=output,
                error=error,
                cost_usd=result.cost_usd,
                files=files,
            )
        for position in results.missing:
            index = positions[number][position]
            if final_round[index] == number:
                message = f"{hook.vendor} batch {batch_round.batch_id} returned no result for this item"
                writer.row(items[index], succeeded=False, request_id=None, error=_error(message))
        results.check_complete()


def native_retryable(hook: EdgeInferHook, batch_id: str, indices: list[int]) -> list[int]:
    """Global indices of a round's items that failed for a reason worth another try."""
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
    """Final jobs of a fan-out's submitted items, found as cheaply as the vendor allows."""

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

    def listed(self, wanted: dict[str, int], since: float) -> Iterator[tuple[int, Job]]:
        """Jobs of ``wanted`` (request id -> index) from the vendor's listing, newest first.

        Only when the vendor lists request states. Listed requests stay unparsed; only this batch's
        are validated (most of a page's cost).
        """
        api = self.hook.api
        if not wanted or not api.lists_request_states:
            return
        scan = api.scan_requests(since)
        for listed in scan.walk(lambda call: patient_read(self.hook, call)):
            index = wanted.pop(listed.id, None)
            if index is not None:
                yield index, api.listed_job(listed, self.service)
                if not wanted:
                    return

    def jobs(self, records: dict[int, ItemRecord]) -> Iterator[tuple[int, Job | None, dict[str, Any] | None]]:
        """(index, final job or None, error) of every submitted item (``sub`` records)."""
        wanted = {r.request_id: i for i, r in records.items() if r.kind == "sub" and r.request_id}
        since = min((r.at or 0.0 for r in records.values() if r.kind == "sub"), default=0.0)
        for index, job in self.listed(wanted, since):
            yield index, job, None
        # Whatever the listing did not give, one GET each, a chunk at a time.
        rest = sorted(wanted.items(), key=lambda pair: pair[1])
        with ThreadPoolExecutor(self.concurrency) as pool:
            for start in range(0, len(rest), FETCH_CHUNK):
                chunk = rest[start : start + FETCH_CHUNK]
                for (_, index), (found, error) in zip(
                    chunk, pool.map(lambda pair: self._status(pair[0]), chunk), strict=True
                ):
                    yield index, found, error


def write_fanout(
    hook: EdgeInferHook,
    service: str,
    items: list[BatchItem],
    records: dict[int, ItemRecord],
    writer: ResultsWriter,
    *,
    concurrency: int = 8,
    unfinished_error: str = "the request had not finished when the batch ended",
) -> None:
    """Every item of a fan-out: settled records as they are, submitted ones from the vendor."""
    from airflow_provider_edgeinfer.clients.jobs import Job

    for index, item in enumerate(items):
        record = records.get(index)
        if record is None:
            writer.row(item, succeeded=False, request_id=None, error=_error("never submitted"))
        elif record.kind == "err":
            writer.row(item, succeeded=False, request_id=None, error=record.error)
        elif record.kind == "intent":
            writer.row(
                item,
                succeeded=False,
                request_id=None,
                error=_error(
                    "the submission was sent but its answer was lost; the vendor offers no way to find "
                    "the request, so it was not resubmitted (it may have run and been billed)",
                    "OutcomeUnknownError",
                ),
            )
        elif record.kind == "done" and record.job is not None:
            _prepared(hook, writer, item, Job.model_validate(record.job), None, unfinished_error, service)()

    source = FanOutResults(hook, service, concurrency)
    with ThreadPoolExecutor(concurrency) as pool:
        for batch in _chunked(source.jobs(records), FETCH_CHUNK):

            def build(entry: tuple[int, Job | None, dict[str, Any] | None]) -> Callable[[], None]:
                index, job, error = entry
                return _prepared(hook, writer, items[index], job, error, unfinished_error, service)

            for write in pool.map(build, batch):
                write()


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
    from airflow_provider_edgeinfer.clients.jobs import JobState

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
        output = job.output
        fetch = hook.api.fetch_output(job)
        if fetch is not None:
            output = patient_read(hook, fetch)
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


def _chunked(values: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for value in values:
        chunk.append(value)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def fanout_retryable(hook: EdgeInferHook, service: str, records: dict[int, ItemRecord]) -> list[int]:
    """Indices worth another round: transient refusals, and requests the vendor accepted that then
    failed, were cancelled or expired. Refused inputs and lost answers are not retried."""
    from airflow_provider_edgeinfer.clients.jobs import JobState

    out = [i for i, r in records.items() if r.kind == "err" and r.transient]
    out += [
        i
        for i, r in records.items()
        if r.kind == "done" and r.job and r.job.get("state") != JobState.SUCCEEDED.value
    ]
    for index, job, _ in FanOutResults(hook, service).jobs(records):
        if job is not None and job.state in (JobState.FAILED, JobState.CANCELLED, JobState.EXPIRED):
            out.append(index)
    return sorted(out)
