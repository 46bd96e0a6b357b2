"""``make demo``: the emulator, one real request per vendor, then example DAGs under real Airflow.

Everything runs on loopback with a throw-away ``AIRFLOW_HOME`` (SQLite); no API key is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from airflow_provider_edgeinfer.emulator.process import connection_env, emulator_process

#: The shipped example DAGs (in a checkout, a link to dags_examples/), so the demo runs from a wheel too.
EXAMPLE_DAGS = Path(__file__).resolve().parent / "example_dags"
DEMO_DAGS = [
    "edgeinfer_theta_transcription",
    "edgeinfer_bulk_transcription_backfill",
    "edgeinfer_ticket_enrichment",
]
OUTPUT_ROOT = Path(os.environ.get("EDGEINFER_DEMO_OUTPUT", tempfile.gettempdir())) / "edgeinfer-demo"


def _one_request_per_vendor() -> list[tuple[str, str, Any]]:
    """One real call through each vendor's hook, connections read from the environment."""
    from airflow_provider_edgeinfer.hooks.base import hook_for_connection

    results: list[tuple[str, str, Any]] = []
    calls: dict[str, Any] = {
        "theta": lambda api: api.submit(
            "llama_3_1_70b",
            {"messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 16, "stream": False},
            wait=10,
        ),
        "octoai": lambda api: api.submit("generate/sdxl", {"prompt": "a lighthouse at dawn", "steps": 10}),
        "infrai": lambda api: api.submit(
            "chat.completions",
            {
                "model": "deepseek-chat",
                "messages": [{"role": "user", "content": "Summarize: Airflow schedules work."}],
            },
        ),
        "omnitensor": lambda api: api.submit("sentiment-v1", {"text": "The demo works nicely."}),
    }
    for vendor, make in calls.items():
        hook = hook_for_connection(f"edgeinfer_{vendor}_default")
        try:
            job = hook.run(make(hook.api))
            deadline = time.monotonic() + 60
            status = hook.api.status(job.request_id)
            while status is not None and not job.terminal and time.monotonic() < deadline:
                time.sleep(0.5)
                job = hook.run(status)
            read = hook.api.output_read(job, output_known=True)
            if read is not None:
                job = hook.run(read)
            results.append((vendor, f"{job.request_id} {job.state.value}", job.output))
        except Exception as exc:  # the demo reports every vendor, whatever one of them does
            results.append((vendor, f"error {type(exc).__name__}", str(exc)))
        finally:
            hook.close()
    return results


def _abbreviate(value: Any) -> Any:
    """Long strings (base64 media) shown by their size, so each result fits a line or two."""
    if isinstance(value, dict):
        return {k: _abbreviate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_abbreviate(v) for v in value]
    if isinstance(value, str) and len(value) > 200:
        return f"<{len(value)} characters>"
    return value


def _short(value: Any, limit: int = 220) -> str:
    text = json.dumps(_abbreviate(value), default=str)
    return text if len(text) <= limit else text[:limit] + "..."


def _run_state(airflow: str, dag_id: str, env: dict[str, str]) -> str:
    """The state of the DAG's latest run, read back from the metadata database."""
    listed = subprocess.run(
        [airflow, "dags", "list-runs", dag_id, "-o", "json"], env=env, capture_output=True, text=True
    )
    # Warnings may precede the JSON on stdout: take the line that is the JSON list.
    lines = [line for line in listed.stdout.splitlines() if line.startswith("[{") or line == "[]"]
    try:
        runs = json.loads(lines[-1])
    except (IndexError, ValueError):
        return "unknown"
    return str(runs[0]["state"]) if runs else "missing"


def main() -> int:
    # The demo's own output directory: results from an earlier demo would mislead.
    shutil.rmtree(OUTPUT_ROOT, ignore_errors=True)
    with emulator_process("--queued-seconds", "1", "--running-seconds", "3", show_errors=True) as base:
        return _run(base)


def _run(base: str) -> int:
    home = Path(tempfile.mkdtemp(prefix="edgeinfer-airflow-home-"))
    env = dict(os.environ) | connection_env(base)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        }
    )
    os.environ.update({k: v for k, v in env.items() if k.startswith("AIRFLOW_CONN_")})
    print(f"emulator: {base} (all four vendors)\n")
    print("one request through each vendor's hook:")
    for vendor, status, output in _one_request_per_vendor():
        print(f"  {vendor:<11} {status}\n              {_short(output)}")
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run(
        [airflow, "db", "migrate"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    failures = 0
    for dag_id in DEMO_DAGS:
        print(f"\nairflow dags test {dag_id} ...", flush=True)
        log = home / f"{dag_id}.log"
        with open(log, "wb") as out:
            subprocess.run([airflow, "dags", "test", dag_id], env=env, stdout=out, stderr=subprocess.STDOUT)
        state = _run_state(airflow, dag_id, env)
        failures += state != "success"
        print(f"  {state}; log: {log}")
    print(f"\nresults: {OUTPUT_ROOT}")
    for path in sorted(OUTPUT_ROOT.rglob("*")):
        # Generated inputs and batch manifests are not results: the listing stays readable.
        if path.is_file() and not any(p.startswith(("sample-audio", "_edgeinfer")) for p in path.parts):
            print(f"  {path} ({path.stat().st_size} bytes)")
    print(f"Airflow home (SQLite metadata database, logs): {home}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
