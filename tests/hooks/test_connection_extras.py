"""The connection models: the form Airflow shows is generated from them, and they check every extra."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from airflow_provider_edgeinfer import get_provider_info
from airflow_provider_edgeinfer.clients.omnitensor import DEFAULT_MAX_MODEL_BYTES
from airflow_provider_edgeinfer.clients.retry import RetrySettings
from airflow_provider_edgeinfer.clients.transport import HttpSettings
from airflow_provider_edgeinfer.exceptions import ConfigurationError
from airflow_provider_edgeinfer.hooks.base import parse_extras
from airflow_provider_edgeinfer.hooks.connections import (
    MODELS,
    ConnectionExtras,
    OmniTensorExtras,
    ThetaExtras,
)
from airflow_provider_edgeinfer.hooks.omnitensor import OmniTensorHook
from airflow_provider_edgeinfer.hooks.theta import ThetaHook

KEY = "theta-key-0123456789"
FORMS = {c["connection-type"]: c for c in get_provider_info()["connection-types"]}


def set_conn(monkeypatch: pytest.MonkeyPatch, conn_id: str, conn_type: str, extra: dict[str, Any]) -> None:
    fields = {"conn_type": conn_type, "password": KEY, "extra": extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


# -- the form is the model ---------------------------------------------------------------------------


@pytest.mark.parametrize("conn_type", sorted(MODELS))
def test_the_form_shows_every_extra_the_model_takes(conn_type: str) -> None:
    model = MODELS[conn_type]
    fields = FORMS[conn_type]["conn-fields"]
    assert list(fields) == list(model.model_fields)
    for name, field in model.model_fields.items():
        spec = fields[name]
        assert spec["label"] and spec["description"] == field.description
        assert "null" in spec["schema"]["type"]
        if field.default is None:
            assert "default" not in spec["schema"]
        else:
            assert spec["schema"]["default"] == field.default
    # What the form lacked before: every common extra, the alternative key field and the scheme.
    assert {"api_key", "scheme", "connect_timeout", "retry_initial_delay", "max_connections"} <= set(fields)


def test_the_form_types_minimums_secrets_and_placeholders() -> None:
    theta = FORMS["edgeinfer_theta"]
    fields = theta["conn-fields"]
    assert fields["timeout"]["schema"] == {"type": ["number", "null"], "exclusiveMinimum": 0, "default": 60.0}
    assert fields["max_retries"]["schema"] == {"type": ["integer", "null"], "minimum": 0, "default": 4}
    assert fields["api_key"]["schema"]["format"] == "password"
    assert fields["scheme"]["schema"]["enum"] == ["http", "https", None]
    assert theta["ui-field-behaviour"]["placeholders"]["project_id"] == "prj_..."
    omni = FORMS["edgeinfer_omnitensor"]["conn-fields"]
    assert omni["secret"]["schema"]["format"] == "password"
    assert omni["max_model_bytes"]["schema"]["default"] == DEFAULT_MAX_MODEL_BYTES
    assert "max_model_bytes" not in fields


def test_the_model_defaults_are_the_clients_defaults() -> None:
    extras = ConnectionExtras()
    http, retry = HttpSettings(), RetrySettings()
    assert extras.connect_timeout == http.connect_timeout and extras.timeout == http.read_timeout
    assert extras.max_connections == http.max_connections
    assert extras.max_response_bytes == http.max_response_bytes
    assert extras.max_download_bytes == http.max_download_bytes
    assert (extras.call_deadline, extras.download_deadline) == (http.call_deadline, http.download_deadline)
    assert (extras.retry_initial_delay, extras.retry_max_delay) == (retry.initial_delay, retry.max_delay)
    assert extras.retry_max_total_delay == retry.max_total_delay
    assert OmniTensorExtras().max_model_bytes == DEFAULT_MAX_MODEL_BYTES


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("timeout", 0),
        ("timeout", 0.5),
        ("timeout", -1),
        ("max_retries", 0),
        ("max_retries", -1),
        ("max_retries", 2.5),
        ("max_connections", 0),
        ("retry_initial_delay", 0),
        ("scheme", "https"),
        ("scheme", "ftp"),
        ("project_id", "prj_1"),
        ("project_id", 7),
    ],
)
def test_the_form_and_the_model_accept_the_same_values(name: str, value: Any) -> None:
    schema = FORMS["edgeinfer_theta"]["conn-fields"][name]["schema"]
    by_form = jsonschema.Draft202012Validator(schema).is_valid(value)
    try:
        parse_extras(ThetaExtras, {name: value}, "c")
        by_model = True
    except ValueError:
        by_model = False
    assert by_form == by_model, (name, value, by_form, by_model)


# -- the hook refuses what the model refuses ----------------------------------------------------------


def test_an_unknown_extra_is_refused_with_the_closest_known_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_conn(monkeypatch, "typo", "edgeinfer_theta", {"max_retry": 2})
    with pytest.raises(ConfigurationError, match="unknown extra 'max_retry': did you mean 'max_retries'"):
        ThetaHook("typo").connection  # noqa: B018  (reading the connection is the check)


def test_an_unknown_extra_with_no_close_name_lists_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "odd", "edgeinfer_omnitensor", {"secret": "s3cret-value", "zzz": 1})
    with pytest.raises(ConfigurationError, match=r"unknown extra 'zzz' \(known extras: api_key, .*secret"):
        OmniTensorHook("odd").connection  # noqa: B018


def test_a_vendor_extra_of_another_vendor_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "mixed", "edgeinfer_theta", {"secret": "s3cret-value"})
    with pytest.raises(ConfigurationError, match="unknown extra 'secret'"):
        ThetaHook("mixed").connection  # noqa: B018


def test_a_bad_number_is_refused_by_the_one_numeric_check(monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, "neg", "edgeinfer_theta", {"max_retries": "-1", "timeout": "soon"})
    with pytest.raises(ConfigurationError) as raised:
        ThetaHook("neg").connection  # noqa: B018
    message = str(raised.value)
    assert "extra 'max_retries' must be at least 0, got '-1'" in message
    assert "extra 'timeout' must be a number, got 'soon'" in message


def test_untouched_form_fields_and_prefixed_keys_mean_what_the_form_meant(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_conn(
        monkeypatch,
        "form",
        "edgeinfer_theta",
        {
            "timeout": None,
            "call_deadline": "",
            "extra__edgeinfer_theta__max_retries": "2",
            "project_id": "prj_9",
        },
    )
    hook = ThetaHook("form")
    settings = hook.http_settings(hook.connection)
    assert settings.read_timeout == 60.0 and settings.call_deadline == 300.0
    assert settings.retry.max_attempts == 3
    assert hook.api.project_id == "prj_9"


def test_the_api_key_extra_stands_in_for_an_empty_password(monkeypatch: pytest.MonkeyPatch) -> None:
    fields = {"conn_type": "edgeinfer_theta", "extra": {"api_key": "extra-key-123456"}}
    monkeypatch.setenv("AIRFLOW_CONN_KEYED", json.dumps(fields))
    hook = ThetaHook("keyed")
    assert hook.credentials(hook.connection).api_key.get_secret_value() == "extra-key-123456"
    assert "extra-key-123456" not in repr(hook.extras(hook.connection))
