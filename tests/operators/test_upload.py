"""PresignedUploadOperator, expand_sources and upload_files against the emulator, local disk and S3 (moto)."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeinfer.emulator.server import EmulatorServer
from airflow_provider_edgeinfer.exceptions import (
    AuthenticationError,
    InputValidationError,
    UnexpectedResponseError,
)
from airflow_provider_edgeinfer.operators.upload import PresignedUploadOperator
from airflow_provider_edgeinfer.sources import expand_sources, upload_files
from tests.s3 import CONN_ID, MotoS3

THETA = "edgeinfer_theta_default"
FIELD = "audio_filename"


@pytest.fixture
def s3() -> MotoS3:
    return MotoS3.shared()


@pytest.fixture
def emu(emulated: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> EmulatorServer:
    """The emulator's connections, with retry waits of a millisecond (tests never sleep for real)."""
    for vendor in ("theta", "omnitensor"):
        name = f"AIRFLOW_CONN_EDGEINFER_{vendor.upper()}_DEFAULT"
        conn = json.loads(emulated.connections()[name])
        conn["extra"].update({"retry_initial_delay": 0.001, "retry_max_delay": 0.001})
        monkeypatch.setenv(name, json.dumps(conn))
    return emulated


@pytest.fixture
def s3env(s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> MotoS3:
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    return s3


def _bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def _write(path: Path, size: int, seed: int = 1) -> str:
    data = _bytes(size, seed)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _op(**kwargs: Any) -> PresignedUploadOperator:
    defaults: dict[str, Any] = {"task_id": "upload", "conn_id": THETA, "service": "whisper", "field": FIELD}
    return PresignedUploadOperator(**{**defaults, **kwargs})


def _requests(emu: EmulatorServer) -> dict[str, int]:
    return dict(emu.state.snapshot()["requests"])


def _hook(conn_id: str = THETA) -> Any:
    from airflow_provider_edgeinfer.hooks.base import hook_for_connection

    return hook_for_connection(conn_id)


# -- Theta: local files ----------------------------------------------------------------------------


def test_single_local_file_returns_the_input_mapping(emu: EmulatorServer, tmp_path: Path) -> None:
    digest = _write(tmp_path / "talk.wav", 1_500_000)
    result = _op(source=str(tmp_path / "talk.wav")).execute({})  # type: ignore[arg-type]
    # The uploaded name, and the source it came from (which the operators take out before sending).
    assert result == {FIELD: result[FIELD], "edgeinfer_input_ref": str(tmp_path / "talk.wav")}
    blob = emu.state.blobs[result[FIELD]]
    assert (blob.size, blob.sha256) == (1_500_000, digest)
    assert _requests(emu)["theta.presigned_urls"] == 1


def test_a_list_uploads_in_input_order(emu: EmulatorServer, tmp_path: Path) -> None:
    names = ["c.wav", "a.wav", "b.wav"]
    digests = [_write(tmp_path / n, 10_000 + i, seed=i) for i, n in enumerate(names)]
    result = _op(source=[str(tmp_path / n) for n in names], max_concurrency=3).execute({})  # type: ignore[arg-type]
    assert [emu.state.blobs[r[FIELD]].sha256 for r in result] == digests
    assert [r["edgeinfer_input_ref"] for r in result] == [str(tmp_path / n) for n in names]


def test_a_glob_uploads_every_match_sorted(emu: EmulatorServer, tmp_path: Path) -> None:
    digests = {n: _write(tmp_path / n, 5_000, seed=i) for i, n in enumerate(["b.wav", "a.wav", "c.wav"])}
    (tmp_path / "notes.txt").write_text("not audio")
    (tmp_path / "sub.wav").mkdir()  # a directory matching the pattern is not a file to upload
    result = _op(source=f"{tmp_path}/*.wav").execute({})  # type: ignore[arg-type]
    assert isinstance(result, list)
    assert [emu.state.blobs[r[FIELD]].sha256 for r in result] == [
        digests[n] for n in ("a.wav", "b.wav", "c.wav")
    ]


def test_many_files_with_bounded_concurrency(emu: EmulatorServer, tmp_path: Path) -> None:
    paths = [tmp_path / f"{i:02}.wav" for i in range(24)]
    digests = [_write(p, 20_000 + i, seed=i) for i, p in enumerate(paths)]
    with _hook() as hook:
        names = upload_files(hook, "whisper", None, FIELD, [str(p) for p in paths], max_concurrency=8)
    assert [emu.state.blobs[n].sha256 for n in names] == digests
    assert _requests(emu)["storage.put"] == 24


def test_a_file_uri_and_a_path_object_are_sources(emu: EmulatorServer, tmp_path: Path) -> None:
    from airflow.sdk import ObjectStoragePath

    digest = _write(tmp_path / "x.wav", 3000)
    for source in (
        f"file://{tmp_path}/x.wav",
        ObjectStoragePath(f"file://{tmp_path}/x.wav"),
        tmp_path / "x.wav",
    ):
        result = _op(source=source).execute({})  # type: ignore[arg-type]
        assert emu.state.blobs[result[FIELD]].sha256 == digest


def test_retry_after_a_dropped_connection_mid_upload(emu: EmulatorServer, tmp_path: Path) -> None:
    digest = _write(tmp_path / "talk.wav", 3 * 1024 * 1024)
    emu.control("faults", {"vendor": "uploads", "script": [{"kind": "drop", "after_bytes": 1024 * 1024}]})
    result = _op(source=str(tmp_path / "talk.wav")).execute({})  # type: ignore[arg-type]
    assert emu.state.blobs[result[FIELD]].sha256 == digest
    assert emu.state.snapshot()["faults_injected"] == {"uploads.drop": 1}
    assert _requests(emu)["theta.presigned_urls"] == 1, "a dropped PUT reuses its URL"


def test_an_expired_url_is_renewed_once(emu: EmulatorServer, tmp_path: Path) -> None:
    digest = _write(tmp_path / "talk.wav", 50_000)
    emu.state.scripted["uploads"].append({"kind": "expire"})
    result = _op(source=str(tmp_path / "talk.wav")).execute({})  # type: ignore[arg-type]
    assert emu.state.blobs[result[FIELD]].sha256 == digest
    assert _requests(emu)["theta.presigned_urls"] == 2


def test_urls_that_keep_expiring_fail_clearly(emu: EmulatorServer, tmp_path: Path) -> None:
    _write(tmp_path / "talk.wav", 50_000)
    emu.state.scripted["uploads"].extend([{"kind": "expire"}, {"kind": "expire"}])
    with pytest.raises(AuthenticationError, match=r"expired") as raised:
        _op(source=str(tmp_path / "talk.wav")).execute({})  # type: ignore[arg-type]
    assert FIELD in str(raised.value) and "signature" not in str(raised.value)
    assert _requests(emu)["theta.presigned_urls"] == 2


def test_log_and_xcom_never_carry_the_signature(
    emu: EmulatorServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_provider_edgeinfer.clients import presigned

    # Progress and retry lines too: every file counts as big, a line per chunk, one retried PUT.
    monkeypatch.setattr(presigned, "PROGRESS_MIN_BYTES", 1)
    monkeypatch.setattr(presigned, "PROGRESS_INTERVAL_SECONDS", 0.0)
    emu.state.scripted["uploads"].extend([{"kind": "5xx", "status": 503}, {"kind": "expire"}])
    for i in range(3):
        _write(tmp_path / f"{i}.wav", 3 * 1024 * 1024, seed=i)
    with caplog.at_level(logging.DEBUG):
        result = _op(source=f"{tmp_path}/*.wav", max_concurrency=1).execute({})  # type: ignore[arg-type]
    # The operator's own lines go through Airflow's task logger (structlog), the rest through logging.
    out, err = capfd.readouterr()
    logged = caplog.text + out + err
    text = logged + json.dumps(result)
    assert "uploading " in logged and "MB/s" in logged and "retrying" in logged and "expired" in logged
    assert "/_uploads/" in logged
    assert "signature" not in text and "expires=" not in text


def test_progress_is_logged_for_big_files(
    emu: EmulatorServer, tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_edgeinfer.clients import presigned

    monkeypatch.setattr(presigned, "PROGRESS_MIN_BYTES", 2 * 1024 * 1024)
    monkeypatch.setattr(presigned, "PROGRESS_INTERVAL_SECONDS", 0.0)
    _write(tmp_path / "big.wav", 4 * 1024 * 1024)
    _write(tmp_path / "small.wav", 1024 * 1024)
    _op(source=[str(tmp_path / "big.wav"), str(tmp_path / "small.wav")]).execute({})  # type: ignore[arg-type]
    out, err = capfd.readouterr()
    lines = [line for line in (out + err).splitlines() if "uploading " in line]
    assert lines and all("big.wav" in line and "%" in line and "MB/s" in line for line in lines)
    assert not [line for line in (out + err).splitlines() if "uploaded /" in line and "small.wav" in line]


# -- sources that fail before any request ------------------------------------------------------------


def _bad_sources(tmp_path: Path) -> dict[str, tuple[Any, str]]:
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "dir").mkdir()
    (tmp_path / "ok.wav").write_bytes(b"RIFF....")
    return {
        "missing": (str(tmp_path / "nope.wav"), "does not exist"),
        "empty": (str(tmp_path / "empty.wav"), "is empty"),
        "directory": (str(tmp_path / "dir"), "is a directory"),
        "no match": (f"{tmp_path}/*.flac", "matches no file"),
        "one bad in a list": (
            [str(tmp_path / "ok.wav"), str(tmp_path / "nope.wav")],
            "nope.wav does not exist",
        ),
        "empty list": ([], "no source"),
    }


@pytest.mark.parametrize(
    "case", ["missing", "empty", "directory", "no match", "one bad in a list", "empty list"]
)
def test_bad_sources_fail_before_any_request(emu: EmulatorServer, tmp_path: Path, case: str) -> None:
    source, message = _bad_sources(tmp_path)[case]
    with pytest.raises(InputValidationError, match=message):
        _op(source=source).execute({})  # type: ignore[arg-type]
    assert _requests(emu) == {}


def test_unreadable_source_fails_before_any_request(
    emu: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import builtins

    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"RIFF")
    secret.chmod(0)
    real_open = builtins.open

    def guarded(file: Any, *args: Any, **kwargs: Any) -> Any:
        # Tests may run as root, whom a mode of 000 does not stop: refuse as the kernel would.
        if str(file) == str(secret):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)
    with pytest.raises(InputValidationError, match=r"secret\.wav cannot be read: permission denied"):
        _op(source=str(secret)).execute({})  # type: ignore[arg-type]
    assert _requests(emu) == {}


def test_a_field_the_service_does_not_take(emu: EmulatorServer, tmp_path: Path) -> None:
    _write(tmp_path / "a.wav", 100)
    with pytest.raises(InputValidationError, match=r"takes no input field 'image_filename'.*audio_filename"):
        _op(source=str(tmp_path / "a.wav"), field="image_filename").execute({})  # type: ignore[arg-type]
    requests = _requests(emu)
    assert "theta.presigned_urls" not in requests and "storage.put" not in requests


def test_unknown_service_is_refused_before_uploading(emu: EmulatorServer, tmp_path: Path) -> None:
    _write(tmp_path / "a.wav", 100)
    with pytest.raises(InputValidationError, match="unknown service 'whisperer'"):
        _op(source=str(tmp_path / "a.wav"), service="whisperer").execute({})  # type: ignore[arg-type]
    assert "storage.put" not in _requests(emu)


@pytest.mark.parametrize(
    ("conn_id", "named"),
    [
        ("edgeinfer_octoai_default", ["octoai", "base64", "10,000,000 bytes"]),
        ("edgeinfer_infrai_default", ["infrai", "base64", "no size limit"]),
        ("edgeinfer_omnitensor_default", ["omnitensor", "kind='dataset'"]),
    ],
)
def test_vendors_without_presigned_uploads_name_the_alternative(
    emu: EmulatorServer, tmp_path: Path, conn_id: str, named: list[str]
) -> None:
    _write(tmp_path / "a.png", 100)
    with pytest.raises(InputValidationError) as raised:
        _op(conn_id=conn_id, source=str(tmp_path / "a.png"), field="image").execute({})  # type: ignore[arg-type]
    for word in [*named, "'image'"]:
        assert word in str(raised.value), word
    assert _requests(emu) == {}


def test_arguments_are_checked_when_the_dag_is_parsed() -> None:
    with pytest.raises(ValueError, match="kind"):
        _op(source="a.wav", kind="blob")
    with pytest.raises(ValueError, match="max_concurrency"):
        _op(source="a.wav", max_concurrency=0)
    with pytest.raises(ValueError, match="service and field"):
        PresignedUploadOperator(task_id="u", conn_id=THETA, source="a.wav", service="whisper")


def test_the_module_imports_no_client_when_a_dag_is_parsed() -> None:
    code = (
        "import json, sys\n"
        "import airflow_provider_edgeinfer.operators.upload\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    modules = json.loads(result.stdout.strip().splitlines()[-1])
    # airflow.sdk itself brings httpx and pydantic; our clients, models and hooks must wait for the task.
    ours = (
        "airflow_provider_edgeinfer.clients",
        "airflow_provider_edgeinfer.hooks",
        "airflow_provider_edgeinfer.emulator",
    )
    # Except the connection models: Airflow loads the provider's metadata in every process, and the
    # connection forms in it are generated from them (pydantic only, no client or hook class).
    metadata = ("airflow_provider_edgeinfer.hooks", "airflow_provider_edgeinfer.hooks.connections")
    heavy = [m for m in modules if (m.startswith(ours) and m not in metadata) or m in ("s3fs", "boto3")]
    assert heavy == []


# -- S3 (moto) -----------------------------------------------------------------------------------------


def test_s3_single_file_and_glob(emu: EmulatorServer, s3env: MotoS3) -> None:
    bucket = s3env.bucket("edgeinfer-audio-1")
    data = {f"audio/{n}.wav": _bytes(200_000 + i, seed=i) for i, n in enumerate(["b", "a", "c"])}
    for key, body in data.items():
        bucket.put_object(Bucket="edgeinfer-audio-1", Key=key, Body=body)
    bucket.put_object(Bucket="edgeinfer-audio-1", Key="audio/readme.txt", Body=b"x")
    single = _op(source="s3://edgeinfer-audio-1/audio/a.wav", source_conn_id=CONN_ID).execute({})  # type: ignore[arg-type]
    assert emu.state.blobs[single[FIELD]].sha256 == hashlib.sha256(data["audio/a.wav"]).hexdigest()
    many = _op(source=f"s3://{CONN_ID}@edgeinfer-audio-1/audio/*.wav").execute({})  # type: ignore[arg-type]
    expected = [hashlib.sha256(data[f"audio/{n}.wav"]).hexdigest() for n in ("a", "b", "c")]
    assert [emu.state.blobs[r[FIELD]].sha256 for r in many] == expected


def test_s3_missing_and_empty_objects_fail_before_any_request(emu: EmulatorServer, s3env: MotoS3) -> None:
    bucket = s3env.bucket("edgeinfer-audio-2")
    bucket.put_object(Bucket="edgeinfer-audio-2", Key="empty.wav", Body=b"")
    for source, message in (
        ("s3://edgeinfer-audio-2/nope.wav", "does not exist"),
        ("s3://edgeinfer-audio-2/empty.wav", "is empty"),
        ("s3://edgeinfer-audio-2/*.flac", "matches no file"),
    ):
        with pytest.raises(InputValidationError, match=message) as raised:
            _op(source=source, source_conn_id=CONN_ID).execute({})  # type: ignore[arg-type]
        assert "s3://edgeinfer-audio-2/" in str(raised.value)
    assert _requests(emu) == {}


def test_s3_reads_are_streamed(emu: EmulatorServer, s3env: MotoS3) -> None:
    size = 40 * 1024 * 1024
    body = _bytes(size, seed=5)
    bucket = s3env.bucket("edgeinfer-audio-3")
    bucket.put_object(Bucket="edgeinfer-audio-3", Key="long.wav", Body=body)
    digest = hashlib.sha256(body).hexdigest()
    del body
    [path] = expand_sources("s3://edgeinfer-audio-3/long.wav", conn_id=CONN_ID)
    with _hook() as hook:
        hook.services()  # catalogue and connection first: measure the transfer alone
        tracemalloc.start()
        try:
            [name] = upload_files(hook, "whisper", None, FIELD, [path])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert emu.state.blobs[name].sha256 == digest
    assert peak < 16 * 1024 * 1024, peak  # read-ahead block + a chunk in flight, never the object


# -- OmniTensor ------------------------------------------------------------------------------------------


def test_omnitensor_dataset_upload_is_verified(emu: EmulatorServer, tmp_path: Path) -> None:
    digest = _write(tmp_path / "train.csv", 2_500_000)
    result = _op(
        conn_id="edgeinfer_omnitensor_default",
        kind="dataset",
        service=None,
        field=None,
        source=str(tmp_path / "train.csv"),
        options={"name": "train", "format": "csv"},
    ).execute({})  # type: ignore[arg-type]
    assert result["checksum_sha256"] == digest and result["size_bytes"] == 2_500_000
    assert result["name"] == "train"
    assert emu.state.blobs[result["dataset_id"]].sha256 == digest
    assert _requests(emu)["omnitensor.dataset_metadata"] == 1


def test_omnitensor_dataset_whose_metadata_disagrees_is_an_error(
    emu: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_edgeinfer.clients.omnitensor import OmniTensorAPI

    _write(tmp_path / "train.csv", 10_000)
    real = OmniTensorAPI.dataset_metadata

    def truncated(self: OmniTensorAPI, dataset_id: str) -> Any:
        # The vendor kept fewer bytes than were sent.
        call = real(self, dataset_id)
        return call.reparse(lambda result: call.parse(result).model_copy(update={"size_bytes": 9_000}))

    monkeypatch.setattr(OmniTensorAPI, "dataset_metadata", truncated)
    with pytest.raises(UnexpectedResponseError, match=r"metadata reports 9000 bytes.*10000 bytes"):
        _op(
            conn_id="edgeinfer_omnitensor_default",
            kind="dataset",
            service=None,
            field=None,
            source=str(tmp_path / "train.csv"),
        ).execute({})  # type: ignore[arg-type]


def test_omnitensor_model_upload_and_its_limit(
    emu: EmulatorServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = _write(tmp_path / "model.onnx", 300_000)
    options = {"model_name": "tiny", "framework": "onnx", "version": "1"}
    kwargs: dict[str, Any] = {
        "conn_id": "edgeinfer_omnitensor_default",
        "kind": "model",
        "service": None,
        "field": None,
    }
    result = _op(source=str(tmp_path / "model.onnx"), options=options, **kwargs).execute({})  # type: ignore[arg-type]
    assert result["model_name"] == "tiny" and result["size_bytes"] == 300_000
    assert emu.state.blobs[result["model_id"]].sha256 == digest
    name = "AIRFLOW_CONN_EDGEINFER_OMNITENSOR_DEFAULT"
    conn = json.loads(emu.connections()[name])
    conn["extra"]["max_model_bytes"] = 200_000
    monkeypatch.setenv(name, json.dumps(conn))
    before = _requests(emu)
    with pytest.raises(InputValidationError, match="more than the limit of 200000"):
        _op(source=str(tmp_path / "model.onnx"), options=options, **kwargs).execute({})  # type: ignore[arg-type]
    assert _requests(emu) == before


def test_dataset_kind_on_theta_is_refused(emu: EmulatorServer, tmp_path: Path) -> None:
    _write(tmp_path / "a.csv", 10)
    with pytest.raises(InputValidationError, match="takes no dataset uploads"):
        _op(kind="dataset", source=str(tmp_path / "a.csv")).execute({})  # type: ignore[arg-type]


# -- InferenceOperator(input_files=...) ----------------------------------------------------------------


class _Store:
    """The task state store's surface the operator uses."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = json.loads(json.dumps(value))  # what a real store keeps: JSON

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


class _TI:
    dag_id, task_id, run_id, map_index = "d", "transcribe", "r", -1

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def _infer(**kwargs: Any) -> Any:
    from airflow_provider_edgeinfer.operators.inference import InferenceOperator

    defaults: dict[str, Any] = {
        "task_id": "transcribe",
        "conn_id": THETA,
        "service": "whisper",
        "input": {"language": "en"},
        "deferrable": False,
        "poll_interval": 0.0,
    }
    return InferenceOperator(**{**defaults, **kwargs})


def test_input_files_are_uploaded_then_named_in_the_input(emu: EmulatorServer, tmp_path: Path) -> None:
    data = _bytes(77_777, seed=3)
    (tmp_path / "call.wav").write_bytes(data)
    store = _Store()
    result = _infer(input_files={FIELD: str(tmp_path / "call.wav")}).execute(
        {"ti": _TI(), "task_state_store": store}  # type: ignore[arg-type]
    )
    assert result["state"] == "succeeded" and "(77777 bytes of audio)" in result["output"]["text"]
    [job] = emu.state.tables["theta.jobs"].values()
    assert job["input"]["language"] == "en"
    assert emu.state.blobs[job["input"][FIELD]].sha256 == hashlib.sha256(data).hexdigest()
    assert store.data == {}, "a finished task leaves no record behind"


def test_fingerprint_follows_the_sources_not_the_upload_names(emu: EmulatorServer, tmp_path: Path) -> None:
    from airflow_provider_edgeinfer.operators.inference import fingerprint
    from airflow_provider_edgeinfer.sources import expand_sources

    audio = tmp_path / "call.wav"
    audio.write_bytes(b"RIFF" + bytes(1000))
    op = _infer(input_files={FIELD: str(audio)})
    files = {FIELD: expand_sources(str(audio))[0]}
    first = op._fingerprint("theta", {"language": "en"}, files)
    assert op._fingerprint("theta", {"language": "en"}, files) == first
    assert op._fingerprint("theta", {"language": "de"}, files) != first
    audio.write_bytes(b"RIFF" + bytes(2000))  # another recording under the same name
    assert op._fingerprint("theta", {"language": "en"}, files) != first
    # Without files the fingerprint is the one earlier versions recorded, so in-flight retries still match.
    assert op._fingerprint("theta", {"language": "en"}, {}) == fingerprint(
        "theta", "whisper", None, {"language": "en"}
    )


def test_a_lost_submission_is_found_by_the_recorded_upload_names(emu: EmulatorServer, tmp_path: Path) -> None:
    from airflow_provider_edgeinfer.exceptions import EdgeInferError

    audio = tmp_path / "call.wav"
    audio.write_bytes(_bytes(5_000, seed=9))
    store = _Store()
    # Try 1 uploads and submits; the vendor creates the request but its answer is lost.
    # (Scripted faults match by substring: a zero-second delay takes the upload URL request first.)
    emu.state.scripted["theta"].extend(
        [
            {"kind": "slow", "seconds": 0, "path": "/input_presigned_urls", "method": "POST"},
            {"kind": "drop", "path": "/infer_request/whisper", "method": "POST"},
        ]
    )
    with pytest.raises(EdgeInferError):
        _infer(input_files={FIELD: str(audio)}).execute({"ti": _TI(), "task_state_store": store})  # type: ignore[arg-type]
    assert emu.state.snapshot()["faults_injected"] == {"theta.slow": 1, "theta.drop": 1}
    [first] = emu.state.tables["theta.jobs"]
    before = _requests(emu)
    # Try 2 can only find it by the input it sent, which names the upload try 1 made.
    result = _infer(input_files={FIELD: str(audio)}).execute({"ti": _TI(), "task_state_store": store})  # type: ignore[arg-type]
    assert result["state"] == "succeeded" and result["request_id"] == first
    after = _requests(emu)
    for counter in ("theta.create_request", "theta.presigned_urls", "storage.put"):
        assert after[counter] == before[counter], counter
    assert sum(emu.state.snapshot()["submissions"]["theta"].values()) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"conn_id": "edgeinfer_octoai_default", "service": "generate/sdxl", "input": {"prompt": "x"}},
            "base64",
        ),
        ({"input": {"language": "en", FIELD: "x.wav"}}, "given both in input and in input_files"),
        ({"input_files": {FIELD: "/nope/missing.wav"}}, "does not exist"),
        (
            {"input_files": {FIELD: "{audio}", "image_filename": "{audio}"}},
            "unknown input field.*image_filename",
        ),
        ({"input_files": {FIELD: "{dir}/*.wav"}}, "names several files"),
    ],
    ids=["vendor without uploads", "field twice", "missing file", "unknown field", "a glob"],
)
def test_bad_input_files_fail_before_any_upload(
    emu: EmulatorServer, tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    audio = str(tmp_path / "a.wav")
    kwargs.setdefault("input_files", {FIELD: audio})
    kwargs["input_files"] = {k: v.format(audio=audio, dir=tmp_path) for k, v in kwargs["input_files"].items()}
    with pytest.raises(InputValidationError, match=message):
        _infer(**kwargs).execute({"ti": _TI(), "task_state_store": _Store()})  # type: ignore[arg-type]
    requests = _requests(emu)
    assert not [
        k for k in requests if k == "storage.put" or "presigned" in k or "create" in k or "submit" in k
    ]
