"""OpenLineage facets of the three operators, read as the OpenLineage provider reads them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("airflow.providers.openlineage")

from airflow.providers.openlineage.extractors import OperatorLineage
from openlineage.client.serde import Serde

from airflow_provider_edgeinfer.lineage import FACET_NAME, location, operator_lineage
from airflow_provider_edgeinfer.operators.batch import BatchOperator
from airflow_provider_edgeinfer.operators.inference import InferenceOperator
from airflow_provider_edgeinfer.operators.upload import PresignedUploadOperator


class _TI:
    dag_id, task_id, run_id, map_index, try_number = "lineage", "t", "manual__1", -1, 1

    def xcom_push(self, *args: Any, **kwargs: Any) -> None:
        pass


def _context() -> dict[str, Any]:
    return {"ti": _TI()}


def _pairs(datasets: list[Any]) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


def _facet(lineage: OperatorLineage) -> dict[str, Any]:
    """The run facet as it goes on the wire (the provider serializes it with the client's Serde)."""
    facet: dict[str, Any] = json.loads(Serde.to_json(lineage.run_facets[FACET_NAME]))
    return facet


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("s3://aws_default@bucket/in/items.jsonl", ("s3://bucket", "in/items.jsonl")),
        ("s3://bucket/audio/*.wav", ("s3://bucket", "audio")),
        ("/data/in/a.wav", ("file", "/data/in/a.wav")),
        ("file:///data/out", ("file", "/data/out")),
        (("https://api.example", "upl_1"), ("https://api.example", "upl_1")),
    ],
)
def test_dataset_names_follow_openlineage_naming(path: Any, expected: tuple[str, str]) -> None:
    assert location(path) == expected


def test_a_task_that_recorded_nothing_has_empty_lineage() -> None:
    lineage = operator_lineage(None)
    assert isinstance(lineage, OperatorLineage) and not lineage.inputs and not lineage.run_facets


def test_inference_names_its_output_folder_vendor_service_and_cost(emulated: Any, tmp_path: Path) -> None:
    op = InferenceOperator(
        task_id="t",
        conn_id="edgeinfer_theta_default",
        service="whisper",
        input={"audio_filename": "https://example.invalid/talk.wav"},
        output_path=str(tmp_path / "out"),
        deferrable=False,
        poll_interval=1.0,
    )
    result = op.execute(_context())  # type: ignore[arg-type]
    lineage = op.get_openlineage_facets_on_complete(None)
    assert _pairs(lineage.outputs) == [("file", str(tmp_path / "out"))]
    assert lineage.inputs == []
    facet = _facet(lineage)
    assert facet["vendor"] == "theta" and facet["service"] == "whisper"
    assert facet["requestIds"] == [result["request_id"]]
    assert (facet["totalItems"], facet["succeededItems"], facet["failedItems"]) == (1, 1, 0)
    assert facet["costUsd"] == result["cost_usd"]
    assert facet["_schemaURL"].endswith("RunFacet")


def test_batch_names_its_jsonl_input_results_and_counts(emulated: Any, tmp_path: Path) -> None:
    source = tmp_path / "items.jsonl"
    lines = [
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"item {n}"}]} for n in range(3)
    ]
    source.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    op = BatchOperator(
        task_id="t",
        conn_id="edgeinfer_infrai_default",
        service="chat.completions",
        inputs=str(source),
        output_path=str(tmp_path / "out"),
        deferrable=False,
    )
    result = op.execute(_context())  # type: ignore[arg-type]
    lineage = op.get_openlineage_facets_on_complete(None)
    assert _pairs(lineage.inputs) == [("file", str(source))]
    out = str(tmp_path / "out")
    assert _pairs(lineage.outputs) == [("file", out), ("file", f"{out}/results.jsonl")]
    facet = _facet(lineage)
    assert facet["vendor"] == "infrai" and facet["service"] == "chat.completions"
    assert (facet["totalItems"], facet["succeededItems"], facet["failedItems"]) == (3, result["succeeded"], 0)
    assert facet["costUsd"] == result["cost_usd"]


def test_declared_tables_join_the_files_the_batch_read_and_wrote(emulated: Any, tmp_path: Path) -> None:
    """Tables are known where the DAG declares them: inlets and outlets, as OpenLineage datasets or
    Airflow assets (named by the provider owning the scheme), reported beside the files."""
    from airflow.sdk import Asset, AssetAlias
    from openlineage.client.event_v2 import Dataset

    source = tmp_path / "items.jsonl"
    source.write_text(json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}) + "\n")
    out = str(tmp_path / "out")
    op = BatchOperator(
        task_id="t",
        conn_id="edgeinfer_infrai_default",
        service="chat.completions",
        inputs=str(source),
        output_path=out,
        deferrable=False,
        inlets=[Dataset(namespace="postgres://db:5432", name="support.public.tickets")],
        outlets=[
            Asset(f"file://{out}"),  # the output folder again: one dataset, not two
            Dataset(namespace="postgres://db:5432", name="support.public.ticket_summaries"),
            AssetAlias("names-no-dataset"),
        ],
    )
    op.execute(_context())  # type: ignore[arg-type]
    lineage = op.get_openlineage_facets_on_complete(None)
    assert _pairs(lineage.inputs) == [("file", str(source)), ("postgres://db:5432", "support.public.tickets")]
    assert _pairs(lineage.outputs) == [
        ("file", out),
        ("file", f"{out}/results.jsonl"),
        ("postgres://db:5432", "support.public.ticket_summaries"),
    ]


def test_a_postgres_table_asset_is_named_as_openlineage_names_tables() -> None:
    pytest.importorskip("airflow.providers.postgres")
    from airflow.sdk import Asset

    from airflow_provider_edgeinfer.lineage import declared

    datasets = declared([Asset("postgres://db:5432/support/public/tickets")])
    assert _pairs(datasets) == [("postgres://db:5432", "support.public.tickets")]


def test_upload_names_the_files_read_and_what_the_vendor_holds(emulated: Any, tmp_path: Path) -> None:
    files = []
    for n in range(2):
        path = tmp_path / f"clip{n}.wav"
        path.write_bytes(b"RIFF" + bytes(64))
        files.append(str(path))
    op = PresignedUploadOperator(
        task_id="t",
        conn_id="edgeinfer_theta_default",
        source=files,
        service="whisper",
        field="audio_filename",
    )
    results = op.execute(_context())  # type: ignore[arg-type]
    lineage = op.get_openlineage_facets_on_complete(None)
    assert _pairs(lineage.inputs) == [("file", f) for f in files]
    base = emulated.vendor_url("theta")
    assert _pairs(lineage.outputs) == [(base, r["audio_filename"]) for r in results]
    facet = _facet(lineage)
    assert facet["vendor"] == "theta" and facet["totalItems"] == 2


def test_the_operators_import_no_openlineage_module() -> None:
    """OpenLineage is an optional extra: DAG files import the operators without it."""
    code = (
        "import sys\n"
        "import airflow_provider_edgeinfer.operators.batch, airflow_provider_edgeinfer.operators.inference\n"
        "import airflow_provider_edgeinfer.operators.upload\n"
        # Airflow itself reads every provider's metadata module; the client and extractors are ours to load.
        "ours = ('openlineage', 'airflow.providers.openlineage.extractors')\n"
        "print(sorted(m for m in sys.modules if m.startswith(ours)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
