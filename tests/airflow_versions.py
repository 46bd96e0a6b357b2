"""The Airflow release the tests run on, for the behaviour that differs between them (docs/compat.md)."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import pytest
from packaging.version import Version

AIRFLOW = Version(version("apache-airflow-core"))


def since_airflow(release: str, feature: str) -> pytest.MarkDecorator:
    """Skip a test of ``feature`` on releases before ``release`` (where docs/compat.md says it differs)."""
    return pytest.mark.skipif(
        Version(release) > AIRFLOW, reason=f"{feature} arrived in Airflow {release} (see docs/compat.md)"
    )


def fired(entry: Any) -> tuple[int, Any]:
    """(trigger id, event) of an entry of ``TriggerRunner.events``: a pair on Airflow 3.1, an object later."""
    if isinstance(entry, tuple):
        return entry[0], entry[1]
    return entry.trigger_id, entry.event
