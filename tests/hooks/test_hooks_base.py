"""Connection -> client: the hook base (URL, credentials, settings, shared async clients) via ThetaHook."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from airflow.sdk import Connection

from airflow_provider_edgeinfer.clients.retry import RetrySettings
from airflow_provider_edgeinfer.clients.theta import BASE_URL, ThetaAPI
from airflow_provider_edgeinfer.clients.transport import AsyncClient, HttpSettings
from airflow_provider_edgeinfer.emulator.server import EmulatorServer
from airflow_provider_edgeinfer.exceptions import ConfigurationError
from airflow_provider_edgeinfer.hooks.base import base_url_from, shared_clients
from airflow_provider_edgeinfer.hooks.theta import ThetaHook

KEY = "theta-key-0123456789"


def set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: Any) -> None:
    fields.setdefault("conn_type", "edgeinfer_theta")
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


def conn(**fields: Any) -> Connection:
    extra = fields.pop("extra", None)
    return Connection(
        conn_id="c",
        conn_type="edgeinfer_theta",
        extra=json.dumps(extra) if extra is not None else None,
        **fields,
    )


# -- building the hook from a connection -----------------------------------------------------------


def test_hook_from_json_env(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(
        monkeypatch,
        "edgeinfer_theta_default",
        host="https://theta.example.com",
        password=KEY,
        extra={"project_id": "prj_abc"},
    )
    hook = ThetaHook()
    assert hook.conn_id == "edgeinfer_theta_default"
    assert isinstance(hook.api, ThetaAPI)
    assert hook.api.base_url == "https://theta.example.com"
    assert hook.api.project_id == "prj_abc"
    assert hook.credentials(hook.connection).api_key.get_secret_value() == KEY
    assert KEY not in repr(hook)
    client = hook.get_conn()
    assert client is hook.get_conn()  # cached
    hook.close()


def test_each_thread_sends_through_a_client_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """Threads sharing one httpx client queue on its pool's lock: a batch's upload threads get one
    each, sharing one TLS context; a client outlives its thread only until the next one is built."""
    set_conn(monkeypatch, "theta_threads", host="https://theta.example.com", password=KEY)
    hook = ThetaHook("theta_threads")
    mine = hook.get_conn()
    theirs: list[Any] = []
    thread = threading.Thread(target=lambda: theirs.append(hook.get_conn()))
    thread.start()
    thread.join()
    (other,) = theirs
    assert other is not mine
    pools: list[Any] = [getattr(client._http._transport, "_pool") for client in (mine, other)]  # noqa: B009
    assert pools[0]._ssl_context is pools[1]._ssl_context
    assert not other._http.is_closed  # its thread ended: closed when the next client is built
    thread = threading.Thread(target=lambda: theirs.append(hook.get_conn()))
    thread.start()
    thread.join()
    assert other._http.is_closed
    assert theirs[1] is not other and not theirs[1]._http.is_closed
    assert hook.get_conn() is mine
    hook.close()
    assert mine._http.is_closed and theirs[1]._http.is_closed
    assert hook.get_conn() is not mine  # usable again after close, with a new client
    hook.close()


def test_hook_from_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_THETA_URI",
        f"edgeinfer-theta://:{KEY}@127.0.0.1:8080/theta?project_id=prj_x&max_retries=2",
    )
    hook = ThetaHook("theta_uri")
    assert hook.api.base_url == "http://127.0.0.1:8080/theta"
    assert hook.api.project_id == "prj_x"
    assert hook.http_settings(hook.connection).retry.max_attempts == 3  # the first try and 2 retries
    assert hook.credentials(hook.connection).api_key.get_secret_value() == KEY


def test_hook_default_host(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "theta_nohost", password=KEY)
    assert ThetaHook("theta_nohost").api.base_url == BASE_URL


@pytest.mark.parametrize("conn_type", ["http", "edgeinfer_octoai", "generic"])
def test_wrong_conn_type(monkeypatch: pytest.MonkeyPatch, conn_type: str) -> None:
    set_conn(monkeypatch, "theta_wrong", conn_type=conn_type, password=KEY)
    with pytest.raises(ConfigurationError, match="edgeinfer_theta"):
        _ = ThetaHook("theta_wrong").api


def test_missing_password(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "theta_nokey", host="https://theta.example.com")
    hook = ThetaHook("theta_nokey")
    with pytest.raises(ConfigurationError, match="no API key"):
        hook.get_conn()


def test_api_key_in_extra_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "theta_extrakey", extra={"api_key": KEY})
    hook = ThetaHook("theta_extrakey")
    assert hook.credentials(hook.connection).api_key.get_secret_value() == KEY


# -- base_url_from ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, BASE_URL),
        ({"host": "https://api.example.com"}, "https://api.example.com"),
        ({"host": "https://api.example.com/"}, "https://api.example.com"),
        ({"host": "https://api.example.com:8443/v2"}, "https://api.example.com:8443/v2"),
        ({"host": "api.example.com"}, "https://api.example.com"),
        ({"host": "  api.example.com  "}, "https://api.example.com"),
        ({"host": "api.example.com", "port": 8443}, "https://api.example.com:8443"),
        ({"host": "api.example.com", "schema": "v1"}, "https://api.example.com/v1"),
        ({"host": "api.example.com", "schema": "/v1/"}, "https://api.example.com/v1"),
        ({"host": "127.0.0.1"}, "http://127.0.0.1"),
        ({"host": "localhost", "port": 8080, "schema": "theta"}, "http://localhost:8080/theta"),
        ({"host": "127.0.0.1:8080/theta"}, "http://127.0.0.1:8080/theta"),
        ({"host": "http://127.0.0.1:8080/theta", "port": 9999}, "http://127.0.0.1:8080/theta"),
        ({"host": "http://127.0.0.1/theta", "port": 8080}, "http://127.0.0.1:8080/theta"),
        ({"host": "[::1]", "port": 8080}, "http://[::1]:8080"),
        ({"host": "127.0.0.1", "extra": {"scheme": "https"}}, "https://127.0.0.1"),
        ({"host": "https://api.example.com/v2", "schema": "ignored"}, "https://api.example.com/v2"),
    ],
)
def test_base_url_from(fields: dict[str, Any], expected: str) -> None:
    assert base_url_from(conn(**fields), BASE_URL, "theta") == expected


@pytest.mark.parametrize(
    "fields",
    [
        {"host": "http://api.example.com"},
        {"host": "api.example.com", "extra": {"scheme": "http"}},
        {"host": "ftp://api.example.com"},
        {"host": "https://"},
    ],
)
def test_base_url_from_rejects(fields: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError) as info:
        base_url_from(conn(**fields), BASE_URL, "theta")
    assert info.value.vendor == "theta"


# -- settings from extras --------------------------------------------------------------------------


def test_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "theta_defaults", password=KEY)
    hook = ThetaHook("theta_defaults")
    assert hook.http_settings(hook.connection) == HttpSettings()


def test_settings_from_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {
        "timeout": "12.5",
        "connect_timeout": 3,
        "max_retries": "7",
        "retry_initial_delay": 0.1,
        "retry_max_delay": 2,
        "retry_max_total_delay": 9,
        "max_connections": 4,
    }
    set_conn(monkeypatch, "theta_extras", password=KEY, extra=extra)
    hook = ThetaHook("theta_extras")
    assert hook.http_settings(hook.connection) == HttpSettings(
        connect_timeout=3.0,
        read_timeout=12.5,
        max_connections=4,
        retry=RetrySettings(max_attempts=8, initial_delay=0.1, max_delay=2.0, max_total_delay=9.0),
    )


def test_settings_empty_form_fields_mean_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    # The connection form stores untouched optional fields as null or "".
    set_conn(
        monkeypatch,
        "theta_blank",
        password=KEY,
        extra={"timeout": None, "max_retries": "", "retry_max_total_delay": None},
    )
    hook = ThetaHook("theta_blank")
    assert hook.http_settings(hook.connection) == HttpSettings()


@pytest.mark.parametrize(
    "extra",
    [
        {"timeout": "fast"},
        {"max_retries": "many"},
        {"max_retries": -1},
        {"retry_initial_delay": -1},
        {"retry_max_total_delay": "x"},
        {"timeout": -5},
        {"connect_timeout": 0},
        {"max_connections": 0},
        {"max_connections": [1]},
    ],
)
def test_settings_invalid_extras(monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any]) -> None:
    set_conn(monkeypatch, "theta_bad", password=KEY, extra=extra)
    hook = ThetaHook("theta_bad")
    with pytest.raises(ConfigurationError, match="theta_bad"):
        hook.http_settings(hook.connection)


def test_explicit_http_settings_win(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "theta_explicit", password=KEY, extra={"timeout": 5})
    settings = HttpSettings(read_timeout=1.0)
    hook = ThetaHook("theta_explicit", http_settings=settings)
    assert hook.http_settings(hook.connection) is settings


# -- against the emulator --------------------------------------------------------------------------


@pytest.fixture
def emu_env(edgeinfer_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> EmulatorServer:
    for name, value in edgeinfer_emulator.connections().items():
        monkeypatch.setenv(name, value)
    return edgeinfer_emulator


def test_test_connection_ok(emu_env: EmulatorServer) -> None:
    ok, message = ThetaHook().test_connection()
    assert ok, message
    assert "key accepted (project listing)" in message
    assert emu_env.state.snapshot()["requests"] == {"theta.list_services": 1, "theta.list_requests": 1}


def test_a_published_catalogue_is_listed_once_per_hook_and_checks_each_input(emu_env: EmulatorServer) -> None:
    from airflow_provider_edgeinfer.exceptions import InputValidationError

    hook = ThetaHook()
    try:
        hook.validate_submission("whisper", None, {"audio_filename": "upl_x"})
        with pytest.raises(InputValidationError, match=r"unknown service 'nope' \(available: .*whisper"):
            hook.validate_submission("nope", None, {})
        with pytest.raises(InputValidationError, match="unknown_field"):
            hook.validate_submission("whisper", None, {"audio_filename": "upl_x", "unknown_field": 1})
    finally:
        hook.close()
    assert emu_env.state.snapshot()["requests"] == {"theta.list_services": 1}


def test_the_default_client_takes_the_connection_host_and_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(
        monkeypatch,
        "theta_custom",
        host="https://theta.example.test/api",
        password="k" * 24,
        extra={"project_id": "prj_custom"},
    )
    api = ThetaHook("theta_custom").api
    assert (api.base_urls(), api.project_id) == (("https://theta.example.test/api",), "prj_custom")
    set_conn(monkeypatch, "theta_plain", password="k" * 24)
    assert ThetaHook("theta_plain").api.base_urls() == (BASE_URL,)


def test_test_connection_sends_each_call_once_and_quickly(
    emu_env: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The UI's Test button: no retries, whatever the connection's own max_retries says."""
    set_conn(
        monkeypatch,
        "theta_patient",
        host=emu_env.vendor_url("theta"),
        password=emu_env.state.keys["theta"],
        extra={"project_id": "prj_emulator", "max_retries": 8},
    )
    emu_env.state.faults["theta"].update({"rate_5xx": 1.0})
    ok, message = ThetaHook("theta_patient").test_connection()
    assert not ok
    assert "HTTP 5" in message
    assert emu_env.state.snapshot()["faults_injected"] == {"theta.5xx": 2}  # two checks, one attempt each


