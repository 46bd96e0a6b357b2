"""The batch manifest keeps the evidence of what a batch submitted: a retry never loses it and pays again."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_edgeinfer.batch.manifest import (
    HEADER,
    Header,
    JournalWriter,
    Manifest,
    Round,
)
from airflow_provider_edgeinfer.exceptions import ConfigurationError
from tests.batch.journal import record, records

ITEMS = 6


def _manifest(tmp_path: Path) -> Manifest:
    from airflow_provider_edgeinfer.storage import as_storage_path

    return Manifest(as_storage_path(str(tmp_path)))


def _header(**round_fields: Any) -> Header:
    now = time.time()
    return Header(
        fingerprint="f" * 32,
        vendor="infrai",
        service="chat.completions",
        mode="native",
        total=3,
        created_at=now,
        rounds=[Round(number=0, started_at=now, **round_fields)],
    )


# -- a retry of an unfinished batch ------------------------------------------------------------------


@pytest.fixture
def theta(edgeinfer_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    from airflow_provider_edgeinfer.emulator.state import Timing

    for name, value in edgeinfer_emulator.connections().items():
        monkeypatch.setenv(name, value)
    edgeinfer_emulator.state.timing["theta"] = Timing(0.0, 600.0)  # still running when the retry comes
    return edgeinfer_emulator


def _submitted(emulator: Any) -> int:
    return sum(emulator.state.snapshot()["submissions"]["theta"].values())


def _try(tmp_path: Path) -> None:
    """One try of a fan-out batch: it submits what the manifest does not show as sent, then defers."""
    from airflow_provider_edgeinfer.operators.batch import BatchOperator
    from tests.batch.batch_worker import FakeTI

    op = BatchOperator(
        task_id="batch",
        conn_id="edgeinfer_theta_default",
        service="whisper",
        inputs=[{"audio_filename": f"https://example.invalid/m-{n}.wav"} for n in range(ITEMS)],
        output_path=str(tmp_path),
        deferrable=True,
    )
    op.execute({"ti": FakeTI()})  # type: ignore[typeddict-item]


def _first_try(tmp_path: Path) -> None:
    """A fan-out that submitted every item and deferred; then the task was lost."""
    with pytest.raises(TaskDeferred):
        _try(tmp_path)


@pytest.mark.parametrize(
    "damage",
    [b"", b'{"version": 1, "fingerprint": "', b"\xff\xfe not json"],
    ids=["empty", "torn", "garbage"],
)
def test_an_unreadable_header_fails_the_retry_and_keeps_the_journal(
    theta: Any, tmp_path: Path, damage: bytes
) -> None:
    _first_try(tmp_path)
    assert _submitted(theta) == ITEMS
    journal = sorted(p.name for p in (tmp_path / "_edgeinfer" / "journal").iterdir())
    (tmp_path / "_edgeinfer" / HEADER).write_bytes(damage)

    with pytest.raises(ConfigurationError, match=r"batch manifest .*batch\.json is unreadable"):
        _try(tmp_path)
    assert _submitted(theta) == ITEMS, "nothing may be sent again"
    assert sorted(p.name for p in (tmp_path / "_edgeinfer" / "journal").iterdir()) == journal


def test_a_missing_header_beside_a_journal_fails_the_retry_and_keeps_the_journal(
    theta: Any, tmp_path: Path
) -> None:
    _first_try(tmp_path)
    (tmp_path / "_edgeinfer" / HEADER).unlink()

    with pytest.raises(ConfigurationError, match=r"journal of submissions but no batch\.json"):
        _try(tmp_path)
    assert _submitted(theta) == ITEMS, "nothing may be sent again"
    assert list((tmp_path / "_edgeinfer" / "journal").iterdir())


def test_an_empty_manifest_directory_is_a_new_batch(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    assert manifest.read_header() is None
    (tmp_path / "_edgeinfer" / "journal").mkdir(parents=True)
    assert manifest.read_header() is None


# -- has_submissions, reset ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("round_fields", "segment", "expected"),
    [
        ({}, False, False),
        ({"key": "edgeinfer-k"}, False, True),  # the submit went out; its answer may have been lost
        ({"key": "edgeinfer-k", "batch_id": "batch_1"}, False, True),
        ({"batch_id": "batch_1"}, False, True),
        ({}, True, True),
    ],
    ids=["nothing", "native key only", "native batch", "batch id only", "fan-out journal"],
)
def test_has_submissions(tmp_path: Path, round_fields: dict[str, Any], segment: bool, expected: bool) -> None:
    manifest = _manifest(tmp_path)
    header = _header(**round_fields)
    manifest.write_header(header)
    if segment:
        manifest.write_segment(records({"k": "intent", "i": 0, "r": 0}))
    assert manifest.has_submissions(header) is expected


def test_has_submissions_looks_at_every_round(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    header = _header(key="edgeinfer-k", batch_id="batch_1")
    header.rounds.append(Round(number=1, started_at=time.time(), indices=[2]))
    assert manifest.has_submissions(header)


def test_reset_forgets_the_header_the_sources_and_every_segment(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    manifest.write_header(_header())
    manifest.write_sources(["a.wav"])
    for i in range(3):
        manifest.write_segment(records({"k": "sub", "i": i, "r": 0, "id": f"r{i}"}))
    manifest.reset()
    assert manifest.read_header() is None
    assert manifest.read_sources() is None
    assert manifest.items() == {}
    assert not manifest.has_submissions(_header())


# -- records ---------------------------------------------------------------------------------------


def test_an_error_is_permanent_unless_marked_transient(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    manifest.write_segment(
        records(
            {"k": "err", "i": 0, "r": 0, "e": {"type": "InputValidationError", "message": "bad"}},
            {"k": "err", "i": 1, "r": 0, "t": True, "e": {"type": "ServerError", "message": "503"}},
            {"k": "err", "i": 2, "r": 0, "t": False, "e": {"type": "JobFailedError", "message": "x"}},
        )
    )
    manifest.write_segment(records({"k": "sub", "i": 3, "r": 0, "id": "r3"}))
    items = manifest.items()
    assert {i: r.transient for i, r in items.items()} == {0: False, 1: True, 2: False, 3: False}
    manifest.compact()
    assert {i: r.transient for i, r in manifest.items().items()} == {0: False, 1: True, 2: False, 3: False}
    # A permanent error is not even written as a flag: its absence must mean "not transient".
    [segment] = (tmp_path / "_edgeinfer" / "journal").iterdir()
    stored = [json.loads(line) for line in segment.read_text().splitlines()]
    assert [r.get("t") for r in stored] == [None, True, None, None]


# -- the journal writer ----------------------------------------------------------------------------


class _Broken(Manifest):
    """A manifest whose storage refuses the second write."""

    def __init__(self, output_dir: Any) -> None:
        super().__init__(output_dir)
        self.calls = 0

    def write_segment(self, records: Any, *, prefix: str = "", name: str | None = None) -> None:
        self.calls += 1
        if self.calls >= 2:
            raise OSError("the object store refused the write")
        super().write_segment(records, prefix=prefix, name=name)


def test_a_sender_waiting_on_a_failed_write_learns_it(tmp_path: Path) -> None:
    """Nobody may send an item whose intent is not durable: the waiter gets the error, not silence."""
    from airflow_provider_edgeinfer.storage import as_storage_path

    manifest = _Broken(as_storage_path(str(tmp_path)))
    outcomes: list[str] = []

    async def sender(writer: JournalWriter, i: int) -> None:
        try:
            await writer.append(*record({"k": "intent", "i": i, "r": 0}), durable=True)
        except OSError:
            outcomes.append("refused")
            return
        outcomes.append("sent")

    async def run() -> None:
        writer = JournalWriter(manifest)
        await writer.__aenter__()
        await sender(writer, 0)
        await asyncio.wait_for(asyncio.gather(*(sender(writer, i) for i in (1, 2, 3))), timeout=5)
        with pytest.raises(OSError):
            await writer.__aexit__(None, None, None)

    asyncio.run(run())
    assert outcomes == ["sent", "refused", "refused", "refused"]
    assert list(manifest.items()) == [0]


def test_a_writer_takes_records_only_while_it_runs(tmp_path: Path) -> None:
    """A record given to a writer that is not running would never be stored: it is refused."""
    manifest = _manifest(tmp_path)

    async def run() -> None:
        writer = JournalWriter(manifest)
        with pytest.raises(RuntimeError, match="not running"):
            await writer.append(*record({"k": "intent", "i": 0, "r": 0}), durable=True)
        async with writer:
            await asyncio.wait_for(
                writer.append(*record({"k": "intent", "i": 1, "r": 0}), durable=True), timeout=5
            )
        with pytest.raises(RuntimeError, match="not running"):
            await writer.append(*record({"k": "intent", "i": 2, "r": 0}))
        assert writer.writes == 1

    asyncio.run(run())
    assert list(manifest.items()) == [1]


def test_records_that_need_not_be_durable_ride_along_with_the_next_write(tmp_path: Path) -> None:
    """Group commit: only an intent waits for storage; a burst of records costs one segment."""
    manifest = _manifest(tmp_path)

    async def run() -> int:
        async with JournalWriter(manifest) as writer:
            for i in range(3):
                await writer.append(*record({"k": "sub", "i": i, "r": 0, "id": f"r{i}"}))
            await writer.append(*record({"k": "intent", "i": 3, "r": 0}), durable=True)
        return writer.writes

    assert asyncio.run(run()) == 1
    assert sorted(manifest.items()) == [0, 1, 2, 3]


@pytest.mark.parametrize(("appends", "segments"), [(True, 1), (False, 5)])
def test_a_writer_appends_to_one_segment_where_storage_can_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, appends: bool, segments: int
) -> None:
    """A try's group commits on local disk go into one file (a retry opens one, not thousands);
    object storage cannot append, so there each is a segment of its own."""
    manifest = _manifest(tmp_path)
    if not appends:  # as on an object store
        monkeypatch.setattr(Manifest, "_local_journal", lambda self: None)

    async def run() -> int:
        async with JournalWriter(manifest) as writer:
            for i in range(5):
                await writer.append(*record({"k": "intent", "i": i, "r": 0}), durable=True)
        return writer.writes

    assert asyncio.run(run()) == 5
    assert len(manifest._segments()) == segments
    assert sorted(manifest.items()) == [0, 1, 2, 3, 4]


# -- the layout on storage: what a retry, maybe of a newer release, reads back ----------------------

#: A header as this layout writes it; a retry by a later release of the same layout must read it.
FROZEN_HEADER = (
    b'{"version": 1, "fingerprint": "ffffffffffffffffffffffffffffffff", "vendor": "theta", '
    b'"service": "whisper", "prediction": null, "mode": "fanout", "total": 2, "created_at": 1767225600.0, '
    b'"rounds": [{"number": 0, "started_at": 1767225600.0, "indices": null, "key": null, '
    b'"batch_id": null, "submitted": 2, "submit_seconds": 0.5}], "outcome": null}'
)


def test_a_header_of_this_layout_reads_back_and_another_layout_version_is_refused(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    (tmp_path / "_edgeinfer").mkdir()
    (tmp_path / "_edgeinfer" / HEADER).write_bytes(FROZEN_HEADER)
    header = manifest.read_header()
    assert header is not None
    assert (header.vendor, header.total, header.current.submitted) == ("theta", 2, 2)
    manifest.write_header(header)
    assert manifest.read_header() == header

    other = json.loads(FROZEN_HEADER)
    other["version"] = 2
    (tmp_path / "_edgeinfer" / HEADER).write_text(json.dumps(other))
    with pytest.raises(ConfigurationError, match="layout version 2; this release reads version 1"):
        manifest.read_header()


def test_a_round_no_try_has_sent_counts_nothing() -> None:
    """The fan-out figures are sums over the tries that sent the round: they start at zero."""
    fresh = Round(number=1, started_at=time.time(), indices=[0])
    assert (fresh.submitted, fresh.submit_seconds) == (0, 0.0)


def test_the_frozen_glob_matches_read_back_from_sources_jsonl(tmp_path: Path) -> None:
    """A retry takes the items a glob matched at the start from ``_edgeinfer/sources.jsonl``."""
    manifest = _manifest(tmp_path)
    assert manifest.read_sources() is None
    manifest.write_sources(["s3://in/a.wav", "s3://in/b\nc.wav"])
    lines = (tmp_path / "_edgeinfer" / "sources.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == ["s3://in/a.wav", "s3://in/b\nc.wav"]
    read = manifest.read_sources()
    assert read is not None and len(read) == 2
    assert list(read) == ["s3://in/a.wav", "s3://in/b\nc.wav"]


def test_a_manifest_of_an_earlier_release_keeps_its_frozen_matches(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    (tmp_path / "_edgeinfer").mkdir(parents=True, exist_ok=True)
    (tmp_path / "_edgeinfer" / "sources.json").write_text('["s3://in/a.wav", "s3://in/b.wav"]')
    assert manifest.read_sources() == ["s3://in/a.wav", "s3://in/b.wav"]
    (tmp_path / "_edgeinfer" / "sources.json").write_text('{"not": "a list"}')
    assert manifest.read_sources() is None


def test_reset_of_a_partly_deleted_manifest(tmp_path: Path) -> None:
    """Someone removed some files by hand: a re-run still starts a new batch."""
    manifest = _manifest(tmp_path)
    manifest.write_header(_header())
    manifest.write_segment(records({"k": "sub", "i": 0, "r": 0, "id": "r0"}))
    (tmp_path / "_edgeinfer" / HEADER).unlink()  # and there never were sources
    manifest.reset()
    assert manifest.read_header() is None and manifest.items() == {}
    manifest.reset()  # nothing left at all


def test_writing_no_records_leaves_no_trace_of_a_submission(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    header = _header()
    manifest.write_header(header)
    manifest.write_segment([])
    assert not manifest.has_submissions(header)


def test_a_record_s_time_survives_a_read_back_and_compaction(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    manifest.write_segment(records({"k": "intent", "i": 0, "r": 0, "at": 1767225600.5}))
    manifest.write_segment(records({"k": "intent", "i": 1, "r": 0}))
    assert {i: r.at for i, r in manifest.items().items()} == {0: 1767225600.5, 1: None}
    manifest.compact()
    assert len(list((tmp_path / "_edgeinfer" / "journal").iterdir())) == 1, "two segments fold into one"
    assert {i: r.at for i, r in manifest.items().items()} == {0: 1767225600.5, 1: None}


def test_compact_folds_every_segment_into_one_and_keeps_every_item(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    journal = tmp_path / "_edgeinfer" / "journal"
    manifest.write_segment(records(*({"k": "intent", "i": i, "r": 0, "h": f"h{i}"} for i in range(4))))
    manifest.write_segment(records(*({"k": "sub", "i": i, "r": 0, "id": f"r{i}"} for i in range(3))))
    manifest.write_segment(records({"k": "err", "i": 3, "r": 0, "t": True, "e": {"type": "ServerError"}}))
    manifest.write_segment(records({"k": "done", "i": 0, "r": 0, "id": "r0", "job": {"state": "succeeded"}}))
    before = manifest.items()
    manifest.compact()
    assert len(list(journal.iterdir())) == 1
    assert manifest.items() == before
    assert {i: r.kind for i, r in before.items()} == {0: "done", 1: "sub", 2: "sub", 3: "err"}


def test_compact_leaves_a_journal_of_one_segment_as_it_is(tmp_path: Path) -> None:
    """Nothing to fold: no rewrite (on object storage a rewrite is a write and a delete)."""
    manifest = _manifest(tmp_path)
    manifest.compact()  # no journal at all
    manifest.write_segment(records({"k": "intent", "i": 0, "r": 0}, {"k": "sub", "i": 0, "r": 0, "id": "r0"}))
    journal = tmp_path / "_edgeinfer" / "journal"
    [segment] = journal.iterdir()
    manifest.compact()
    assert list(journal.iterdir()) == [segment]


def test_a_record_written_after_compaction_wins_even_from_a_clock_that_is_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compacted segment sorts before every other one, so a later record of the same round is
    replayed after it whatever the clock of the machine that wrote it."""
    manifest = _manifest(tmp_path)
    clock = iter([3_000_000_000_000_000_000, 3_000_000_000_000_000_001, 3_000_000_000_000_000_002, 1])
    monkeypatch.setattr(time, "time_ns", lambda: next(clock))
    manifest.write_segment(records({"k": "intent", "i": 0, "r": 0}))
    manifest.write_segment(records({"k": "sub", "i": 0, "r": 0, "id": "r0"}))
    manifest.compact()
    manifest.write_segment(
        records({"k": "done", "i": 0, "r": 0, "id": "r0"})
    )  # a worker whose clock is behind
    assert manifest.items()[0].kind == "done"


