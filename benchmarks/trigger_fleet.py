"""One triggerer watching N deferred inferences: our InferenceTrigger against HttpEventTrigger.

For each N, two phases run one after the other, each against a fresh emulator process started with
the same seed (so both watch the same N request durations, drawn uniformly from the given range):

- **ours**: N ``InferenceTrigger`` (Theta, poll interval I) sharing the connection's poller;
- **anchor**: N ``HttpEventTrigger`` from ``apache-airflow-providers-http`` polling the same status
  URL of each request at the same interval, with an async response check reading the request's
  state (``benchmarks/_fleet_anchor_check.py``): what a user would otherwise write.

Each phase is its own process, the trigger process: it submits the N requests, then hands the
triggers to Airflow's own ``TriggerRunner`` in-process (``create_triggers`` from serialized,
encrypted workloads, ``run_trigger``, ``cleanup_finished_triggers``; only the supervisor's socket is
left out) and measures, from the first trigger created to the last event: CPU seconds of the process,
peak RSS (and its growth over the RSS before the triggers), HTTP requests the emulator received, and
completion-detection lag (event time minus the request's end time on the emulator).

    python benchmarks/trigger_fleet.py            # N = 1,000, 5,000, 10,000; 30..120 s; I = 10 s
    python benchmarks/trigger_fleet.py --quick    # N = 2,000; 10..40 s; I = 10 s (under 3 minutes)

Everything runs on 127.0.0.1. The last line is ``RESULT key=value ...`` with the ratios at the largest N.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from _memory import own_peak_rss_mb

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SEED = 20260101
SUBMIT_CONCURRENCY = 64
POLL_OPERATIONS = ("theta.get_request", "theta.list_requests")


# -- the parent: emulators, phases, table, plot --------------------------------------------------


def emulator(min_seconds: float, max_seconds: float) -> contextlib.AbstractContextManager[str]:
    from airflow_provider_edgeinfer.emulator.process import emulator_process

    timing = ["--running-seconds", str(min_seconds), "--running-seconds-max", str(max_seconds)]
    return emulator_process("--queued-seconds", "0", *timing, "--seed", str(SEED), show_errors=True)


def run_phase(fleet: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    with emulator(args.min_seconds, args.max_seconds) as base, tempfile.TemporaryDirectory() as tmp:
        port = urlsplit(base).port
        out = Path(tmp) / "phase.json"
        cmd = [
            sys.executable,
            __file__,
            "--phase",
            fleet,
            "--port",
            str(port),
            "--n",
            str(n),
            "--interval",
            str(args.interval),
            "--min-seconds",
            str(args.min_seconds),
            "--max-seconds",
            str(args.max_seconds),
            "--phase-out",
            str(out),
        ]
        subprocess.run(cmd, check=True, timeout=args.max_seconds + 20 * args.interval + 600)
        return dict(json.loads(out.read_text()))


def _ratio(ours: float, anchor: float) -> float:
    return ours / anchor if anchor else math.inf


def _row(name: str, r: dict[str, Any]) -> str:
    return (
        f"{name:8s} {r['n']:>6d} {r['cpu_s']:>8.1f} {r['rss_peak_mb']:>8.0f} {r['rss_growth_mb']:>8.0f} "
        f"{r['http_requests']:>9d} {r['requests_per_interval']:>9.1f} {r['lag_p50_s']:>7.2f} "
        f"{r['lag_p99_s']:>7.2f} {r['missed']:>6d} {r['leaks']:>5d}"
    )


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    header = (
        f"{'fleet':8s} {'N':>6s} {'cpu s':>8s} {'rss MB':>8s} {'+rss MB':>8s} {'requests':>9s} "
        f"{'req/intv':>9s} {'lag p50':>7s} {'lag p99':>7s} {'missed':>6s} {'leaks':>5s}"
    )
    lines = [
        f"trigger fleet: durations {args.min_seconds:g}..{args.max_seconds:g} s, poll interval "
        f"{args.interval:g} s, Theta page size {results[0]['ours']['page_size']}",
        header,
    ]
    for pair in results:
        lines.append(_row("ours", pair["ours"]))
        lines.append(_row("anchor", pair["anchor"]))
        if "floor" in pair:
            lines.append(_row("floor", pair["floor"]))
        o, a = pair["ours"], pair["anchor"]
        lines.append(
            f"{'ratio':8s} {o['n']:>6d} {_ratio(o['cpu_s'], a['cpu_s']):>8.3f} "
            f"{_ratio(o['rss_peak_mb'], a['rss_peak_mb']):>8.3f} "
            f"{_ratio(o['rss_growth_mb'], a['rss_growth_mb']):>8.3f} "
            f"{_ratio(o['http_requests'], a['http_requests']):>9.4f}"
        )
    last = results[-1]
    if "floor" in last:
        o, a, f = last["ours"], last["anchor"], last["floor"]
        lines.append(
            f"above the floor (N={o['n']}: what the triggers add to Airflow's runner): "
            f"cpu {o['cpu_s'] - f['cpu_s']:.1f} s vs {a['cpu_s'] - f['cpu_s']:.1f} s "
            f"(ratio {_above_floor(o, a, f, 'cpu_s'):.3f}); "
            f"peak rss {o['rss_peak_mb'] - f['rss_peak_mb']:.0f} MB "
            f"vs {a['rss_peak_mb'] - f['rss_peak_mb']:.0f} MB "
            f"(ratio {_above_floor(o, a, f, 'rss_peak_mb'):.3f})"
        )
    return "\n".join(lines)


def _above_floor(o: dict[str, Any], a: dict[str, Any], f: dict[str, Any], key: str) -> float:
    return _ratio(max(0.0, o[key] - f[key]), max(0.0, a[key] - f[key]))


def result_line(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    o, a = results[-1]["ours"], results[-1]["anchor"]
    n = o["n"]
    goals = {
        "goal_lag": o["lag_p99_s"] <= args.interval + 2 and o["missed"] == 0,
        "goal_cpu": o["cpu_s"] <= a["cpu_s"] / 10,
        "goal_rss": o["rss_peak_mb"] <= a["rss_peak_mb"] / 3,
        "goal_requests": o["requests_per_interval"] <= math.ceil(n / o["page_size"]),
    }
    values = {
        "n": n,
        "cpu_ratio": round(_ratio(o["cpu_s"], a["cpu_s"]), 4),
        "rss_ratio": round(_ratio(o["rss_peak_mb"], a["rss_peak_mb"]), 3),
        "rss_growth_ratio": round(_ratio(o["rss_growth_mb"], a["rss_growth_mb"]), 3),
        "requests_ratio": round(_ratio(o["http_requests"], a["http_requests"]), 5),
        "lag_p99_s": o["lag_p99_s"],
        "anchor_lag_p99_s": a["lag_p99_s"],
        "lag_p99_ratio": round(_ratio(o["lag_p99_s"], a["lag_p99_s"]), 3),
        "theta_requests_per_interval": o["requests_per_interval"],
        **(
            {
                "cpu_above_floor_ratio": round(_above_floor(o, a, results[-1]["floor"], "cpu_s"), 4),
                "rss_above_floor_ratio": round(_above_floor(o, a, results[-1]["floor"], "rss_peak_mb"), 3),
            }
            if "floor" in results[-1]
            else {}
        ),
        "missed": o["missed"],
        "anchor_missed": a["missed"],
        **goals,
    }
    return "RESULT " + " ".join(f"{k}={v}" for k, v in values.items())


def plot(results: list[dict[str, Any]], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    ns = [pair["ours"]["n"] for pair in results]
    panels = [
        ("cpu_s", "CPU seconds of the trigger process"),
        ("rss_peak_mb", "peak RSS (MB)"),
        ("http_requests", "HTTP requests sent"),
        ("lag_p99_s", "completion-detection lag p99 (s)"),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for ax, (key, title) in zip(axes.flat, panels, strict=True):
        for fleet, label, style in (
            ("anchor", "HttpEventTrigger (http provider)", "o--"),
            ("ours", "InferenceTrigger (shared poller)", "s-"),
        ):
            ax.plot(ns, [pair[fleet][key] for pair in results], style, label=label)
        ax.set_title(title)
        ax.set_xlabel("deferred inferences watched (N)")
        ax.set_xticks(ns)
        ax.set_xticklabels([f"{n:,}" for n in ns])
        if key in ("cpu_s", "http_requests"):
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)  # differences read true to scale
        ax.grid(True, alpha=0.3)
    if "floor" in results[-1]:
        floor = results[-1]["floor"]
        for ax, (key, _) in zip(axes.flat[:2], panels[:2], strict=True):
            ax.plot([floor["n"]], [floor[key]], "k^", label="floor: Airflow's runner, no-I/O trigger")
    axes.flat[0].legend(fontsize=8)
    interval = results[0]["ours"]["interval"]
    axes.flat[3].axhline(interval + 2, color="grey", linewidth=0.8, linestyle=":")
    axes.flat[3].annotate("goal: interval + 2 s", (ns[0], interval + 2.3), fontsize=8, color="grey")
    fig.suptitle(f"One triggerer, N deferred Theta inferences, poll interval {interval:g} s")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return True


def main_parent(args: argparse.Namespace) -> None:
    sizes = [2000] if args.quick else [int(s) for s in args.sizes.split(",")]
    results = []
    for n in sizes:
        # The floor (what Airflow's runner spends per trigger) only at the largest N, to save time.
        fleets = ("ours", "anchor", "floor") if n == sizes[-1] else ("ours", "anchor")
        pair = {}
        for fleet in fleets:
            print(f"N={n}: {fleet} ...", flush=True)
            pair[fleet] = run_phase(fleet, n, args)
        results.append(pair)
    print(report(results, args))
    RESULTS.mkdir(exist_ok=True)
    suffix = "_quick" if args.quick else ""
    (RESULTS / f"trigger_fleet{suffix}.json").write_text(json.dumps(results, indent=1))
    if plot(results, RESULTS / f"trigger_fleet{suffix}.png"):
        print(f"plot: {(RESULTS / f'trigger_fleet{suffix}.png').relative_to(HERE.parent)}")
    print(result_line(results, args))


# -- the child: one trigger process ---------------------------------------------------------------


class _TimedEvents(deque[Any]):
    """The runner's outbound event queue, stamping when each trigger fired."""

    def __init__(self) -> None:
        super().__init__()
        self.fired_at: dict[int, float] = {}

    def append(self, entry: Any) -> None:
        self.fired_at.setdefault(entry.trigger_id, time.time())
        super().append(entry)