def test_test_connection_wrong_key(emu_env: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = "wrong-theta-key-ABCDEFGH"
    set_conn(
        monkeypatch,
        "theta_wrongkey",
        host=emu_env.vendor_url("theta"),
        password=wrong,
        extra={"project_id": "prj_emulator", "max_retries": 1},
    )
    ok, message = ThetaHook("theta_wrongkey").test_connection()
    assert not ok
    assert "HTTP 401" in message
    assert wrong not in message
    assert emu_env.state.keys["theta"] not in message


def test_test_connection_bad_config_is_false(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "theta_plainhttp", host="http://theta.example.com", password=KEY)
    ok, message = ThetaHook("theta_plainhttp").test_connection()
    assert not ok
    assert "https" in message


def test_run_sync(emu_env: EmulatorServer) -> None:
    hook = ThetaHook()
    try:
        created = hook.run(hook.api.create_request("flux", {"prompt": "sync"}))
        assert hook.run(hook.api.get_request(created.request.id)).state == "success"
    finally:
        hook.close()


async def test_arun(emu_env: EmulatorServer) -> None:
    hook = ThetaHook()
    created = await hook.arun(hook.api.create_request("flux", {"prompt": "async"}))
    job = await hook.arun(hook.api.status(created.request.id))
    assert job.terminal
    assert shared_clients.active() == 0


async def test_two_hooks_share_one_client(emu_env: EmulatorServer) -> None:
    first, second = ThetaHook(), ThetaHook()
    a = await first.aget_client()
    b = await second.aget_client()
    try:
        assert a is b
        assert isinstance(a, AsyncClient)
        assert shared_clients.active() == 1
        page = await second.arun(second.api.list_services(page=0, number=1))
        assert page.items
        assert not a.closed  # arun released only its own use
        await first.arelease()
        assert not a.closed  # the second hook still holds it
    finally:
        await second.arelease()
    assert a.closed
    assert shared_clients.active() == 0
    fresh = await first.aget_client()
    try:
        assert fresh is not a
        assert not fresh.closed
    finally:
        await first.arelease()
    assert shared_clients.active() == 0


async def test_other_connection_gets_its_own_client(
    emu_env: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_THETA_OTHER", emu_env.connections()["AIRFLOW_CONN_EDGEINFER_THETA_DEFAULT"]
    )
    default, other = ThetaHook(), ThetaHook("theta_other")
    try:
        assert (await default.aget_client()) is not (await other.aget_client())
        assert shared_clients.active() == 2
    finally:
        await default.arelease()
        await other.arelease()
    assert shared_clients.active() == 0


async def test_each_event_loop_gets_its_own_client(emu_env: EmulatorServer) -> None:
    hook = ThetaHook()
    mine = await hook.aget_client()
    seen: list[Any] = []

    async def elsewhere() -> None:
        other_hook = ThetaHook()
        client = await other_hook.aget_client()
        seen.append((client, shared_clients.active()))
        await other_hook.arelease()
        seen.append(client.closed)

    thread = threading.Thread(target=lambda: asyncio.run(elsewhere()))
    thread.start()
    thread.join(10)
    try:
        assert seen[0][0] is not mine
        assert seen[0][1] == 1
        assert seen[1] is True
        assert not mine.closed
    finally:
        await hook.arelease()
    assert shared_clients.active() == 0


async def test_release_without_acquire_is_harmless() -> None:
    await ThetaHook("never_acquired").arelease()
    assert shared_clients.active() == 0


async def test_close_all(emu_env: EmulatorServer) -> None:
    client = await ThetaHook().aget_client()
    await shared_clients.close_all()
    assert client.closed
    assert shared_clients.active() == 0


def test_theta_test_connection_without_project_checks_the_key(
    emu_env: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_THETA_NOPROJECT",
        json.dumps(
            {"conn_type": "edgeinfer_theta", "host": emu_env.vendor_url("theta"), "password": "wrong-key"}
        ),
    )
    ok, message = ThetaHook("theta_noproject").test_connection()
    assert not ok
    assert "wrong-key" not in message
    monkeypatch.setenv(
        "AIRFLOW_CONN_THETA_NOPROJECT",
        json.dumps(
            {
                "conn_type": "edgeinfer_theta",
                "host": emu_env.vendor_url("theta"),
                "password": emu_env.state.keys["theta"],
            }
        ),
    )
    assert ThetaHook("theta_noproject").test_connection()[0]
