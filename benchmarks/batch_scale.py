"""Back-fills at scale: the batch task's memory, polling cost, throughput and resume, at N items.

    python benchmarks/batch_scale.py --items 100000 [--vendor theta|infrai|all]
        [--inputs jsonl|glob-s3|glob-local|glob] [--phases] [--save]

The emulator runs in its own process; each BatchOperator try runs non-deferrable in a child process
of its own (its peak RSS is the task's), reading a JSONL file of N inputs, or a glob of N small files
(Theta: each uploaded, then submitted): ``--inputs glob-s3`` in moto's S3 (its server started here),
``glob-local`` on local disk, ``glob`` the one or the other (S3 up to 100,000 items, local above).
Per vendor, one batch of N items:

1. the task is started and SIGKILLed once about half the items were submitted (Theta fan-out) or
   half the native batches (infrai); a second try resumes from the manifest: the time from its
   start to its first new submission, and the emulator's count of items submitted twice;
2. while it waits (Theta), the emulator's clock is moved so that about 10 % of the requests are
   unfinished, in random order, and the vendor calls of several poll intervals are counted: the
   goal is at most ``ceil(unfinished / page size)`` per interval (plus one page per state read);
3. the second try's fan-out rate, against the bare aiohttp client of ``batch_fanout.py`` at 10,000
   items on the same emulator doing the same work per item (``throughput_ratio``): submissions for
   JSONL inputs; for a glob, per file a presigned URL, the PUT of its bytes (read from local disk)
   and the submission (``bare_uploads``);
4. the same run at 10,000 items first, for the peak-RSS growth from 10,000 to N.

Ends with one ``RESULT items=... peak_rss_mb=... rss_growth_mb=... poll_calls_per_interval=...
throughput_ratio=... resume_first_submit_s=... duplicated=... submit_per_s=...`` line per N and vendor
(``submit_per_s``: the second try's items submitted per second, a glob's uploads included).
``--phases`` logs each try's RSS every 0.5 s with the phase it ran (``rss phase=... rss_mb=...``
lines in the run's log, ``<output>.log``): listing, check, fan-out, resume (journal reading),
waiting, results.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _memory import status_mb
from _scale_plot import save
from batch_fanout import bare, bare_uploads

from airflow_provider_edgeinfer.batch.native import split as native_split
from airflow_provider_edgeinfer.clients.theta import PAGE_SIZE
from airflow_provider_edgeinfer.emulator.process import connection_env, emulator_process

REPO = Path(__file__).resolve().parents[1]
BASELINE = 10_000
#: Poll interval of the waiting task: short, so that a measurement window holds several polls.
POLL_INTERVAL = 2.0
#: Theta requests run a uniform random time in this range (emulator clock), so they end in random order.
#: Long against the time the submissions take (the emulator's clock runs meanwhile).
RUNNING = (30_000.0, 40_000.0)
#: What each file of a glob holds (Theta uploads it): a WAV header and a tenth of a second of silence
#: (8 kHz, 16-bit mono), small so that a million of them and their uploads fit on the disk.
WAV = (
    b"RIFF"
    + struct.pack("<I", 36 + 1600)
    + b"WAVEfmt "
    + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
    + b"data"
    + struct.pack("<I", 1600)
    + bytes(1600)
)
VENDORS = {
    "theta": {"conn_id": "edgeinfer_theta_default", "service": "whisper"},
    "infrai": {"conn_id": "edgeinfer_infrai_default", "service": "chat.completions"},
}


def _input(vendor: str, i: int) -> dict[str, Any]:
    if vendor == "theta":
        return {"audio_filename": f"https://example.invalid/scale-{i}.wav", "language": "en"}
    return {"model": "deepseek-chat", "messages": [{"role": "user", "content": f"Summarize item {i}."}]}


# -- inputs --------------------------------------------------------------------------------------


def write_jsonl(path: Path, vendor: str, n: int) -> str:
    with path.open("w") as handle:
        for i in range(n):
            handle.write(json.dumps({"custom_id": f"item-{i:07d}", "input": _input(vendor, i)}) + "\n")
    return str(path)


def wav(i: int) -> bytes:
    """:data:`WAV` with ``i`` in its first samples: every file's bytes differ, so the emulator's
    ``resent_content`` counts a file uploaded and submitted twice (each upload has a new name)."""
    return WAV[:44] + struct.pack("<Q", i) + WAV[52:]


def write_local_files(root: Path, n: int) -> str:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / f"{i:07d}.wav").write_bytes(wav(i))
    return str(root / "*.wav")


def bare_files(work: Path) -> str:
    """The bare client's own :data:`BASELINE` files (a glob's work per file: presign, PUT, submit)."""
    root = work / "bare-files"
    return str(root / "*.wav") if root.exists() else write_local_files(root, BASELINE)


def write_s3_files(s3: Any, n: int) -> str:
    """N small objects in moto's S3, PUT unsigned by one aiohttp client (moto checks no signature):
    boto3's ``put_object`` from 16 threads wrote 100,000 objects in about 30 minutes."""
    import aiohttp

    from tests.s3 import CONN_ID

    s3.bucket("scale")
    keys = iter(range(n))

    async def sender(session: aiohttp.ClientSession) -> None:
        for i in keys:  # the answers are not kept: this script's memory would grow with n
            async with session.put(f"{s3.url}/scale/audio/{i:07d}.wav", data=wav(i)) as answer:
                if answer.status != 200:
                    raise RuntimeError(f"moto refused an object: HTTP {answer.status}")

    async def write() -> None:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16)) as session:
            await asyncio.gather(*(sender(session) for _ in range(16)))

    asyncio.run(write())
    return f"s3://{CONN_ID}@scale/audio/*.wav"


