"""Numeric arguments: NaN and infinity are refused (naming the argument) before anything is sent, and a
poll interval below the floor is raised to it, so ``poll_interval=0`` cannot flood the vendor."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_edgeinfer.arguments import MIN_POLL_INTERVAL, finite, poll_interval, seconds, whole
from airflow_provider_edgeinfer.emulator.state import VENDORS, Timing
from airflow_provider_edgeinfer.exceptions import ConfigurationError
from airflow_provider_edgeinfer.hooks.connections import ConnectionExtras
from airflow_provider_edgeinfer.operators.batch import BatchOperator
from airflow_provider_edgeinfer.operators.inference import InferenceOperator
from airflow_provider_edgeinfer.operators.upload import PresignedUploadOperator
from airflow_provider_edgeinfer.sensors.batch import BatchSensor
from airflow_provider_edgeinfer.sensors.request import InferenceRequestSensor

NOT_FINITE = [math.nan, math.inf, -math.inf, "nan", "inf", "Infinity", "-inf"]
THETA = "edgeinfer_theta_default"


def context() -> Any:
    """The part of an Airflow context the operators read here."""
    return {"ti": FakeTI()}


class FakeTI:
    dag_id, task_id, run_id, map_index = "numbers", "task", "manual__numbers", -1

    def xcom_push(self, **kwargs: Any) -> None:
        pass


def inference(**kwargs: Any) -> InferenceOperator:
    return InferenceOperator(task_id="infer", conn_id=THETA, service="whisper", input={}, **kwargs)


def batch(**kwargs: Any) -> BatchOperator:
    return BatchOperator(
        task_id="batch", conn_id=THETA, service="whisper", inputs=[{}], output_path="/tmp/x", **kwargs
    )


def request_sensor(**kwargs: Any) -> InferenceRequestSensor:
    return InferenceRequestSensor(task_id="wait", conn_id=THETA, request_id="r", **kwargs)


def batch_sensor(**kwargs: Any) -> BatchSensor:
    return BatchSensor(task_id="wait", conn_id=THETA, batch_id="b", **kwargs)


def upload(**kwargs: Any) -> PresignedUploadOperator:
    return PresignedUploadOperator(
        task_id="upload", conn_id=THETA, source="/tmp/a.wav", service="whisper", field="f", **kwargs
    )


#: Every numeric argument of every public operator and sensor.
ARGUMENTS: list[tuple[str, Callable[..., Any], str]] = [
    ("inference", inference, "timeout"),
    ("inference", inference, "poll_interval"),
    ("inference", inference, "max_transient_failures"),
    ("inference", inference, "xcom_output_max_bytes"),
    ("batch", batch, "timeout"),
    ("batch", batch, "poll_interval"),
    ("batch", batch, "max_concurrency"),
    ("batch", batch, "max_failed_ratio"),
    ("batch", batch, "item_retries"),
    ("batch", batch, "retention_days"),
    ("batch", batch, "max_transient_failures"),
    ("request-sensor", request_sensor, "timeout"),
    ("request-sensor", request_sensor, "poke_interval"),
    ("request-sensor", request_sensor, "max_wait"),
    ("batch-sensor", batch_sensor, "timeout"),
    ("batch-sensor", batch_sensor, "poke_interval"),
    ("batch-sensor", batch_sensor, "max_wait"),
    ("batch-sensor", batch_sensor, "min_success_ratio"),
    ("upload", upload, "max_concurrency"),
]


@pytest.mark.parametrize("value", NOT_FINITE, ids=[repr(v) for v in NOT_FINITE])
@pytest.mark.parametrize(("owner", "make", "name"), ARGUMENTS, ids=[f"{o}-{n}" for o, _, n in ARGUMENTS])
def test_a_non_finite_argument_is_refused_naming_it(
    owner: str, make: Callable[..., Any], name: str, value: Any
) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must be a (finite )?number") as raised:
        make(**{name: value})
    assert repr(value) in str(raised.value)


@pytest.mark.parametrize(
    ("make", "name", "value"),
    [
        (inference, "timeout", 0),
        (inference, "timeout", -5),
        (batch, "max_failed_ratio", 1.5),
        (batch, "max_concurrency", 0),
        (batch, "item_retries", 1.5),
        (batch, "retention_days", 0),
        (batch_sensor, "min_success_ratio", -0.1),
        (upload, "max_concurrency", 0),
    ],
)
def test_an_out_of_range_argument_is_refused_naming_it(
    make: Callable[..., Any], name: str, value: Any
) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must be"):
        make(**{name: value})


def test_the_helpers_accept_ordinary_values() -> None:
    assert finite("x", "2.5") == 2.5
    assert whole("n", 3.0) == 3
    assert seconds("t", timedelta(minutes=2)) == 120.0
    assert poll_interval("p", 30) == 30.0
    with pytest.raises(ValueError, match="x must be a number"):
        finite("x", True)


# -- the poll interval floor ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "attribute", "argument"),
    [
        (inference, "poll_interval", "poll_interval"),
        (batch, "poll_interval", "poll_interval"),
        (request_sensor, "poke_interval", "poke_interval"),
        (batch_sensor, "poke_interval", "poke_interval"),
    ],
    ids=["inference", "batch", "request-sensor", "batch-sensor"],
)
def test_a_poll_interval_below_the_floor_is_raised_with_a_warning(
    make: Callable[..., Any], attribute: str, argument: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="airflow_provider_edgeinfer"):
        operator = make(**{argument: 0})
    assert getattr(operator, attribute) == MIN_POLL_INTERVAL
    assert any(f"{argument}=0 is below" in r.getMessage() for r in caplog.records)
    assert getattr(make(**{argument: 45}), attribute) == 45.0


def test_poll_interval_zero_does_not_flood_the_vendor(emulated: Any) -> None:
    for vendor in VENDORS:
        emulated.state.timing[vendor] = Timing(queued=0.0, running=2.0)
    operator = InferenceOperator(
        task_id="infer",
        conn_id=THETA,
        service="whisper",
        input={"audio_filename": "https://example.invalid/numbers.wav"},
        poll_interval=0,
        deferrable=False,
    )
    started = time.monotonic()
    result = operator.execute(context())
    took = time.monotonic() - started
    assert result["state"] == "succeeded"
    requests = emulated.counters()["requests"]
    polls = requests.get("theta.list_requests", 0) + requests.get("theta.get_request", 0)
    # One poll per floor interval over the job's life, plus the first and the final read.
    assert polls <= took / MIN_POLL_INTERVAL + 3, requests


# -- connection extras and the rendered budget -----------------------------------------------------


NUMERIC_EXTRAS = [n for n, f in ConnectionExtras.model_fields.items() if f.annotation in (int, float)]


@pytest.mark.parametrize("extra", NUMERIC_EXTRAS)
@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity", math.inf])
def test_a_non_finite_connection_extra_is_refused_before_sending(
    emulated: Any, monkeypatch: pytest.MonkeyPatch, extra: str, value: Any
) -> None:
    from airflow_provider_edgeinfer.hooks.theta import ThetaHook

    name = "AIRFLOW_CONN_EDGEINFER_THETA_DEFAULT"
    conn = json.loads(os.environ[name])
    conn["extra"] = {**conn["extra"], extra: value}
    monkeypatch.setenv(name, json.dumps(conn))
    hook = ThetaHook(THETA)
    with pytest.raises(ConfigurationError, match=rf"extra '{extra}' must be a finite number") as raised:
        hook.run(hook.api.list_services())
    assert raised.value.vendor == "theta"
    assert emulated.counters()["requests"] == {}


@pytest.mark.parametrize("budget", ["nan", "inf", math.nan, -1])
def test_a_non_finite_budget_is_refused_before_anything_is_sent(
    emulated: Any, tmp_path: Any, budget: Any
) -> None:
    operator = BatchOperator(
        task_id="batch",
        conn_id="edgeinfer_infrai_default",
        service="chat.completions",
        inputs=[{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}],
        output_path=str(tmp_path),
        max_cost_usd=budget,  # templated, so checked once rendered, at run time
        deferrable=False,
    )
    with pytest.raises(ConfigurationError, match="max_cost_usd must be") as raised:
        operator.execute(context())
    assert raised.value.vendor == "infrai"
    assert emulated.counters()["requests"] == {}
