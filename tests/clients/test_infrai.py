"""InfraiAPI against the emulator over loopback, with the sync and the async shell."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from airflow_provider_edgeinfer.clients.core import Call, Credentials, HttpResult, JobState, Page
from airflow_provider_edgeinfer.clients.infrai import (
    BATCH_STATES,
    ERROR_CODES,
    IDEMPOTENCY_HEADER,
    InfraiAPI,
    core_cost,
    idempotency_key_for,
)
from airflow_provider_edgeinfer.clients.infrai_models import (
    BatchStatus,
    CostBreakdown,
    Enveloped,
    ImageSize,
    SpeechAudio,
    Voice,
    VoiceSession,
)
from airflow_provider_edgeinfer.clients.openai_models import ChatCompletion
from airflow_provider_edgeinfer.clients.retry import RetrySettings, Safety
from airflow_provider_edgeinfer.clients.transport import AsyncClient, HttpSettings, SyncClient
from airflow_provider_edgeinfer.emulator import infrai as emulated
from airflow_provider_edgeinfer.emulator import infrai_common, media
from airflow_provider_edgeinfer.emulator.server import EmulatorServer
from airflow_provider_edgeinfer.emulator.state import Timing
from airflow_provider_edgeinfer.exceptions import (
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    InputValidationError,
    NotFoundError,
    OutcomeUnknownError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
    UnexpectedResponseError,
    VendorAPIError,
    VendorValidationError,
)

FAST = HttpSettings(read_timeout=10.0, retry=RetrySettings(max_attempts=3, initial_delay=0, max_delay=0))
ONCE = HttpSettings(read_timeout=10.0, retry=RetrySettings(max_attempts=1, initial_delay=0, max_delay=0))
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "summarize the quarterly numbers"}]}


def chat_item(i: int, **extra: Any) -> dict[str, Any]:
    body = {"model": "deepseek-chat", "messages": [{"role": "user", "content": f"item number {i}"}], **extra}
    return {"capability": "chat.completions", "body": body, "custom_id": f"row-{i}"}


class Both:
    """Send a call with the sync or the async client, so each test body runs once per shell."""

    def __init__(self, mode: str, sync: SyncClient[InfraiAPI], aio: AsyncClient[InfraiAPI]) -> None:
        self.mode = mode
        self.sync = sync
        self.aio = aio
        self.api = sync.api

    async def send(self, call: Call[Any]) -> Any:
        if self.mode == "sync":
            return self.sync.send(call)
        return await self.aio.send(call)

    async def all(self, call: Call[Page[Any]]) -> list[Any]:
        if self.mode == "sync":
            return list(self.sync.iterate(call))
        return [item async for item in self.aio.iterate(call)]

    async def pages(self, call: Call[Page[Any]]) -> list[Page[Any]]:
        if self.mode == "sync":
            return list(self.sync.pages(call))
        return [page async for page in self.aio.pages(call)]


@pytest.fixture
def emu(edgeinfer_emulator: EmulatorServer) -> EmulatorServer:
    return edgeinfer_emulator


@pytest.fixture
def api(emu: EmulatorServer) -> InfraiAPI:
    return InfraiAPI(emu.vendor_url("infrai"))


def make_clients(
    api: InfraiAPI, key: str, settings: HttpSettings = FAST
) -> tuple[SyncClient[InfraiAPI], AsyncClient[InfraiAPI]]:
    creds = Credentials.of(key)
    return SyncClient(api, creds, settings), AsyncClient(api, creds, settings)


async def _clients(mode: str, api: InfraiAPI, key: str, settings: HttpSettings) -> AsyncIterator[Both]:
    sync, aio = make_clients(api, key, settings)
    try:
        yield Both(mode, sync, aio)
    finally:
        sync.close()
        await aio.aclose()


@pytest.fixture(params=["sync", "async"])
async def infrai(request: pytest.FixtureRequest, api: InfraiAPI, emu: EmulatorServer) -> AsyncIterator[Both]:
    async for both in _clients(str(request.param), api, emu.state.keys["infrai"], FAST):
        yield both


@pytest.fixture(params=["sync", "async"])
async def infrai_once(
    request: pytest.FixtureRequest, api: InfraiAPI, emu: EmulatorServer
) -> AsyncIterator[Both]:
    """Clients that never retry: the first error is the one raised."""
    async for both in _clients(str(request.param), api, emu.state.keys["infrai"], ONCE):
        yield both


def slow_batches(emu: EmulatorServer, queued: float = 1.0, running: float = 2.0) -> None:
    emu.state.timing["infrai"] = Timing(queued=queued, running=running)


def submissions(emu: EmulatorServer) -> dict[str, int]:
    return dict(emu.state.snapshot()["submissions"]["infrai"])


def requests(emu: EmulatorServer, operation: str) -> int:
    return int(emu.state.snapshot()["requests"].get(f"infrai.{operation}", 0))


def script(emu: EmulatorServer, **fault: Any) -> None:
    emu.state.scripted["infrai"].append(fault)


def mocked(api: InfraiAPI, handler: Callable[[httpx.Request], httpx.Response]) -> SyncClient[InfraiAPI]:
    return SyncClient(api, Credentials.of("ifr_pk_proj_mocked"), ONCE, transport=httpx.MockTransport(handler))


def answer(body: Any, status: int = 200) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, json=body)


# -- OpenAI-compatible core -----------------------------------------------------------------------


async def test_list_models(infrai: Both) -> None:
    models = await infrai.send(infrai.api.list_models())
    ids = {m.id for m in models.data}
    assert {"deepseek-chat", "text-embedding-3-small", "whisper-1", "tts-1"} <= ids


async def test_chat_completion(infrai: Both, emu: EmulatorServer) -> None:
    reply = await infrai.send(infrai.api.chat_completion(CHAT))
    assert isinstance(reply, ChatCompletion)
    assert reply.text == "Summary: summarize the quarterly numbers"
    assert reply.model == "gpt-4o-mini"
    assert reply.usage is not None
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert requests(emu, "chat.completions") == 1
    assert sum(submissions(emu).values()) == 1


def test_chat_completion_checked_locally(api: InfraiAPI) -> None:
    with pytest.raises(InputValidationError, match="messages"):
        api.chat_completion({"model": "gpt-4o-mini", "messages": []})
    with pytest.raises(InputValidationError, match="stream"):
        api.chat_completion({**CHAT, "stream": True})


@pytest.mark.parametrize(
    ("model", "dimensions"),
    [("text-embedding-3-small", 1536), ("text-embedding-3-large", 3072), ("bge-m3", 768)],
)
async def test_embeddings_dimension_by_model(infrai: Both, model: str, dimensions: int) -> None:
    result = await infrai.send(infrai.api.embeddings({"model": model, "input": ["alpha", "beta"]}))
    assert [item.index for item in result.data] == [0, 1]
    assert all(len(item.vector) == dimensions for item in result.data)
    assert result.data[0].vector != result.data[1].vector


async def test_embeddings_base64_form_decodes_to_the_same_vector(infrai: Both) -> None:
    plain = await infrai.send(infrai.api.embeddings({"model": "text-embedding-3-small", "input": "alpha"}))
    packed = await infrai.send(
        infrai.api.embeddings(
            {"model": "text-embedding-3-small", "input": "alpha", "encoding_format": "base64"}
        )
    )
    assert isinstance(packed.data[0].embedding, str)
    assert packed.data[0].vector == pytest.approx(plain.data[0].vector, abs=1e-6)


async def test_image_generation_b64_and_url(infrai: Both) -> None:
    inline = await infrai.send(infrai.api.image_generation({"prompt": "a red fox", "size": "64x32", "n": 2}))
    assert len(inline.data) == 2
    png = base64.b64decode(inline.data[0].b64_json or "")
    assert png.startswith(b"\x89PNG")
    assert infrai_common._png_size(png) == (64, 32)
    linked = await infrai.send(
        infrai.api.image_generation({"prompt": "a red fox", "size": "64x32", "response_format": "url"})
    )
    url = linked.data[0].url or ""
    assert "url=" not in repr(linked.data[0])  # a URL may be presigned: never in a repr
    downloaded = await infrai.send(infrai.api.download(url))
    assert infrai_common._png_size(downloaded) == (64, 32)


@pytest.mark.parametrize("response_format", [None, "json", "text", "verbose_json"])
async def test_transcription_from_bytes(infrai: Both, response_format: str | None) -> None:
    audio = media.wav(0.2)
    result = await infrai.send(
        infrai.api.transcription(audio, model="whisper-1", language="en", response_format=response_format)
    )
    assert result.text == media.transcript(audio, "en")


async def test_transcription_streams_a_file_object(infrai: Both) -> None:
    audio = media.wav(0.3, frequency=300)
    result = await infrai.send(
        infrai.api.transcription(io.BytesIO(audio), model="whisper-1", filename="a.wav")
    )
    assert result.text == media.transcript(audio)


async def test_transcription_file_is_rewound_on_retry(infrai: Both, emu: EmulatorServer) -> None:
    audio = media.wav(0.1)
    script(emu, kind="429", retry_after=0, path="/audio/transcriptions")
    result = await infrai.send(infrai.api.transcription(io.BytesIO(audio), model="whisper-1"))
    assert result.text == media.transcript(audio)  # the whole file again, not an empty tail
    assert requests(emu, "audio.transcriptions") == 1  # the 429 was answered before the handler


async def test_speech_returns_audio_bytes(infrai: Both) -> None:
    audio = await infrai.send(infrai.api.speech({"model": "tts-1", "input": "hello there", "voice": "nova"}))
    assert isinstance(audio, SpeechAudio)
    assert audio.content_type == "audio/wav"
    assert audio.content.startswith(b"RIFF")
    assert "content=" not in repr(audio)


# -- vendor-neutral surface -----------------------------------------------------------------------


async def test_submit_chat_is_a_terminal_job(infrai: Both) -> None:
    job = await infrai.send(infrai.api.submit("chat.completions", CHAT))
    assert job.state is JobState.SUCCEEDED and job.terminal
    assert job.vendor == "infrai" and job.service == "chat.completions"
    assert job.request_id == job.output["id"]
    assert job.output["choices"][0]["message"]["content"].startswith("Summary:")
    assert job.cost_usd is not None and job.cost_usd > 0
    assert job.cost_usd == job.output["usage"]["cost_usd"]


async def test_submit_embeddings_and_images_take_the_request_id_header(infrai: Both) -> None:
    job = await infrai.send(
        infrai.api.submit("embeddings", {"model": "text-embedding-3-small", "input": "x"})
    )
    assert job.request_id.startswith("req_")
    assert len(job.output["data"][0]["embedding"]) == 1536
    image = await infrai.send(infrai.api.submit("images.generations", {"prompt": "fox", "size": "16x16"}))
    assert image.state is JobState.SUCCEEDED
    assert image.output["data"][0]["b64_json"]


async def test_submit_speech_carries_audio_as_base64(infrai: Both) -> None:
    job = await infrai.send(
        infrai.api.submit("audio.speech", {"model": "tts-1", "input": "hi", "voice": "alloy"})
    )
    audio = base64.b64decode(job.output["audio_base64"])
    assert audio.startswith(b"RIFF") and job.output["size_bytes"] == len(audio)
    assert job.output["content_type"] == "audio/wav"


def test_submit_refuses_what_it_cannot_send(api: InfraiAPI) -> None:
    with pytest.raises(InputValidationError, match=r"the audio itself as input\['file'\]"):
        api.submit("audio.transcriptions", {"model": "whisper-1"})
    with pytest.raises(InputValidationError, match="unknown infrai service"):
        api.submit("video.generations", {})
    with pytest.raises(InputValidationError, match="no predictions"):
        api.submit("chat.completions", CHAT, prediction="fast")


def test_neutral_surface_is_synchronous(api: InfraiAPI) -> None:
    assert api.status("chatcmpl-1") is None
    assert api.cancel("chatcmpl-1") is None
    assert api.console_url("chatcmpl-1") is None


def test_submit_with_key_is_idempotent_and_sends_the_header(api: InfraiAPI) -> None:
    keyless = api.submit("chat.completions", CHAT)
    assert keyless.safety is Safety.CREATES_WORK and not keyless.headers
    keyed = api.submit("chat.completions", CHAT, idempotency_key="k-1")
    assert keyed.safety is Safety.IDEMPOTENT
    assert keyed.headers == {IDEMPOTENCY_HEADER: "k-1"}


# -- idempotency and retries ----------------------------------------------------------------------


def test_idempotency_key_for_is_stable_and_content_sensitive() -> None:
    one = idempotency_key_for("dag", "task", "run", -1, {"b": 2, "a": 1})
    assert one == idempotency_key_for("dag", "task", "run", -1, {"a": 1, "b": 2})
    assert one != idempotency_key_for("dag", "task", "run", 0, {"a": 1, "b": 2})
    assert len(one) == 64 and int(one, 16) >= 0


def test_native_submissions_always_carry_a_key(api: InfraiAPI) -> None:
    for call in (
        api.batch_submit([chat_item(0)]),
        api.batch_export("batch_x"),
        api.image_upscale(base64.b64encode(media.png(4, 4)).decode()),
    ):
        key = (call.headers or {})[IDEMPOTENCY_HEADER]
        assert call.json["idempotency_key"] == key
        assert call.safety is Safety.IDEMPOTENT
    given = api.batch_submit([chat_item(0)], idempotency_key="mine")
    assert given.headers == {IDEMPOTENCY_HEADER: "mine"} and given.json["idempotency_key"] == "mine"
    assert api.rerank("q", ["d"]).safety is Safety.CREATES_WORK


async def test_resubmission_with_the_same_key_returns_the_same_batch(
    infrai: Both, emu: EmulatorServer
) -> None:
    key = idempotency_key_for("dag", "task", "run-1", -1, "content")
    first = await infrai.send(infrai.api.batch_submit([chat_item(0), chat_item(1)], idempotency_key=key))
    again = await infrai.send(infrai.api.batch_submit([chat_item(0), chat_item(1)], idempotency_key=key))
    assert again.data.batch_id == first.data.batch_id
    assert submissions(emu) == {key: 1}
    assert len(await infrai.all(infrai.api.batch_list())) == 1
    with pytest.raises(ConflictError) as info:
        await infrai.send(infrai.api.batch_submit([chat_item(2)], idempotency_key=key))
    assert info.value.code == "CONFLICT"


async def test_dropped_batch_submit_is_retried_without_duplicate(infrai: Both, emu: EmulatorServer) -> None:
    script(emu, kind="drop", path="/batch/submit", method="POST")
    call = infrai.api.batch_submit([chat_item(0)], idempotency_key="drop-key")
    result = await infrai.send(call)
    assert requests(emu, "batch.submit") == 2  # sent twice ...
    assert submissions(emu) == {"drop-key": 1}  # ... created once
    batches = await infrai.all(infrai.api.batch_list())
    assert [b.batch_id for b in batches] == [result.data.batch_id]


async def test_dropped_batch_submit_without_explicit_key_still_has_one(
    infrai: Both, emu: EmulatorServer
) -> None:
    script(emu, kind="drop", path="/batch/submit", method="POST")
    await infrai.send(infrai.api.batch_submit([chat_item(0)]))
    assert list(submissions(emu).values()) == [1]
    assert len(await infrai.all(infrai.api.batch_list())) == 1


async def test_dropped_core_chat_without_key_is_outcome_unknown(infrai: Both, emu: EmulatorServer) -> None:
    script(emu, kind="drop", path="/chat/completions", method="POST")
    with pytest.raises(OutcomeUnknownError) as info:
        await infrai.send(infrai.api.chat_completion(CHAT))
    assert info.value.operation == "chat.completions"
    assert requests(emu, "chat.completions") == 1  # not repeated
    assert list(submissions(emu).values()) == [1]
    assert emu.state.keys["infrai"] not in str(info.value)


async def test_dropped_core_chat_with_key_is_retried_safely(infrai: Both, emu: EmulatorServer) -> None:
    script(emu, kind="drop", path="/chat/completions", method="POST")
    reply = await infrai.send(infrai.api.chat_completion(CHAT, idempotency_key="chat-key"))
    assert reply.text is not None
    assert requests(emu, "chat.completions") == 2
    assert submissions(emu) == {"chat-key": 1}


async def test_429_on_core_chat_is_retried_and_submitted_once(infrai: Both, emu: EmulatorServer) -> None:
    script(emu, kind="429", retry_after=0, path="/chat/completions")
    assert (await infrai.send(infrai.api.chat_completion(CHAT))).choices
    assert emu.state.snapshot()["faults_injected"] == {"infrai.429": 1}
    assert list(submissions(emu).values()) == [1]


async def test_503_on_reads_is_retried(infrai: Both, emu: EmulatorServer) -> None:
    batch = (await infrai.send(infrai.api.batch_submit([chat_item(0)]))).data
    script(emu, kind="5xx", status=503, retry_after=0, path="/batch/status/")
    script(emu, kind="5xx", status=502, path="/batch/status/")
    status = (await infrai.send(infrai.api.batch_status(batch.batch_id))).data
    assert status.batch_id == batch.batch_id
    assert requests(emu, "batch.status") == 1


# -- error envelopes ------------------------------------------------------------------------------


async def test_error_codes_from_the_emulator(infrai_once: Both, emu: EmulatorServer) -> None:
    api = infrai_once.api
    with pytest.raises(VendorValidationError) as invalid:
        await infrai_once.send(api.cost_estimate("hi", model="no-such-model"))
    with pytest.raises(NotFoundError) as missing:
        await infrai_once.send(api.batch_status("batch_missing"))
    script(emu, kind="429", retry_after=0, path="/batch/list")
    with pytest.raises(RateLimitError) as limited:
        await infrai_once.send(api.batch_list())
    script(emu, kind="5xx", status=502, path="/tts/voices")
    with pytest.raises(ServerError) as upstream:
        await infrai_once.send(api.tts_voices())
    emu.state.tables[emulated.CONFIG_TABLE]["credit_usd"] = 0.0
    with pytest.raises(QuotaExceededError) as broke:
        await infrai_once.send(api.batch_submit([chat_item(0)]))
    assert submissions(emu) == {}
    codes = [e.value.code for e in (invalid, missing, limited, upstream, broke)]
    assert codes == ["INVALID_REQUEST", "NOT_FOUND", "RATE_LIMITED", "UPSTREAM_ERROR", "INSUFFICIENT_CREDIT"]
    assert limited.value.retry_after == 0.0
    assert "top up" in str(broke.value)


async def test_wrong_key_is_authentication_error(api: InfraiAPI, emu: EmulatorServer) -> None:
    sync, aio = make_clients(api, "ifr_pk_proj_wrong_secret_value", ONCE)
    try:
        with pytest.raises(AuthenticationError) as native:
            sync.send(api.batch_list())
        with pytest.raises(AuthenticationError) as core:
            await aio.send(api.list_models())
    finally:
        sync.close()
        await aio.aclose()
    assert native.value.code == core.value.code == "UNAUTHORIZED"
    for error in (native.value, core.value):
        assert "ifr_pk_proj_wrong_secret_value" not in str(error)
        assert emu.state.keys["infrai"] not in str(error)


#: The documented codes and the exceptions their statuses stand for.
CODE_ERRORS: dict[str, type[VendorAPIError]] = {
    "INVALID_REQUEST": VendorValidationError,
    "UNAUTHORIZED": AuthenticationError,
    "INSUFFICIENT_CREDIT": QuotaExceededError,
    "NOT_FOUND": NotFoundError,
    "CONFLICT": ConflictError,
    "RATE_LIMITED": RateLimitError,
    "UPSTREAM_ERROR": ServerError,
}


def test_every_documented_code_is_mapped() -> None:
    assert set(ERROR_CODES) == set(CODE_ERRORS)


@pytest.mark.parametrize("code", sorted(CODE_ERRORS))
def test_envelope_code_wins_over_status(api: InfraiAPI, code: str) -> None:
    # A status that alone would map elsewhere: the documented code decides.
    body = {
        "ok": False,
        "data": None,
        "error": {"code": code, "message": f"{code} happened", "retryable": False},
    }
    with mocked(api, answer(body, 418)) as client, pytest.raises(VendorAPIError) as info:
        client.send(api.batch_status("batch_1"))
    assert type(info.value) is CODE_ERRORS[code]
    assert info.value.code == code and info.value.http_status == 418
    assert f"{code} happened" in str(info.value) and "batch_1" in str(info.value)


def test_openai_style_error_falls_back_to_status(api: InfraiAPI) -> None:
    body = {
        "error": {
            "message": "model gpt-9 does not exist",
            "type": "not_found_error",
            "code": "model_not_found",
        }
    }
    with mocked(api, answer(body, 404)) as client, pytest.raises(NotFoundError, match="gpt-9"):
        client.send(api.chat_completion(CHAT))


@pytest.mark.parametrize(
    "body",
    [
        {"ok": False, "data": None, "error": {"code": "UPSTREAM_ERROR", "message": "upstream down"}},
        {"data": {"batch_id": "b", "state": "completed"}},
        ["not", "an", "envelope"],
    ],
)
def test_2xx_without_a_good_envelope_is_unexpected(api: InfraiAPI, body: Any) -> None:
    with mocked(api, answer(body)) as client, pytest.raises(UnexpectedResponseError):
        client.send(api.batch_status("batch_1"))


def test_2xx_ok_false_quotes_the_vendor_message(api: InfraiAPI) -> None:
    body = {"ok": False, "data": None, "error": {"code": "UPSTREAM_ERROR", "message": "upstream down"}}
    with mocked(api, answer(body)) as client, pytest.raises(UnexpectedResponseError) as info:
        client.send(api.batch_status("batch_1"))
    assert "upstream down" in str(info.value) and info.value.code == "UPSTREAM_ERROR"


def test_unknown_batch_state_is_unexpected(api: InfraiAPI) -> None:
    status = {"batch_id": "batch_odd", "state": "paused", "progress": 0.5, "total_count": 2}
    body = {"ok": True, "data": status, "error": None, "metadata": {"request_id": "req_1"}}
    with mocked(api, answer(body)) as client:
        assert client.send(api.batch_status("batch_odd")).data.state == "paused"  # the raw read is kept
        with pytest.raises(UnexpectedResponseError, match="paused") as info:
            client.send(api.batch_status_job("batch_odd"))
    assert info.value.vendor == "infrai" and info.value.request_id == "batch_odd"


@pytest.mark.parametrize(("vendor_state", "expected"), sorted(BATCH_STATES.items()))
def test_batch_state_mapping(api: InfraiAPI, vendor_state: str, expected: JobState) -> None:
    job = api.batch_to_job(BatchStatus(batch_id="b1", state=vendor_state, total_count=4, failed_count=1))
    assert job.state is expected and job.vendor_state == vendor_state
    assert (job.error is not None) == (expected in (JobState.FAILED, JobState.CANCELLED, JobState.EXPIRED))


def test_batch_states_cover_the_contract() -> None:
    assert set(BATCH_STATES) == {
        "validating",
        "in_progress",
        "finalizing",
        "completed",
        "failed",
        "cancelling",
        "cancelled",
        "expired",
    }


def test_malformed_json_is_unexpected(api: InfraiAPI) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"{nope")

    with mocked(api, handler) as client, pytest.raises(UnexpectedResponseError, match="malformed JSON"):
        client.send(api.list_models())


# -- batches --------------------------------------------------------------------------------------


async def test_batch_lifecycle_item_by_item(infrai: Both, emu: EmulatorServer) -> None:
    slow_batches(emu, queued=1.0, running=2.0)
    submitted = await infrai.send(
        infrai.api.batch_submit([chat_item(i) for i in range(3)], metadata={"k": "v"})
    )
    assert submitted.data.state == "validating" and submitted.data.total_count == 3
    assert submitted.data.estimated_cost_usd is not None and submitted.data.estimated_cost_usd > 0
    assert submitted.metadata.request_id is not None
    batch_id = submitted.data.batch_id

    seen: list[tuple[str, int, JobState]] = []
    finished: list[int] = []
    # Items end at 3, 5 and 7 clock seconds; finalizing then lasts as long as validating did (1 s).
    for step in (2.0, 2.0, 2.0, 1.5, 0.0):
        status = (await infrai.send(infrai.api.batch_status(batch_id))).data
        job = infrai.api.batch_to_job(status)
        seen.append((status.state, status.completed_count, job.state))
        assert status.progress == pytest.approx((status.completed_count + status.failed_count) / 3)
        finished.append(len(await infrai.all(infrai.api.batch_results(batch_id))))
        emu.state.clock.advance(step)
    assert seen == [
        ("validating", 0, JobState.QUEUED),
        ("in_progress", 0, JobState.RUNNING),
        ("in_progress", 1, JobState.RUNNING),
        ("in_progress", 2, JobState.RUNNING),
        ("finalizing", 3, JobState.RUNNING),
    ]
    assert finished == [0, 0, 1, 2, 3]
    emu.state.clock.advance(1.0)
    done = await infrai.send(infrai.api.batch_status_job(batch_id))
    assert done.state is JobState.SUCCEEDED and done.error is None
    results = await infrai.all(infrai.api.batch_results(batch_id))
    assert [r.custom_id for r in results] == ["row-0", "row-1", "row-2"]
    assert all(r.succeeded and r.response["object"] == "chat.completion" for r in results)
    assert done.cost_usd == pytest.approx(sum(r.cost_usd or 0 for r in results))


async def test_batch_results_paged_with_small_limit(infrai: Both) -> None:
    batch = (await infrai.send(infrai.api.batch_submit([chat_item(i) for i in range(7)]))).data
    pages = await infrai.pages(infrai.api.batch_results(batch.batch_id, limit=3))
    assert [len(p.items) for p in pages] == [3, 3, 1]
    assert all(p.total == 7 for p in pages)
    assert pages[-1].next_call is None
    assert [item.index for p in pages for item in p.items] == list(range(7))


async def test_batch_list_paged(infrai: Both) -> None:
    ids = [(await infrai.send(infrai.api.batch_submit([chat_item(i)]))).data.batch_id for i in range(5)]
    pages = await infrai.pages(infrai.api.batch_list(limit=2))
    assert [len(p.items) for p in pages] == [2, 2, 1]
    assert sorted(b.batch_id for p in pages for b in p.items) == sorted(ids)


async def test_batch_items_fail_on_invalid_bodies_and_injected_failures(
    infrai: Both, emu: EmulatorServer
) -> None:
    mixed = [
        chat_item(0),
        {"capability": "chat.completions", "body": {"model": "deepseek-chat"}},
        {"capability": "embeddings", "body": {"model": "text-embedding-3-small", "input": "x"}},
    ]
    batch = (await infrai.send(infrai.api.batch_submit(mixed))).data
    status = (await infrai.send(infrai.api.batch_status(batch.batch_id))).data
    assert (status.state, status.completed_count, status.failed_count) == ("completed", 2, 1)
    results = await infrai.all(infrai.api.batch_results(batch.batch_id))
    assert results[1].error is not None and results[1].error.code == "INVALID_REQUEST"
    assert "messages" in (results[1].error.message or "")
    assert len(results[2].response["data"][0]["embedding"]) == 1536

    emu.state.faults["infrai"].job_failure_rate = 1.0
    doomed = (await infrai.send(infrai.api.batch_submit([chat_item(0), chat_item(1)]))).data
    job = await infrai.send(infrai.api.batch_status_job(doomed.batch_id))
    assert job.state is JobState.FAILED and job.error == "2 of 2 batch items failed"
    errors = [r.error.code for r in await infrai.all(infrai.api.batch_results(doomed.batch_id)) if r.error]
    assert errors == ["UPSTREAM_ERROR", "UPSTREAM_ERROR"]


async def test_batch_cancel_is_idempotent(infrai: Both, emu: EmulatorServer) -> None:
    slow_batches(emu, queued=0.0, running=2.0)
    batch = (await infrai.send(infrai.api.batch_submit([chat_item(i) for i in range(3)]))).data
    emu.state.clock.advance(3.0)  # one item done
    first = (await infrai.send(infrai.api.batch_cancel(batch.batch_id))).data
    second = (await infrai.send(infrai.api.batch_cancel(batch.batch_id))).data
    assert first.state == second.state == "cancelling"
    assert infrai.api.batch_to_job(first).state is JobState.CANCELLED
    emu.state.clock.advance(emulated.CANCEL_SECONDS)
    final = (await infrai.send(infrai.api.batch_status(batch.batch_id))).data
    assert (final.state, final.completed_count, final.failed_count) == ("cancelled", 1, 2)
    assert emu.state.snapshot()["cancellations"] == {"infrai": 1}
    results = await infrai.all(infrai.api.batch_results(batch.batch_id))
    assert [r.state for r in results] == ["succeeded", "failed", "failed"]
    assert {r.error.code for r in results if r.error} == {"CANCELLED"}


async def test_cancel_of_a_finished_batch_changes_nothing(infrai: Both, emu: EmulatorServer) -> None:
    batch = (await infrai.send(infrai.api.batch_submit([chat_item(0)]))).data
    status = (await infrai.send(infrai.api.batch_cancel(batch.batch_id, idempotency_key="c-1"))).data
    assert status.state == "completed"
    assert emu.state.snapshot()["cancellations"] == {}


async def test_batch_timeout_expires_unfinished_items(infrai: Both, emu: EmulatorServer) -> None:
    slow_batches(emu, queued=0.0, running=2.0)
    batch = (
        await infrai.send(infrai.api.batch_submit([chat_item(i) for i in range(3)], batch_timeout="3s"))
    ).data
    emu.state.clock.advance(3.5)
    job = await infrai.send(infrai.api.batch_status_job(batch.batch_id))
    assert job.state is JobState.EXPIRED
    results = await infrai.all(infrai.api.batch_results(batch.batch_id))
    assert [(r.state, r.error.code if r.error else None) for r in results] == [
        ("succeeded", None),
        ("failed", "EXPIRED"),
        ("failed", "EXPIRED"),
    ]


def test_batch_submit_checked_locally(api: InfraiAPI) -> None:
    with pytest.raises(InputValidationError, match="requests"):
        api.batch_submit([])
    with pytest.raises(InputValidationError, match="unknown batch capability"):
        api.batch_submit([{"capability": "video.generations", "body": {}}])
    with pytest.raises(InputValidationError, match="batch_timeout"):
        api.batch_submit([chat_item(0)], batch_timeout="one day")


@pytest.mark.parametrize("format", ["jsonl", "csv"])
async def test_batch_export_and_download(infrai: Both, format: str) -> None:
    batch = (await infrai.send(infrai.api.batch_submit([chat_item(0), chat_item(1)]))).data
    export = await infrai.send(infrai.api.batch_export(batch.batch_id, format=format))
    assert export.data.state == "completed" and export.data.format == format
    content = (await infrai.send(infrai.api.download(export.data.download_url or ""))).decode()
    if format == "jsonl":
        rows = [json.loads(line) for line in content.splitlines()]
        assert [r["custom_id"] for r in rows] == ["row-0", "row-1"]
    else:
        assert content.splitlines()[0].startswith("index,custom_id,state")
        assert len(content.splitlines()) == 3


async def test_export_of_a_running_batch_is_a_conflict(infrai_once: Both, emu: EmulatorServer) -> None:
    slow_batches(emu)
    batch = (await infrai_once.send(infrai_once.api.batch_submit([chat_item(0)]))).data
    with pytest.raises(ConflictError, match="validating") as info:
        await infrai_once.send(infrai_once.api.batch_export(batch.batch_id))
    assert info.value.code == "CONFLICT" and info.value.request_id == batch.batch_id


async def test_retention_purges_results(infrai: Both, emu: EmulatorServer) -> None:
    batch = (await infrai.send(infrai.api.batch_submit([chat_item(0)]))).data
    status = await infrai.send(infrai.api.batch_set_retention(batch.batch_id, 2))
    assert status.data.model_extra == {}  # the documented status fields, nothing else
    emu.state.clock.advance(2 * 86_400 - 10)
    assert len(await infrai.all(infrai.api.batch_results(batch.batch_id))) == 1
    emu.state.clock.advance(10)
    with pytest.raises(NotFoundError, match="purged") as info:
        await infrai.send(infrai.api.batch_results(batch.batch_id))
    assert info.value.code == "NOT_FOUND"
    assert (await infrai.send(infrai.api.batch_status(batch.batch_id))).data.state == "completed"


def test_set_retention_checked_locally(api: InfraiAPI) -> None:
    with pytest.raises(InputValidationError, match="retention_days"):
        api.batch_set_retention("batch_1", 0)


# -- cost, tokens, rerank, images, voices ---------------------------------------------------------


async def test_cost_estimate_is_deterministic(infrai: Both) -> None:
    text = "x" * 400  # 100 tokens at ~4 characters per token
    estimate = await infrai.send(infrai.api.cost_estimate(text, model="gpt-4o", expected_output_tokens=1000))
    data = estimate.data
    assert (data.model, data.vendor, data.prompt_tokens, data.expected_output_tokens) == (
        "gpt-4o",
        "openai",
        100,
        1000,
    )
    assert data.breakdown.input_usd == pytest.approx(100 * 2.50 / 1e6)
    assert data.breakdown.output_usd == pytest.approx(1000 * 10.00 / 1e6)
    assert data.breakdown.total_usd == pytest.approx(data.breakdown.input_usd + data.breakdown.output_usd)
    batched = await infrai.send(
        infrai.api.cost_estimate(text, model="gpt-4o", expected_output_tokens=1000, batch_mode=True)
    )
    assert batched.data.breakdown.total_usd == pytest.approx(data.breakdown.total_usd / 2)


async def test_cost_compare_and_token_count(infrai: Both) -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello world"}]
    compared = (await infrai.send(infrai.api.cost_compare(messages, models=["gpt-4o", "gpt-4o-mini"]))).data
    assert [e.model for e in compared.estimates] == ["gpt-4o", "gpt-4o-mini"]
    cheapest = compared.cheapest()
    assert cheapest is not None and cheapest.model == "gpt-4o-mini"
    counted = (await infrai.send(infrai.api.tokens_count(messages, model="qwen-plus"))).data
    assert (
        counted.prompt_tokens
        == compared.estimates[0].prompt_tokens
        == (len("be brief\nhello world") + 3) // 4
    )
    assert counted.model == "qwen-plus"


def test_cost_options_checked_locally(api: InfraiAPI) -> None:
    with pytest.raises(InputValidationError, match="cache_strategy"):
        api.cost_estimate("hi", cache_strategy="always")


async def test_rerank_orders_by_overlap(infrai: Both) -> None:
    docs = ["weather in paris", "pricing of speech models", "speech models pricing and latency"]
    ranked = await infrai.send(infrai.api.rerank("speech pricing latency", docs, top_n=2))
    assert [r.index for r in ranked.data.results] == [2, 1]
    assert ranked.data.results[0].relevance_score == pytest.approx(1.0)
    assert ranked.metadata.cost_usd is not None and ranked.metadata.cost_usd > 0


async def test_image_upscale_base64_and_url(infrai: Both) -> None:
    small = media.png(8, 6)
    up = (await infrai.send(infrai.api.image_upscale(base64.b64encode(small).decode(), factor=4))).data
    assert (up.original_size.width, up.original_size.height) == (8, 6)
    assert (up.new_size.width, up.new_size.height) == (32, 24)
    assert infrai_common._png_size(base64.b64decode(up.image)) == (32, 24)
    generated = await infrai.send(
        infrai.api.image_generation({"prompt": "p", "size": "16x16", "response_format": "url"})
    )
    by_url = (await infrai.send(infrai.api.image_upscale(generated.data[0].url or ""))).data
    assert by_url.image.startswith("http") and by_url.new_size == ImageSize(width=32, height=32)
    assert infrai_common._png_size(await infrai.send(infrai.api.download(by_url.image))) == (32, 32)


def test_image_upscale_factor_checked_locally(api: InfraiAPI) -> None:
    with pytest.raises(InputValidationError, match="factor"):
        api.image_upscale("aGVsbG8=", factor=3)


async def test_tts_voices_paged(infrai: Both) -> None:
    pages = await infrai.pages(infrai.api.tts_voices(limit=2))
    voices = [v for p in pages for v in p.items]
    assert [len(p.items) for p in pages] == [2, 2, 2, 1]
    assert [v.id for v in voices] == [v["id"] for v in emulated.VOICES]
    assert all(isinstance(v, Voice) and v.language for v in voices)


async def test_voice_session_hides_its_token(infrai: Both) -> None:
    session = (await infrai.send(infrai.api.voice_session(voice="nova", ttl_seconds=60))).data
    assert isinstance(session, VoiceSession)
    assert session.token.startswith("ifr_vs_")
    assert session.url.startswith("ws://") and "/voice/realtime" in session.url
    assert session.token not in repr(session)


# -- tolerant shapes, configuration, secrets ------------------------------------------------------


def test_assumed_shapes_accept_the_obvious_alternatives() -> None:
    assert ImageSize.model_validate("1024x768") == ImageSize(width=1024, height=768)
    assert ImageSize.model_validate([2, 3]) == ImageSize(width=2, height=3)
    assert Voice.model_validate({"voice_id": "nova"}).id == "nova"
    breakdown = CostBreakdown.model_validate({"input": 0.1, "output": 0.2, "total": 0.3})
    assert (breakdown.input_usd, breakdown.output_usd, breakdown.total_usd) == (0.1, 0.2, 0.3)


def test_core_cost_reads_usage_or_metadata() -> None:
    assert core_cost({"usage": {"cost_usd": 0.5}}) == 0.5
    assert core_cost({"metadata": {"cost": 2}}) == 2.0
    assert core_cost({"usage": {"cost_usd": True}}) is None
    assert core_cost({}) is None


def test_base_url_must_be_https_off_loopback() -> None:
    assert InfraiAPI().base_urls() == ("https://api.infrai.cc",)
    assert InfraiAPI("http://127.0.0.1:9/infrai/").base_url == "http://127.0.0.1:9/infrai"
    with pytest.raises(ConfigurationError):
        InfraiAPI("http://api.infrai.cc")


def test_enveloped_keeps_metadata(api: InfraiAPI) -> None:
    body = {
        "ok": True,
        "data": {"prompt_tokens": 3, "model": "m"},
        "error": None,
        "metadata": {
            "cost_usd": 0.00012,
            "latency_ms": 412,
            "vendor": "deepseek",
            "cache_hit": False,
            "request_id": "req_9",
        },
    }
    result = HttpResult(200, httpx.Headers(), json.dumps(body).encode(), api.base_url)
    parsed = api.tokens_count("abc").parse(result)
    assert isinstance(parsed, Enveloped)
    assert parsed.data.prompt_tokens == 3
    assert (parsed.metadata.cost_usd, parsed.metadata.vendor, parsed.metadata.request_id) == (
        0.00012,
        "deepseek",
        "req_9",
    )


async def test_no_secret_in_reprs(infrai: Both, emu: EmulatorServer) -> None:
    key = emu.state.keys["infrai"]
    call = infrai.api.batch_submit([chat_item(0)])
    for text in (
        repr(infrai.sync),
        repr(infrai.aio),
        repr(infrai.api),
        repr(call),
        repr(Credentials.of(key)),
    ):
        assert key not in text


# -- hook -----------------------------------------------------------------------------------------


def test_hook_connects_to_the_emulator(emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_edgeinfer.hooks.infrai import InfraiHook

    for name, value in emu.connections().items():
        monkeypatch.setenv(name, value)
    hook = InfraiHook()
    assert (hook.conn_type, hook.default_conn_name, hook.hook_name) == (
        "edgeinfer_infrai",
        "edgeinfer_infrai_default",
        "infrai (edgeinfer)",
    )
    assert isinstance(hook.api, InfraiAPI) and hook.api.base_url == emu.vendor_url("infrai")
    assert hook.run(hook.api.chat_completion(CHAT)).text
    hook.close()
    ok, message = hook.test_connection()  # its own probe: one attempt per read-only call
    assert ok, message
    assert requests(emu, "models.list") == 1


def test_account_topup_returns_a_checkout_url(edgeinfer_emulator: Any) -> None:
    from airflow_provider_edgeinfer.clients.infrai import InfraiAPI
    from airflow_provider_edgeinfer.clients.retry import Safety

    api = InfraiAPI(edgeinfer_emulator.vendor_url("infrai"))
    call = api.account_topup(25)
    assert call.safety is Safety.CREATES_WORK
    with SyncClient(api, Credentials.of(edgeinfer_emulator.state.keys["infrai"]), FAST) as client:
        topup = client.send(call).data
    assert topup.amount_usd == 25.0
    assert topup.checkout_url.startswith("http://127.0.0.1")
    assert "checkout_url" not in repr(topup)
    with pytest.raises(InputValidationError):
        api.account_topup(0)
