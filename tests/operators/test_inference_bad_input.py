"""Bad input fails before anything is submitted, with an error naming the vendor and the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeinfer.exceptions import ConfigurationError, EdgeInferError, InputValidationError
from airflow_provider_edgeinfer.operators.inference import InferenceOperator


def _op(**kwargs: Any) -> InferenceOperator:
    return InferenceOperator(task_id="infer", deferrable=True, **kwargs)


THETA = "edgeinfer_theta_default"
OCTOAI = "edgeinfer_octoai_default"

CASES: list[tuple[str, dict[str, Any], type[EdgeInferError], list[str]]] = [
    (
        "unknown service",
        {"conn_id": THETA, "service": "nope", "input": {}},
        InputValidationError,
        ["theta", "nope"],
    ),
    (
        "missing required input",
        {"conn_id": THETA, "service": "whisper", "input": {"language": "en"}},
        InputValidationError,
        ["theta", "audio_filename"],
    ),
    (
        "wrong type",
        {"conn_id": THETA, "service": "flux", "input": {"prompt": "x", "width": "wide"}},
        InputValidationError,
        ["theta", "width"],
    ),
    (
        "unknown field",
        {"conn_id": THETA, "service": "flux", "input": {"prompt": "x", "colour": "red"}},
        InputValidationError,
        ["theta", "colour"],
    ),
    (
        "unknown prediction",
        {"conn_id": THETA, "service": "whisper", "prediction": "huge", "input": {"audio_filename": "a.wav"}},
        InputValidationError,
        ["theta", "huge"],
    ),
    (
        "input not an object",
        {"conn_id": THETA, "service": "whisper", "input": "[1, 2]"},
        InputValidationError,
        ["theta", "input"],
    ),
    (
        "input not JSON",
        {"conn_id": THETA, "service": "whisper", "input": "{oops"},
        InputValidationError,
        ["theta", "JSON"],
    ),
    (
        "oversize async body",
        {"conn_id": OCTOAI, "service": "generate/sdxl", "input": {"prompt": "x" * (10 * 1024 * 1024 + 1)}},
        InputValidationError,
        ["octoai", "10"],
    ),
    (
        "schema violation",
        {"conn_id": OCTOAI, "service": "generate/sdxl", "input": {"prompt": "x", "steps": "many"}},
        InputValidationError,
        ["octoai", "steps"],
    ),
    (
        "missing prompt",
        {"conn_id": OCTOAI, "service": "generate/sdxl", "input": {"steps": 10}},
        InputValidationError,
        ["octoai", "prompt"],
    ),
    (
        "unsupported vendor option",
        {
            "conn_id": OCTOAI,
            "service": "generate/sdxl",
            "input": {"prompt": "x"},
            "vendor_options": {"wait": 5},
        },
        InputValidationError,
        ["octoai", "wait"],
    ),
    (
        "unknown infrai route",
        {"conn_id": "edgeinfer_infrai_default", "service": "chat.complete", "input": {}},
        InputValidationError,
        ["infrai", "chat.complete"],
    ),
    (
        "prediction on omnitensor",
        {
            "conn_id": "edgeinfer_omnitensor_default",
            "service": "sentiment-v1",
            "prediction": "fast",
            "input": {"text": "x"},
        },
        InputValidationError,
        ["omnitensor", "prediction"],
    ),
]


@pytest.mark.parametrize(("name", "kwargs", "error", "named"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_before_any_submission(
    emulated: Any, name: str, kwargs: dict[str, Any], error: type[EdgeInferError], named: list[str]
) -> None:
    with pytest.raises(error) as raised:
        _op(**kwargs).execute({})  # type: ignore[arg-type]
    message = str(raised.value)
    for word in named:
        assert word in message, f"{word!r} not in {message!r}"
    assert sum(sum(c.values()) for c in emulated.state.snapshot()["submissions"].values()) == 0


def test_wrong_connection_type(emulated: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_PLAIN_HTTP", json.dumps({"conn_type": "http", "host": "127.0.0.1"}))
    with pytest.raises(ConfigurationError, match=r"plain_http.*not an edgeinfer connection"):
        _op(conn_id="plain_http", service="whisper", input={}).execute({})  # type: ignore[arg-type]
    assert emulated.state.snapshot()["requests"] == {}


def test_unwritable_output_path(emulated: Any, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    op = _op(
        conn_id=THETA, service="whisper", input={"audio_filename": "a.wav"}, output_path=str(blocker / "out")
    )
    with pytest.raises(ConfigurationError, match=r"output_path .* is not writable"):
        op.execute({})  # type: ignore[arg-type]
    assert emulated.state.snapshot()["submissions"]["theta"] == {}


def test_operator_arguments_are_checked_at_parse_time() -> None:
    with pytest.raises(ValueError, match="timeout"):
        InferenceOperator(task_id="t", conn_id=THETA, service="whisper", timeout=0)
