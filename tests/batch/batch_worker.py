"""One BatchOperator run (non-deferrable) in its own process: the crash test kills it mid-fan-out.

``python -m tests.batch.batch_worker OUTPUT_DIR ITEMS``; connections come from the environment.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any


class FakeTI:
    dag_id, task_id, run_id, map_index = "crash_dag", "batch", "manual__crash", -1

    def xcom_push(self, **kwargs: Any) -> None:
        pass


@contextlib.contextmanager
def killed_at_upload(monkeypatch: Any, n: int) -> Iterator[None]:
    """The block's batch dies (SystemExit) as its n-th upload starts, as a worker killed mid fan-out;
    uploads are real again after the block."""
    from airflow_provider_edgeinfer.clients import presigned

    transfer, calls = presigned.transfer_async, []

    async def dies_at_the_nth(*args: Any, **kwargs: Any) -> str:
        calls.append(1)
        if len(calls) == n:
            raise SystemExit("the worker died mid fan-out")
        return await transfer(*args, **kwargs)

    monkeypatch.setattr(presigned, "transfer_async", dies_at_the_nth)
    try:
        yield
    finally:
        monkeypatch.setattr(presigned, "transfer_async", transfer)


def operator(output_path: str, items: int) -> Any:
    from airflow_provider_edgeinfer.operators.batch import BatchOperator

    return BatchOperator(
        task_id="batch",
        conn_id="edgeinfer_theta_default",
        service="whisper",
        inputs=[{"audio_filename": f"https://example.invalid/crash-{n}.wav"} for n in range(items)],
        output_path=output_path,
        max_concurrency=4,
        poll_interval=0.05,
        deferrable=False,
    )


if __name__ == "__main__":
    operator(sys.argv[1], int(sys.argv[2])).execute({"ti": FakeTI()})  # type: ignore[arg-type]
