"""What the DAGs of both harnesses share: ``dags/`` (``make reliability``) and ``production_dags/``
(``make production-check``).

Listed in ``.airflowignore``: a helper module, not a DAG file. Every Airflow process the harness
starts has this folder on its ``PYTHONPATH`` (``cluster.py``), so the production DAGs import it too.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG
from reliability_inputs import BATCH_OUTPUT_ENV, MARKER_DIR_ENV

#: The inference every harness batch runs (and most of its single tasks).
THETA_WHISPER: dict[str, Any] = {"conn_id": "edgeinfer_theta_default", "service": "whisper"}


def harness_dag(dag_id: str, doc: str, *, tag: str, max_active_tasks: int) -> DAG:
    """A DAG the harness triggers itself: no schedule, no catch-up."""
    return DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_tasks=max_active_tasks,
        tags=[tag],
        doc_md=doc,
    )


def batch_output(default_name: str) -> str:
    """The batch's output directory: the harness's (in the environment), else one in the temp dir."""
    return os.environ.get(BATCH_OUTPUT_ENV, os.path.join(tempfile.gettempdir(), default_name))


def batch_task(output_name: str) -> dict[str, Any]:
    """What every harness batch task shares: Theta whisper, 16 senders, deferred, ahead of the rest."""
    return {
        "task_id": "transcribe_all",
        **THETA_WHISPER,
        "output_path": batch_output(output_name),
        "max_concurrency": 16,
        "deferrable": True,
        "priority_weight": 1000,
    }


def announce(name: str, payload: dict[str, Any]) -> bool:
    """Tell the harness ``payload`` in the marker file ``name`` (when it watches); whether it was told."""
    marker_dir = os.environ.get(MARKER_DIR_ENV)
    if not marker_dir:
        return False
    marker = Path(marker_dir) / name
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload))
    tmp.rename(marker)  # atomic: the harness never reads half a file
    return True
