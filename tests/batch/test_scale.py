"""A batch's memory and polling do not grow with the batch: small-N versions of the back-fill figures.

Memory is traced (tracemalloc) at 1,000 and at 10,000 items; what grows in between, divided by the
9,000 items, is what each item costs (windows such as a spool's bucket are made smaller than 1,000).
A dict or a set per item costs hundreds of bytes; the streamed paths keep a few. Polling is counted
against the emulator: the calls of a poll follow the unfinished requests, not the batch.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeinfer.batch.manifest import ItemRecord, Manifest
from airflow_provider_edgeinfer.clients.core import Job, JobState
from airflow_provider_edgeinfer.storage import as_storage_path

#: Bytes a streamed pass may keep per item (its fixed-width tables are 1 to 20 bytes an item).
MOST_BYTES_PER_ITEM = 64


SMALL, LARGE = 1_000, 10_000


@pytest.fixture(autouse=True)
def _small_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_edgeinfer.batch import index, manifest

    monkeypatch.setattr(index, "SPOOL_BUCKET", 256)
    monkeypatch.setattr(manifest, "_WRITE_LINES", 256)


def _growth_per_item(run: Callable[[Path, int], Any], tmp_path: Path) -> float:
    """Peak traced memory of ``run(directory, n)`` at LARGE items minus at SMALL, per item."""
    peaks: list[int] = []
    for n in (SMALL, SMALL, LARGE):  # the first run, untraced, imports what the code needs
        directory = tmp_path / f"{n}-{len(peaks)}"
        directory.mkdir()
        prepare = getattr(run, "prepare", None)
        if prepare is not None:
            prepare(directory, n)
        if not peaks:
            run(directory, n)
            peaks.append(0)
            continue
        tracemalloc.start()
        run(directory, n)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return (peaks[2] - peaks[1]) / (LARGE - SMALL)


def _journal(directory: Path, n: int, kind: str = "sub") -> Manifest:
    """A fan-out's journal of ``n`` items in 50 segments, as a fan-out leaves it."""
    manifest = Manifest(as_storage_path(str(directory)))
    now = time.time()
    step = max(1, n // 50)
    for start in range(0, n, step):
        records = []
        for i in range(start, min(n, start + step)):
            if kind == "sub":
                records.append((i, ItemRecord("intent", 0, at=now, input_hash="h" * 20)))
                records.append((i, ItemRecord("sub", 0, f"infr_rqst_{i:026d}", now)))
            else:
                job = Job(
                    vendor="theta",
                    request_id=f"r{i}",
                    state=JobState.SUCCEEDED,
                    vendor_state="success",
                    output={"text": "hi"},
                ).model_dump(mode="json")
                records.append((i, ItemRecord("done", 0, f"r{i}", now, job=job)))
        manifest.write_segment(records)
    return manifest


def _jsonl(directory: Path, n: int) -> None:
    with (directory / "in.jsonl").open("w") as handle:
        for i in range(n):
            handle.write(json.dumps({"custom_id": f"id-{i}", "input": {"prompt": f"item {i}"}}) + "\n")


def test_checking_a_jsonl_file_keeps_a_few_bytes_per_item(tmp_path: Path) -> None:
    from airflow_provider_edgeinfer.batch.inputs import open_items

    def run(directory: Path, n: int) -> None:
        items = open_items(str(directory / "in.jsonl"))
        items.check(("theta", "flux", None), lambda item: None)
        assert len(items) == n

    run.prepare = _jsonl  # type: ignore[attr-defined]
    assert _growth_per_item(run, tmp_path) < MOST_BYTES_PER_ITEM


def test_reading_the_journal_keeps_a_few_bytes_per_item(tmp_path: Path) -> None:
    from airflow_provider_edgeinfer.batch.index import SUB
    from airflow_provider_edgeinfer.batch.watch import load_fanout_watch

    def run(directory: Path, n: int) -> None:
        manifest = Manifest(as_storage_path(str(directory)))
        assert manifest.states(n).count(SUB) == n
        manifest.compact(n)
        watch = load_fanout_watch(str(directory), 0, 16)
        assert watch.open_count == n

    run.prepare = _journal  # type: ignore[attr-defined]
    assert _growth_per_item(run, tmp_path) < MOST_BYTES_PER_ITEM


class _ResultsApi:
    """What writing a fan-out's results asks of a client: no listing, no result endpoint."""

    lists_request_states = False

    def output_read(self, job: Any, *, output_known: bool) -> None:
        return None


class _ResultsHook:
    api = _ResultsApi()
    vendor = "theta"


def test_writing_results_streams_them(tmp_path: Path) -> None:
    from airflow_provider_edgeinfer.batch import results
    from airflow_provider_edgeinfer.batch.inputs import BatchItem

    def run(directory: Path, n: int) -> None:
        manifest = Manifest(as_storage_path(str(directory)))
        items = (BatchItem(i, f"id-{i}", {"prompt": "p"}, f"inputs[{i}]") for i in range(n))
        with results.ResultsWriter(as_storage_path(str(directory / "out")), n) as writer:
            results.write_fanout(_ResultsHook(), "flux", items, manifest, n, writer)  # type: ignore[arg-type]
        assert writer.summary.succeeded == n

    run.prepare = lambda directory, n: _journal(directory, n, kind="done")  # type: ignore[attr-defined]
    assert _growth_per_item(run, tmp_path) < MOST_BYTES_PER_ITEM
    rows = (tmp_path / f"{LARGE}-2" / "out" / "results.jsonl").read_text().splitlines()
    assert [json.loads(row)["index"] for row in rows] == list(range(LARGE))


def test_a_globs_files_are_checked_and_written_with_a_few_bytes_per_item(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A glob's items (a path object per file, from the sorted list on disk) through the checking
    pass and the results, as a task runs them after its uploads: nothing kept per file."""
    from airflow_provider_edgeinfer.batch import filelist, results
    from airflow_provider_edgeinfer.batch.inputs import open_items

    monkeypatch.setattr(filelist, "RUN_NAMES", 256)  # one sorting run in memory: small here

    def prepare(directory: Path, n: int) -> None:
        files = directory / "files"
        files.mkdir()
        for i in range(n):
            (files / f"{i:06d}.wav").write_bytes(b"RIFF")
        _journal(directory, n, kind="done")

    def run(directory: Path, n: int) -> None:
        items = open_items(str(directory / "files" / "*.wav"), file_field="audio_filename")
        items.check(("theta", "whisper", None), lambda item: None)
        assert len(items) == n
        manifest = Manifest(as_storage_path(str(directory)))
        with results.ResultsWriter(as_storage_path(str(directory / "out")), n) as writer:
            results.write_fanout(_ResultsHook(), "whisper", items, manifest, n, writer)  # type: ignore[arg-type]
        assert writer.summary.succeeded == n

    run.prepare = prepare  # type: ignore[attr-defined]
    assert _growth_per_item(run, tmp_path) < MOST_BYTES_PER_ITEM
    last = (tmp_path / f"{LARGE}-2" / "out" / "results.jsonl").read_text().splitlines()[-1]
    assert json.loads(last)["input_ref"].endswith(f"{LARGE - 1:06d}.wav")


# -- polling -------------------------------------------------------------------------------------


@pytest.fixture
def theta_jobs(edgeinfer_emulator: Any) -> Any:
    """``make(n, since)``: n Theta requests created in the emulator (no HTTP), running until told."""
    from airflow_provider_edgeinfer.emulator.state import Timing
    from airflow_provider_edgeinfer.emulator.theta import ThetaJobs

    edgeinfer_emulator.state.timing["theta"] = Timing(0.0, 3600.0)
    jobs = ThetaJobs(edgeinfer_emulator.state)

    def make(n: int) -> list[dict[str, Any]]:
        return [jobs.create("flux", "predict", {"prompt": str(i)}, "http://127.0.0.1") for i in range(n)]

    return make


def _poll(emulator: Any, directory: Path, polls: int = 1, between: Callable[[], None] | None = None) -> Any:
    from airflow_provider_edgeinfer.batch.watch import load_fanout_watch
    from airflow_provider_edgeinfer.clients.core import Credentials
    from airflow_provider_edgeinfer.clients.theta import ThetaAPI
    from airflow_provider_edgeinfer.clients.transport import AsyncClient

    api = ThetaAPI(emulator.vendor_url("theta"), project_id="prj_emulator")
    key = Credentials.of(emulator.state.keys["theta"])
    watch = load_fanout_watch(str(directory), 0, 16)

    async def run() -> list[Any]:
        out = []
        async with AsyncClient(api, key) as client:
            for _ in range(polls):
                out.append(await watch.poll(client))
                if between is not None:
                    between()
        return out

    return watch, asyncio.run(run())


def test_theta_poll_calls_follow_the_unfinished_requests_not_the_batch(
    edgeinfer_emulator: Any, theta_jobs: Any, tmp_path: Path
) -> None:
    from airflow_provider_edgeinfer.clients.theta import PAGE_SIZE

    theta_jobs(3_000)  # another batch of the project, ended before ours: never read
    for job in edgeinfer_emulator.state.tables["theta.jobs"].values():
        job["ends"] = 0.0
    ours = theta_jobs(2_500)
    now = time.time()
    Manifest(as_storage_path(str(tmp_path))).write_segment(
        (i, ItemRecord("sub", 0, job["id"], now)) for i, job in enumerate(ours)
    )
    clock = edgeinfer_emulator.state.clock.now()

    def end(count: int, fail: int = 0) -> None:
        """The first ``count`` of ours end (``fail`` of them failed); the rest keep running."""
        for i, job in enumerate(ours[:count]):
            job["ends"] = clock
            job["fails"] = i < fail

    watch, progress = _poll(edgeinfer_emulator, tmp_path)
    # Every request is running: pages of the running listing, one (empty) of the pending one.
    assert watch.calls == [math.ceil(2_500 / PAGE_SIZE) + 1]
    assert not progress[0].finished

    end(2_450)
    watch, progress = _poll(edgeinfer_emulator, tmp_path)
    assert watch.calls == [1 + 1]  # 50 running: one page each of pending and processing
    assert (progress[0].done, progress[0].finished) == (2_450, False)

    end(2_500, fail=7)
    watch, progress = _poll(edgeinfer_emulator, tmp_path)
    # Nothing left: the two empty unfinished listings, then one page per unsuccessful state.
    assert watch.calls == [2 + 3]
    assert progress[0].finished
    assert (progress[0].succeeded, progress[0].failed) == (2_493, 7)


def test_a_listing_that_ignores_the_state_filter_falls_back_to_the_whole_walk(
    edgeinfer_emulator: Any, theta_jobs: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_edgeinfer.emulator import theta as emulated

    ours = theta_jobs(30)
    now = time.time()
    Manifest(as_storage_path(str(tmp_path))).write_segment(
        (i, ItemRecord("sub", 0, job["id"], now)) for i, job in enumerate(ours)
    )
    for job in ours[:10]:
        job["ends"] = 0.0
    real = emulated.ThetaJobs.listing
    monkeypatch.setattr(
        emulated.ThetaJobs, "listing", lambda self, wanted, start, count: real(self, None, start, count)
    )
    watch, progress = _poll(edgeinfer_emulator, tmp_path)
    # Seen to be unfiltered on its first page: the whole listing, read once, tells each state.
    assert (progress[0].succeeded, progress[0].done, progress[0].finished) == (10, 10, False)
    assert watch.calls == [1 + 1]


def test_requests_that_end_while_the_vendor_answers_do_not_turn_the_filter_off(
    edgeinfer_emulator: Any, theta_jobs: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A running-state listing showing a few requests that ended meanwhile is still a filtered one."""
    from airflow_provider_edgeinfer.emulator import theta as emulated

    ours = theta_jobs(40)
    now = time.time()
    Manifest(as_storage_path(str(tmp_path))).write_segment(
        (i, ItemRecord("sub", 0, job["id"], now)) for i, job in enumerate(ours)
    )
    raced = ours[:3]
    real = emulated.ThetaJobs.listing

    def racing(self: Any, wanted: str | None, start: int, count: int) -> Any:
        chunk, total = real(self, wanted, start, count)
        if wanted == "processing" and start == 0:
            for job in raced:  # filtered while running, rendered once ended
                job["ends"] = 0.0
        return chunk, total

    monkeypatch.setattr(emulated.ThetaJobs, "listing", racing)
    watch, progress = _poll(edgeinfer_emulator, tmp_path, polls=2)
    assert not watch._unfiltered
    assert (progress[0].succeeded, progress[0].done, progress[0].finished) == (3, 3, False)
    # Still one page of each unfinished listing per poll, not the whole listing.
    assert watch.calls == [2, 2]
    assert (progress[1].done, progress[1].finished) == (3, False)


# -- native batches above the vendor's size ------------------------------------------------------


class _TI:
    dag_id, task_id, run_id, map_index = "scale_dag", "batch", "manual__scale", -1

    def xcom_push(self, **kwargs: Any) -> None:
        pass


def test_a_native_round_above_the_vendors_size_is_split_watched_as_one_and_resumed(
    emulated: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_edgeinfer.batch import native
    from airflow_provider_edgeinfer.operators.batch import BatchOperator

    monkeypatch.setattr(native, "MAX_NATIVE_BATCH_ITEMS", 5)
    monkeypatch.setattr(native, "NATIVE_PART_ITEMS", 3)
    operator = BatchOperator(
        task_id="batch",
        conn_id="edgeinfer_infrai_default",
        service="chat.completions",
        inputs=[
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"item {n}"}]} for n in range(8)
        ],
        output_path=str(tmp_path),
        poll_interval=1,
        deferrable=False,
    )
    real, keys = native.submit, []

    def dies_before_the_second(*args: Any, **kwargs: Any) -> Any:
        keys.append(kwargs["key"])
        if len(keys) == 2:
            raise SystemExit("the worker died before its second native batch")
        return real(*args, **kwargs)

    monkeypatch.setattr(native, "submit", dies_before_the_second)
    with pytest.raises(SystemExit):
        operator.execute({"ti": _TI()})  # type: ignore[arg-type,typeddict-item]
    parts = Manifest(as_storage_path(str(tmp_path))).read_header().rounds[0].parts  # type: ignore[union-attr]
    assert [(p.start, p.count) for p in parts] == [(0, 3), (3, 3), (6, 2)]
    assert parts[0].batch_id and parts[1].key and not parts[1].batch_id

    result = operator.execute({"ti": _TI()})  # type: ignore[arg-type,typeddict-item]
    # The retry sent the second batch with the key its intent recorded, and the third: nothing twice.
    assert keys[2] == keys[1] and len(set(keys)) == 3
    assert len(result["batch_ids"]) == 3 and result["succeeded"] == 8
    assert emulated.state.snapshot()["requests"]["infrai.batch.submit"] == 3
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [row["index"] for row in rows] == list(range(8))
    assert len({row["request_id"].split("#")[0] for row in rows}) == 3


