"""A task killed mid-fan-out (SIGKILL, no cleanup) and retried submits exactly the missing items."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.batch.batch_worker import FakeTI, operator

REPO = Path(__file__).resolve().parents[2]
ITEMS = 120


def _creates(emulator: Any) -> int:
    return int(emulator.state.snapshot()["requests"].get("theta.create_request", 0))


def test_retry_after_a_crash_mid_submission_submits_exactly_the_missing_ones(
    edgeinfer_emulator: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    env = dict(os.environ)
    for name, value in edgeinfer_emulator.connections().items():
        env[name] = value
        monkeypatch.setenv(name, value)
    faults = edgeinfer_emulator.state.faults["theta"]
    # Slow answers keep the fan-out going long enough to kill it in the middle.
    faults.rate_slow, faults.slow_seconds = 1.0, 0.03
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.batch.batch_worker", str(tmp_path), str(ITEMS)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while _creates(edgeinfer_emulator) < 30 and time.monotonic() < deadline and worker.poll() is None:
            time.sleep(0.005)
    finally:
        worker.kill()
        worker.wait(timeout=10)
    before = _creates(edgeinfer_emulator)
    assert 30 <= before < ITEMS, "the worker must die mid-fan-out"
    faults.rate_slow = 0.0

    result = operator(str(tmp_path), ITEMS).execute({"ti": FakeTI()})  # type: ignore[arg-type]

    snapshot = edgeinfer_emulator.state.snapshot()
    assert sum(snapshot["submissions"]["theta"].values()) == ITEMS
    assert not snapshot["duplicates"]["theta"]
    assert result["total"] == result["succeeded"] == ITEMS
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert sorted(int(r["custom_id"]) for r in rows) == list(range(ITEMS))
