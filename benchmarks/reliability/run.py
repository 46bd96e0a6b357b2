"""Real Airflow, real crashes: ``make reliability`` (or ``python benchmarks/reliability/run.py``).

Starts the emulator and real Airflow 3 processes (API server, scheduler with LocalExecutor, DAG
processor, triggerer; SQLite; all on 127.0.0.1) in a throw-away directory, runs the DAGs of
``dags/edgeinfer_reliability.py`` and, while they run:

1. SIGKILLs a task process right after it submitted and before it deferred: the retry must reattach
   (the emulator sees that request once);
2. marks a deferred task failed through the REST API: the trigger's ``on_kill`` must cancel the
   remote request within 5 s;
3. SIGKILLs the triggerer (and its trigger runner) while the 200 mapped inferences and the 1,000-item
   batch are deferred, then starts a new one: every request must complete, none submitted twice.

It ends with a table and one line ``RESULT submitted=... completed=... duplicated=... lost=...
cancel_latency_s=... leaked_secrets=...``; the exit status is non-zero if anything was duplicated
or lost, the cancel took longer than 5 s, or a fake key showed up in a log, XCom, rendered field,
the metadata database or any process output.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: import as a package

from benchmarks.reliability.airflow_api import AirflowAPI
from benchmarks.reliability.checks import Outcome, scan_paths, scan_values, secret_needles
from benchmarks.reliability.cluster import Cluster, wait_until
from benchmarks.reliability.dags.reliability_inputs import (
    BATCH_COUNT,
    CANCEL_INPUT,
    MAPPED_COUNT,
    REATTACH_INPUT,
    batch_inputs,
    mapped_inputs,
)

MAPPED = "edgeinfer_reliability_mapped"
REATTACH = "edgeinfer_reliability_reattach"
CANCEL = "edgeinfer_reliability_cancel"
BATCH = "edgeinfer_reliability_batch"
DAG_IDS = (MAPPED, REATTACH, CANCEL, BATCH)
TASK = "transcribe"
CANCEL_TARGET_S = 5.0


class Harness:
    #: The DAG of the one batch task, whose result ``batch_result`` reads.
    batch_dag = BATCH

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.run_dir = Path(tempfile.mkdtemp(prefix="edgeinfer-reliability-"))
        self.cluster = self.make_cluster(args)
        self.harness_log = open(self.run_dir / "harness.log", "w")  # noqa: SIM115 - closed in close()
        self.started = time.monotonic()
        self.budget = float(args.deadline)
        self.deadline = self.started + self.budget
        self.api: AirflowAPI | None = None
        self.outcome = Outcome()
        self.events: dict[str, Any] = {}

    def make_cluster(self, args: argparse.Namespace) -> Cluster:
        low, high = (float(x) for x in args.job_seconds.split(","))
        return Cluster(self.run_dir, parallelism=args.parallelism, job_seconds=(low, high))

    # -- output: everything printed is also kept, and scanned for secrets at the end ---------

    def say(self, message: str) -> None:
        line = f"[{time.monotonic() - self.started:6.1f}s] {message}"
        print(line, flush=True)
        self.harness_log.write(line + "\n")
        self.harness_log.flush()

    def remaining(self, cap: float) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the run exceeded its {self.budget:.0f} s budget")
        return min(cap, left)

    # -- emulator ----------------------------------------------------------------------------

    def counters(self, *, brief: bool = False) -> dict[str, Any]:
        params = {"brief": "1"} if brief else None
        response = httpx.get(f"{self.cluster.emulator_url}/_emulator/counters", params=params, timeout=10)
        response.raise_for_status()
        return dict(response.json())

    def cancellations(self, vendor: str) -> int:
        return int(self.counters(brief=True)["cancellations"].get(vendor, 0))

    def cancel_latency(self, vendor: str, mark: Callable[[], object], limit_s: float) -> float | None:
        """Seconds from just before ``mark()`` to the emulator's own record of the vendor's cancel.

        Measured from the emulator's wall-clock stamp, not from when a poll here sees it: the full
        counters of a large run take seconds to serve on a loaded machine, which once read as a
        13.6 s latency for a cancel that reached the vendor 1.4 s after the mark.
        """
        before = self.cancellations(vendor)
        start = time.time()
        mark()
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            brief = self.counters(brief=True)
            if brief["cancellations"].get(vendor, 0) > before:
                return max(0.0, float(brief["last_cancelled_at"][vendor]) - start)
            time.sleep(0.05)
        return None

    @staticmethod
    def identity(input_: dict[str, Any]) -> str:
        """The emulator's identity of a whisper submission (alias, prediction, input)."""
        from airflow_provider_edgeinfer.emulator.state import EmulatorState

        return EmulatorState.identity("whisper", "predict", input_)

    # -- phases ------------------------------------------------------------------------------

    def setup(self) -> AirflowAPI:
        cluster = self.cluster
        self.say(f"run directory {self.run_dir}")
        cluster.start_emulator()
        self.say(f"emulator on {cluster.emulator_url} (jobs run {self.args.job_seconds} s)")
        cluster.configure_airflow()
        cluster.migrate()
        cluster.start_airflow()
        self.say(
            f"Airflow: API server {cluster.api_url}, scheduler (LocalExecutor, parallelism "
            f"{cluster.parallelism}), DAG processor, triggerer; SQLite"
        )
        api = AirflowAPI(cluster.api_url)
        wait_until(
            lambda: all(api.dag_exists(d) for d in DAG_IDS),
            self.remaining(240),
            "the DAG processor to parse the reliability DAGs",
            interval=2,
        )
        # The single-task DAGs first: their tasks outrank the mapped ones, so they run early.
        for dag_id in (REATTACH, CANCEL, BATCH, MAPPED):
            api.trigger(dag_id)
        self.say(
            f"triggered {REATTACH}, {CANCEL}, {BATCH} ({BATCH_COUNT} items) and {MAPPED} "
            f"({MAPPED_COUNT} mapped inferences)"
        )
        return api

    def kill_task_after_submit(self, api: AirflowAPI) -> None:
        marker = self.cluster.markers / "submitted.json"
        wait_until(marker.exists, self.remaining(300), "the hanging task to submit", interval=0.2)
        info = json.loads(marker.read_text())
        ti = api.task_instances(REATTACH)[0]
        self.say(
            f"{REATTACH}: try {ti['try_number']} submitted and is {ti['state']}; SIGKILL pid {info['pid']}"
        )
        try:
            os.kill(int(info["pid"]), 9)
        except ProcessLookupError:
            self.outcome.failures.append("the hanging task process was gone before the kill")
        self.events["task_killed"] = True

    def mark_deferred_failed(self, api: AirflowAPI) -> None:
        def running_in_triggerer() -> bool:
            ti = api.task_instances(CANCEL)[0]
            return ti["state"] == "deferred" and ti.get("triggerer_job") is not None

        # Only a trigger that a triggerer runs can get on_kill: Airflow deletes a trigger no triggerer
        # has picked up yet without calling it, so the mark waits for the assignment (then one loop).
        wait_until(running_in_triggerer, self.remaining(300), f"{CANCEL}'s trigger to run", interval=0.5)
        time.sleep(2)
        # Measured well past the 5 s target, so a slow cancel still shows its time.
        latency = self.cancel_latency("theta", lambda: api.mark(CANCEL, TASK, "failed"), limit_s=30)
        self.outcome.cancel_latency_s = latency
        shown = "never (30 s)" if latency is None else f"{latency:.2f} s"
        self.say(f"{CANCEL}: marked failed through the REST API; remote request cancelled after {shown}")

    def kill_triggerer(self, api: AirflowAPI) -> None:
        want = min(int(self.args.deferred_before_kill), MAPPED_COUNT)
        seen = {"n": 0}

        def enough_deferred() -> bool:
            seen["n"] = len(api.task_instances(MAPPED, state="deferred"))
            return seen["n"] >= want

        wait_until(enough_deferred, self.remaining(400), f"{want} deferred mapped tasks", interval=1)
        try:
            # The batch's fan-out of 1,000 submissions runs on a worker first; kill once it waits too.
            wait_until(
                lambda: api.task_instances(BATCH)[0]["state"] in ("deferred", "success", "failed"),
                self.remaining(240),
                f"{BATCH} to defer",
                interval=1,
            )
        except TimeoutError:
            self.outcome.notes.append("the batch had not deferred when the triggerer was killed")
        batch_state = api.task_instances(BATCH)[0]["state"]
        seen["n"] = len(api.task_instances(MAPPED, state="deferred"))
        self.cluster.kill("triggerer")
        self.events["deferred_at_triggerer_kill"] = seen["n"]
        self.events["batch_at_triggerer_kill"] = batch_state
        self.say(
            f"SIGKILLed the triggerer and its trigger runner with {seen['n']} mapped tasks deferred "
            f"and the batch {batch_state}"
        )
        time.sleep(self.args.triggerer_down_seconds)  # down for a while: jobs finish meanwhile
        self.cluster.start("triggerer")
        self.say(f"started a new triggerer after {self.args.triggerer_down_seconds:.0f} s down")

    def wait_for_runs(self, api: AirflowAPI) -> None:
        last = 0.0
        while True:
            states = {d: api.dag_run_state(d) for d in DAG_IDS}
            if all(s in ("success", "failed") for s in states.values()):
                break
            if time.monotonic() - last > 20:
                tis = Counter(str(ti["state"]) for ti in api.task_instances(MAPPED))
                self.say(f"{MAPPED}: {dict(sorted(tis.items()))}")
                last = time.monotonic()
            self.cluster.check_alive()
            time.sleep(self.remaining(3))
        self.say(f"runs ended: {states}")

    # -- results -----------------------------------------------------------------------------

    def collect(self, api: AirflowAPI) -> list[Any]:
        """Counts from the emulator and Airflow; returns XCom values and rendered fields to scan."""
        out = self.outcome
        counters = self.counters()
        theta = counters["submissions"].get("theta", {})
        out.submitted = sum(sum(c.values()) for c in counters["submissions"].values())
        out.duplicated = sum(len(d) for d in counters["duplicates"].values())
        out.cancelled = sum(counters["cancellations"].values())

        mapped = api.task_instances(MAPPED)
        reattach = api.task_instances(REATTACH)[0]
        cancel = api.task_instances(CANCEL)[0]
        batch = api.task_instances(BATCH)[0]
        batch_result = self.batch_result(api)
        batch_ok = int(batch_result.get("succeeded", 0))
        mapped_ok = [ti for ti in mapped if ti["state"] == "success"]
        out.completed = len(mapped_ok) + (reattach["state"] == "success") + batch_ok
        # Lost: asked for, never finished. The deliberately cancelled request is not counted.
        out.lost = (
            (MAPPED_COUNT - len(mapped_ok)) + (reattach["state"] != "success") + (BATCH_COUNT - batch_ok)
        )

        expected = [self.identity(i) for i in mapped_inputs()]
        batch_expected = [self.identity(i) for i in batch_inputs()]
        reattach_id, cancel_id = self.identity(REATTACH_INPUT), self.identity(CANCEL_INPUT)
        never_submitted = sum(1 for i in expected if theta.get(i, 0) == 0)
        batch_never = sum(1 for i in batch_expected if theta.get(i, 0) == 0)
        retried = sum(1 for ti in mapped if int(ti["try_number"]) > 1)
        total_expected = MAPPED_COUNT + BATCH_COUNT + 2

        t = out.table
        t.append(("mapped inferences succeeded", str(MAPPED_COUNT), str(len(mapped_ok))))
        t.append(("mapped inferences never submitted", "0", str(never_submitted)))
        t.append(("mapped tasks that needed a retry", "-", str(retried)))
        t.append(
            (
                "deferred when triggerer killed",
                f">={self.args.deferred_before_kill}",
                str(self.events.get("deferred_at_triggerer_kill", "-")),
            )
        )
        t.append(("reattach: task state", "success", str(reattach["state"])))
        t.append(("reattach: tries", ">=2", str(reattach["try_number"])))
        t.append(("reattach: submissions", "1", str(theta.get(reattach_id, 0))))
        reattached = self.task_log_says(REATTACH, "reattaching to theta request")
        t.append(("reattach: retry log says reattaching", "yes", "yes" if reattached else "no"))
        t.append(("cancel: task state", "failed", str(cancel["state"])))
        t.append(("cancel: submissions", "1", str(theta.get(cancel_id, 0))))
        t.append(("cancel: remote cancellations", "1", str(out.cancelled)))
        latency = "-" if out.cancel_latency_s is None else f"{out.cancel_latency_s:.2f}"
        t.append(("cancel: latency (s)", f"<={CANCEL_TARGET_S:.0f}", latency))
        t.append(("batch: task state", "success", str(batch["state"])))
        t.append(("batch: tries", "1", str(batch["try_number"])))
        t.append(("batch: items succeeded", str(BATCH_COUNT), str(batch_ok)))
        t.append(("batch: items never submitted", "0", str(batch_never)))
        t.append(
            (
                "batch: state when triggerer killed",
                "deferred",
                str(self.events.get("batch_at_triggerer_kill")),
            )
        )
        t.append(("requests submitted (all)", str(total_expected), str(out.submitted)))
        t.append(("identities submitted twice", "0", str(out.duplicated)))

        out.check(never_submitted == 0, f"{never_submitted} mapped inferences were never submitted")
        out.check(reattach["state"] == "success", f"the reattach task ended {reattach['state']}")
        out.check(int(reattach["try_number"]) >= 2, "the reattach task was not retried (the kill missed)")
        out.check(theta.get(reattach_id, 0) == 1, "the retry after the kill did not reattach")
        out.check(reattached, "the retry's log does not say it reattached")
        out.check(cancel["state"] == "failed", f"the marked task ended {cancel['state']}")
        out.check(out.cancelled == 1, f"{out.cancelled} remote cancellations, expected 1")
        out.check(batch["state"] == "success", f"the batch task ended {batch['state']}")
        out.check(batch_never == 0, f"{batch_never} batch items were never submitted")
        out.check(out.submitted == total_expected, f"{out.submitted} submissions, expected {total_expected}")
        out.check("deferred_at_triggerer_kill" in self.events, "the triggerer was not killed")

        values: list[Any] = []
        for dag_id in DAG_IDS:
            values.extend(api.xcom_value(entry) for entry in api.xcom_entries(dag_id))
        values.extend(ti.get("rendered_fields") for ti in [*mapped, reattach, cancel, batch])
        self.say(f"read {len(values)} XCom values and rendered-field sets through the REST API")
        return values

    def task_log_says(self, dag_id: str, text: str, task_id: str | None = None) -> bool:
        """Whether a task log of ``dag_id`` (any try; of ``task_id`` only, if given) contains ``text``."""
        logs = self.cluster.home / "logs" / f"dag_id={dag_id}"
        pattern = "attempt=*.log" if task_id is None else f"task_id={task_id}/**/attempt=*.log"
        return any(text in path.read_text(errors="replace") for path in logs.rglob(pattern))

    def batch_result(self, api: AirflowAPI) -> dict[str, Any]:
        """The batch task's XCom manifest (total, succeeded, failed, paths), or {} if it has none."""
        for entry in api.xcom_entries(self.batch_dag):
            if entry["key"] == "return_value":
                value = api.xcom_value(entry)
                return dict(value) if isinstance(value, dict) else {}
        return {}

    def scan_for_secrets(self, api_values: list[Any]) -> None:
        needles = secret_needles(self.cluster.secrets.values())
        hits = scan_values("XCom values / rendered fields (REST)", api_values, needles)
        # AIRFLOW_HOME holds the task, triggerer and scheduler logs and the SQLite database (XCom,
        # rendered fields, trigger kwargs, task state store); process_logs holds every process's output;
        # batch_output the batch's results, failures and manifest.
        roots = [self.cluster.home, self.cluster.out, self.cluster.batch_output, self.run_dir / "harness.log"]
        if self.cluster.postgres is not None:
            roots.append(self.cluster.postgres.data)  # the metadata database's files
        hits += scan_paths(roots, needles, exclude={self.cluster.keys_file.resolve()})
        self.outcome.leaks = hits
        self.outcome.leaked_secrets = sum(hits.values())
        self.outcome.table.append(("leaked secrets", "0", str(self.outcome.leaked_secrets)))

    def report(self) -> int:
        out = self.outcome
        print()
        print(out.render_table())
        for where, n in sorted(out.leaks.items()):
            print(f"  secret found {n}x in {where}")
        for failure in out.failures:
            print(f"FAILED: {failure}")
        for note in out.notes:
            print(f"note: {note}")
        kept = "kept" if self.args.keep or not out.passed else "removed on success (--keep keeps them)"
        print(f"wall time {time.monotonic() - self.started:.0f} s; logs in {self.run_dir}: {kept}")
        print(out.result_line(), flush=True)
        return 0 if out.passed else 1

    # -- the whole run -----------------------------------------------------------------------

    def scenario(self, api: AirflowAPI) -> list[Any]:
        """The crashes and checks of the run; the values read through the REST API (scanned for secrets)."""
        self.kill_task_after_submit(api)
        self.mark_deferred_failed(api)
        self.kill_triggerer(api)
        self.wait_for_runs(api)
        return self.collect(api)

    def run(self) -> int:
        api_values: list[Any] = []
        try:
            api = self.api = self.setup()
            api_values = self.scenario(api)
        except Exception as exc:  # any failure still stops every process and reports what was measured
            self.outcome.failures.append(f"{type(exc).__name__}: {exc}")
            self.say(f"aborted: {exc}")
            if self.api is not None:
                self._collect_what_is_left()
        finally:
            self.stop()
        return self.finish(api_values)

    def stop(self) -> None:
        """Every process stopped (also after an abort)."""
        if self.api is not None:
            self.api.close()
        self.cluster.stop_all()

    def finish(self, api_values: list[Any]) -> int:
        """After every process stopped: scan for secrets, report, tidy up; the exit status."""
        self.cluster.keys_file.unlink(missing_ok=True)
        self.scan_for_secrets(api_values)
        self.cluster.remove_services()
        self.harness_log.close()
        code = self.report()
        if code == 0 and not self.args.keep:
            shutil.rmtree(self.run_dir, ignore_errors=True)
        return code

    def expected_items(self) -> int:
        """Inferences the run asks for: each must complete, submitted once."""
        return MAPPED_COUNT + 1 + BATCH_COUNT

    def _collect_what_is_left(self) -> None:
        """After an abort: still report the emulator's counts, so the RESULT line means something."""
        try:
            counters = self.counters()
            self.outcome.submitted = sum(sum(c.values()) for c in counters["submissions"].values())
            self.outcome.duplicated = sum(len(d) for d in counters["duplicates"].values())
            self.outcome.lost = self.expected_items()  # unknown: count everything as not proven
        except httpx.HTTPError:
            pass


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--parallelism", type=int, default=8, help="[core] parallelism (LocalExecutor workers)"
    )
    parser.add_argument("--job-seconds", default="15,40", help="emulated inference run time, min,max")
    parser.add_argument("--deferred-before-kill", type=int, default=40, help="deferred tasks before the kill")
    parser.add_argument("--triggerer-down-seconds", type=float, default=5.0)
    parser.add_argument("--deadline", type=float, default=840.0, help="seconds the whole run may take")
    parser.add_argument("--keep", action="store_true", help="keep the run directory even on success")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(Harness(parse_args()).run())
