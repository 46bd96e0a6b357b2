"""A finished batch run again (a cleared day, a back-fill re-run): it pays only for what changed.

Each test runs a real (non-deferrable) BatchOperator against the emulator, runs it again into the
same output_path, and counts what the emulator was asked to create.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeinfer.batch.inputs import fingerprint
from airflow_provider_edgeinfer.operators.batch import BatchOperator
from tests.batch import load_items
from tests.batch.batch_worker import FakeTI

THETA = "edgeinfer_theta_default"
INFRAI = "edgeinfer_infrai_default"


def _created(emulator: Any, vendor: str = "theta") -> int:
    return sum(emulator.state.snapshot()["submissions"][vendor].values())


def _run(output: Path, inputs: Any, **kwargs: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "task_id": "batch",
        "conn_id": THETA,
        "service": "whisper",
        "inputs": inputs,
        "output_path": str(output),
        "poll_interval": 1.0,
        "deferrable": False,
        **kwargs,
    }
    context: Any = {"ti": FakeTI()}
    result = BatchOperator(**args).execute(context)
    assert isinstance(result, dict)
    return result


def _sent(emulator: Any, vendor: str, results: list[dict[str, Any]]) -> int:
    """Items created at the vendor: requests of a fan-out, items of the native batches the runs made."""
    if vendor != "infrai":
        return _created(emulator, vendor)
    from airflow_provider_edgeinfer.hooks.base import hook_for_connection

    hook = hook_for_connection(INFRAI)
    try:
        ids = {b for result in results for b in result.get("batch_ids", [])}
        return sum(hook.run(hook.api.batch_status(b)).data.total_count for b in ids)
    finally:
        hook.close()


def _rows(output: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (output / "results.jsonl").read_text().splitlines()]


def _talks(*names: str) -> list[dict[str, Any]]:
    return [{"custom_id": n, "input": {"audio_filename": f"https://example.invalid/{n}.wav"}} for n in names]


def test_running_a_succeeded_batch_again_sends_and_rewrites_nothing(
    emulated: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    first = _run(tmp_path, _talks("a", "b", "c"))
    created = _created(emulated)
    assert created == 3
    results = tmp_path / "results.jsonl"
    before = results.read_bytes()
    os.utime(results, (1_000_000_000, 1_000_000_000))  # a rewrite, even of the same bytes, moves it

    again = _run(tmp_path, _talks("a", "b", "c"))

    assert _created(emulated) == created
    assert again == first
    assert results.read_bytes() == before
    assert results.stat().st_mtime == 1_000_000_000
    logged = capfd.readouterr().out  # the task logger writes to the console, not to logging's root
    assert "already succeeded" in logged and "new output_path" in logged


class _OutletEvents(dict[Any, Any]):
    """``context["outlet_events"]``: what each alias was told, by alias name."""

    def __missing__(self, alias: Any) -> Any:
        announced: list[str] = []
        accessor = type("Accessor", (), {"add": lambda _self, asset: announced.append(asset.uri)})()
        accessor.announced = announced
        self[alias] = accessor
        return accessor


def test_a_retry_finding_its_batch_written_announces_the_output_again(emulated: Any, tmp_path: Path) -> None:
    """The try that wrote the results can die before Airflow records its success (its asset event is
    lost with it): the retry, which sends and rewrites nothing, is the success Airflow records, so it
    announces the output directory through the alias as the writing try would have."""
    from airflow.sdk import AssetAlias

    from airflow_provider_edgeinfer.operators.batch import OUTPUT_ALIAS

    def announced_by_one_try() -> list[str]:
        events = _OutletEvents()
        BatchOperator(
            task_id="batch",
            conn_id=THETA,
            service="whisper",
            inputs=_talks("a", "b"),
            output_path=str(tmp_path),
            poll_interval=1.0,
            deferrable=False,
            outlets=[AssetAlias(OUTPUT_ALIAS)],
        ).execute({"ti": FakeTI(), "outlet_events": events})  # type: ignore[arg-type]
        return list(events[AssetAlias(OUTPUT_ALIAS)].announced)

    first = announced_by_one_try()
    created = _created(emulated)
    again = announced_by_one_try()

    assert _created(emulated) == created == 2  # the second try sent nothing
    assert first == again == [f"file://{tmp_path}"]


def _notes(*names: str) -> list[dict[str, Any]]:
    return [
        {"custom_id": n, "input": {"model": "deepseek-chat", "messages": [{"role": "user", "content": n}]}}
        for n in names
    ]


#: (vendor, connection, service, items): a fan-out and a native batch.
KINDS = [("theta", THETA, "whisper", _talks), ("infrai", INFRAI, "chat.completions", _notes)]


@pytest.mark.parametrize(("vendor", "conn_id", "service", "make"), KINDS, ids=["fanout", "native"])
def test_changing_one_input_of_three_submits_only_it(
    emulated: Any, tmp_path: Path, vendor: str, conn_id: str, service: str, make: Any
) -> None:
    runs = [_run(tmp_path, make("a", "b", "c"), conn_id=conn_id, service=service)]
    earlier = {row["custom_id"]: row for row in _rows(tmp_path)}
    assert _sent(emulated, vendor, runs) == 3

    changed = make("a", "b", "c")
    changed[1]["input"] = make("b-take-2")[0]["input"]
    runs.append(_run(tmp_path, changed, conn_id=conn_id, service=service))

    assert _sent(emulated, vendor, runs) == 4
    rows = _rows(tmp_path)
    assert [row["custom_id"] for row in rows] == ["a", "b", "c"]
    assert [row["index"] for row in rows] == [0, 1, 2]
    assert all(row["state"] == "succeeded" for row in rows)
    # The unchanged items keep the earlier results; the changed one has a new request.
    assert rows[0]["request_id"] == earlier["a"]["request_id"]
    assert rows[2]["request_id"] == earlier["c"]["request_id"]
    assert rows[1]["request_id"] != earlier["b"]["request_id"]
    assert runs[-1]["total"] == runs[-1]["succeeded"] == 3

    # And that run, run again, pays nothing either.
    runs.append(_run(tmp_path, changed, conn_id=conn_id, service=service))
    assert _sent(emulated, vendor, runs) == 4


def test_a_new_item_among_kept_ones_lands_at_its_place(emulated: Any, tmp_path: Path) -> None:
    _run(tmp_path, _talks("a", "c"))
    created = _created(emulated)

    _run(tmp_path, _talks("a", "b", "c"))

    assert _created(emulated) == created + 1
    assert [(row["custom_id"], row["index"]) for row in _rows(tmp_path)] == [("a", 0), ("b", 1), ("c", 2)]


def test_removing_an_item_sends_nothing_and_drops_its_row(emulated: Any, tmp_path: Path) -> None:
    _run(tmp_path, _talks("a", "b", "c"))
    created = _created(emulated)

    result = _run(tmp_path, _talks("a", "c"))

    assert _created(emulated) == created
    assert [row["custom_id"] for row in _rows(tmp_path)] == ["a", "c"]
    assert result["total"] == result["succeeded"] == 2


def test_a_file_rewritten_under_the_same_name_is_sent_again(emulated: Any, tmp_path: Path) -> None:
    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    for name in ("a.wav", "b.wav", "c.wav"):
        (inbox / name).write_bytes(b"RIFF" + bytes(64))
    glob = str(inbox / "*.wav")
    _run(out, glob, file_field="audio_filename")
    created = _created(emulated)
    assert created == 3
    _run(out, glob, file_field="audio_filename")
    assert _created(emulated) == created

    (inbox / "b.wav").write_bytes(b"RIFF" + bytes(128))  # new bytes, same name
    result = _run(out, glob, file_field="audio_filename")

    assert _created(emulated) == created + 1
    rows = _rows(out)
    assert [Path(row["input_ref"]).name for row in rows] == ["a.wav", "b.wav", "c.wav"]
    assert result["total"] == result["succeeded"] == 3


def test_a_file_items_fingerprint_follows_its_size_and_version(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(b"one")
    glob = str(tmp_path / "*.wav")
    before = fingerprint("v", "s", None, load_items(glob, file_field="f"))
    assert fingerprint("v", "s", None, load_items(glob, file_field="f")) == before
    path.write_bytes(b"three")
    assert fingerprint("v", "s", None, load_items(glob, file_field="f")) != before
