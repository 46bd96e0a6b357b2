"""Worker time one inference holds, deferrable against blocking, in one run.

The emulator (its own process) runs each request for ``--seconds`` (default 30). Both DAGs run under
real Airflow (``dag.test()``, SQLite). Worker time is the wall time spent inside the operator's
worker-side methods (``execute`` and ``execute_complete``); in deferrable mode the wait happens in
the trigger, outside them.

    python benchmarks/worker_slot.py [--seconds 30]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from airflow_provider_edgeinfer.emulator.process import connection_env, emulator_process

HERE = Path(__file__).resolve().parent


def _setup_airflow(base: str) -> None:
    home = tempfile.mkdtemp(prefix="edgeinfer-bench-")
    os.environ.update(
        {
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(HERE / "dags"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
            **connection_env(base),
        }
    )


def _timed_operator() -> dict[str, float]:
    """Accumulate wall time spent in the operator's worker-side methods."""
    from airflow_provider_edgeinfer.operators.inference import InferenceOperator

    spent: dict[str, float] = {"s": 0.0}
    for name in ("execute", "execute_complete"):
        original = getattr(InferenceOperator, name)

        def timed(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return _original(self, *args, **kwargs)
            finally:
                spent["s"] += time.perf_counter() - start

        setattr(InferenceOperator, name, timed)
    return spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="how long each emulated inference runs")
    args = parser.parse_args()

    timing = ("--queued-seconds", "0", "--running-seconds", str(args.seconds))
    with emulator_process(*timing, show_errors=True) as base:
        _setup_airflow(base)
        from airflow.utils.db import resetdb

        resetdb(skip_init=False)
        spent = _timed_operator()
        spec = importlib.util.spec_from_file_location(
            "worker_slot_dags", HERE / "dags" / "worker_slot_dags.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)

        results: dict[str, dict[str, float]] = {}
        for mode in ("deferrable", "blocking"):
            spent["s"] = 0.0
            start = time.perf_counter()
            run = getattr(module, f"dag_{mode}").test()
            wall = time.perf_counter() - start
            if str(run.state) != "success":
                print(f"{mode} run ended {run.state}", file=sys.stderr)
                return 1
            results[mode] = {"worker_s": spent["s"], "wall_s": wall}

    print(f"{'mode':<12}{'worker s':>10}{'wall s':>10}")
    for mode, row in results.items():
        print(f"{mode:<12}{row['worker_s']:>10.3f}{row['wall_s']:>10.2f}")
    deferrable, blocking = results["deferrable"]["worker_s"], results["blocking"]["worker_s"]
    print(json.dumps({"inference_seconds": args.seconds}))
    print(
        f"RESULT deferrable_worker_s={deferrable:.3f} blocking_worker_s={blocking:.3f} "
        f"ratio={deferrable / blocking:.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
