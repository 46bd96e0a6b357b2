"""Per-service capabilities of the clients: which calls answer in the call, which take files inline,
and what a native batch refuses. Pure checks, plus the emulator over loopback for the calls."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from airflow_provider_edgeinfer.clients.core import (
    Credentials,
    InlineFile,
    Job,
    JobState,
    VendorAPI,
    api_classes,
)
from airflow_provider_edgeinfer.clients.infrai import MAX_TRANSCRIPTION_FILE_BYTES, InfraiAPI
from airflow_provider_edgeinfer.clients.octoai import OctoAIAPI
from airflow_provider_edgeinfer.clients.retry import RetrySettings
from airflow_provider_edgeinfer.clients.transport import HttpSettings, SyncClient
from airflow_provider_edgeinfer.emulator import media
from airflow_provider_edgeinfer.emulator.octoai import TEXT_MODELS
from airflow_provider_edgeinfer.emulator.server import EmulatorServer
from airflow_provider_edgeinfer.exceptions import InputValidationError
from airflow_provider_edgeinfer.hooks.base import vendors

SETTINGS = HttpSettings(
    connect_timeout=5, read_timeout=5, retry=RetrySettings(max_attempts=1, initial_delay=0, max_delay=0)
)
CHAT = {"model": TEXT_MODELS[0], "messages": [{"role": "user", "content": "Name a colour."}]}


def octoai_api(emu: EmulatorServer) -> OctoAIAPI:
    base = emu.vendor_url("octoai")
    return OctoAIAPI(base, base, f"{base}/text", f"{base}/deployments/{{name}}")


@pytest.fixture
def octoai(edgeinfer_emulator: EmulatorServer) -> Iterator[SyncClient[OctoAIAPI]]:
    key = edgeinfer_emulator.state.keys["octoai"]
    with SyncClient(octoai_api(edgeinfer_emulator), Credentials.of(key), SETTINGS) as client:
        yield client


@pytest.fixture
def infrai(edgeinfer_emulator: EmulatorServer) -> Iterator[SyncClient[InfraiAPI]]:
    key = edgeinfer_emulator.state.keys["infrai"]
    with SyncClient(
        InfraiAPI(edgeinfer_emulator.vendor_url("infrai")), Credentials.of(key), SETTINGS
    ) as client:
        yield client


# -- answers in the call ----------------------------------------------------------------------


def test_answers_in_call_is_per_service_on_octoai_and_the_class_flag_elsewhere() -> None:
    api = OctoAIAPI()
    assert api.answers_in_call("chat/completions") and api.answers_in_call("chat.completions")
    assert not api.answers_in_call("generate/sdxl") and not api.answers_in_call("whisper")
    assert InfraiAPI().answers_in_call("embeddings") is True
    assert VendorAPI().answers_in_call("anything") is False


def test_octoai_text_submit_goes_to_the_text_host_without_the_async_header() -> None:
    api = OctoAIAPI(text_base_url="https://text.example.test")
    call = api.submit("chat/completions", {**CHAT, "max_tokens": 5})
    assert (call.method, call.url) == ("POST", "https://text.example.test/v1/chat/completions")
    assert "X-OctoAI-Async" not in (call.headers or {})
    assert json.loads(call.content or b"") == {**CHAT, "max_tokens": 5}


@pytest.mark.parametrize(
    ("input", "fragment"),
    [
        ({"messages": CHAT["messages"]}, r"needs input\['model'\]"),
        ({"model": "m", "messages": "hi"}, r"needs input\['messages'\]"),
        ({**CHAT, "stream": True}, "streaming"),
    ],
)
def test_octoai_text_input_is_checked_before_sending(input: dict[str, object], fragment: str) -> None:
    with pytest.raises(InputValidationError, match=fragment):
        OctoAIAPI().submit("chat/completions", input)


def test_octoai_text_job_is_finished_with_its_output_and_no_cost(
    octoai: SyncClient[OctoAIAPI], edgeinfer_emulator: EmulatorServer
) -> None:
    job = octoai.send(octoai.api.submit("chat/completions", CHAT))
    assert (job.state, job.service, job.cost_usd) == (JobState.SUCCEEDED, "chat/completions", None)
    assert job.request_id == job.output["id"] and job.request_id.startswith("chatcmpl-")
    assert job.output["choices"][0]["message"]["content"]
    # Nothing to fetch afterwards: the answer is the output (an image job still has a result to read).
    assert octoai.api.fetch_output(job) is None
    image = Job(vendor="octoai", request_id="r1", state=JobState.SUCCEEDED, vendor_state="completed")
    assert octoai.api.fetch_output(image.model_copy(update={"service": "generate/sdxl"})) is not None
    requests = edgeinfer_emulator.state.snapshot()["requests"]
    assert {k: v for k, v in requests.items() if k.startswith("octoai.")} == {"octoai.chat_completions": 1}


def test_the_output_is_read_once_from_the_result_endpoint_else_from_one_status_read(
    octoai: SyncClient[OctoAIAPI],
) -> None:
    from airflow_provider_edgeinfer.clients.theta import ThetaAPI

    done = Job(vendor="theta", request_id="r1", state=JobState.SUCCEEDED, vendor_state="success")
    theta = ThetaAPI("http://127.0.0.1:9", project_id="prj_x")
    assert theta.output_read(done, output_known=True) is None  # in hand: nothing to send
    status = theta.output_read(done, output_known=False)
    assert status is not None and (status.method, status.operation) == ("GET", theta.status("r1").operation)
    # A vendor with a result endpoint reads it whatever is in hand, into the same job.
    image = Job(
        vendor="octoai",
        request_id="r2",
        state=JobState.SUCCEEDED,
        vendor_state="completed",
        service="generate/sdxl",
    )
    fetch = octoai.api.output_read(image, output_known=True)
    assert fetch is not None and fetch.url == octoai.api.fetch_output(image).url  # type: ignore[union-attr]
    text = image.model_copy(update={"service": "chat/completions", "output": {"id": "x"}})
    assert octoai.api.output_read(text, output_known=True) is None


# -- files inline -----------------------------------------------------------------------------


def test_which_vendors_take_files_and_how() -> None:
    packaged = ("infrai", "octoai", "omnitensor", "theta")
    classes = api_classes([*vendors(), "not-a-vendor"])
    assert set(packaged) <= set(classes) and "not-a-vendor" not in classes
    assert {v for v in packaged if classes[v].inline_file_services} == {"infrai", "octoai"}
    assert {v for v in packaged if "input" in classes[v].upload_kinds} == {"theta"}
    assert {v for v in packaged if classes[v].describe_file_inputs()} == {"infrai", "octoai", "theta"}
    assert InfraiAPI.takes_files_inline("audio.transcriptions")
    assert not InfraiAPI.takes_files_inline("chat.completions")
    assert OctoAIAPI.takes_files_inline("whisper") and not OctoAIAPI.takes_files_inline("sdxl")
    assert InfraiAPI.max_inline_file_bytes == MAX_TRANSCRIPTION_FILE_BYTES == 25_000_000


def test_transcription_submit_sends_the_contract_multipart_form(
    infrai: SyncClient[InfraiAPI], edgeinfer_emulator: EmulatorServer
) -> None:
    audio = media.wav(0.2)
    call = infrai.api.submit(
        "audio.transcriptions",
        {"file": InlineFile("call.wav", audio, "audio/wav"), "model": "whisper-1", "language": "en"},
        idempotency_key="k-1",
    )
    assert call.files == {"file": ("call.wav", audio, "audio/wav")}
    assert call.data == {"model": "whisper-1", "language": "en"}
    assert call.json is None and call.content is None
    job = infrai.send(call)
    assert (job.state, job.output) == (JobState.SUCCEEDED, {"text": media.transcript(audio, "en")})
    # The same key and file: infrai answers again without a second transcription.
    assert infrai.send(call).output == job.output
    assert sum(edgeinfer_emulator.state.snapshot()["submissions"]["infrai"].values()) == 1


def test_transcription_as_text_is_a_job_too(infrai: SyncClient[InfraiAPI]) -> None:
    audio = media.wav(0.1)
    file = InlineFile("a.wav", audio)
    job = infrai.send(
        infrai.api.submit(
            "audio.transcriptions", {"file": file, "model": "whisper-1", "response_format": "text"}
        )
    )
    assert job.output == {"text": media.transcript(audio)} and job.cost_usd is None


@pytest.mark.parametrize(
    ("input", "fragment"),
    [
        ({"model": "whisper-1", "file": "https://example.test/a.wav"}, r"input\['file'\].*not str"),
        ({"file": InlineFile("a.wav", b"RIFF")}, r"needs input\['model'\]"),
        ({"file": InlineFile("a.wav", b"RIFF"), "model": "whisper-1", "speed": 2}, "takes no field speed"),
        (
            {"file": InlineFile("big.wav", b"\0" * (MAX_TRANSCRIPTION_FILE_BYTES + 1)), "model": "whisper-1"},
            "at most 25,000,000 bytes",
        ),
    ],
)
def test_transcription_input_is_checked_before_sending(input: dict[str, object], fragment: str) -> None:
    with pytest.raises(InputValidationError, match=fragment):
        InfraiAPI().submit("audio.transcriptions", input)


def test_inline_file_repr_shows_no_content() -> None:
    assert (
        repr(InlineFile("call.wav", b"secret words", "audio/wav"))
        == "InlineFile('call.wav', 12 bytes, 'audio/wav')"
    )


# -- native batches ---------------------------------------------------------------------------


def test_a_batch_refuses_transcription_before_sending() -> None:
    api = InfraiAPI()
    item = {"capability": "audio.transcriptions", "body": {"model": "whisper-1", "file": "x"}}
    with pytest.raises(InputValidationError, match="cannot run in a batch") as raised:
        api.batch_submit([item])
    assert "multipart" in raised.value.message and "input_files" in (raised.value.hint or "")
    with pytest.raises(InputValidationError, match=r"unknown batch capability 'video'.*chat\.completions"):
        api.check_batch_capability("video")
    api.check_batch_capability("embeddings")