def test_a_manifest_names_its_directory(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    assert repr(manifest) == f"Manifest({manifest.directory})"
    assert repr(manifest).endswith("/_edgeinfer)")


# -- the fast pass over a journal: the same answers as reading every record whole ------------------

ODD_LINES = [
    {"k": "intent", "i": 0, "r": 1, "h": "abc", "at": 1.5},
    {"k": "sub", "i": 0, "r": 1, "id": "req-0", "at": 2.0},
    {"k": "done", "i": 1, "r": 1, "id": "req-1", "job": {"state": "succeeded", "output": {"x": [1, 2]}}},
    {"k": "done", "i": 2, "r": 1, "id": "req-2", "job": {"state": "failed"}},
    {"k": "done", "i": 3, "r": 1, "id": "req-3", "job": {}},
    {"k": "err", "i": 4, "r": 1, "t": True, "e": {"type": "ServerError", "message": "m"}},
    {"k": "err", "i": 5, "r": 2, "e": {"type": "InputValidationError", "message": "m"}},
    {"k": "intent", "i": 6},  # no round: round 0
    {"k": "sub", "i": 7.0, "r": "1", "id": "req-7"},  # numbers as the lenient reader takes them
    {"k": "err", "i": 8, "r": 1, "t": 1},  # a truthy flag, read as transient
    {"k": "sub", "i": 9, "r": 1, "id": "req-9", "unknown": {"nested": [1]}},
]


def _oracle_states(manifest: Manifest, total: int) -> tuple[bytes, list[int]]:
    from airflow_provider_edgeinfer.batch.index import ItemStates
    from airflow_provider_edgeinfer.batch.manifest import state_code

    states = ItemStates(total)
    for index, rec in manifest.records():
        states.apply(index, state_code(rec), rec.round)
    return bytes(states.kinds), list(states.rounds)


def test_the_fast_state_pass_reads_every_line_as_the_whole_record_reader_does(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    manifest.journal_dir.mkdir(parents=True)
    lines = b"".join(json.dumps(raw).encode() + b"\n" for raw in ODD_LINES)
    (manifest.journal_dir / "00000000000000000001-a.jsonl").write_bytes(lines + b'{"k": "sub", "i": 10, "r"')
    states = manifest.states(12)
    assert (bytes(states.kinds), list(states.rounds)) == _oracle_states(manifest, 12)
    assert states.kinds[10] == 0  # the torn last line carries nothing


@pytest.mark.parametrize("line", [b'{"k": "maybe", "i": 0}', b'{"i": 0, "r": 1}', b'["sub", 0]'])
def test_the_fast_state_pass_refuses_a_whole_line_that_is_not_a_record(tmp_path: Path, line: bytes) -> None:
    manifest = _manifest(tmp_path)
    manifest.journal_dir.mkdir(parents=True)
    (manifest.journal_dir / "00000000000000000001-a.jsonl").write_bytes(line + b"\n")
    with pytest.raises(ConfigurationError, match="not a record"):
        manifest.states(2)


def test_latest_of_gives_the_latest_records_of_the_asked_items_and_every_request_id(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    manifest.write_segment(
        records(
            {"k": "intent", "i": 0, "r": 1, "h": "old"},
            {"k": "sub", "i": 0, "r": 1, "id": "req-0"},
            {"k": "intent", "i": 1, "r": 1, "h": "first"},
            {"k": "sub", "i": 2, "r": 1, "id": "req-2"},
        )
    )
    manifest.write_segment(
        records({"k": "intent", "i": 1, "r": 2, "h": "second"}, {"k": "intent", "i": 0, "r": 2, "h": "again"})
    )
    states = manifest.states(3)
    latest, known = manifest.latest_of(states, {1, 0})
    assert {i: (r.kind, r.round, r.input_hash) for i, r in latest.items()} == {
        1: ("intent", 2, "second"),
        0: ("intent", 2, "again"),
    }
    assert (known.get("req-0"), known.get("req-2"), known.get("req-9")) == (0, 2, None)
    assert latest == {i: r for i, r in manifest.winners(states) if i in (0, 1)}
