"""The emulator's control plane (/_emulator/...), its CLI, its server and its pytest fixture."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from airflow_provider_edgeinfer.emulator.server import EmulatorServer
from airflow_provider_edgeinfer.emulator.state import DEFAULT_KEYS, VENDORS, EmulatorState, Faults, Timing


@pytest.fixture
def emu(edgeinfer_emulator: EmulatorServer) -> EmulatorServer:
    return edgeinfer_emulator


@pytest.fixture
def ctl(emu: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{emu.url}/_emulator", timeout=10) as client:
        yield client


def create_theta(emu: EmulatorServer, prompt: str = "x") -> httpx.Response:
    return httpx.post(
        f"{emu.vendor_url('theta')}/infer_request/flux",
        json={"input": {"prompt": prompt}},
        headers={"Authorization": f"Bearer {emu.state.keys['theta']}"},
    )


def test_health(ctl: httpx.Client) -> None:
    assert ctl.get("/health").json() == {"ok": True, "vendors": list(VENDORS)}


# -- faults ----------------------------------------------------------------------------------------


def test_faults_get_lists_every_vendor(ctl: httpx.Client) -> None:
    faults = ctl.get("/faults").json()
    assert set(faults) == set(VENDORS)
    assert faults["theta"]["rate_429"] == 0.0


def test_faults_post_one_vendor(ctl: httpx.Client, emu: EmulatorServer) -> None:
    faults = ctl.post("/faults", json={"vendor": "theta", "rate_5xx": 0.25, "retry_after": 3}).json()
    assert faults["theta"]["rate_5xx"] == 0.25
    assert faults["theta"]["retry_after"] == 3.0
    assert faults["octoai"]["rate_5xx"] == 0.0
    assert emu.state.faults["theta"].rate_5xx == 0.25


def test_faults_post_every_vendor(ctl: httpx.Client, emu: EmulatorServer) -> None:
    ctl.post("/faults", json={"rate_drop": 0.1})
    assert all(emu.state.faults[v].rate_drop == 0.1 for v in VENDORS)


@pytest.mark.parametrize(
    "body",
    [
        {"vendor": "acme", "rate_429": 1},
        {"vendor": "theta", "rate_typo": 1},
        {"vendor": "theta", "rate_429": "x"},
    ],
)
def test_faults_post_rejects_bad_input(
    ctl: httpx.Client, emu: EmulatorServer, body: dict[str, object]
) -> None:
    response = ctl.post("/faults", json=body)
    assert response.status_code == 400
    assert response.json()["error"]
    assert emu.state.faults["theta"] == Faults()


def test_faults_script_is_consumed_in_order(ctl: httpx.Client, emu: EmulatorServer) -> None:
    script = [
        {"kind": "429", "retry_after": 0, "path": "/infer_request/flux", "method": "POST"},
        {"kind": "5xx", "status": 502, "path": "/infer_request/flux", "method": "POST"},
    ]
    ctl.post("/faults", json={"vendor": "theta", "script": script})
    assert len(emu.state.scripted["theta"]) == 2
    assert emu.state.scripted.get("octoai", []) == []
    first, second, third = create_theta(emu), create_theta(emu), create_theta(emu)
    assert (first.status_code, second.status_code, third.status_code) == (429, 502, 200)
    assert first.headers["retry-after"] == "0"
    assert "retry-after" not in second.headers
    counters = ctl.get("/counters").json()
    assert counters["faults_injected"] == {"theta.429": 1, "theta.5xx": 1}
    assert sum(counters["submissions"]["theta"].values()) == 1


def test_a_held_answer_creates_the_work_and_arrives_late(ctl: httpx.Client, emu: EmulatorServer) -> None:
    # A client that dies while the answer is held never learns the request it created.
    hold = {"kind": "hold", "seconds": 1.5, "path": "/infer_request/flux", "method": "POST"}
    ctl.post("/faults", json={"vendor": "theta", "script": [hold, hold]})
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{emu.vendor_url('theta')}/infer_request/flux",
            json={"input": {"prompt": "given up"}},
            headers={"Authorization": f"Bearer {emu.state.keys['theta']}"},
            timeout=0.5,
        )
    assert sum(ctl.get("/counters").json()["submissions"]["theta"].values()) == 1
    patient = create_theta(emu, prompt="waited")
    assert patient.status_code == 200
    assert patient.json()["body"]["infer_requests"][0]["id"]
    counters = ctl.get("/counters").json()
    assert counters["faults_injected"] == {"theta.hold": 2}
    assert sum(counters["submissions"]["theta"].values()) == 2


# -- clock, timing, settings -----------------------------------------------------------------------


def test_clock_advance(ctl: httpx.Client, emu: EmulatorServer) -> None:
    before = emu.state.clock.now()
    after = ctl.post("/clock", json={"advance": 3600}).json()["clock"]
    assert after >= before + 3600
    assert ctl.post("/clock", json={"advance": -100}).json()["clock"] >= after  # never backwards


def test_clock_moves_jobs(ctl: httpx.Client, emu: EmulatorServer) -> None:
    ctl.post("/timing", json={"vendor": "theta", "queued": 30, "running": 30})
    job = create_theta(emu).json()["body"]["infer_requests"][0]
    assert job["state"] == "pending"
    ctl.post("/clock", json={"advance": 61})
    again = httpx.get(
        f"{emu.vendor_url('theta')}/infer_request/{job['id']}",
        headers={"Authorization": f"Bearer {emu.state.keys['theta']}"},
    )
    assert again.json()["body"]["infer_requests"][0]["state"] == "success"


def test_timing(ctl: httpx.Client, emu: EmulatorServer) -> None:
    timing = ctl.post(
        "/timing", json={"vendor": "theta", "queued": 1.5, "running": 2, "running_max": 4}
    ).json()
    assert timing["theta"] == {"queued": 1.5, "running": 2.0, "running_max": 4}
    assert emu.state.timing["theta"] == Timing(1.5, 2.0, 4)
    assert emu.state.timing["octoai"] == Timing(0.0, 0.0)
    everyone = ctl.post("/timing", json={"running": 9}).json()
    assert all(everyone[v]["running"] == 9.0 for v in VENDORS)
    assert everyone["theta"]["queued"] == 1.5
    assert ctl.post("/timing", json={"vendor": "acme"}).status_code == 400


def test_settings(ctl: httpx.Client, emu: EmulatorServer) -> None:
    settings = ctl.get("/settings").json()
    assert set(settings) == {
        "timing",
        "faults",
        "octoai_retention_seconds",
        "omnitensor_token_ttl",
        "presign_ttl",
    }
    changed = ctl.post("/settings", json={"presign_ttl": 5, "omnitensor_token_ttl": 10, "ignored": 1}).json()
    assert changed["presign_ttl"] == 5.0
    assert changed["omnitensor_token_ttl"] == 10.0
    assert emu.state.presign_ttl == 5.0


# -- counters and reset ----------------------------------------------------------------------------


def test_counters(ctl: httpx.Client, emu: EmulatorServer) -> None:
    create_theta(emu, "a")
    create_theta(emu, "a")
    counters = ctl.get("/counters").json()
    assert set(counters) == {
        "requests",
        "submissions",
        "duplicates",
        "resent_content",
        "faults_injected",
        "cancellations",
        "last_cancelled_at",
        "clock",
    }
    assert counters["requests"] == {"theta.create_request": 2}
    assert list(counters["duplicates"]["theta"].values()) == [2]
    assert set(counters["submissions"]) == set(VENDORS)


def test_reset(ctl: httpx.Client, emu: EmulatorServer) -> None:
    job = create_theta(emu).json()["body"]["infer_requests"][0]
    ctl.post("/faults", json={"vendor": "theta", "rate_429": 0.5, "script": [{"kind": "drop"}]})
    assert ctl.post("/reset", json={}).json() == {"ok": True}
    counters = ctl.get("/counters").json()
    assert counters["requests"] == {}
    assert counters["submissions"]["theta"] == {}
    assert emu.state.faults["theta"] == Faults()
    assert emu.state.scripted["theta"] == []
    gone = httpx.get(
        f"{emu.vendor_url('theta')}/infer_request/{job['id']}",
        headers={"Authorization": f"Bearer {emu.state.keys['theta']}"},
    )
    assert gone.status_code == 404


# -- connections -----------------------------------------------------------------------------------


def _parse_exports(text: str) -> dict[str, dict[str, object]]:
    out = {}
    for line in text.strip().splitlines():
        words = shlex.split(line)
        assert words[0] == "export"
        name, _, value = words[1].partition("=")
        out[name] = json.loads(value)
    return out


def test_connections_endpoint(ctl: httpx.Client, emu: EmulatorServer) -> None:
    conns = _parse_exports(ctl.get("/connections").text)
    assert set(conns) == {f"AIRFLOW_CONN_EDGEINFER_{v.upper()}_DEFAULT" for v in VENDORS}
    theta = conns["AIRFLOW_CONN_EDGEINFER_THETA_DEFAULT"]
    assert theta == {
        "conn_type": "edgeinfer_theta",
        "host": emu.vendor_url("theta"),
        "password": emu.state.keys["theta"],
        "extra": {"project_id": "prj_emulator"},
    }
    omni = conns["AIRFLOW_CONN_EDGEINFER_OMNITENSOR_DEFAULT"]
    assert omni["extra"] == {"secret": emu.state.omnitensor_secret}
    assert emu.connections().keys() == conns.keys()


def test_cli_print_connections() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "airflow_provider_edgeinfer.emulator",
            "--print-connections",
            "--port",
            "8099",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 4
    assert all(line.startswith("export AIRFLOW_CONN_EDGEINFER_") for line in lines)
    conns = _parse_exports(result.stdout)
    for vendor in VENDORS:
        conn = conns[f"AIRFLOW_CONN_EDGEINFER_{vendor.upper()}_DEFAULT"]
        assert conn["host"] == f"http://127.0.0.1:8099/{vendor}"
        assert conn["password"] == DEFAULT_KEYS[vendor]
    with pytest.raises(httpx.ConnectError):  # nothing was started
        httpx.get("http://127.0.0.1:8099/_emulator/health", timeout=1)


def test_cli_refuses_non_loopback_host() -> None:
    from airflow_provider_edgeinfer.emulator.__main__ import build_state, main, parse_args

    assert main(["--host", "0.0.0.0", "--print-connections"]) == 2
    state = build_state(parse_args(["--queued-seconds", "0", "--running-seconds", "3", "--rate-429", "0.5"]))
    try:
        assert state.timing["octoai"] == Timing(0.0, 3.0, None)
        assert state.faults["infrai"].rate_429 == 0.5
    finally:
        state.close()


# -- the server and the fixture --------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::"])
def test_server_refuses_non_loopback(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        EmulatorServer(host=host)


def test_server_starts_and_stops() -> None:
    state = EmulatorState()
    with EmulatorServer(state) as server:
        assert server.port != 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.control("health")["ok"] is True
        server.control("faults", {"vendor": "theta", "rate_429": 1})
        assert state.faults["theta"].rate_429 == 1.0
        assert server.counters()["requests"] == {}
        url = server.url
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/_emulator/health", timeout=1)


def test_fixture_dirties_settings(emu: EmulatorServer) -> None:
    # Changed here; the next test must see the defaults again.
    emu.state.presign_ttl = -1
    emu.state.omnitensor_token_ttl = 1
    emu.state.keys["theta"] = "rotated"
    emu.state.faults["theta"].update({"rate_5xx": 1})
    emu.state.scripted["theta"].append({"kind": "drop"})
    emu.state.timing["theta"] = Timing(100, 100)


def test_fixture_restores_defaults(emu: EmulatorServer) -> None:
    defaults = EmulatorState()
    try:
        assert emu.state.presign_ttl == defaults.presign_ttl
        assert emu.state.omnitensor_token_ttl == defaults.omnitensor_token_ttl
        assert emu.state.keys == DEFAULT_KEYS
        assert emu.state.faults["theta"] == Faults()
        assert emu.state.scripted["theta"] == []
        assert emu.state.timing["theta"] == Timing(0.0, 0.0)
    finally:
        defaults.close()


# -- shared vendor plumbing ------------------------------------------------------------------------


async def test_vendor_app_error_keeps_headers() -> None:
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from airflow_provider_edgeinfer.emulator.common import HTTPError, vendor_app

    def errors(status: int, message: str, code: str) -> Response:
        return JSONResponse({"error": message, "code": code}, status_code=status)

    async def limited(request: Request) -> Response:
        raise HTTPError(429, "slow down", "RATE", headers={"Retry-After": "3"})

    state = EmulatorState()
    try:
        app = vendor_app(state, "theta", errors, [Route("/x", limited)])
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://emu") as client:
            response = await client.get("/x")
    finally:
        state.close()
    assert response.status_code == 429
    assert response.json() == {"error": "slow down", "code": "RATE"}
    assert response.headers["retry-after"] == "3"
