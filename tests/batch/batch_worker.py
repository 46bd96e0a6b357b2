"""One BatchOperator run (non-deferrable) in its own process: the crash test kills it mid-fan-out.

``python -m tests.batch.batch_worker OUTPUT_DIR ITEMS``; connections come from the environment.
"""

from __future__ import annotations

import sys
from typing import Any


class FakeTI:
    dag_id, task_id, run_id, map_index = "crash_dag", "batch", "manual__crash", -1

    def xcom_push(self, **kwargs: Any) -> None:
        pass


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