def _setup_env(port: int) -> None:
    from cryptography.fernet import Fernet

    from airflow_provider_edgeinfer.emulator.process import connection_env

    home = tempfile.mkdtemp(prefix="edgeinfer-fleet-")
    os.environ.update(
        {
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AIRFLOW_CONN_FLEET_HTTP": json.dumps(
                {
                    "conn_type": "http",
                    "host": "127.0.0.1",
                    "port": port,
                    "schema": "http",
                    # The key travels as a header from the connection's extras, as a user would set it.
                    "extra": {"Authorization": "Bearer emulator-theta-key"},
                }
            ),
        }
    )
    os.environ.update(connection_env(f"http://127.0.0.1:{port}"))


async def _submit(port: int, n: int) -> list[str]:
    """N Theta requests, submitted through the API as the workers would (before any trigger runs)."""
    import aiohttp

    url = f"http://127.0.0.1:{port}/theta/infer_request/llama_3_1_70b"
    headers = {"Authorization": "Bearer emulator-theta-key"}
    ids: list[str] = [""] * n
    semaphore = asyncio.Semaphore(SUBMIT_CONCURRENCY)
    async with aiohttp.ClientSession() as session:

        async def one(i: int) -> None:
            body = {
                "input": {"messages": [{"role": "user", "content": f"request {i}"}], "stream": False},
                "wait": 0,
            }
            async with semaphore, session.post(url, json=body, headers=headers) as response:
                response.raise_for_status()
                ids[i] = (await response.json())["body"]["infer_requests"][0]["id"]

        await asyncio.gather(*(one(i) for i in range(n)))
    return ids


