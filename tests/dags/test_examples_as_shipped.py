"""Every example DAG runs from the UI's Trigger button as shipped, and explains itself there.

The trigger form sends an empty field as null, and the Trigger button stays disabled while any
param fails its schema: so a ``Param("", type="string")`` blocks it. Each param's default, read as
the form reads it, must validate; and each DAG carries a ``doc_md`` for the UI to show.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from tests.dags.conftest import DAGS, load_dag

EXAMPLES = sorted(p.stem for p in DAGS.glob("edgeinfer_*.py"))


def _as_the_form_sends(value: Any) -> Any:
    return None if value == "" else value


@pytest.mark.parametrize("dag_id", EXAMPLES)
def test_every_param_default_passes_the_trigger_form(dag_id: str) -> None:
    dag = load_dag(dag_id)
    assert dag.dag_id == dag_id
    for name in dag.params:
        param = dag.params.get_param(name)
        value = _as_the_form_sends(param.value)
        try:
            jsonschema.validate(value, param.schema)
        except jsonschema.ValidationError as exc:
            pytest.fail(f"{dag_id}: param {name!r} default {param.value!r} blocks the Trigger button: {exc}")


@pytest.mark.parametrize("dag_id", EXAMPLES)
def test_every_example_has_documentation_for_the_ui(dag_id: str) -> None:
    dag = load_dag(dag_id)
    assert isinstance(dag.doc_md, str) and len(dag.doc_md.split()) >= 20


def test_the_form_check_catches_an_empty_string_param() -> None:
    """The check above can fail: the shape that disabled the button is refused."""
    from airflow.sdk import Param

    param = Param("", type="string")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(_as_the_form_sends(param.value), param.schema)