# -- the task, one try per child process ---------------------------------------------------------


#: ``--phases``: the child's phases, each the methods that run it (module, class or None, name).
#: A phase entered inside another is its own; leaving it returns to the outer one.
PHASES = {
    "listing": [("airflow_provider_edgeinfer.batch.run", "BatchRun", "_open")],
    "check": [("airflow_provider_edgeinfer.batch.run", "BatchRun", "_check")],
    "header": [("airflow_provider_edgeinfer.batch.run", "BatchRun", "_header")],
    "fan-out": [("airflow_provider_edgeinfer.batch.run", "BatchRun", "_fan_out")],
    "resume": [
        ("airflow_provider_edgeinfer.batch.manifest", "Manifest", "states"),
        ("airflow_provider_edgeinfer.batch.run", "BatchRun", "_settle_unknown"),
    ],
    "compact": [("airflow_provider_edgeinfer.batch.manifest", "Manifest", "compact")],
    "waiting": [("airflow_provider_edgeinfer.triggers.base", "EdgeInferTrigger", "run_on_worker")],
    "results": [("airflow_provider_edgeinfer.batch.run", "BatchRun", "_finish")],
}


def sample_phases(interval: float = 0.5) -> dict[str, float]:
    """Wraps the methods of :data:`PHASES` and samples VmRSS in a thread, logging each sample with
    the phase it fell in (and each phase's entry and exit); returns the peak seen per phase."""
    import contextlib
    import functools
    import importlib
    import inspect
    import logging
    import threading
    from collections.abc import Iterator

    log = logging.getLogger("rss")
    stack: list[str] = ["start"]
    peaks: dict[str, float] = {}
    lock = threading.Lock()

    def note(event: str) -> None:
        rss = status_mb("VmRSS")
        with lock:
            phase = stack[-1]
            peaks[phase] = max(peaks.get(phase, 0.0), rss)
        log.info("rss phase=%s %s rss_mb=%.1f hwm_mb=%.1f", phase, event, rss, status_mb("VmHWM"))

    @contextlib.contextmanager
    def entered(phase: str) -> Iterator[None]:
        stack.append(phase)
        note("enter")
        try:
            yield
        finally:
            note("exit")
            stack.pop()

    def wrap(phase: str, function: Any) -> Any:
        if inspect.iscoroutinefunction(function):  # its body runs when awaited, not when called

            @functools.wraps(function)
            async def awaited(*args: Any, **kwargs: Any) -> Any:
                with entered(phase):
                    return await function(*args, **kwargs)

            return awaited

        @functools.wraps(function)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            with entered(phase):
                return function(*args, **kwargs)

        return wrapped

    for phase, methods in PHASES.items():
        for module, owner, name in methods:
            target = getattr(importlib.import_module(module), owner)
            setattr(target, name, wrap(phase, getattr(target, name)))

    def sample() -> None:
        while True:
            time.sleep(interval)
            note("sample")

    threading.Thread(target=sample, daemon=True, name="rss-sampler").start()
    return peaks


