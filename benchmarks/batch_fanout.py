"""BatchOperator fan-out against a bare aiohttp client, peak RSS of the task, and Theta polling cost.

The emulator runs in its own process. Three measurements, in one run:

1. The BatchOperator (non-deferrable, in a child process of its own) sends ``--items`` Whisper
   requests to the Theta emulator at ``--concurrency``, waits for them (polling on the worker) and
   writes results.jsonl. Its fan-out throughput comes from the manifest; its peak RSS from the child.
2. One poll of the whole batch by the BatchTrigger's watch, every request still counted as unfinished:
   the number of list calls one poll interval costs.
3. A bare ``aiohttp`` client sends the same requests at the same concurrency (the emulator is reset
   first, so both face the same server state).

Goals: throughput ratio >= 0.8, peak RSS < 200 MB, list calls per poll <= items / page size.

    python benchmarks/batch_fanout.py [--items 10000] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _memory import own_peak_rss_mb

from airflow_provider_edgeinfer.clients.theta import PAGE_SIZE
from airflow_provider_edgeinfer.emulator.process import connection_env, emulator_process

REPO = Path(__file__).resolve().parents[1]


def _inputs(n: int, tag: str) -> list[dict[str, Any]]:
    return [{"audio_filename": f"https://example.invalid/{tag}-{i}.wav", "language": "en"} for i in range(n)]


def _control(base: str, path: str, body: dict[str, Any] | None = None) -> Any:
    if body is None:
        return httpx.get(f"{base}/_emulator/{path}", timeout=30).json()
    return httpx.post(f"{base}/_emulator/{path}", json=body, timeout=30).json()


# -- 1. the operator, in its own process ---------------------------------------------------------


def child(output: str, items: int, concurrency: int) -> None:
    """Runs inside the child process: one BatchOperator execution; prints a JSON line of figures."""
    from airflow_provider_edgeinfer.operators.batch import BatchOperator

    class TI:
        dag_id, task_id, run_id, map_index = "bench", "fan_out", "bench", -1

        def xcom_push(self, **kwargs: Any) -> None:
            pass

    operator = BatchOperator(
        task_id="fan_out",
        conn_id="edgeinfer_theta_default",
        service="whisper",
        inputs=_inputs(items, "op"),
        output_path=output,
        max_concurrency=concurrency,
        poll_interval=1.0,
        deferrable=False,
    )
    started = time.monotonic()
    result = operator.execute({"ti": TI()})  # type: ignore[arg-type,typeddict-item]
    header = json.loads((Path(output) / "_edgeinfer" / "batch.json").read_text())
    first = header["rounds"][0]
    print(
        json.dumps(
            {
                "submitted": first["submitted"],
                "submit_seconds": first["submit_seconds"],
                "total_seconds": time.monotonic() - started,
                "succeeded": result["succeeded"],
                "peak_rss_mb": own_peak_rss_mb(),
            }
        )
    )


def run_operator(env: dict[str, str], output: str, items: int, concurrency: int) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            output,
            "--items",
            str(items),
            "--concurrency",
            str(concurrency),
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        check=True,
    )
    return dict(json.loads(out.stdout.decode().strip().splitlines()[-1]))


# -- 2. one poll of the whole batch --------------------------------------------------------------


def poll_cost(base: str, output: str, key: str) -> int:
    from airflow_provider_edgeinfer.batch.watch import load_fanout_watch
    from airflow_provider_edgeinfer.clients.core import Credentials
    from airflow_provider_edgeinfer.clients.theta import ThetaAPI
    from airflow_provider_edgeinfer.clients.transport import AsyncClient

    watch = load_fanout_watch(output, 0, 16)
    api = ThetaAPI(f"{base}/theta", project_id="prj_emulator")

    async def poll() -> None:
        async with AsyncClient(api, Credentials.of(key)) as client:
            await watch.poll(client)

    asyncio.run(poll())
    return watch.calls[0]


# -- 3. the bare client --------------------------------------------------------------------------


async def bare(base: str, key: str, items: int, concurrency: int) -> float:
    import aiohttp

    url = f"{base}/theta/infer_request/whisper"
    headers = {"Authorization": f"Bearer {key}"}
    bodies = iter(_inputs(items, "bare"))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def sender() -> None:
            for body in bodies:
                async with session.post(url, json={"input": body, "wait": 0}) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"bare client got HTTP {response.status}")

        started = time.monotonic()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        return items / (time.monotonic() - started)


async def bare_uploads(base: str, key: str, files: list[Path], concurrency: int) -> float:
    """The bare client doing a glob batch's work per file: a presigned URL, the file's bytes PUT to
    it, then the submission naming the uploaded file. Files per second.

    What a glob batch is compared with: submissions alone (:func:`bare`) carry none of a file's work.
    """
    import aiohttp

    from airflow_provider_edgeinfer.clients.presigned import CONTENT_TYPE

    submit = f"{base}/theta/infer_request/whisper"
    headers = {"Authorization": f"Bearer {key}"}
    paths = iter(files)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def answer(response: aiohttp.ClientResponse) -> Any:
            if response.status != 200:
                raise RuntimeError(f"bare client got HTTP {response.status} from {response.url.path}")
            return await response.json()

        async def sender() -> None:
            for path in paths:
                ask = {"input_fields": ["audio_filename"]}
                async with session.post(f"{submit}/input_presigned_urls", json=ask, headers=headers) as r:
                    entry = (await answer(r))["body"]["audio_filename"]
                content = path.read_bytes()
                put_headers = {"Content-Type": CONTENT_TYPE}
                async with session.put(entry["presigned_url"], data=content, headers=put_headers) as r:
                    await r.read()
                    if r.status not in (200, 201, 204):
                        raise RuntimeError(f"bare client's upload got HTTP {r.status}")
                body = {"input": {"audio_filename": entry["filename"], "language": "en"}, "wait": 0}
                async with session.post(submit, json=body, headers=headers) as r:
                    await answer(r)

        started = time.monotonic()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        return len(files) / (time.monotonic() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--child", metavar="OUTPUT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.items, args.concurrency)
        return 0

    with emulator_process("--queued-seconds", "0", "--running-seconds", "2") as base:
        env = dict(os.environ, AIRFLOW_HOME=tempfile.mkdtemp(prefix="edgeinfer-bench-"))
        env |= {"AIRFLOW__CORE__LOAD_EXAMPLES": "False", **connection_env(base)}
        key = "emulator-theta-key"
        output = tempfile.mkdtemp(prefix="edgeinfer-bench-out-")
        asyncio.run(bare(base, key, 200, args.concurrency))  # warm-up
        _control(base, "reset", {})
        operator = run_operator(env, output, args.items, args.concurrency)
        operator_rate = operator["submitted"] / operator["submit_seconds"]
        lists_before = _control(base, "counters")["requests"].get("theta.list_requests", 0)
        calls = poll_cost(base, f"file://{output}", key)
        lists_after = _control(base, "counters")["requests"].get("theta.list_requests", 0)
        assert lists_after - lists_before == calls
        _control(base, "reset", {})
        bare_rate = asyncio.run(bare(base, key, args.items, args.concurrency))
    ratio = operator_rate / bare_rate
    print(f"items                         {args.items}")
    print(f"concurrency                   {args.concurrency}")
    print(f"BatchOperator fan-out         {operator_rate:8.0f} submissions/s (manifest journal included)")
    print(f"bare aiohttp client           {bare_rate:8.0f} submissions/s")
    print(f"throughput ratio              {ratio:8.2f}   (goal >= 0.8)")
    print(f"task peak RSS                 {operator['peak_rss_mb']:8.1f} MB (goal < 200)")
    print(f"list calls per poll interval  {calls:8d}   (goal <= {-(-args.items // PAGE_SIZE)})")
    print(f"whole task (submit, wait, write results) {operator['total_seconds']:.1f} s")
    print(
        f"RESULT items={args.items} throughput_ratio={ratio:.2f} peak_rss_mb={operator['peak_rss_mb']:.1f} "
        f"poll_calls_per_interval={calls}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
