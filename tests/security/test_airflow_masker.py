"""Airflow's own secrets masker learns every credential the provider reads or receives, and a
vendor's message is quoted as the vendor wrote it (its secrets, and only those, masked)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from airflow.sdk._shared.secrets_masker import _secrets_masker

from airflow_provider_edgeinfer import secrets
from airflow_provider_edgeinfer.clients.presigned import check_upload_url
from airflow_provider_edgeinfer.clients.redact import redact_vendor_text
from airflow_provider_edgeinfer.exceptions import AuthenticationError
from airflow_provider_edgeinfer.hooks.octoai import OctoAIHook
from airflow_provider_edgeinfer.hooks.omnitensor import OmniTensorHook
from airflow_provider_edgeinfer.secrets import MAX_MASKED_URLS, amask, url_signatures


def masked_by_airflow(value: str) -> bool:
    return _secrets_masker().redact(f"before {value} after") == "before *** after"


@pytest.fixture
def emu_env(edgeinfer_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in edgeinfer_emulator.connections().items():
        monkeypatch.setenv(name, value)
    return edgeinfer_emulator


def test_the_key_secret_and_exchanged_token_are_masked_by_airflow(
    emu_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = json.loads(emu_env.connections()["AIRFLOW_CONN_EDGEINFER_OMNITENSOR_DEFAULT"])
    conn["password"] = "omni-key-masked-0001"
    conn["extra"]["secret"] = "omni-secret-masked-0001"
    emu_env.state.keys["omnitensor"] = conn["password"]
    emu_env.state.omnitensor_secret = conn["extra"]["secret"]
    monkeypatch.setenv("AIRFLOW_CONN_OMNI_MASKED", json.dumps(conn))
    assert not masked_by_airflow("omni-key-masked-0001")

    hook = OmniTensorHook("omni_masked")
    hook.run(hook.api.list_models())
    token = hook.token_auth._token
    assert token
    for value in ("omni-key-masked-0001", "omni-secret-masked-0001", token):
        assert masked_by_airflow(value), value
    hook.close()


@pytest.mark.parametrize("where", ["password", "api_key"])
def test_airflow_masks_the_key_a_worker_hook_reads(
    emu_env: Any, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    """Masked wherever the key is: Airflow masks the password itself when it hands the connection
    out; a key in the ``api_key`` extra the hook masks too (Airflow 3.1 may not, by the extra's name)."""
    from airflow_provider_edgeinfer.hooks.base import hook_for_connection

    key = f"theta-key-masked-{where}-0005"
    conn = json.loads(emu_env.connections()["AIRFLOW_CONN_EDGEINFER_THETA_DEFAULT"])
    conn.pop("password", None)
    if where == "password":
        conn["password"] = key
    else:
        conn["extra"]["api_key"] = key
    monkeypatch.setenv(f"AIRFLOW_CONN_THETA_MASKED_{where.upper()}", json.dumps(conn))
    assert not masked_by_airflow(key)

    hook = hook_for_connection(f"theta_masked_{where}")
    assert hook.credentials(hook.connection).api_key.get_secret_value() == key
    assert masked_by_airflow(key)


async def test_airflow_masks_the_key_a_trigger_reads(emu_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_edgeinfer.hooks.base import alease_connection

    key = "theta-key-masked-trigger-0006"
    conn = json.loads(emu_env.connections()["AIRFLOW_CONN_EDGEINFER_THETA_DEFAULT"])
    conn["password"] = key
    monkeypatch.setenv("AIRFLOW_CONN_THETA_MASKED_TRIGGER", json.dumps(conn))
    assert not masked_by_airflow(key)

    lease = await alease_connection("theta_masked_trigger")
    try:
        assert lease.hook.credentials(await lease.hook.aconnection()).api_key.get_secret_value() == key
    finally:
        await lease.release()
    assert masked_by_airflow(key)


async def test_the_async_masker_masks_in_this_process() -> None:
    await amask("async-token-masked-0002", None, "")
    assert masked_by_airflow("async-token-masked-0002")


def test_a_presigned_urls_signature_is_masked_but_not_its_dates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(secrets, "_masked_urls", 0)  # earlier tests' uploads count too
    url = (
        "https://bucket.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20260101T000000Z"
        "&X-Amz-Expires=3600&X-Amz-Credential=AKIAEXAMPLE0003%2Fscope&X-Amz-Signature=f00dfeed0003beef"
    )
    assert url_signatures(url) == ["AKIAEXAMPLE0003/scope", "f00dfeed0003beef"]
    check_upload_url(url, "theta")
    assert masked_by_airflow("f00dfeed0003beef")
    assert masked_by_airflow("AKIAEXAMPLE0003/scope")
    assert not masked_by_airflow("20260101T000000Z")


def test_a_back_fills_signatures_cost_the_masker_one_pattern_not_one_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Airflow recompiles one regex of all its secrets per new value: past MAX_MASKED_URLS, later
    signatures are masked by their place in the URL, so a million uploads add no masker patterns."""
    monkeypatch.setattr(secrets, "_masked_urls", 0)
    masker = _secrets_masker()
    monkeypatch.setattr(masker, "patterns", set(masker.patterns))  # restored after the test
    monkeypatch.setattr(masker, "replacer", masker.replacer)
    before = len(masker.patterns)
    for i in range(MAX_MASKED_URLS + 500):
        check_upload_url(
            f"http://127.0.0.1:9/_uploads/u{i}?expires=99&signature=backfill-sig-{i:06d}", "theta"
        )
    assert len(masker.patterns) <= before + MAX_MASKED_URLS + 1
    assert masked_by_airflow("backfill-sig-000000")  # the first ones: as values, anywhere
    late = "PUT http://127.0.0.1:9/_uploads/u=1?expires=99&signature=backfill-sig-000555&x=1"
    assert masker.redact(late) == "PUT http://127.0.0.1:9/_uploads/u=1?expires=99&signature=***&x=1"
    s3 = "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIAEXAMPLE9%2Fs&X-Amz-Date=20260101T000000Z&X-Amz-Signature=be"
    assert masker.redact(s3) == (
        "https://b.s3.amazonaws.com/k?X-Amz-Credential=***&X-Amz-Date=20260101T000000Z&X-Amz-Signature=***"
    )


def test_presigned_urls_checked_from_many_threads_reach_the_masker_one_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Uploads check (and mask) each presigned URL from a thread pool. Airflow 3.1's channel to the
    supervisor has no lock: two threads masking at once interleave their frames and the task hangs,
    so the provider never lets two of its threads into the masker together."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from airflow_provider_edgeinfer import secrets

    inside = 0
    most = 0
    guard = threading.Lock()

    def one_sender_at_a_time(value: str) -> None:
        nonlocal inside, most
        with guard:
            inside += 1
            most = max(most, inside)
        time.sleep(0.005)  # a frame sent, its answer awaited
        with guard:
            inside -= 1

    monkeypatch.setattr(secrets, "_masker", lambda: one_sender_at_a_time)
    monkeypatch.setattr(secrets, "_masked_urls", 0)  # below the count masked value by value
    url = "https://bucket.example/k?X-Amz-Signature=f00dfeed{n:04d}&X-Amz-Credential=AKIAEXAMPLE{n:04d}"
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: check_upload_url(url.format(n=n), "theta"), range(64)))
    assert most == 1


def test_triggers_masking_on_one_event_loop_never_stop_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """In the triggerer a sync ``mask_secret`` from the loop's own thread hands its send to the loop
    (greenback's portal, as Airflow's trigger runner does) and the loop runs other triggers until the
    answer comes. Two triggers masking at once must both finish: a lock held across that send (taken
    again by the next trigger, on the same thread) stopped the whole loop for good."""
    import asyncio
    import threading

    import greenback

    def masker_handing_its_send_to_the_loop(value: str) -> None:
        greenback.await_(asyncio.sleep(0.05))  # the frame to the supervisor and its answer

    monkeypatch.setattr(secrets, "_masker", lambda: masker_handing_its_send_to_the_loop)

    async def trigger(n: int) -> None:
        await greenback.ensure_portal()
        secrets.mask(f"a-key-read-by-trigger-{n}")

    async def triggers() -> None:
        await asyncio.gather(*(trigger(n) for n in range(4)))

    loop_thread = threading.Thread(target=asyncio.run, args=(triggers(),), daemon=True)
    loop_thread.start()
    loop_thread.join(timeout=10)
    assert not loop_thread.is_alive(), (
        "the event loop stopped: a trigger waits on a lock its own thread holds"
    )


def test_a_wrong_octoai_key_reads_as_the_vendor_wrote_it(
    emu_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = json.loads(emu_env.connections()["AIRFLOW_CONN_EDGEINFER_OCTOAI_DEFAULT"])
    conn["password"] = "wrong-octo-key-0004"
    conn["extra"]["max_retries"] = 0
    monkeypatch.setenv("AIRFLOW_CONN_OCTO_WRONG", json.dumps(conn))
    with OctoAIHook("octo_wrong") as hook, pytest.raises(AuthenticationError) as raised:
        hook.run(hook.api.list_text_models())
    assert "Invalid or missing token: send Authorization: Bearer <token>" in raised.value.message
    assert "wrong-octo-key-0004" not in str(raised.value)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # the vendor's words stay: header names, placeholders, ordinary words after "token:"
        (
            "missing token: send Authorization: Bearer <token>",
            "missing token: send Authorization: Bearer <token>",
        ),
        ("token: invalid", "token: invalid"),
        # a credential-like value after a secret's name goes, whoever's it is
        ("echo Authorization: Bearer sk-live-abc123 done", "echo Authorization: Bearer *** done"),
        ("api_key=sk-live-123456&x=1", "api_key=***&x=1"),
        ("bearer eyJhbGciOiJIUzI1NiJ9abcdefgh", "bearer ***"),
    ],
)
def test_vendor_text_keeps_words_and_masks_credentials(text: str, shown: str) -> None:
    assert redact_vendor_text(text) == shown


def test_vendor_text_masks_a_known_secret_even_as_a_word() -> None:
    assert redact_vendor_text("key plainword refused", ("plainword",)) == "key *** refused"