def _counters(port: int) -> dict[str, int]:
    import httpx

    return dict(httpx.get(f"http://127.0.0.1:{port}/_emulator/counters", timeout=10).json()["requests"])


def _end_times(port: int) -> dict[str, float]:
    """When each request ended, read from the emulator after the phase (not counted as polling)."""
    from datetime import datetime

    import httpx

    ends: dict[str, float] = {}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}/theta", timeout=60) as client:
        for page in range(10_000):
            body = client.get(
                "/infer_request/prj_emulator/list",
                params={"page": page, "number": 1000},
                headers={"Authorization": "Bearer emulator-theta-key"},
            ).json()["body"]
            for request in body["infer_requests"]:
                stamp = request.get("success_time") or request.get("error_time")
                if stamp:
                    ends[request["id"]] = datetime.fromisoformat(stamp).timestamp()
            if (page + 1) * 1000 >= body["pagination"]["total"]:
                break
    return ends


def _workloads(fleet: str, ids: list[str], args: argparse.Namespace) -> list[Any]:
    from airflow.executors.workloads.trigger import RunTrigger
    from airflow.models.trigger import Trigger

    interval = args.interval
    triggers: list[Any] = []
    if fleet == "floor":
        import random

        from _fleet_floor import SleepTrigger

        rng, now = random.Random(SEED), time.time()
        triggers = [SleepTrigger(now + rng.uniform(args.min_seconds, args.max_seconds)) for _ in ids]
    elif fleet == "ours":
        from airflow_provider_edgeinfer.triggers.inference import InferenceTrigger

        deadline = time.time() + 3600
        triggers = [
            InferenceTrigger(
                conn_id="edgeinfer_theta_default",
                request_id=rid,
                deadline=deadline,
                poll_interval=interval,
            )
            for rid in ids
        ]
    else:
        from airflow.providers.http.triggers.http import HttpEventTrigger

        triggers = [
            HttpEventTrigger(
                response_check_path="_fleet_anchor_check.request_ended",
                http_conn_id="fleet_http",
                method="GET",
                endpoint=f"theta/infer_request/{rid}",
                poll_interval=interval,
            )
            for rid in ids
        ]
    out = []
    for i, trigger in enumerate(triggers):
        classpath, kwargs = trigger.serialize()
        out.append(RunTrigger(id=i, classpath=classpath, encrypted_kwargs=Trigger.encrypt_kwargs(kwargs)))
    return out


