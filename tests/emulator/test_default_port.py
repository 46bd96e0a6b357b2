"""The emulator's default port leaves Airflow's own ports free, so both run on one machine."""

from __future__ import annotations

from pathlib import Path

from airflow_provider_edgeinfer.emulator.__main__ import DEFAULT_PORT, parse_args

REPO = Path(__file__).resolve().parents[2]


def test_the_default_port_is_none_of_airflow_s() -> None:
    from airflow.configuration import conf

    airflow_ports = {
        conf.getint("api", "port"),
        conf.getint("logging", "worker_log_server_port"),
        conf.getint("logging", "trigger_log_server_port"),
    }
    assert parse_args([]).port == DEFAULT_PORT
    assert DEFAULT_PORT not in airflow_ports


def test_make_emulator_and_the_readme_use_the_default_port() -> None:
    assert f"--port {DEFAULT_PORT}" in (REPO / "Makefile").read_text()
    readme = (REPO / "README.md").read_text()
    assert f"127.0.0.1:{DEFAULT_PORT}" in readme
    assert ":8080" not in readme
