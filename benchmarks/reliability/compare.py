"""Map, batch, or the http provider? ``make production-check ARGS=--compare``.

In the production topology of ``production.py`` (PostgreSQL, CeleryExecutor with two workers, two
schedulers, two triggerers), runs the same N Theta transcriptions (``--mapped``) one way after the
other (``production_dags/edgeinfer_compare.py``), without injected faults, and measures for each:
wall time (DAG run start to end), Celery worker-slot seconds (task processes alive, sampled each
second), requests the vendor received, and triggerer CPU per 1,000 inferences. Ends with a Markdown
table and ``RESULT n=... <way>_wall_s=... <way>_slot_s=... <way>_requests=... <way>_trig_cpu_per_1000=...``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from typing import Any

from benchmarks.reliability.airflow_api import AirflowAPI
from benchmarks.reliability.production import ProductionHarness

WAYS = {
    "mapped": "edgeinfer_compare_mapped",
    "ended": "edgeinfer_compare_ended",
    "batch": "edgeinfer_compare_batch",
    "http": "edgeinfer_compare_http",
}
LABELS = {
    "mapped": "mapped deferrable `InferenceOperator`",
    "ended": "the same, `end_from_trigger=True`",
    "batch": "one `BatchOperator`",
    "http": "mapped `HttpOperator` + `HttpSensor` (reschedule)",
}


@dataclass
class Figures:
    wall_s: float
    slot_s: float
    requests: int
    trig_cpu_s: float
    ok: bool


class CompareHarness(ProductionHarness):
    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        unknown = sorted(set(args.ways) - set(WAYS))
        if unknown or not args.ways:
            raise SystemExit(f"--ways takes some of {', '.join(WAYS)}; got {', '.join(args.ways) or 'none'}")
        self.figures: dict[str, Figures] = {}

    def ways(self) -> list[str]:
        """The ways ``--ways`` names, in the table's order (all four by default)."""
        return [way for way in WAYS if way in self.args.ways]

    def dag_ids(self) -> tuple[str, ...]:
        return tuple(WAYS[way] for way in self.ways())

    def set_faults(self) -> None:
        """No faults: this measures cost, and the http way has no answer to a lost submission."""

    def http_connection(self) -> str:
        """The http provider's connection to the emulated Theta API (the key as a header extra)."""
        return json.dumps(
            {
                "conn_type": "http",
                "host": "127.0.0.1",
                "port": self.cluster.emulator_port,
                "schema": "http",
                "extra": {"Authorization": f"Bearer {self.cluster.secrets['theta']}"},
            }
        )

    def theta_requests(self) -> int:
        requests: dict[str, int] = self.counters(brief=True)["requests"]
        return sum(n for op, n in requests.items() if op.startswith("theta."))

    def measure(self, api: AirflowAPI, way: str) -> None:
        dag_id = WAYS[way]
        db = self.database()
        requests, slots = self.theta_requests(), self.sampler.slots()
        cpu = self.sampler.cpu_seconds("triggerer")
        started = time.monotonic()
        api.trigger(dag_id)
        last = started
        while db.run_state(dag_id) not in ("success", "failed"):
            self.cluster.check_alive()
            if time.monotonic() - last > 30:
                self.say(f"{dag_id}: {db.states(dag_id)}")
                last = time.monotonic()
            time.sleep(self.remaining(2))
        time.sleep(2)  # one more sample of slots and CPU
        wall = db.run_window(dag_id) or time.monotonic() - started
        self.figures[way] = Figures(
            wall_s=wall,
            slot_s=self.sampler.slots() - slots,
            requests=self.theta_requests() - requests,
            trig_cpu_s=self.sampler.cpu_seconds("triggerer") - cpu,
            ok=db.run_state(dag_id) == "success",
        )
        self.say(f"{dag_id}: {db.run_state(dag_id)} in {wall:.0f} s ({self.figures[way]})")

    def setup(self) -> AirflowAPI:
        self.cluster.extra_env = {"AIRFLOW_CONN_EDGEINFER_COMPARE_HTTP": self.http_connection()}
        return super().setup()

    def scenario(self, api: AirflowAPI) -> list[Any]:
        for way in self.ways():
            self.measure(api, way)
        return []

    def _collect_what_is_left(self) -> None:
        """Nothing: an aborted comparison prints the ways it measured."""

    def finish(self, api_values: list[Any]) -> int:
        self.cluster.keys_file.unlink(missing_ok=True)
        self.cluster.remove_services()
        print(self.table())
        for failure in self.outcome.failures:
            print(f"FAILED: {failure}")
        print(self.result_line(), flush=True)
        ok = not self.outcome.failures and all(f.ok for f in self.figures.values())
        return 0 if ok else 1

    def table(self) -> str:
        n = int(self.args.mapped)
        lines = [
            f"| N = {n} Theta transcriptions | wall time s | worker-slot s | requests to the vendor | "
            "triggerer CPU s per 1,000 |",
            "|---|---|---|---|---|",
        ]
        for way, f in self.figures.items():
            per_1000 = f.trig_cpu_s / (n / 1000)
            status = "" if f.ok else " (run failed)"
            lines.append(
                f"| {LABELS[way]}{status} | {f.wall_s:.0f} | {f.slot_s:.0f} | {f.requests} | {per_1000:.2f} |"
            )
        return "\n".join(lines)

    def result_line(self) -> str:
        n = int(self.args.mapped)
        pairs: dict[str, Any] = {"n": n}
        for way, f in self.figures.items():
            pairs[f"{way}_wall_s"] = f"{f.wall_s:.0f}"
            pairs[f"{way}_slot_s"] = f"{f.slot_s:.0f}"
            pairs[f"{way}_requests"] = f.requests
            pairs[f"{way}_trig_cpu_per_1000"] = f"{f.trig_cpu_s / (n / 1000):.2f}"
        return "RESULT " + " ".join(f"{k}={v}" for k, v in pairs.items())