def child(spec: dict[str, Any]) -> None:
    """Inside a child: one BatchOperator try; prints a JSON line of figures."""
    import logging

    from airflow_provider_edgeinfer.operators.batch import BatchOperator

    # The task's log lines, timed, in the run's log file (stderr).
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", force=True)
    peaks = sample_phases() if spec.get("phases") else {}

    class TI:
        dag_id, task_id, run_id, map_index = "scale", "backfill", "scale", -1

        def xcom_push(self, **kwargs: Any) -> None:
            pass

    operator = BatchOperator(
        task_id="backfill",
        conn_id=spec["conn_id"],
        service=spec["service"],
        inputs=spec["inputs"],
        file_field=spec.get("file_field"),
        output_path=spec["output"],
        max_concurrency=spec["concurrency"],
        poll_interval=POLL_INTERVAL,
        max_failed_ratio=1.0,
        deferrable=False,
    )
    logging.getLogger(operator.log.name).addHandler(logging.getLogger().handlers[0])  # its own lines too
    started = time.monotonic()
    result = operator.execute({"ti": TI()})  # type: ignore[arg-type,typeddict-item]
    header = json.loads((Path(spec["output"]) / "_edgeinfer" / "batch.json").read_text())
    first = header["rounds"][0]
    print(
        json.dumps(
            {
                "submitted": first["submitted"],
                "submit_seconds": first["submit_seconds"],
                "total_seconds": time.monotonic() - started,
                "succeeded": result["succeeded"],
                "total": result["total"],
                # The process's own high-water mark. Not ``ru_maxrss``: Linux carries it over exec
                # from the process that spawned this one, so it showed this script's peak whenever
                # that was higher (30,000 S3 objects: 241 MB reported, 212 MB sampled in the task).
                "peak_rss_mb": status_mb("VmHWM"),
                "phase_peaks_mb": {phase: round(mb, 1) for phase, mb in peaks.items()},
            }
        ),
        flush=True,
    )


def start_child(env: dict[str, str], spec: dict[str, Any], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=log.open("ab"),
    )


def child_result(process: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    out, _ = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"the task failed (exit {process.returncode}); see {log}")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


# -- the emulator --------------------------------------------------------------------------------


class Emulator:
    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.Client(timeout=600)

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        url = f"{self.base}/_emulator/{path}"
        response = self.http.get(url) if body is None else self.http.post(url, json=body)
        response.raise_for_status()
        return response.json()

    def requests(self) -> dict[str, int]:
        return dict(self.control("counters?brief=1")["requests"])

    def count(self, *operations: str) -> int:
        counts = self.requests()
        return sum(counts.get(op, 0) for op in operations)

    def duplicated(self, vendor: str, n: int) -> int:
        """Items paid for twice: Theta requests with an input already seen, by the bytes of the file
        they name where they name an upload (each file's bytes differ: :func:`wav`); infrai, items in
        the native batches beyond the N of the batch (each native batch is one submission)."""
        if vendor == "theta":
            # A resent upload name is resent content too: a glob's batch counts by content, a JSONL
            # one (no uploads) by input.
            counters = self.control("counters?brief=1")
            return max(int(counters[key].get("theta", 0)) for key in ("resent", "resent_content"))
        items, cursor = 0, None
        while True:
            params: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            answer = self.http.get(
                f"{self.base}/infrai/v1/ai/batch/list",
                params=params,
                headers={"Authorization": "Bearer ifr_pk_proj_emulator"},
            ).json()
            data = answer.get("data", answer)
            items += sum(int(b["total_count"]) for b in data["batches"])
            cursor = data.get("next_cursor")
            if not cursor:
                return items - n

    def theta_unfinished(self, key: str) -> int:
        total = 0
        for state in ("pending", "processing"):
            answer = self.http.get(
                f"{self.base}/theta/infer_request/prj_emulator/list",
                params={"page": 0, "number": 1, "state": state},
                headers={"Authorization": f"Bearer {key}"},
            ).json()
            total += int(answer["body"]["pagination"]["total"])
        return total


