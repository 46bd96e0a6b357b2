"""Upload throughput and memory: the provider's presigned upload against ``curl -T`` of the same file.

    .venv/bin/python benchmarks/upload.py                 # a 2 GiB file
    .venv/bin/python benchmarks/upload.py --size-mb 256   # a smaller case

The emulator runs in its own process (``python -m airflow_provider_edgeinfer.emulator``); every
upload goes to a fresh presigned URL of it over loopback. Three uploaders, each in its own process
so that its peak RSS (``VmHWM``) is its own:

- ``curl -T`` (no ``Expect: 100-continue``, as the provider sends none);
- ``operator``: ``upload_files()`` through a ``ThetaHook`` from an Airflow connection, exactly what
  ``PresignedUploadOperator`` runs on a worker (Airflow is imported, as on any worker);
- ``engine``: the same streaming code (``clients.presigned.upload_many``) on a bare ``SyncClient``,
  without Airflow: the memory the upload itself needs.

Each uploader runs ``--repeat`` times, in a rotating order; before each run the emulator drops the
uploads it stored and the page cache is synced (measured: with earlier 2 GiB uploads left on disk,
the emulator's writes, and so any upload, slow down by half); the best time counts.
The last line is ``RESULT size_mb=... ratio_vs_curl=... peak_rss_mb=...``: throughput of the operator
path over curl's, and the engine process's peak RSS (the Airflow process's peak and its baseline
after imports are printed beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _memory import own_peak_rss_mb

from airflow_provider_edgeinfer.emulator.process import emulator_process

MIB = 1024 * 1024
HERE = Path(__file__).resolve()


def _make_file(path: Path, size_mb: int) -> None:
    block = bytearray(os.urandom(MIB))
    with path.open("wb") as out:
        for i in range(size_mb):
            block[:8] = i.to_bytes(8, "little")  # every MiB differs: no store can deduplicate
            out.write(block)


def _presign(base: str, key: str) -> str:
    response = httpx.post(
        f"{base}/theta/infer_request/whisper/input_presigned_urls",
        headers={"Authorization": f"Bearer {key}"},
        json={"input_fields": ["audio_filename"]},
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["body"]["audio_filename"]["presigned_url"])


def _curl(base: str, key: str, path: Path) -> float:
    url = _presign(base, key)
    started = time.monotonic()
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--fail",
            "-T",
            str(path),
            "-H",
            "Content-Type: application/octet-stream",
            "-H",
            "Expect:",
            "-o",
            os.devnull,
            url,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"curl failed ({result.returncode}): {result.stderr.strip()[:200]}")
    return elapsed


def _child(kind: str, base: str, key: str, path: Path) -> dict[str, Any]:
    """Run one upload in a fresh interpreter; its time and peak RSS."""
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": tempfile.mkdtemp(prefix="edgeinfer-bench-home-"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW_CONN_EDGEINFER_THETA_DEFAULT": json.dumps(
                {"conn_type": "edgeinfer_theta", "host": f"{base}/theta", "password": key}
            ),
        }
    )
    result = subprocess.run(
        [sys.executable, str(HERE), "--child", kind, "--base", base, "--key", key, "--file", str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    shutil.rmtree(env["AIRFLOW_HOME"], ignore_errors=True)
    if result.returncode != 0:
        raise RuntimeError(f"{kind} upload failed: {result.stderr.strip()[-2000:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def run_child(kind: str, base: str, key: str, path: str) -> None:
    if kind == "engine":
        from airflow_provider_edgeinfer.clients.core import Credentials
        from airflow_provider_edgeinfer.clients.presigned import local_source, upload_many
        from airflow_provider_edgeinfer.clients.theta import ThetaAPI
        from airflow_provider_edgeinfer.clients.transport import SyncClient

        with SyncClient(ThetaAPI(f"{base}/theta"), Credentials.of(key)) as client:

            def presign() -> Any:
                return client.send(client.api.presigned_urls("whisper", input_fields=["audio_filename"]))[
                    "audio_filename"
                ]

            baseline = own_peak_rss_mb()
            started = time.monotonic()
            upload_many(client.send, presign, [local_source(path)], vendor="theta", field="audio_filename")
            elapsed = time.monotonic() - started
    else:
        from airflow_provider_edgeinfer.hooks.base import hook_for_connection
        from airflow_provider_edgeinfer.sources import upload_files

        with hook_for_connection("edgeinfer_theta_default") as hook:
            hook.services()  # type: ignore[attr-defined]  # the catalogue every upload reads first
            baseline = own_peak_rss_mb()
            started = time.monotonic()
            upload_files(hook, "whisper", None, "audio_filename", [path])
            elapsed = time.monotonic() - started
    print(json.dumps({"seconds": elapsed, "peak_rss_mb": own_peak_rss_mb(), "baseline_rss_mb": baseline}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=2048, help="file size in MiB (default 2048)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per uploader; the best counts")
    parser.add_argument("--child", choices=("operator", "engine"), help=argparse.SUPPRESS)
    parser.add_argument("--base", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child, args.base, args.key, args.file)
        return 0
    if shutil.which("curl") is None:
        print("curl is not installed", file=sys.stderr)
        return 2

    from airflow_provider_edgeinfer.emulator.state import DEFAULT_KEYS

    workdir = Path(tempfile.mkdtemp(prefix="edgeinfer-upload-bench-"))
    # The source file, plus the emulator's copy of the upload in progress.
    need = 2 * args.size_mb * MIB + 512 * MIB
    free = shutil.disk_usage(workdir).free
    if free < need:
        print(f"need {need // MIB} MiB free under {workdir}, have {free // MIB}", file=sys.stderr)
        return 2
    key = DEFAULT_KEYS["theta"]
    try:
        with emulator_process() as base:
            path = workdir / "upload.bin"
            print(f"writing a {args.size_mb} MiB file ...", flush=True)
            _make_file(path, args.size_mb)
            size_mb = path.stat().st_size / 1e6
            curl_s: list[float] = []
            operator: list[dict[str, Any]] = []
            engine: list[dict[str, Any]] = []
            runs = [
                lambda: curl_s.append(_curl(base, key, path)),
                lambda: operator.append(_child("operator", base, key, path)),
                lambda: engine.append(_child("engine", base, key, path)),
            ]
            for round_ in range(args.repeat):
                for i in range(len(runs)):
                    httpx.post(f"{base}/_emulator/uploads/drop", json={}, timeout=60).raise_for_status()
                    os.sync()  # every run starts from the same disk state, whoever went before
                    runs[(i + round_) % len(runs)]()
            best_curl = min(curl_s)
            best_op = min(operator, key=lambda r: r["seconds"])
            best_engine = min(engine, key=lambda r: r["seconds"])
            op_peak = max(r["peak_rss_mb"] for r in operator)
            op_base = max(r["baseline_rss_mb"] for r in operator)
            engine_peak = max(r["peak_rss_mb"] for r in engine)
            print()
            print(f"{'uploader':<28}{'best s':>9}{'MB/s':>10}{'peak RSS MB':>14}{'RSS before MB':>15}")
            print(f"{'curl -T':<28}{best_curl:>9.2f}{size_mb / best_curl:>10.0f}{'-':>14}{'-':>15}")
            for name, best, peak, before in (
                ("operator (upload_files)", best_op, op_peak, op_base),
                ("engine (no Airflow)", best_engine, engine_peak, max(r["baseline_rss_mb"] for r in engine)),
            ):
                seconds = best["seconds"]
                print(f"{name:<28}{seconds:>9.2f}{size_mb / seconds:>10.0f}{peak:>14.1f}{before:>15.1f}")
            ratio = best_curl / best_op["seconds"]
            print()
            print(
                f"RESULT size_mb={args.size_mb} ratio_vs_curl={ratio:.2f} peak_rss_mb={engine_peak:.1f} "
                f"operator_peak_rss_mb={op_peak:.1f} operator_rss_growth_mb={op_peak - op_base:.1f}"
            )
            return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