def _quiet_logs() -> None:
    import logging

    import structlog

    logging.getLogger().setLevel(logging.WARNING)
    # The triggerer writes each trigger's lines to its own log; here both fleets drop them alike.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


async def _watch(fleet: str, ids: list[str], args: argparse.Namespace) -> dict[str, Any]:
    import psutil
    from airflow.jobs.triggerer_job_runner import TriggerRunner

    from airflow_provider_edgeinfer.hooks.base import shared_clients
    from airflow_provider_edgeinfer.triggers.inference import pollers

    workloads = _workloads(fleet, ids, args)
    runner = TriggerRunner()  # type: ignore[no-untyped-call]
    events = _TimedEvents()
    runner.events = events
    gc.collect()
    rss_before = psutil.Process().memory_info().rss
    before = _counters(args.port)
    cpu0, started = _cpu(), time.time()
    runner.to_create.extend(workloads)
    hard_stop = time.monotonic() + args.max_seconds + 6 * args.interval + 60
    while time.monotonic() < hard_stop:  # the triggerer's own loop, without the supervisor socket
        await runner.cleanup_finished_triggers()
        await runner.create_triggers()  # type: ignore[no-untyped-call]
        await runner.cancel_triggers()  # type: ignore[no-untyped-call]
        if not runner.triggers and not runner.to_create:
            break
        await asyncio.sleep(1)
    missed = len(runner.triggers)
    for details in list(runner.triggers.values()):  # what the triggerer does on shutdown
        details["task"].cancel()
    await asyncio.gather(*(d["task"] for d in runner.triggers.values()), return_exceptions=True)
    await runner.cleanup_finished_triggers()
    watching = time.time() - started
    cpu = _cpu() - cpu0
    peak_kb = own_peak_rss_mb() * 1024
    after = _counters(args.port)
    await asyncio.sleep(0.1)  # let closed connections finish their goodbyes before counting leftovers
    leaks = len([t for t in asyncio.all_tasks() if t is not asyncio.current_task()])
    leaks += shared_clients.active() + pollers.active()
    ends = _end_times(args.port) if fleet != "floor" else {}
    lags = [
        fired - ends[ids[trigger_id]]
        for trigger_id, fired in events.fired_at.items()
        if ids[trigger_id] in ends
    ]
    requests = sum(after.get(op, 0) - before.get(op, 0) for op in POLL_OPERATIONS)
    intervals = max(1, math.ceil(watching / args.interval))  # a round starts each interval
    from airflow_provider_edgeinfer.clients.theta import PAGE_SIZE as THETA_PAGE_SIZE

    return {
        "fleet": fleet,
        "n": len(ids),
        "interval": args.interval,
        "page_size": THETA_PAGE_SIZE,
        "cpu_s": round(cpu, 2),
        "rss_peak_mb": round(peak_kb / 1024, 1),
        "rss_growth_mb": round(max(0.0, peak_kb * 1024 - rss_before) / 2**20, 1),
        "http_requests": requests,
        "requests_by_operation": {op: after.get(op, 0) - before.get(op, 0) for op in POLL_OPERATIONS},
        "requests_per_interval": round(requests / intervals, 1),
        "watching_s": round(watching, 1),
        "events": len(events.fired_at),
        "missed": len(ids) - len(events.fired_at),
        "cancelled_at_hard_stop": missed,
        "lag_p50_s": round(_percentile(lags, 0.50), 2),
        "lag_p99_s": round(_percentile(lags, 0.99), 2),
        "lag_max_s": round(max(lags, default=math.nan), 2),
        "leaks": leaks,
    }


def main_phase(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(HERE))  # the anchor's response check module
    _setup_env(args.port)
    _quiet_logs()
    import airflow.jobs.triggerer_job_runner  # noqa: F401  (imports before the clock starts)

    async def phase() -> dict[str, Any]:
        # The floor fleet makes no requests: it only needs N placeholders.
        ids = await _submit(args.port, args.n) if args.phase != "floor" else [str(i) for i in range(args.n)]
        return await _watch(args.phase, ids, args)

    result = asyncio.run(phase())
    Path(args.phase_out).write_text(json.dumps(result))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="N = 2,000, durations 10..40 s")
    parser.add_argument("--sizes", default="1000,5000,10000")
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--min-seconds", type=float, default=None)
    parser.add_argument("--max-seconds", type=float, default=None)
    # Internal: one trigger process.
    parser.add_argument("--phase", choices=("ours", "anchor", "floor"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--phase-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.min_seconds is None:
        args.min_seconds = 10.0 if args.quick else 30.0
    if args.max_seconds is None:
        args.max_seconds = 40.0 if args.quick else 120.0
    return args


if __name__ == "__main__":
    parsed = parse_args()
    if parsed.phase:
        main_phase(parsed)
    else:
        main_parent(parsed)
