"""Every argument a user can pass is documented with ``:param:`` where the API reference shows it.

Covers the constructors of every public operator, sensor and trigger, and every public method of
every hook, found through the provider info (what Airflow itself lists), so a class or module added
there is covered without touching this test.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from airflow.sdk import BaseHook, BaseOperator
from airflow.triggers.base import BaseTrigger

from airflow_provider_edgeinfer import get_provider_info

PACKAGE = "airflow_provider_edgeinfer"
_PARAM = re.compile(r":param\s+(?:[^:\s]+\s+)?(\w+)\s*:")


def _public_classes() -> list[type]:
    info = get_provider_info()
    modules = [
        m
        for kind in ("operators", "sensors", "triggers", "hooks")
        for g in info[kind]
        for m in g["python-modules"]
    ]
    seen: dict[str, type] = {}
    for name in modules:
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if (
                inspect.isclass(value)
                and not attr.startswith("_")
                and value.__module__.startswith(PACKAGE)
                and issubclass(value, BaseOperator | BaseTrigger | BaseHook)
            ):
                seen[f"{value.__module__}.{value.__qualname__}"] = value
    return [seen[k] for k in sorted(seen)]


CLASSES = _public_classes()


def _arguments(function: Callable[..., Any]) -> list[str]:
    skip = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    params = inspect.signature(function).parameters.values()
    return [p.name for p in params if p.name not in ("self", "cls") and p.kind not in skip]


def _documented(*docs: str | None) -> set[str]:
    return {m.group(1) for doc in docs if doc for m in _PARAM.finditer(doc)}


def _hook_methods(hook: type) -> Iterator[tuple[str, Callable[..., Any]]]:
    """Public methods a user calls on the hook: ours, not Airflow's BaseHook's."""
    for name in dir(hook):
        if name.startswith("_"):
            continue
        owner = next(c for c in hook.__mro__ if name in vars(c))
        value = vars(owner)[name]
        if not owner.__module__.startswith(PACKAGE) or not callable(value) or isinstance(value, type):
            continue
        yield name, getattr(hook, name)


def test_the_public_surface_is_found() -> None:
    names = {c.__name__ for c in CLASSES}
    expected = {
        "InferenceOperator",
        "BatchOperator",
        "PresignedUploadOperator",
        "InferenceRequestSensor",
        "BatchSensor",
        "InferenceTrigger",
        "BatchTrigger",
        "ThetaHook",
        "OctoAIHook",
        "InfraiHook",
        "OmniTensorHook",
    }
    assert expected <= names


@pytest.mark.parametrize("cls", [c for c in CLASSES if not issubclass(c, BaseHook)], ids=lambda c: c.__name__)
def test_every_constructor_argument_is_documented(cls: type) -> None:
    missing = set(_arguments(cls.__init__)) - _documented(inspect.getdoc(cls), cls.__init__.__doc__)
    assert not missing, f"{cls.__name__}: no :param: for {', '.join(sorted(missing))}"


@pytest.mark.parametrize("hook", [c for c in CLASSES if issubclass(c, BaseHook)], ids=lambda c: c.__name__)
def test_every_hook_method_argument_is_documented(hook: type) -> None:
    gaps = []
    missing = set(_arguments(hook.__init__)) - _documented(inspect.getdoc(hook), hook.__init__.__doc__)
    if missing:
        gaps.append(f"__init__: {', '.join(sorted(missing))}")
    for name, method in _hook_methods(hook):
        missing = set(_arguments(method)) - _documented(inspect.getdoc(method))
        if missing:
            gaps.append(f"{name}: {', '.join(sorted(missing))}")
    assert not gaps, f"{hook.__name__} methods without :param: for " + "; ".join(gaps)


def _task_decorators() -> list[Callable[..., Any]]:
    out = []
    for entry in get_provider_info().get("task-decorators", []):
        module, _, name = entry["class-name"].rpartition(".")
        out.append(getattr(importlib.import_module(module), name))
    return out


@pytest.mark.parametrize("decorator", _task_decorators(), ids=lambda d: d.__name__)
def test_every_task_decorator_argument_is_documented(decorator: Callable[..., Any]) -> None:
    missing = set(_arguments(decorator)) - _documented(inspect.getdoc(decorator))
    assert not missing, f"{decorator.__name__}: no :param: for {', '.join(sorted(missing))}"


def test_the_check_sees_a_missing_param() -> None:
    class Example:
        def method(self, documented: int, forgotten: int, *args: Any, **kwargs: Any) -> None:
            """Do it.

            :param documented: is.
            """

    assert set(_arguments(Example.method)) - _documented(inspect.getdoc(Example.method)) == {"forgotten"}
