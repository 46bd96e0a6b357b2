"""Run an example DAG with ``dag.test()`` as a worker would for lineage: ``python lineage_run.py
<dag file> <output_root> [<demo_db_path>]``; exits 0 when the run succeeded. A database of its own
leaves the shared demo tickets pending for the other tests that run the example.

``dag.test()`` runs every task in this one process, where Airflow's hook-lineage collector (one per
process) would carry each task's file reads and writes into the next tasks' OpenLineage events; a
worker runs each task in a process of its own, so the collector is emptied as each task starts.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from airflow.listeners import hookimpl

try:
    from airflow.sdk.listener import get_listener_manager  # the task runner's, from Airflow 3.2
except ImportError:
    from airflow.listeners.listener import get_listener_manager  # type: ignore[no-redef,assignment]


def _forget_collected_lineage() -> None:
    try:
        from airflow.sdk.lineage import get_hook_lineage_collector  # Airflow 3.2 and later
    except ImportError:
        import airflow.lineage.hook as hook  # Airflow 3.1: a module-level singleton

        hook._hook_lineage_collector = None  # type: ignore[attr-defined]
    else:
        get_hook_lineage_collector.cache_clear()


class _OneTaskPerProcess:
    @hookimpl
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        _forget_collected_lineage()


def main(dag_file: str, output_root: str, demo_db_path: str | None = None) -> int:
    spec = importlib.util.spec_from_file_location("example_dag", dag_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    get_listener_manager().add_listener(_OneTaskPerProcess())  # type: ignore[no-untyped-call]
    conf = {"output_root": output_root}
    if demo_db_path is not None:
        conf["demo_db_path"] = demo_db_path
    run = module.dag.test(run_conf=conf)
    return 0 if run.state == "success" else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
