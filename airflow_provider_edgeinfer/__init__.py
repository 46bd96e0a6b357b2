"""Apache Airflow provider for AI inference on Theta EdgeCloud, OctoAI, infrai and OmniTensor.

Importing this package is cheap on purpose: DAG files import operators from here at parse time,
and vendor clients and their pydantic models load only when a task runs.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def get_provider_info() -> dict[str, Any]:
    """Provider metadata for Airflow's ``apache_airflow_provider`` entry point."""
    from airflow_provider_edgeinfer.provider_info import PROVIDER_INFO

    return PROVIDER_INFO
