"""How many files of the package one deferred inference runs through, from ``execute`` to
``execute_complete`` (``docs/architecture.md``, "The path of one deferred inference").

Every function call made by the package's code while the task runs is traced (the worker, the
trigger under ``dag.test``'s in-process triggerer, the hook and client), except code run by an import
(module and class bodies) and the emulator, which stands in for the vendor. The count may only fall.

The same run shows the hook is built once on each side: once by ``execute``, once by the trigger
(once per connection and event loop, however many triggers: ``tests/triggers/test_client_leases.py``)
and once by ``execute_complete``, which runs apart from ``execute`` after a deferral.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import airflow_provider_edgeinfer
from airflow_provider_edgeinfer.emulator.state import Timing
from tests.dags.test_operator_dags import _dag

PACKAGE = Path(airflow_provider_edgeinfer.__file__).resolve().parent
#: Files on the path today, listed in docs/architecture.md (the goal was at most 8): a change that
#: adds one fails here and must merge or remove another.
CEILING = 8


def _importing(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


@contextmanager
def package_files_run(between: tuple[Any, str, str]) -> Iterator[set[str]]:
    """The package files whose functions run from ``cls.first`` being called to ``cls.last`` returning."""
    cls, first, last = between
    files: set[str] = set()
    tracing = threading.Event()
    root = str(PACKAGE)

    def tracer(frame: FrameType, event: str, arg: Any) -> None:
        name = frame.f_code.co_filename
        if (
            event == "call"
            and tracing.is_set()
            and name.startswith(root)
            and name not in files
            and "/emulator/" not in name
            and not _importing(frame.f_back)
        ):
            files.add(name)

    start, end = getattr(cls, first), getattr(cls, last)

    def started(self: Any, *args: Any, **kwargs: Any) -> Any:
        tracing.set()
        return start(self, *args, **kwargs)

    def ended(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return end(self, *args, **kwargs)
        finally:
            tracing.clear()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cls, first, started)
        patch.setattr(cls, last, ended)
        sys.settrace(tracer)
        threading.settrace(tracer)
        try:
            yield files
        finally:
            sys.settrace(None)
            threading.settrace(None)  # type: ignore[arg-type]


def test_one_deferred_theta_inference_runs_through_few_files(airflow_db: None, emulated: Any) -> None:
    from airflow_provider_edgeinfer.operators.inference import InferenceOperator
    from tests.dags.conftest import task_states

    emulated.state.timing["theta"] = Timing(0.2, 0.6)
    with package_files_run((InferenceOperator, "execute", "execute_complete")) as files:
        run = _dag("edgeinfer_test_basic").test()
    assert task_states(run) == {"infer": "success"}
    relative = sorted(str(Path(f).relative_to(PACKAGE)) for f in files)
    print(f"{len(relative)} files: {', '.join(relative)}")
    # Both sides were traced: the worker's operator and the triggerer's trigger.
    assert "operators/inference.py" in relative and "triggers/inference.py" in relative
    assert len(relative) <= CEILING, relative


def test_one_deferred_inference_builds_the_hook_once_on_each_side(
    airflow_db: None, emulated: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_edgeinfer.hooks.base import EdgeInferHook
    from airflow_provider_edgeinfer.operators.inference import InferenceOperator
    from tests.dags.conftest import task_states

    phase = ["outside the task"]
    built: list[str] = []
    build = EdgeInferHook.__init__

    def counted(self: EdgeInferHook, *args: Any, **kwargs: Any) -> None:
        try:
            asyncio.get_running_loop()
            built.append("triggerer")  # dag.test runs the trigger in this process, on an event loop
        except RuntimeError:
            built.append(phase[0])
        build(self, *args, **kwargs)

    def within(name: str) -> Any:
        method = getattr(InferenceOperator, name)

        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            phase[0] = name
            try:
                return method(self, *args, **kwargs)
            finally:
                phase[0] = "outside the task"

        return run

    monkeypatch.setattr(EdgeInferHook, "__init__", counted)
    for name in ("execute", "execute_complete"):
        monkeypatch.setattr(InferenceOperator, name, within(name))
    emulated.state.timing["theta"] = Timing(0.2, 0.6)
    run = _dag("edgeinfer_test_basic").test()
    assert task_states(run) == {"infer": "success"}
    assert Counter(built) == {"execute": 1, "triggerer": 1, "execute_complete": 1}, built
