"""Bad input, one table: operators, sensors, hooks, connections and clients.

Each case names the exact error class, words its message must carry (the vendor and the field or
value at fault) and whether the failure is local: then no submission, and no request other than
Theta's catalogue read (``theta.list_services``, which validation uses), reached the emulator.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_edgeinfer.clients.core import Credentials
from airflow_provider_edgeinfer.clients.retry import RetrySettings
from airflow_provider_edgeinfer.clients.transport import HttpSettings, SyncClient
from airflow_provider_edgeinfer.emulator.server import EmulatorServer
from airflow_provider_edgeinfer.exceptions import (
    AuthenticationError,
    ConfigurationError,
    InputValidationError,
    ResultExpiredError,
    UnexpectedResponseError,
)

THETA = "edgeinfer_theta_default"
OCTOAI = "edgeinfer_octoai_default"
INFRAI = "edgeinfer_infrai_default"
OMNITENSOR = "edgeinfer_omnitensor_default"
#: Requests local validation may make: Theta's public service catalogue.
ALLOWED_LOCAL_REQUESTS = {"theta.list_services"}
ONE_ATTEMPT = HttpSettings(read_timeout=10.0, retry=RetrySettings(max_attempts=1))


class VendorNotNamed(AssertionError):
    """The message (or the error's ``vendor``) does not name the vendor."""


@dataclass
class Env:
    """What a case may use: the emulator, a scratch directory and monkeypatch."""

    emu: EmulatorServer
    tmp: Path
    monkeypatch: pytest.MonkeyPatch

    def conn(self, name: str, vendor: str, *, extra: dict[str, Any] | None = None, **fields: Any) -> str:
        """A connection ``name``: the emulator's one for ``vendor`` with some fields changed."""
        value = json.loads(self.emu.connections()[f"AIRFLOW_CONN_EDGEINFER_{vendor.upper()}_DEFAULT"])
        value["extra"] = {**value["extra"], **(extra or {})}
        value.update(fields)
        self.monkeypatch.setenv(f"AIRFLOW_CONN_{name.upper()}", json.dumps(value))
        return name

    def file(self, name: str, data: bytes = b"x" * 100) -> str:
        path = self.tmp / name
        path.write_bytes(data)
        return str(path)


@dataclass(frozen=True)
class Case:
    id: str
    trigger: Callable[[Env], object]
    error: type[BaseException]
    words: tuple[str, ...]
    #: The vendor the message must name; None where none is involved (vendor-neutral helpers).
    vendor: str | None
    sends_nothing: bool = True
    marks: tuple[Any, ...] = field(default=())


# -- triggers: operators ----------------------------------------------------------------------


def _infer(conn_id: str, service: str, **kwargs: Any) -> Callable[[Env], object]:
    def run(env: Env) -> object:
        from airflow_provider_edgeinfer.operators.inference import InferenceOperator

        op = InferenceOperator(task_id="infer", conn_id=conn_id, service=service, deferrable=True, **kwargs)
        return op.execute({})  # type: ignore[arg-type]  # fails before the context is read

    return run


def _infer_with_file(
    conn_id: str, service: str, input: dict[str, Any], field_: str, glob: bool = False
) -> Callable[[Env], object]:
    def run(env: Env) -> object:
        from airflow_provider_edgeinfer.operators.inference import InferenceOperator

        source = env.file("talk.wav")
        op = InferenceOperator(
            task_id="infer",
            conn_id=conn_id,
            service=service,
            input=input,
            input_files={field_: str(env.tmp / "*.wav") if glob else source},
            deferrable=True,
        )
        return op.execute({})  # type: ignore[arg-type]

    return run


def _batch(conn_id: str, service: str, inputs: Any, **kwargs: Any) -> Callable[[Env], object]:
    def run(env: Env) -> object:
        from airflow_provider_edgeinfer.operators.batch import BatchOperator

        value = inputs(env) if callable(inputs) else inputs
        op = BatchOperator(
            task_id="batch",
            conn_id=conn_id,
            service=service,
            inputs=value,
            output_path=str(env.tmp / "out"),
            **kwargs,
        )
        return op.execute({})  # type: ignore[arg-type]  # fails in _open/_validate, before the context

    return run


def _jsonl(name: str, text: str) -> Callable[[Env], str]:
    def make(env: Env) -> str:
        return env.file(name, text.encode())

    return make


def _upload(conn_id: str, source: Callable[[Env], Any], **kwargs: Any) -> Callable[[Env], object]:
    def run(env: Env) -> object:
        from airflow_provider_edgeinfer.operators.upload import PresignedUploadOperator

        kwargs.setdefault("service", "whisper")
        kwargs.setdefault("field", "audio_filename")
        op = PresignedUploadOperator(task_id="upload", conn_id=conn_id, source=source(env), **kwargs)
        return op.execute({})  # type: ignore[arg-type]

    return run


def _unreadable(env: Env) -> str:
    from airflow_provider_edgeinfer import sources as _sources

    path = env.file("locked.wav")
    os.chmod(path, 0)
    real_open = open

    def guarded_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        # chmod 0 does not stop root: refuse this one file the way the OS would for anyone else.
        if str(file) == path:
            raise PermissionError(13, "Permission denied", path)
        return real_open(file, *args, **kwargs)

    env.monkeypatch.setattr(_sources, "open", guarded_open, raising=False)
    return path


def _expand(source: Callable[[Env], Any]) -> Callable[[Env], object]:
    def run(env: Env) -> object:
        from airflow_provider_edgeinfer.sources import expand_sources

        return expand_sources(source(env))

    return run


def _model_upload(env: Env) -> object:
    from airflow_provider_edgeinfer.operators.upload import PresignedUploadOperator

    conn_id = env.conn("omni_small_models", "omnitensor", extra={"max_model_bytes": 10})
    op = PresignedUploadOperator(
        task_id="upload",
        conn_id=conn_id,
        source=env.file("weights.onnx"),
        kind="model",
        options={"model_name": "m", "framework": "onnx", "version": "1"},
    )
    return op.execute({})  # type: ignore[arg-type]


# -- triggers: sensors ------------------------------------------------------------------------


def _request_sensor(conn_id: str, deferrable: bool) -> Callable[[Env], object]:
    def run(env: Env) -> object:
        from airflow_provider_edgeinfer.sensors.request import InferenceRequestSensor

        sensor = InferenceRequestSensor(
            task_id="wait", conn_id=conn_id, request_id="req-1", deferrable=deferrable, poke_interval=0
        )
        return sensor.execute({}) if deferrable else sensor.poke({})  # type: ignore[arg-type]

    return run


def _batch_sensor(**kwargs: Any) -> Callable[[Env], object]:
    def run(env: Env) -> object:
        from airflow_provider_edgeinfer.sensors.batch import BatchSensor

        args = dict(kwargs)
        if "output_path" in args:
            args["output_path"] = str(env.tmp / args["output_path"])
        sensor = BatchSensor(task_id="wait", conn_id=THETA, deferrable=True, **args)
        return sensor.execute({})  # type: ignore[arg-type]

    return run


# -- triggers: hooks and connections ----------------------------------------------------------


def _hook(
    vendor: str, what: str, *, extra: dict[str, Any] | None = None, **fields: Any
) -> Callable[[Env], object]:
    """Build ``vendor``'s hook on a modified connection and touch ``what`` ("api" or "client")."""

    def run(env: Env) -> object:
        from airflow_provider_edgeinfer.hooks.base import hook_class_for_conn_type

        conn_id = env.conn(f"bad_{vendor}", vendor, extra=extra, **fields)
        hook = hook_class_for_conn_type(f"edgeinfer_{vendor}", conn_id)(conn_id)
        return hook.api if what == "api" else hook.get_conn()

    return run


def _theta_hook_on_octoai_conn(env: Env) -> object:
    from airflow_provider_edgeinfer.hooks.theta import ThetaHook

    return ThetaHook(OCTOAI).connection


def _foreign_connection(env: Env) -> object:
    env.monkeypatch.setenv("AIRFLOW_CONN_PLAIN_HTTP", json.dumps({"conn_type": "http", "host": "127.0.0.1"}))
    return _infer("plain_http", "whisper", input={})(env)


# -- triggers: vendor answers -----------------------------------------------------------------


def _mocked(api: Any, body: bytes) -> SyncClient[Any]:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    return SyncClient(api, Credentials.of("mocked-key"), ONE_ATTEMPT, transport=httpx.MockTransport(answer))


THETA_REQUEST = {
    "id": "infr_rqst_mock",
    "project_id": "prj_mock",
    "service_id": "srvc_whisper",
    "prediction": "predict",
    "state": "zombie",
    "input": {"audio_filename": "a.wav"},
    "create_time": "2026-01-01T00:00:00Z",
    "update_time": "2026-01-01T00:00:00Z",
}
INFRAI_BATCH = {
    "ok": True,
    "data": {
        "batch_id": "batch_mock",
        "state": "levitating",
        "progress": 0.0,
        "total_count": 1,
        "completed_count": 0,
        "failed_count": 0,
        "created_at": "2026-01-01T00:00:00Z",
        "total_cost_usd": 0,
    },
    "error": None,
    "metadata": {"request_id": "req_mock"},
}


def _theta_unknown_state(env: Env) -> object:
    from airflow_provider_edgeinfer.clients.theta import ThetaAPI

    body = json.dumps({"status": "success", "body": THETA_REQUEST}).encode()
    with _mocked(ThetaAPI("https://theta.example.test"), body) as client:
        return client.send(client.api.status("infr_rqst_mock"))


def _theta_error_envelope(env: Env) -> object:
    from airflow_provider_edgeinfer.clients.theta import ThetaAPI

    body = json.dumps({"status": "error", "message": "quota gone", "body": None}).encode()
    with _mocked(ThetaAPI("https://theta.example.test"), body) as client:
        return client.send(client.api.status("infr_rqst_mock"))


def _octoai_unknown_state(env: Env) -> object:
    from airflow_provider_edgeinfer.clients.octoai import OctoAIAPI

    with _mocked(OctoAIAPI(), b'{"status": "exploded"}') as client:
        return client.send(client.api.status("resp-1"))


def _infrai_unknown_batch_state(env: Env) -> object:
    from airflow_provider_edgeinfer.clients.infrai import InfraiAPI

    with _mocked(InfraiAPI(), json.dumps(INFRAI_BATCH).encode()) as client:
        return client.send(client.api.batch_status_job("batch_mock"))


def _infrai_broken_json(env: Env) -> object:
    from airflow_provider_edgeinfer.clients.infrai import InfraiAPI

    with _mocked(InfraiAPI(), b'{"data": [{"id": "m') as client:
        return client.send(client.api.list_models())


def _theta_catalogue_malformed(env: Env) -> object:
    from airflow_provider_edgeinfer.hooks.theta import ThetaHook

    # A garbled read is read again, so the catalogue stays garbled for every attempt.
    env.emu.state.scripted["theta"].extend([{"kind": "malformed", "path": "/service/list"}] * 5)
    with ThetaHook() as hook:
        return hook.services()


def _octoai_result_expired(env: Env) -> object:
    from airflow_provider_edgeinfer.hooks.octoai import OctoAIHook

    state = env.emu.state
    state.octoai_retention_seconds = 30
    with OctoAIHook() as hook:
        job = hook.run(hook.api.submit("generate/sdxl", {"prompt": "a lighthouse"}))
        done = hook.run(hook.api.status(job.request_id))
        state.clock.advance(31)
        return hook.run(hook.api.fetch_output(done))


def _presigned_url_expired(env: Env) -> object:
    from airflow_provider_edgeinfer.clients.presigned import local_source, put_call
    from airflow_provider_edgeinfer.clients.theta import ThetaAPI

    state = env.emu.state
    state.presign_ttl = -10
    api = ThetaAPI(env.emu.vendor_url("theta"))
    with SyncClient(api, Credentials.of(state.keys["theta"]), ONE_ATTEMPT) as client:
        target = client.send(api.presigned_urls("whisper", input_fields=["audio_filename"]))["audio_filename"]
        source = local_source(env.file("talk.wav"))
        return client.send(put_call(target.url, source, vendor="theta", field="audio_filename"))


# -- the table --------------------------------------------------------------------------------

IVE, CFG, BAD = InputValidationError, ConfigurationError, UnexpectedResponseError
WHISPER = {"audio_filename": "a.wav"}

CASES: list[Case] = [
    # InferenceOperator: the input itself
    Case("infer-theta-unknown-service", _infer(THETA, "nope", input={}), IVE, ("nope",), "theta"),
    Case(
        "infer-theta-unknown-prediction",
        _infer(THETA, "whisper", prediction="huge", input=WHISPER),
        IVE,
        ("huge",),
        "theta",
    ),
    Case(
        "infer-theta-missing-required-field",
        _infer(THETA, "whisper", input={"language": "en"}),
        IVE,
        ("audio_filename", "missing"),
        "theta",
    ),
    Case(
        "infer-theta-wrong-type",
        _infer(THETA, "flux", input={"prompt": "x", "width": "wide"}),
        IVE,
        ("width", "must be int"),
        "theta",
    ),
    Case(
        "infer-theta-field-service-does-not-take",
        _infer(THETA, "flux", input={"prompt": "x", "colour": "red"}),
        IVE,
        ("colour", "unknown input field"),
        "theta",
    ),
    Case("infer-input-not-json", _infer(THETA, "whisper", input="{oops"), IVE, ("input", "JSON"), "theta"),
    Case("infer-input-a-list", _infer(THETA, "whisper", input="[1, 2]"), IVE, ("input", "list"), "theta"),
    Case("infer-empty-service", _infer(OCTOAI, "", input={"prompt": "x"}), IVE, ("service",), "octoai"),
    Case(
        "infer-octoai-async-body-over-10mb",
        # A schema-valid body: a long prompt would trip the schema's 10,000-character limit first.
        _infer(OCTOAI, "generate/sdxl", input={"prompt": "x", "init_image": "A" * 10_000_001}),
        IVE,
        ("request body is 10,000,031 bytes", "at most 10 MB"),
        "octoai",
    ),
    Case(
        "infer-octoai-schema-wrong-type",
        _infer(OCTOAI, "generate/sdxl", input={"prompt": "x", "steps": "many"}),
        IVE,
        ("steps",),
        "octoai",
    ),
    Case(
        "infer-octoai-missing-prompt",
        _infer(OCTOAI, "generate/sdxl", input={"steps": 10}),
        IVE,
        ("prompt",),
        "octoai",
    ),
    Case(
        "infer-octoai-prediction-given",
        _infer(OCTOAI, "generate/sdxl", prediction="fast", input={"prompt": "x"}),
        IVE,
        ("predictions", "fast"),
        "octoai",
    ),
    Case(
        "infer-octoai-unsupported-vendor-option",
        _infer(OCTOAI, "generate/sdxl", input={"prompt": "x"}, vendor_options={"wait": 5}),
        IVE,
        ("wait",),
        "octoai",
    ),
    Case(
        "infer-infrai-unknown-route",
        _infer(INFRAI, "chat.complete", input={}),
        IVE,
        ("chat.complete",),
        "infrai",
    ),
    Case(
        "infer-omnitensor-prediction-given",
        _infer(OMNITENSOR, "sentiment-v1", prediction="fast", input={"text": "x"}),
        IVE,
        ("prediction",),
        "omnitensor",
    ),
    # InferenceOperator: input files
    Case(
        "infer-file-on-octoai-no-upload-api",
        _infer_with_file(OCTOAI, "generate/sdxl", {"prompt": "x"}, "image"),
        IVE,
        ("image", "no presigned upload API"),
        "octoai",
    ),
    Case(
        "infer-file-on-infrai-no-upload-api",
        _infer_with_file(INFRAI, "images.generations", {}, "image"),
        IVE,
        ("image", "no presigned upload API"),
        "infrai",
    ),
    Case(
        "infer-file-field-also-in-input",
        _infer_with_file(THETA, "whisper", WHISPER, "audio_filename"),
        IVE,
        ("audio_filename", "both"),
        "theta",
    ),
    Case(
        "infer-file-glob-for-one-field",
        _infer_with_file(THETA, "whisper", {}, "audio_filename", glob=True),
        IVE,
        ("audio_filename", "several files"),
        "theta",
    ),
    Case(
        "infer-non-edgeinfer-connection",
        _foreign_connection,
        CFG,
        ("plain_http", "'http'", "not an edgeinfer connection"),
        None,  # an http connection belongs to no vendor
    ),
    # BatchOperator
    Case(
        "batch-malformed-jsonl-names-line",
        _batch(THETA, "whisper", _jsonl("in.jsonl", '{"audio_filename": "a.wav"}\n\n{"audio_filename":\n')),
        IVE,
        ("in.jsonl", "line 3", "not valid JSON"),
        "theta",
    ),
    Case(
        "batch-duplicate-custom-id",
        _batch(
            INFRAI, "chat.completions", [{"custom_id": "a", "input": {}}, {"custom_id": "a", "input": {}}]
        ),
        IVE,
        ("duplicate custom_id 'a'", "inputs[0]", "inputs[1]"),
        "infrai",
    ),
    Case(
        "batch-empty-list",
        _batch(OCTOAI, "generate/sdxl", []),
        IVE,
        ("inputs list", "no items"),
        "octoai",
    ),
    Case(
        "batch-empty-jsonl-file",
        _batch(THETA, "whisper", _jsonl("blank.jsonl", "\n\n")),
        IVE,
        ("blank.jsonl", "no items"),
        "theta",
    ),
    Case(
        "batch-budget-not-a-number",
        _batch(INFRAI, "chat.completions", [{}], max_cost_usd="lots"),
        CFG,
        ("max_cost_usd", "'lots'"),
        "infrai",
    ),
    Case(
        "batch-budget-on-theta",
        _batch(THETA, "whisper", [WHISPER], max_cost_usd=1.0),
        CFG,
        ("max_cost_usd", "does not"),
        "theta",
    ),
    Case(
        "batch-budget-on-octoai",
        _batch(OCTOAI, "generate/sdxl", [{"prompt": "x"}], max_cost_usd=1.0),
        CFG,
        ("max_cost_usd", "does not"),
        "octoai",
    ),
    Case(
        "batch-item-wrong-type-names-item",
        _batch(THETA, "flux", [{"prompt": "ok"}, {"custom_id": "b", "prompt": "x", "width": "w"}]),
        IVE,
        ("item 'b'", "inputs[1]", "width"),
        "theta",
    ),
    Case(
        "batch-infrai-unknown-capability",
        _batch(INFRAI, "chat.complete", [{}]),
        IVE,
        ("chat.complete", "batch capability"),
        "infrai",
    ),
    # PresignedUploadOperator and expand_sources
    Case(
        "upload-missing-source",
        _upload(THETA, lambda env: str(env.tmp / "nope.wav")),
        IVE,
        ("nope.wav", "does not exist"),
        "theta",
    ),
    Case(
        "upload-directory-source",
        _upload(THETA, lambda env: str(env.tmp)),
        IVE,
        ("is a directory",),
        "theta",
    ),
    Case(
        "upload-unreadable-source",
        _upload(THETA, _unreadable),
        IVE,
        ("locked.wav", "permission denied"),
        "theta",
    ),
    Case(
        "expand-sources-missing",
        _expand(lambda env: str(env.tmp / "gone.wav")),
        IVE,
        ("gone.wav", "does not exist"),
        None,  # a vendor-neutral helper
    ),
    Case(
        "expand-sources-empty-file",
        _expand(lambda env: env.file("empty.wav", b"")),
        IVE,
        ("empty.wav", "0 bytes"),
        None,
    ),
    Case("expand-sources-directory", _expand(lambda env: str(env.tmp)), IVE, ("is a directory",), None),
    Case(
        "expand-sources-glob-matches-nothing",
        _expand(lambda env: str(env.tmp / "*.mp3")),
        IVE,
        ("*.mp3", "matches no file"),
        None,
    ),
    Case("expand-sources-empty-list", _expand(lambda env: []), IVE, ("no source",), None),
    Case(
        "upload-field-service-does-not-take",
        _upload(THETA, lambda env: env.file("a.wav"), field="image"),
        IVE,
        ("whisper", "no input field 'image'"),
        "theta",
    ),
    Case(
        "upload-unknown-service",
        _upload(THETA, lambda env: env.file("a.wav"), service="nope"),
        IVE,
        ("unknown service 'nope'",),
        "theta",
    ),
    Case(
        "upload-octoai-no-upload-api",
        _upload(OCTOAI, lambda env: env.file("a.png"), field="image"),
        IVE,
        ("image", "no presigned upload API"),
        "octoai",
    ),
    Case(
        "upload-infrai-no-upload-api",
        _upload(INFRAI, lambda env: env.file("a.png"), field="image"),
        IVE,
        ("image", "no presigned upload API"),
        "infrai",
    ),
    Case(
        "upload-dataset-kind-on-theta",
        _upload(THETA, lambda env: env.file("a.csv"), kind="dataset"),
        IVE,
        ("takes no dataset uploads", "kind='input'"),
        "theta",
    ),
    Case(
        "upload-omnitensor-model-over-limit",
        _model_upload,
        IVE,
        ("weights.onnx", "100 bytes", "limit of 10"),
        "omnitensor",
    ),
    Case(
        "upload-omnitensor-unknown-dataset-option",
        _upload(OMNITENSOR, lambda env: env.file("a.csv"), kind="dataset", options={"colour": "red"}),
        IVE,
        ("colour",),
        "omnitensor",
    ),
    # Sensors
    Case(
        "request-sensor-on-omnitensor",
        _request_sensor(OMNITENSOR, deferrable=True),
        CFG,
        ("synchronous",),
        "omnitensor",
    ),
    Case(
        "request-sensor-poke-on-infrai",
        _request_sensor(INFRAI, deferrable=False),
        CFG,
        ("synchronous",),
        "infrai",
    ),
    Case(
        # Checked when the DAG is parsed, as Airflow does for operator arguments: a ValueError.
        "batch-sensor-neither-batch-id-nor-output-path",
        _batch_sensor(),
        ValueError,
        ("batch_id", "output_path"),
        None,
    ),
    Case(
        "batch-sensor-output-path-without-manifest",
        _batch_sensor(output_path="no-batch-here"),
        CFG,
        ("no-batch-here", "no batch manifest"),
        "theta",
    ),
    # Hooks and connections
    Case(
        "conn-plain-http-remote-host",
        _hook("theta", "api", host="http://api.example.com"),
        CFG,
        ("host", "http://api.example.com", "must use https"),
        "theta",
    ),
    Case(
        "conn-non-http-scheme",
        _hook("octoai", "api", host="ftp://files.example.com"),
        CFG,
        ("host", "ftp://files.example.com", "not an http(s) URL"),
        "octoai",
    ),
    Case(
        "conn-plain-http-async-host-extra",
        _hook(
            "octoai",
            "api",
            host="https://image.example.com",
            extra={"async_host": "http://async.example.com"},
        ),
        CFG,
        ("async_host", "must use https"),
        "octoai",
    ),
    Case(
        "conn-wrong-type-for-hook",
        _theta_hook_on_octoai_conn,
        CFG,
        (OCTOAI, "'edgeinfer_octoai'", "not 'edgeinfer_theta'"),
        "theta",
    ),
    Case("conn-no-password", _hook("theta", "client", password=""), CFG, ("no API key",), "theta"),
    Case(
        "conn-omnitensor-no-secret",
        _hook("omnitensor", "client", extra={"secret": ""}),
        CFG,
        ("no API secret", "secret"),
        "omnitensor",
    ),
    Case(
        "conn-timeout-not-a-number",
        _hook("infrai", "client", extra={"timeout": "soon"}),
        CFG,
        ("timeout", "'soon'"),
        "infrai",
    ),
    Case(
        "conn-connect-timeout-zero",
        _hook("theta", "client", extra={"connect_timeout": 0}),
        CFG,
        ("connect_timeout", "must be greater than 0, got 0"),
        "theta",
    ),
    Case(
        "conn-max-retries-not-an-integer",
        _hook("octoai", "client", extra={"max_retries": "many"}),
        CFG,
        ("max_retries", "must be a number, got 'many'"),
        "octoai",
    ),
    Case(
        "conn-negative-retry-delay",
        _hook("octoai", "client", extra={"retry_initial_delay": -1}),
        CFG,
        ("retry_initial_delay", "must be at least 0, got -1"),
        "octoai",
    ),
    Case(
        "conn-omnitensor-max-model-bytes-not-an-integer",
        _hook("omnitensor", "api", extra={"max_model_bytes": "big"}),
        CFG,
        ("max_model_bytes",),
        "omnitensor",
    ),
    # Vendor answers and results
    Case(
        "answer-theta-unknown-state",
        _theta_unknown_state,
        BAD,
        ("unknown state 'zombie'", "infr_rqst_mock"),
        "theta",
        sends_nothing=False,
    ),
    Case(
        "answer-theta-200-with-error-envelope",
        _theta_error_envelope,
        BAD,
        ("error body", "quota gone"),
        "theta",
        sends_nothing=False,
    ),
    Case(
        "answer-octoai-unknown-state",
        _octoai_unknown_state,
        BAD,
        ("unknown state 'exploded'", "resp-1"),
        "octoai",
        sends_nothing=False,
    ),
    Case(
        "answer-infrai-unknown-batch-state",
        _infrai_unknown_batch_state,
        BAD,
        ("unknown state 'levitating'", "batch_mock"),
        "infrai",
        sends_nothing=False,
    ),
    Case(
        "answer-infrai-broken-json",
        _infrai_broken_json,
        BAD,
        ("malformed JSON", "/v1/models"),
        "infrai",
        sends_nothing=False,
    ),
    Case(
        "answer-theta-catalogue-malformed-emulator-fault",
        _theta_catalogue_malformed,
        BAD,
        ("malformed JSON", "/service/list"),
        "theta",
        sends_nothing=False,
    ),
    Case(
        "result-octoai-expired",
        _octoai_result_expired,
        ResultExpiredError,
        ("no longer exists", "24 hours"),
        "octoai",
        sends_nothing=False,
    ),
    Case(
        "upload-presigned-url-expired",
        _presigned_url_expired,
        AuthenticationError,
        ("audio_filename", "talk.wav", "expired"),
        "theta",
        sends_nothing=False,
    ),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_input_is_refused_with_a_precise_error(
    case: Case, edgeinfer_emulator: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in edgeinfer_emulator.connections().items():
        monkeypatch.setenv(name, value)
    env = Env(edgeinfer_emulator, tmp_path, monkeypatch)

    with pytest.raises(case.error) as raised:
        case.trigger(env)

    error = raised.value
    assert type(error) is case.error, f"expected exactly {case.error.__name__}, got {type(error).__name__}"
    message = str(error)
    for word in case.words:
        assert word in message, f"{word!r} not in {message!r}"
    if case.sends_nothing:
        snapshot = edgeinfer_emulator.state.snapshot()
        submitted = {vendor: dict(counts) for vendor, counts in snapshot["submissions"].items() if counts}
        assert not submitted, f"a local failure submitted work: {submitted}"
        sent = set(snapshot["requests"]) - ALLOWED_LOCAL_REQUESTS
        assert not sent, f"a local failure sent requests: {snapshot['requests']}"
    # The vendor is named both on the error and in its message.
    if case.vendor is not None and (
        getattr(error, "vendor", None) != case.vendor or case.vendor not in message
    ):
        raise VendorNotNamed(f"vendor {case.vendor!r} not named by {type(error).__name__}: {message!r}")


def test_the_table_is_large_and_its_ids_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) >= 40 and len(set(ids)) == len(ids)