# -- one batch of N items ------------------------------------------------------------------------


SUBMITS = {"theta": ("theta.create_request",), "infrai": ("infrai.batch.submit",)}
POLLS = {"theta": ("theta.list_requests", "theta.get_request"), "infrai": ("infrai.batch.status",)}


def run_batch(
    emulator: Emulator, env: dict[str, str], vendor: str, inputs: str, n: int, args: Any
) -> dict[str, Any]:
    output = tempfile.mkdtemp(prefix=f"edgeinfer-scale-{vendor}-{n}-")
    log = Path(output + ".log")
    spec = {**VENDORS[vendor], "inputs": inputs, "output": output, "concurrency": args.concurrency}
    spec["phases"] = args.phases
    if args.inputs.startswith("glob") and vendor == "theta":
        spec["file_field"] = "audio_filename"
    submits = SUBMITS[vendor]
    before = emulator.count(*submits)
    # Half the items (Theta) or half the native batches (infrai): native batches are split by size.
    half = n // 2 if vendor == "theta" else max(1, len(native_split(n)) // 2)
    clock_at_start = float(emulator.control("clock", {"advance": 0})["clock"])
    first = start_child(env, spec, log)
    peak = 0.0
    killed_at: int | None = None
    while first.poll() is None:
        peak = max(peak, status_mb("VmHWM", first.pid))
        if emulator.count(*submits) - before >= half:
            peak = max(peak, status_mb("VmHWM", first.pid))
            first.send_signal(signal.SIGKILL)
            first.wait()
            killed_at = emulator.count(*submits)
            break
        time.sleep(0.2)
    figures: dict[str, Any] = {"killed_at": None if killed_at is None else killed_at - before}
    if killed_at is None:  # the first try ended before half was sent (it failed, or it was too quick)
        first_result = child_result(first, log)
        figures.update(resume_first_submit_s=None, first=first_result)
        peak = max(peak, first_result["peak_rss_mb"])
    started = time.monotonic()
    second = start_child(env, spec, log)
    resume_first: float | None = None
    poll_calls: float | None = None
    unfinished: int | None = None
    while second.poll() is None:
        peak = max(peak, status_mb("VmHWM", second.pid))
        if killed_at is not None and resume_first is None and emulator.count(*submits) > killed_at:
            resume_first = time.monotonic() - started
        header = Path(output, "_edgeinfer", "batch.json")
        waiting = header.exists() and _submitted(header, vendor)
        if waiting and poll_calls is None:
            poll_calls, unfinished = measure_polls(emulator, vendor, args, clock_at_start)
            if vendor == "theta":
                emulator.control("clock", {"advance": RUNNING[1] + 60})
        time.sleep(0.1)
    result = child_result(second, log)
    peak = max(peak, result["peak_rss_mb"])
    figures.update(
        result=result,
        peak_rss_mb=peak,
        resume_first_submit_s=resume_first,
        poll_calls_per_interval=poll_calls,
        unfinished=unfinished,
        duplicated=emulator.duplicated(vendor, n),
        output=output,
    )
    return figures


def _submitted(header: Path, vendor: str) -> bool:
    try:
        rounds = json.loads(header.read_text())["rounds"]
    except (ValueError, KeyError, OSError):
        return False
    first = rounds[0]
    if vendor == "theta":
        return bool(first.get("submitted"))
    parts = first.get("parts") or []
    return bool(first.get("batch_id")) or (bool(parts) and all(p.get("batch_id") for p in parts))


