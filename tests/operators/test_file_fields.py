"""A file input field holds an uploaded file's name or a URL; anything else is refused before sending."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_edgeinfer.clients.theta import is_file_reference
from airflow_provider_edgeinfer.exceptions import InputValidationError
from airflow_provider_edgeinfer.operators.inference import InferenceOperator

THETA = "edgeinfer_theta_default"


@pytest.mark.parametrize(
    "value",
    [
        "{'audio_filename': 'upl_0123'}",  # a whole XCom dict rendered into the field
        "[{'audio_filename': 'upl_0123'}]",
        "/data/calls/a.wav",  # a local path: the vendor cannot read it
        "s3://my-bucket/calls/a.wav",
        "call a.wav",
        "",
        "https://",
    ],
)
def test_anything_but_a_name_or_a_url_is_refused_before_sending(emulated: Any, value: str) -> None:
    op = InferenceOperator(
        task_id="t", conn_id=THETA, service="whisper", input={"audio_filename": value}, deferrable=False
    )
    with pytest.raises(
        InputValidationError, match=r"audio_filename.*uploaded file's name or an http"
    ) as raised:
        op.execute({})  # type: ignore[arg-type]
    assert "input_files" in (raised.value.hint or "")
    assert emulated.state.snapshot()["submissions"]["theta"] == {}


@pytest.mark.parametrize("value", ["upl_0123abcd", "talk.wav", "https://cdn.example.com/a.wav?sig=1"])
def test_uploaded_names_and_urls_pass(value: str) -> None:
    assert is_file_reference(value)


def test_a_glob_batch_is_checked_with_a_stand_in_for_its_uploads(emulated: Any, tmp_path: Any) -> None:
    from airflow_provider_edgeinfer.operators.batch import BatchOperator

    for name in ("a.wav", "b.wav"):
        (tmp_path / name).write_bytes(b"RIFF" + bytes(64))
    op = BatchOperator(
        task_id="b",
        conn_id=THETA,
        service="whisper",
        inputs=str(tmp_path / "*.wav"),
        file_field="audio_filename",
        output_path=str(tmp_path / "out"),
        deferrable=False,
        poll_interval=1,
    )
    ti = _Ti()
    result = op.execute({"ti": ti, "run_id": "r"})  # type: ignore[arg-type]
    assert result["succeeded"] == 2
    assert str(ti.pushed["_link_VendorBatchLink"]).endswith("/dashboard/ai/inference/request")


class _Ti:
    """The task instance's parts the batch reads (its identity) and writes (its links)."""

    dag_id, task_id, run_id, map_index, try_number = "d", "b", "r", -1, 1

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value
