"""Batch inputs, manifest journal and the BatchTrigger's polling cost, without Airflow runs."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeinfer.batch.inputs import fingerprint
from airflow_provider_edgeinfer.batch.manifest import JournalWriter, Manifest
from airflow_provider_edgeinfer.batch.watch import FanOutWatch
from airflow_provider_edgeinfer.exceptions import InputValidationError
from airflow_provider_edgeinfer.triggers.batch import BatchTrigger
from tests.batch import load_items
from tests.batch.journal import record, records


def _manifest(tmp_path: Path) -> Manifest:
    from airflow_provider_edgeinfer.storage import as_storage_path

    return Manifest(as_storage_path(str(tmp_path)))


# -- inputs -------------------------------------------------------------------------------------


def test_list_inputs_get_index_ids_or_their_own() -> None:
    items = load_items(
        [{"prompt": "a"}, {"custom_id": "x", "input": {"prompt": "b"}}, {"prompt": "c", "custom_id": 7}]
    )
    assert [(i.custom_id, i.input) for i in items] == [
        ("0", {"prompt": "a"}),
        ("x", {"prompt": "b"}),
        ("7", {"prompt": "c"}),
    ]
    assert items[1].ref == "inputs[1]"


def test_duplicate_custom_id_names_both_items() -> None:
    with pytest.raises(InputValidationError, match=r"duplicate custom_id 'a': inputs\[0\] and inputs\[2\]"):
        load_items(
            [
                {"custom_id": "a", "input": {}},
                {"custom_id": "b", "input": {}},
                {"custom_id": "a", "input": {}},
            ]
        )


def test_an_index_id_colliding_with_a_given_one_is_a_duplicate() -> None:
    with pytest.raises(InputValidationError, match="duplicate custom_id '1'"):
        load_items([{"custom_id": "1", "input": {}}, {"prompt": "second item defaults to id 1"}])


@pytest.mark.parametrize("inputs", [[], "empty.jsonl"])
def test_empty_input_is_a_clear_error(tmp_path: Path, inputs: Any) -> None:
    if isinstance(inputs, str):
        (tmp_path / inputs).write_text("\n\n")
        inputs = str(tmp_path / inputs)
    with pytest.raises(InputValidationError, match="holds no items"):
        load_items(inputs)


def test_malformed_jsonl_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"prompt": "ok"}\n\n{"prompt": broken}\n')
    with pytest.raises(InputValidationError, match=r"in\.jsonl, line 3: not valid JSON"):
        load_items(str(path))


def test_a_jsonl_line_that_is_not_an_object_is_named(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"prompt": "ok"}\n[1, 2]\n')
    with pytest.raises(InputValidationError, match=r"in\.jsonl:2 must be a JSON object"):
        load_items(str(path))


def test_glob_without_file_field_says_what_is_missing() -> None:
    with pytest.raises(InputValidationError, match="also set file_field"):
        load_items("/data/audio/*.wav")


def test_fingerprint_follows_content_and_ids() -> None:
    a = load_items([{"prompt": "a"}, {"prompt": "b"}])
    b = load_items([{"prompt": "a"}, {"prompt": "c"}])
    assert fingerprint("theta", "flux", None, a) == fingerprint("theta", "flux", None, list(a))
    assert fingerprint("theta", "flux", None, a) != fingerprint("theta", "flux", None, b)
    assert fingerprint("theta", "flux", None, a) != fingerprint("octoai", "flux", None, a)


# -- manifest -----------------------------------------------------------------------------------


def test_journal_precedence_is_order_independent(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    manifest.write_segment(
        records({"k": "sub", "i": 0, "r": 0, "id": "r0"}, {"k": "intent", "i": 1, "r": 0, "h": "x"})
    )
    manifest.write_segment(records({"k": "intent", "i": 0, "r": 0}, {"k": "intent", "i": 2, "r": 1}))
    manifest.write_segment(
        records({"k": "err", "i": 2, "r": 0, "t": True, "e": {"type": "ServerError", "message": "m"}})
    )
    items = manifest.items()
    assert (items[0].kind, items[0].request_id) == ("sub", "r0")
    assert (items[1].kind, items[1].input_hash) == ("intent", "x")
    assert (items[2].kind, items[2].round) == ("intent", 1)  # a later round wins over an earlier result
    manifest.compact()
    assert len(list((tmp_path / "_edgeinfer" / "journal").iterdir())) == 1
    assert manifest.items() == items


def test_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path)
    manifest.write_segment(records({"k": "sub", "i": 0, "r": 0, "id": "a"}))
    segment = next((tmp_path / "_edgeinfer" / "journal").iterdir())
    segment.write_bytes(segment.read_bytes() + b'{"k": "sub", "i": 1, "r"')
    assert list(manifest.items()) == [0]


def test_group_commit_makes_intents_durable_before_returning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each write a segment of its own, as on an object store, so that writes can be counted.
    monkeypatch.setattr(Manifest, "_local_journal", lambda self: None)
    manifest = _manifest(tmp_path)

    async def run() -> int:
        async with JournalWriter(manifest) as writer:

            async def one(i: int) -> None:
                await writer.append(*record({"k": "intent", "i": i, "r": 0}), durable=True)
                # Durable means readable by another process now.
                assert i in manifest.items()
                await writer.append(*record({"k": "sub", "i": i, "r": 0, "id": f"r{i}"}))

            await asyncio.gather(*(one(i) for i in range(50)))
        return writer.writes  # after the close, which writes what was still pending

    writes = asyncio.run(run())
    segments = list((tmp_path / "_edgeinfer" / "journal").iterdir())
    assert writes == len(segments), "every write is counted"
    # 100 records from 50 concurrent senders: the intents share a write, and so do the results.
    assert 2 <= writes <= 4, "records pending together share one write"
    assert {i: r.request_id for i, r in manifest.items().items()} == {i: f"r{i}" for i in range(50)}


# -- trigger ------------------------------------------------------------------------------------


def test_trigger_kwargs_hold_a_reference_not_ids() -> None:
    trigger = BatchTrigger(vendor="theta", conn_id="c", deadline=1.0, output_path="s3://b/out", round=2)
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_edgeinfer.triggers.batch.BatchTrigger"
    assert BatchTrigger(**kwargs).serialize() == (path, kwargs)
    assert len(json.dumps(kwargs)) < 500
    with pytest.raises(ValueError, match="exactly one"):
        BatchTrigger(vendor="theta", conn_id="c", deadline=1.0)


def test_theta_listing_poll_costs_pages_not_requests(
    edgeinfer_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_edgeinfer.clients import theta
    from airflow_provider_edgeinfer.clients.core import Credentials
    from airflow_provider_edgeinfer.clients.theta import ThetaAPI
    from airflow_provider_edgeinfer.clients.transport import AsyncClient, SyncClient
    from airflow_provider_edgeinfer.emulator.state import Timing

    edgeinfer_emulator.state.timing["theta"] = Timing(0.0, 0.0)
    monkeypatch.setattr(theta, "PAGE_SIZE", 10)  # the listing scan's one page size
    api = ThetaAPI(edgeinfer_emulator.vendor_url("theta"), project_id="prj_emulator")
    key = Credentials.of(edgeinfer_emulator.state.keys["theta"])
    with SyncClient(api, key) as sync:
        ids = {sync.send(api.create_request("flux", {"prompt": f"p{n}"})).request.id for n in range(95)}

    async def poll() -> tuple[list[int], Any]:
        watch = FanOutWatch.of(sorted(ids), since=time.time() - 60)
        async with AsyncClient(api, key) as client:
            progress = await watch.poll(client)
        return watch.calls, progress

    calls, progress = asyncio.run(poll())
    # One page each of the listings filtered by the unfinished states (pending, processing: empty),
    # then of the unsuccessful ones (error, failed, cancelled): not the 10 pages of all 95.
    assert calls == [5]
    assert (progress.succeeded, progress.finished) == (95, True)
    assert edgeinfer_emulator.state.snapshot()["requests"].get("theta.get_request", 0) == 0


def test_lean_sender_never_sends_the_key_elsewhere() -> None:
    from airflow_provider_edgeinfer.clients.aiosend import LeanSender, supports
    from airflow_provider_edgeinfer.clients.core import Call, Credentials
    from airflow_provider_edgeinfer.clients.omnitensor import OmniTensorAPI
    from airflow_provider_edgeinfer.clients.theta import ThetaAPI
    from airflow_provider_edgeinfer.exceptions import ConfigurationError

    api = ThetaAPI("http://127.0.0.1:9", project_id="prj_x")
    assert supports(api, api.submit("whisper", {"audio_filename": "a"}))
    assert not supports(OmniTensorAPI(), OmniTensorAPI().submit("m", {"text": "t"}))  # token exchange
    elsewhere = Call("probe", "GET", "https://attacker.example/x", lambda result: None)
    # Judged per origin: the same host behind a userinfo that looks like the vendor's is refused too.
    disguised = Call("probe", "GET", "http://127.0.0.1:9@attacker.example/x", lambda result: None)

    async def run() -> None:
        async with LeanSender(api, Credentials.of("secret-key"), 2) as sender:
            for call in (elsewhere, disguised, elsewhere):
                with pytest.raises(
                    ConfigurationError, match="refusing to send the theta credential"
                ) as raised:
                    await sender.send(call)
                assert "secret-key" not in str(raised.value)

    asyncio.run(run())


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com/v1/x?y=1",
        "https://api.example.com",
        "https://api.example.com?x=/y",
        "https://api.example.com#frag/x",
        "http://user:pw@127.0.0.1:8080/a/b",
        "https://good.example@evil.example/x",
        "https://evil.example\\@good.example/x",
        "https://[::1]:443/x",
    ],
)
def test_the_origin_a_sender_judges_is_the_one_urlsplit_reads(url: str) -> None:
    from urllib.parse import urlsplit

    from airflow_provider_edgeinfer.clients.aiosend import origin_of

    parts = urlsplit(url)
    assert origin_of(url) == f"{parts.scheme}://{parts.netloc}"