def measure_polls(emulator: Emulator, vendor: str, args: Any, started: float) -> tuple[float, int | None]:
    """Vendor calls per poll interval while the task waits (Theta: about 10 % unfinished)."""
    unfinished = None
    first = emulator.count(*POLLS[vendor])
    while emulator.count(*POLLS[vendor]) == first:  # the task's first poll: it is waiting now
        time.sleep(0.1)
    if vendor == "theta":
        # Requests run RUNNING[0]..RUNNING[1] s from their creation, spread from ``started`` to now:
        # move the clock to 90 % of the way through for a request made half way.
        now = float(emulator.control("clock", {"advance": 0})["clock"])
        middle = (started + now) / 2
        target = middle + RUNNING[0] + 0.9 * (RUNNING[1] - RUNNING[0])
        emulator.control("clock", {"advance": max(0.0, target - now)})
        time.sleep(POLL_INTERVAL * 1.5)  # let the poll under way end
        unfinished = emulator.theta_unfinished("emulator-theta-key")
    before = emulator.count(*POLLS[vendor])
    window = POLL_INTERVAL * args.poll_window
    time.sleep(window)
    calls = emulator.count(*POLLS[vendor]) - before
    return calls / args.poll_window, unfinished


# -- main ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, nargs="+", default=[100_000])
    parser.add_argument("--vendor", choices=("theta", "infrai", "all"), default="all")
    parser.add_argument("--inputs", choices=("jsonl", "glob-s3", "glob-local", "glob"), default="jsonl")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--poll-window", type=int, default=5, help="poll intervals counted")
    parser.add_argument("--no-baseline", action="store_true", help="skip the 10,000-item run")
    parser.add_argument(
        "--phases",
        action="store_true",
        help="log each try's RSS every 0.5 s with its phase (listing, fan-out, waiting, results, ...)",
    )
    parser.add_argument(
        "--save", action="store_true", help="record the figures in results/ and redraw the plot"
    )
    parser.add_argument("--child", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return 0
    vendors = ["theta", "infrai"] if args.vendor == "all" else [args.vendor]
    glob = args.inputs.startswith("glob")
    if glob:
        vendors = ["theta"]  # files go through uploads: a vendor that takes uploaded files
    sizes = sorted(set(args.items) | (set() if args.no_baseline else {BASELINE}))
    lines: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="edgeinfer-scale-"))
    options = ("--queued-seconds", "0")
    baseline_rss: dict[str, float] = {}
    # The bare client's own files, written and listed once (a glob: the same work per item as the task).
    files = sorted(Path(bare_files(work)).parent.glob("*.wav")) if glob else []
    for n in sizes:
        for vendor in vendors:
            with emulator_process(*options, start_timeout=60) as base:
                emulator = Emulator(base)
                # Theta requests end in random order, late enough to be watched; an infrai batch
                # runs its items one after another, so each takes a fraction of a millisecond.
                emulator.control(
                    "timing", {"vendor": "theta", "running": RUNNING[0], "running_max": RUNNING[1]}
                )
                emulator.control("timing", {"vendor": "infrai", "running": 0.0001})
                env = dict(os.environ, AIRFLOW_HOME=str(work / "airflow"))
                env |= {"AIRFLOW__CORE__LOAD_EXAMPLES": "False", **connection_env(base)}
                bare_rate = None

                def bare_run(items: int) -> float:
                    """The bare client's rate for the same work as the task's per item."""
                    if not glob:
                        return asyncio.run(bare(base, "emulator-theta-key", items, args.concurrency))
                    return asyncio.run(
                        bare_uploads(base, "emulator-theta-key", files[:items], args.concurrency)
                    )

                if vendor == "theta":
                    bare_run(200)  # warm-up
                    bare_rate = bare_run(BASELINE)
                    emulator.control("reset", {})
                inputs, s3 = make_inputs(work, vendor, n, args, env)
                try:
                    figures = run_batch(emulator, env, vendor, inputs, n, args)
                except RuntimeError as exc:
                    print(f"\n{vendor}, {n} items: {exc}")
                    lines.append(f"RESULT items={n} vendor={vendor} inputs={args.inputs} failed=True")
                    continue
                finally:
                    if s3 is not None:
                        _stop(s3)
                if bare_rate is not None:
                    # Other work shares these cores: the bare client runs before and after the task,
                    # and the task is compared with the mean of the two.
                    after = bare_run(BASELINE)
                    print(f"bare aiohttp: {bare_rate:.0f} /s before the task, {after:.0f} /s after")
                    bare_rate = (bare_rate + after) / 2
            line = report(vendor, n, args.inputs, figures, baseline_rss, bare_rate)
            lines.append(line)
            if args.save:
                save(f"{vendor} ({args.inputs})", dict(pair.split("=", 1) for pair in line.split()[1:]))
    print()
    for line in lines:
        print(line)
    return 0