def test_the_parts_of_a_native_round_come_from_one_pass_over_the_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_edgeinfer.batch.items import Items
    from airflow_provider_edgeinfer.batch.run import BatchRun

    path = tmp_path / "inputs.jsonl"
    path.write_text("".join(json.dumps({"custom_id": f"c{i}", "input": {"n": i}}) + "\n" for i in range(12)))
    items = Items.of_jsonl(as_storage_path(str(path)))
    opened = []
    real_open = Items._open
    monkeypatch.setattr(Items, "_open", lambda self: opened.append(1) or real_open(self))

    def indices(chosen: Any, parts: list[tuple[int, int]]) -> list[list[int]]:
        return [[item.index for item in part] for part in BatchRun._parts_items(items, chosen, parts)]

    # A whole round, its last two parts left (a resumed round): the sent part's lines are skipped.
    assert indices(range(12), [(5, 5), (10, 2)]) == [[5, 6, 7, 8, 9], [10, 11]]
    # A later round of some items only (the failed ones), in parts of two.
    assert indices([1, 2, 5, 7, 8, 11], [(0, 2), (2, 2), (4, 2)]) == [[1, 2], [5, 7], [8, 11]]
    assert len(opened) == 2  # one pass each


@pytest.mark.parametrize("rewritten", [False, True])
def test_a_retry_of_the_same_inputs_file_does_not_check_every_item_again(
    emulated: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rewritten: bool
) -> None:
    """Its bytes unchanged, a retry trusts the check made when the batch started (at a million items
    that check is most of a resume's time); any change to the bytes checks the items again."""
    from airflow_provider_edgeinfer.batch import native
    from airflow_provider_edgeinfer.batch.items import Items
    from airflow_provider_edgeinfer.operators.batch import BatchOperator

    monkeypatch.setattr(native, "MAX_NATIVE_BATCH_ITEMS", 2)
    monkeypatch.setattr(native, "NATIVE_PART_ITEMS", 2)
    inputs = tmp_path / "in.jsonl"
    lines = [
        json.dumps(
            {
                "custom_id": f"c{n}",
                "input": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"{n}"}]},
            }
        )
        for n in range(6)
    ]
    inputs.write_text("\n".join(lines) + "\n")
    operator = BatchOperator(
        task_id="batch",
        conn_id="edgeinfer_infrai_default",
        service="chat.completions",
        inputs=str(inputs),
        output_path=str(tmp_path / "out"),
        poll_interval=1,
        deferrable=False,
    )
    real_submit, submitted = native.submit, []

    def dies_before_the_second(*args: Any, **kwargs: Any) -> Any:
        submitted.append(kwargs["key"])
        if len(submitted) == 2:
            raise SystemExit("the worker died before its second native batch")
        return real_submit(*args, **kwargs)

    monkeypatch.setattr(native, "submit", dies_before_the_second)
    with pytest.raises(SystemExit):
        operator.execute({"ti": _TI()})  # type: ignore[arg-type,typeddict-item]
    if rewritten:  # the same items, other bytes (a line ending more)
        inputs.write_text("\n".join(lines) + "\n\n")
    real_check, checks = Items.check, []
    monkeypatch.setattr(Items, "check", lambda self, *a, **k: checks.append(1) or real_check(self, *a, **k))
    result = operator.execute({"ti": _TI()})  # type: ignore[arg-type,typeddict-item]
    assert result["succeeded"] == 6 and len(set(submitted)) == 3
    assert len(checks) == (1 if rewritten else 0)


def test_per_item_tables_are_built_without_a_second_copy() -> None:
    from airflow_provider_edgeinfer.batch.index import IdIndex

    n = 100_000
    tracemalloc.start()
    IdIndex(n)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    table = (n * 3 // 2 + 1) * (8 + 4)  # 64-bit hashes and 32-bit indices
    assert peak < table * 1.25, (peak, table)
