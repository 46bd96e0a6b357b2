"""Provider metadata, the entry point, and a cheap top-level import (DAG parsing)."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import subprocess
import sys

import pytest

import airflow_provider_edgeinfer
from airflow_provider_edgeinfer import get_provider_info

VENDORS = ("theta", "octoai", "infrai", "omnitensor")


def test_provider_info_shape() -> None:
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-edgeinfer"
    assert info["versions"] == [airflow_provider_edgeinfer.__version__]
    assert info["name"]
    assert info["description"]
    json.dumps(info)  # plain data only


def test_provider_info_has_the_four_connection_types() -> None:
    types = {c["connection-type"]: c for c in get_provider_info()["connection-types"]}
    assert set(types) == {f"edgeinfer_{v}" for v in VENDORS}
    for vendor in VENDORS:
        entry = types[f"edgeinfer_{vendor}"]
        assert entry["hook-class-name"].startswith(f"airflow_provider_edgeinfer.hooks.{vendor}.")
        assert entry["hook-name"]
        assert {"timeout", "max_retries", "retry_max_total_delay"} <= set(entry["conn-fields"])
        for spec in entry["conn-fields"].values():
            assert spec["label"]
            assert "type" in spec["schema"]


@pytest.mark.parametrize("vendor", VENDORS)
def test_hook_class_names_import(vendor: str) -> None:
    entry = next(
        c for c in get_provider_info()["connection-types"] if c["connection-type"] == f"edgeinfer_{vendor}"
    )
    module_name, _, class_name = entry["hook-class-name"].rpartition(".")
    module = importlib.import_module(module_name)  # a missing vendor module is a real failure
    hook = getattr(module, class_name)
    assert hook.conn_type == entry["connection-type"]
    assert hook.hook_name == entry["hook-name"]
    assert hook.default_conn_name == f"edgeinfer_{vendor}_default"
    assert hook.vendor == vendor


def test_hook_modules_are_listed() -> None:
    listed = [m for group in get_provider_info()["hooks"] for m in group["python-modules"]]
    assert listed == [f"airflow_provider_edgeinfer.hooks.{v}" for v in VENDORS]


def test_entry_point_resolves() -> None:
    points = [
        ep
        for ep in importlib.metadata.entry_points(group="apache_airflow_provider")
        if ep.value.startswith("airflow_provider_edgeinfer")
    ]
    assert len(points) == 1
    assert points[0].value == "airflow_provider_edgeinfer:get_provider_info"
    assert points[0].load() is get_provider_info
    assert points[0].load()()["package-name"] == "airflow-provider-edgeinfer"


def test_pytest_plugin_entry_point_resolves() -> None:
    points = [
        ep for ep in importlib.metadata.entry_points(group="pytest11") if ep.name == "edgeinfer_emulator"
    ]
    assert len(points) == 1
    assert hasattr(points[0].load(), "edgeinfer_emulator")


def test_top_level_import_is_light() -> None:
    code = (
        "import json, sys\n"
        "import airflow_provider_edgeinfer\n"
        "airflow_provider_edgeinfer.get_provider_info()\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    modules = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert "airflow_provider_edgeinfer" in modules
    heavy = sorted(
        m
        for m in modules
        if m.startswith(("airflow_provider_edgeinfer.clients", "airflow_provider_edgeinfer.emulator"))
        or m in ("httpx", "tenacity", "starlette", "uvicorn")
    )
    assert heavy == []


@pytest.mark.parametrize("category", [DeprecationWarning, PendingDeprecationWarning])
def test_a_deprecation_warning_from_this_package_fails_the_tests(category: type[Warning]) -> None:
    """setup.cfg's filterwarnings: Airflow's and libraries' deprecations are ignored, ours are errors."""
    import warnings

    with pytest.raises(category):
        warnings.warn_explicit("old", category, "x.py", 1, module="airflow_provider_edgeinfer.hooks.base")
    warnings.warn_explicit("old", category, "x.py", 1, module="some_library.module")  # ignored