def _stop(s3: Any) -> None:
    """Stops moto's server; holding 100,000 objects it can take longer to exit than ``stop`` waits."""
    try:
        s3.stop()
    except subprocess.TimeoutExpired:
        s3._process.kill()
        s3.stop()


def report(
    vendor: str,
    n: int,
    inputs: str,
    figures: dict[str, Any],
    baseline_rss: dict[str, float],
    bare_rate: float | None,
) -> str:
    """Prints the figures of one batch; returns its RESULT line."""
    result, peak = figures["result"], figures["peak_rss_mb"]
    rate = result["submitted"] / result["submit_seconds"] if result["submit_seconds"] else None
    ratio = rate / bare_rate if rate and bare_rate else None
    growth = peak - baseline_rss.setdefault(vendor, peak)
    calls, unfinished = figures["poll_calls_per_interval"], figures["unfinished"]
    resume = figures["resume_first_submit_s"]
    print(f"\n{vendor}, {n} items ({inputs}); output in {figures['output']}")
    print(f"  task peak RSS (both tries)       {peak:8.1f} MB (goal < 300)")
    print(f"  growth from {BASELINE} items       {growth:8.1f} MB (goal < 50)")
    if bare_rate:
        print(f"  second try's fan-out             {rate or 0:8.0f} /s")
        print(f"  bare aiohttp at {BASELINE} (same work) {bare_rate:6.0f} /s")
    # One page per unfinished state read even when it is empty (Theta: pending, processing).
    bound = f" (bound {math.ceil(unfinished / PAGE_SIZE) + 2})" if unfinished is not None else ""
    print(f"  vendor calls per poll interval   {_fmt(calls):>8}   with {unfinished} unfinished{bound}")
    print(f"  first new submission after kill  {_fmt(resume):>8} s (killed at {figures['killed_at']})")
    print(f"  submitted twice                  {figures['duplicated']:8d}")
    print(
        f"  second try                     {result['total_seconds']:8.0f} s, {result['succeeded']} succeeded"
    )
    if result.get("phase_peaks_mb"):  # --phases: the second try's RSS per phase (each sample: the log)
        peaks = ", ".join(f"{phase} {mb:.0f}" for phase, mb in result["phase_peaks_mb"].items())
        print(f"  second try's peak RSS per phase  {peaks} MB")
    return (
        f"RESULT items={n} vendor={vendor} inputs={inputs} peak_rss_mb={peak:.1f} rss_growth_mb={growth:.1f} "
        f"poll_calls_per_interval={_fmt(calls)} unfinished={unfinished} throughput_ratio={_fmt(ratio)} "
        f"resume_first_submit_s={_fmt(resume)} duplicated={figures['duplicated']} submit_per_s={_fmt(rate)}"
    )


def _fmt(value: float | None) -> str:
    return "na" if value is None else f"{value:.2f}"


def make_inputs(work: Path, vendor: str, n: int, args: Any, env: dict[str, str]) -> tuple[str, Any]:
    if args.inputs == "jsonl":
        return write_jsonl(work / f"{vendor}-{n}.jsonl", vendor, n), None
    if args.inputs == "glob-local" or (args.inputs == "glob" and n > 100_000):
        root = work / f"files-{n}"
        return (write_local_files(root, n) if not root.exists() else str(root / "*.wav")), None
    sys.path.insert(0, str(REPO))
    from tests.s3 import MotoS3

    s3 = MotoS3().start()
    env.update(s3.env())
    return write_s3_files(s3, n), s3


if __name__ == "__main__":
    sys.exit(main())
