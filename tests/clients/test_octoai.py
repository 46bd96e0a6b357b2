"""OctoAIAPI against the emulator over loopback, through both shells, plus its pure parts."""

from __future__ import annotations

import base64
import json
import struct
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from airflow_provider_edgeinfer.clients.core import Call, Credentials, HttpResult, Job, JobState, VendorAPI
from airflow_provider_edgeinfer.clients.octoai import (
    MAX_ASYNC_BODY_BYTES,
    ImageGenerationRequest,
    ImageGenerationResponse,
    OctoAIAPI,
    VideoGenerationRequest,
    decode_media,
    schema_errors,
)
from airflow_provider_edgeinfer.clients.retry import RetrySettings, Safety
from airflow_provider_edgeinfer.clients.transport import AsyncClient, HttpSettings, SyncClient
from airflow_provider_edgeinfer.emulator import media
from airflow_provider_edgeinfer.emulator.octoai import FAILURE_MESSAGE, TEXT_MODELS
from airflow_provider_edgeinfer.emulator.server import EmulatorServer
from airflow_provider_edgeinfer.emulator.state import EmulatorState, Timing
from airflow_provider_edgeinfer.exceptions import (
    AuthenticationError,
    ConfigurationError,
    InputValidationError,
    JobFailedError,
    OutcomeUnknownError,
    RateLimitError,
    ResultExpiredError,
    ServerError,
    UnexpectedResponseError,
    VendorValidationError,
)

SETTINGS = HttpSettings(
    connect_timeout=5, read_timeout=5, retry=RetrySettings(max_attempts=3, initial_delay=0, max_delay=0)
)
SMALL = {"prompt": "a lighthouse at dawn", "width": 16, "height": 8}


def emulator_api(emu: EmulatorServer) -> OctoAIAPI:
    base = emu.vendor_url("octoai")
    return OctoAIAPI(base, base, f"{base}/text", f"{base}/deployments/{{name}}")


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def octoai_requests(state: EmulatorState) -> dict[str, int]:
    return {k: v for k, v in state.snapshot()["requests"].items() if k.startswith("octoai.")}


def submissions(state: EmulatorState) -> int:
    return sum(state.snapshot()["submissions"]["octoai"].values())


@pytest.fixture
def emu(edgeinfer_emulator: EmulatorServer) -> EmulatorServer:
    return edgeinfer_emulator


@pytest.fixture
def state(emu: EmulatorServer) -> EmulatorState:
    return emu.state


@pytest.fixture
def api(emu: EmulatorServer) -> OctoAIAPI:
    return emulator_api(emu)


@pytest.fixture
def client(api: OctoAIAPI, state: EmulatorState) -> Iterator[SyncClient[OctoAIAPI]]:
    with SyncClient(api, Credentials.of(state.keys["octoai"]), SETTINGS) as c:
        yield c


@pytest.fixture
async def aclient(api: OctoAIAPI, state: EmulatorState) -> AsyncIterator[AsyncClient[OctoAIAPI]]:
    async with AsyncClient(api, Credentials.of(state.keys["octoai"]), SETTINGS) as c:
        yield c


def result(status: int, body: Any, url: str = "https://async.octoai.run/v1/requests/r-1") -> HttpResult:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HttpResult(status, httpx.Headers({"X-User-Request-ID": "vendor-req-9"}), content, url)


# -- construction and addressing -------------------------------------------------------------


def test_defaults_name_the_real_hosts() -> None:
    api = OctoAIAPI()
    assert api.allowed_hosts() == {"image.octoai.run", "async.octoai.run", "text.octoai.run", "*.octoai.run"}
    assert api.endpoint("sdxl").url == "https://image.octoai.run/generate/sdxl"
    assert api.endpoint("generate/flux-dev").engine == "flux-dev"
    assert api.endpoint("whisper-demo-kk0p").url == "https://whisper-demo-kk0p.octoai.run/predict"
    assert api.endpoint("whisper-demo-kk0p").engine is None


def test_loopback_deployment_template_is_its_host(api: OctoAIAPI, emu: EmulatorServer) -> None:
    host = emu.vendor_url("octoai").split("/")[2]
    assert api.allowed_hosts() == {host}
    assert api.endpoint("whisper").url == f"{emu.vendor_url('octoai')}/deployments/whisper/predict"


@pytest.mark.parametrize(
    "template",
    [
        "https://octoai.run/predict",  # no {name}
        "https://{name}.octoai.run/{other}",
        "https://x.{name}.octoai.run",  # {name} below another label
        "https://{name}.run",  # would trust every .run host
        "http://{name}.octoai.run",  # plain http off loopback
    ],
)
def test_bad_deployment_templates_are_refused(template: str) -> None:
    with pytest.raises(ConfigurationError):
        OctoAIAPI(deployment_url_template=template)


def test_plain_http_is_refused_off_loopback() -> None:
    with pytest.raises(ConfigurationError, match="https"):
        OctoAIAPI(async_base_url="http://async.octoai.run")


@pytest.mark.parametrize("service", ["not a name", "-leading", "under_score", ""])
def test_bad_service_names(service: str) -> None:
    with pytest.raises(InputValidationError):
        OctoAIAPI().endpoint(service)


# -- local validation: nothing is sent --------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"steps": 10}, "prompt"),
        ({"prompt": "x", "num_images": 17}, "num_images"),
        ({"prompt": "x", "num_images": 0}, "num_images"),
        ({"prompt": "x", "steps": "many"}, "steps"),
        ({"prompt": "x", "colour": "red"}, "colour"),
        ({"prompt": "x", "loras": {"style": "heavy"}}, "loras"),
    ],
)
async def test_invalid_image_requests_fail_before_any_request(
    api: OctoAIAPI,
    client: SyncClient[OctoAIAPI],
    aclient: AsyncClient[OctoAIAPI],
    state: EmulatorState,
    body: dict[str, Any],
    field: str,
) -> None:
    builders: list[Callable[[], Call[Any]]] = [
        lambda: api.generate_image("sdxl", body),
        lambda: api.infer("generate/sd3", body),
        lambda: api.submit("generate/flux-schnell", body),
    ]
    for build in builders:
        with pytest.raises(InputValidationError, match=field) as caught:
            client.send(build())
        assert "nothing was sent" in str(caught.value)
        with pytest.raises(InputValidationError, match=field):
            await aclient.send(build())
    assert octoai_requests(state) == {}


def test_svd_body_is_validated_with_its_own_schema(api: OctoAIAPI) -> None:
    with pytest.raises(InputValidationError, match="image: Field required"):
        api.generate_video({"fps": 7})
    with pytest.raises(InputValidationError, match="fps"):
        api.generate_video({"image": "aGk=", "fps": 99})


def test_generate_image_refuses_the_video_engine(api: OctoAIAPI) -> None:
    with pytest.raises(InputValidationError, match="not an image engine"):
        api.generate_image("svd", {"prompt": "x"})


def test_schema_errors_are_fastapi_shaped() -> None:
    assert schema_errors("sdxl", {"prompt": "x"}) == []
    assert schema_errors("sdxl", []) == [
        {"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}
    ]
    assert schema_errors("sdxl", {"prompt": "x", "cfg_scale": 0}) == [
        {"loc": ["body", "cfg_scale"], "msg": "must be > 0 (got 0)", "type": "greater_than"}
    ]
    assert schema_errors("an-engine-the-file-does-not-know", {"anything": 1}) == []


def test_long_prompts_are_not_echoed_in_errors() -> None:
    prompt = "secret project codename " * 500
    with pytest.raises(InputValidationError) as caught:
        OctoAIAPI().generate_image("sdxl", {"prompt": prompt})
    assert "prompt: must be at most 10000 characters" in str(caught.value)
    assert "codename" not in str(caught.value)


async def test_asynchronous_bodies_over_10_mb_are_refused_before_sending(
    api: OctoAIAPI, client: SyncClient[OctoAIAPI], aclient: AsyncClient[OctoAIAPI], state: EmulatorState
) -> None:
    audio = b"\x01" * (MAX_ASYNC_BODY_BYTES // 4 * 3 + 10)  # base64 grows it past the limit
    with pytest.raises(InputValidationError, match="10 MB") as caught:
        client.send(api.submit("whisper", api.whisper_input(audio)))
    assert "asynchronous" in str(caught.value)
    with pytest.raises(InputValidationError, match="10 MB"):
        await aclient.send(api.infer_async("whisper", api.whisper_input(audio)))
    assert octoai_requests(state) == {}
    # Just under the limit goes through, and the emulator (same contract) accepts it.
    filler = "x" * (MAX_ASYNC_BODY_BYTES - len('{"blob":""}'))
    job = client.send(api.submit("echo", {"blob": filler}))
    assert job.state is JobState.QUEUED
    assert submissions(state) == 1


def test_submit_refuses_a_prediction_name(api: OctoAIAPI) -> None:
    with pytest.raises(InputValidationError, match="no predictions"):
        api.submit("generate/sdxl", SMALL, prediction="predict")


# -- synchronous inference -------------------------------------------------------------------


async def test_generate_image_both_shells(
    api: OctoAIAPI, client: SyncClient[OctoAIAPI], aclient: AsyncClient[OctoAIAPI]
) -> None:
    request = ImageGenerationRequest(prompt="a lighthouse", width=24, height=16, num_images=3, seed=41)
    for answer in (
        client.send(api.generate_image("sdxl", request)),
        await aclient.send(api.generate_image("ssd", request)),
    ):
        assert isinstance(answer, ImageGenerationResponse)
        decoded = decode_media(answer)
        assert [d.seed for d in decoded] == [41, 42, 43]
        assert all(png_size(d.data or b"") == (24, 16) for d in decoded)
        assert answer.prediction_time_ms


def test_safety_removals_are_reported_per_image(api: OctoAIAPI, client: SyncClient[OctoAIAPI]) -> None:
    answer = client.send(
        api.generate_image("flux-dev", {**SMALL, "prompt": "removed-for-safety", "num_images": 2})
    )
    first, second = decode_media(answer)
    assert (first.removed_for_safety, first.data) == (True, None)
    assert second.removed_for_safety is False and png_size(second.data or b"") == (16, 8)
    assert "removed" in repr(first) and "bytes" in repr(second)


def test_decode_media_refuses_what_is_not_media() -> None:
    with pytest.raises(UnexpectedResponseError, match="ImageGenerationResponse"):
        decode_media({"response": {"segments": []}})
    broken = {"images": [{"image_b64": "not base64!", "removed_for_safety": False, "seed": 1}]}
    with pytest.raises(UnexpectedResponseError, match="base64"):
        decode_media(broken)


def test_generate_video(api: OctoAIAPI, client: SyncClient[OctoAIAPI]) -> None:
    request = VideoGenerationRequest(image=base64.b64encode(media.png(8, 8)).decode(), num_videos=1)
    answer = client.send(api.generate_video(request))
    (video,) = decode_media(answer)
    assert video.data is not None and b"ftyp" in video.data[:12]


async def test_transcribe_both_shells(
    api: OctoAIAPI, client: SyncClient[OctoAIAPI], aclient: AsyncClient[OctoAIAPI]
) -> None:
    audio = media.wav(2.0)
    for answer in (
        client.send(api.transcribe("whisper", audio)),
        await aclient.send(api.transcribe("whisper-large", audio, language=None)),
    ):
        assert answer.response.text == media.transcript(audio)
        assert answer.response.segments[0].end == 2.0


def test_infer_on_a_deployment_returns_json(api: OctoAIAPI, client: SyncClient[OctoAIAPI]) -> None:
    assert client.send(api.infer("my-model", {"x": [1, 2]})) == {"response": {"x": [1, 2]}}


async def test_chat_completions_both_shells(
    api: OctoAIAPI, client: SyncClient[OctoAIAPI], aclient: AsyncClient[OctoAIAPI]
) -> None:
    messages: list[dict[str, object]] = [{"role": "user", "content": "summarise the quarterly call"}]
    for answer in (
        client.send(api.chat_completions(TEXT_MODELS[0], messages, max_tokens=64)),
        await aclient.send(api.chat_completions(TEXT_MODELS[1], messages)),
    ):
        assert answer.text == media.chat_reply(messages)
        assert answer.usage is not None and answer.usage.prompt_tokens == 4
        assert answer.usage.total_tokens == 4 + answer.usage.completion_tokens


def test_chat_completions_local_refusals(api: OctoAIAPI) -> None:
    with pytest.raises(InputValidationError, match="streaming"):
        api.chat_completions("m", [{"role": "user", "content": "x"}], stream=True)
    with pytest.raises(InputValidationError, match="empty"):
        api.chat_completions("m", [])


async def test_list_text_models(
    api: OctoAIAPI, client: SyncClient[OctoAIAPI], aclient: AsyncClient[OctoAIAPI]
) -> None:
    assert [m.id for m in client.send(api.list_text_models()).data] == list(TEXT_MODELS)
    assert len((await aclient.send(api.list_text_models())).data) == len(TEXT_MODELS)


def test_calls_that_create_work_are_marked_so(api: OctoAIAPI) -> None:
    creating: list[Call[Any]] = [
        api.infer("whisper", {"audio": ""}),
        api.infer_async("generate/sdxl", SMALL),
        api.submit("generate/sdxl", SMALL),
        api.chat_completions("m", [{"role": "user", "content": "x"}]),
    ]
    reading: list[Call[Any]] = [
        api.poll("r-1"),
        api.status("r-1"),
        api.get_response("r-1"),
        api.list_text_models(),
    ]
    assert {c.safety for c in creating} == {Safety.CREATES_WORK}
    assert {c.safety for c in reading} == {Safety.IDEMPOTENT}
    assert api.infer_async("generate/sdxl", SMALL).headers == {
        "Content-Type": "application/json",
        "X-OctoAI-Async": "1",
    }


# -- asynchronous lifecycle ------------------------------------------------------------------


def test_lifecycle_sync_shell(api: OctoAIAPI, client: SyncClient[OctoAIAPI], state: EmulatorState) -> None:
    state.timing["octoai"] = Timing(queued=5.0, running=10.0)
    job = client.send(api.submit("generate/sdxl", {**SMALL, "num_images": 2}))
    assert (job.state, job.vendor_state, job.service) == (JobState.QUEUED, "pending", "generate/sdxl")
    assert client.send(api.status(job.request_id)).state is JobState.QUEUED
    state.clock.advance(5)
    running = client.send(api.status(job.request_id))
    assert (running.state, running.vendor_state, running.result_url) == (JobState.RUNNING, "running", None)
    state.clock.advance(10)
    done = client.send(api.status(job.request_id))
    assert done.state is JobState.SUCCEEDED and done.terminal
    assert done.result_url == f"{api.async_base_url}/v1/responses/{job.request_id}"
    output = client.send(api.fetch_output(done.model_copy(update={"service": job.service})))
    assert [png_size(d.data or b"") for d in decode_media(output)] == [(16, 8), (16, 8)]
    assert submissions(state) == 1


async def test_lifecycle_async_shell(
    api: OctoAIAPI, aclient: AsyncClient[OctoAIAPI], state: EmulatorState
) -> None:
    state.timing["octoai"] = Timing(queued=1.0, running=1.0)
    audio = media.wav(0.5)
    job = await aclient.send(api.submit("whisper", api.whisper_input(audio)))
    assert (await aclient.send(api.status(job.request_id))).state is JobState.QUEUED
    state.clock.advance(2)
    done = await aclient.send(api.status(job.request_id))
    assert done.state is JobState.SUCCEEDED
    output = await aclient.send(api.fetch_output(done))
    assert output["response"]["segments"][0]["text"] == media.transcript(audio)


def test_poll_follows_the_vendors_poll_url(api: OctoAIAPI, client: SyncClient[OctoAIAPI]) -> None:
    accepted = client.send(api.infer_async("generate/sdxl", SMALL))
    assert accepted.poll_url is not None
    assert client.send(api.poll(accepted.poll_url)).status == "completed"
    assert api.poll(accepted.poll_url).request_id == accepted.response_id


def test_job_failure_is_a_failed_job(
    api: OctoAIAPI, client: SyncClient[OctoAIAPI], state: EmulatorState
) -> None:
    state.faults["octoai"].job_failure_rate = 1.0
    job = client.send(api.submit("generate/sdxl", SMALL))
    failed = client.send(api.status(job.request_id))
    assert (failed.state, failed.error, failed.result_url) == (JobState.FAILED, FAILURE_MESSAGE, None)


async def test_4xx_on_poll_fails_the_request(
    api: OctoAIAPI, client: SyncClient[OctoAIAPI], aclient: AsyncClient[OctoAIAPI], state: EmulatorState
) -> None:
    with pytest.raises(JobFailedError, match="HTTP 404") as caught:
        client.send(api.status("unknown-00000"))
    assert caught.value.request_id == "unknown-00000"
    assert "vendor request id" in str(caught.value)
    with pytest.raises(JobFailedError):
        await aclient.send(api.status("unknown-00000"))
    assert octoai_requests(state) == {"octoai.poll": 2}  # a failure is final: not retried


def test_401_on_poll_is_an_auth_error_not_a_failed_job(api: OctoAIAPI) -> None:
    call = api.status("r-1")
    assert call.on_error is not None
    assert call.on_error(result(401, {"message": "bad token"})) is None
    assert call.on_error(result(429, {"message": "slow down"})) is None
    assert call.on_error(result(503, {"message": "later"})) is None
    assert isinstance(call.on_error(result(400, {"message": "bad id"})), JobFailedError)


def test_results_expire(api: OctoAIAPI, client: SyncClient[OctoAIAPI], state: EmulatorState) -> None:
    state.octoai_retention_seconds = 30
    job = client.send(api.submit("generate/sd", SMALL))
    done = client.send(api.status(job.request_id))
    assert client.send(api.fetch_output(done))["images"]
    state.clock.advance(31)
    with pytest.raises(ResultExpiredError, match="24 hours") as caught:
        client.send(api.fetch_output(done))
    assert caught.value.request_id == job.request_id
    # Fetching by id alone gives the same answer.
    with pytest.raises(ResultExpiredError):
        client.send(api.get_response(job.request_id))


def test_unknown_state_is_an_error(api: OctoAIAPI) -> None:
    with pytest.raises(UnexpectedResponseError, match="'paused'") as caught:
        api.status("r-1").parse(result(200, {"status": "paused"}))
    assert caught.value.request_id == "r-1"


def test_cancel_and_console_url_are_not_offered(api: OctoAIAPI) -> None:
    neutral: VendorAPI = api  # what operators see
    assert neutral.cancel("r-1") is None
    assert neutral.console_url("r-1") is None


def test_fetch_output_checks_the_shape_for_image_engines(api: OctoAIAPI) -> None:
    job = Job(
        vendor="octoai", request_id="r-1", state=JobState.SUCCEEDED, vendor_state="completed", service="sdxl"
    )
    with pytest.raises(UnexpectedResponseError, match="ImageGenerationResponse"):
        api.fetch_output(job).parse(result(200, {"videos": []}))
    other = job.model_copy(update={"service": "my-model"})
    assert api.fetch_output(other).parse(result(200, {"anything": 1})) == {"anything": 1}


# -- host guard ------------------------------------------------------------------------------


def test_foreign_poll_and_response_urls_are_refused(api: OctoAIAPI) -> None:
    for build in (api.poll, api.get_response):
        with pytest.raises(UnexpectedResponseError, match=r"evil\.example"):
            build("https://evil.example/v1/requests/r-1")
    foreign_201 = result(201, {"response_id": "r-1", "poll_url": "https://evil.example/v1/requests/r-1"})
    with pytest.raises(UnexpectedResponseError, match="poll_url"):
        api.submit("generate/sdxl", SMALL).parse(foreign_201)
    foreign_done = result(
        200, {"status": "completed", "response_url": "https://evil.example/v1/responses/r-1"}
    )
    with pytest.raises(UnexpectedResponseError, match="response_url"):
        api.status("r-1").parse(foreign_done)
    job = Job(
        vendor="octoai",
        request_id="r-1",
        state=JobState.SUCCEEDED,
        vendor_state="completed",
        result_url="https://evil.example/v1/responses/r-1",
    )
    with pytest.raises(UnexpectedResponseError):
        api.fetch_output(job)


def test_the_real_api_trusts_only_its_own_hosts() -> None:
    api = OctoAIAPI()
    assert api.poll("https://async.octoai.run/v1/requests/r-1").url.endswith("/r-1")
    for url in ("http://async.octoai.run/v1/requests/r-1", "https://whisper.octoai.run/v1/requests/r-1"):
        with pytest.raises(UnexpectedResponseError):
            api.poll(url)


async def test_token_never_reaches_a_host_the_connection_does_not_name(
    api: OctoAIAPI,
    client: SyncClient[OctoAIAPI],
    aclient: AsyncClient[OctoAIAPI],
    emu: EmulatorServer,
    state: EmulatorState,
) -> None:
    # Same server under another name: if the token were sent, the emulator would count a poll.
    foreign = f"http://localhost:{emu.port}/octoai/v1/requests/r-1"
    with pytest.raises(UnexpectedResponseError):
        api.poll(foreign)
    hand_made = Call("poll", "GET", foreign, lambda r: r.status)
    with pytest.raises(ConfigurationError, match="refusing to send the credential") as caught:
        client.send(hand_made)
    assert state.keys["octoai"] not in str(caught.value)
    with pytest.raises(ConfigurationError):
        await aclient.send(hand_made)
    assert octoai_requests(state) == {}


# -- errors from the vendor ------------------------------------------------------------------


def test_vendor_422_names_the_field(api: OctoAIAPI, client: SyncClient[OctoAIAPI]) -> None:
    with pytest.raises(VendorValidationError, match="messages") as caught:
        client.send(api.chat_completions("m", [{"content": "no role"}]))
    assert caught.value.http_status == 422
    assert caught.value.code == "list_type"
    assert "vendor request id" in str(caught.value)


def test_vendor_400_policy(api: OctoAIAPI, client: SyncClient[OctoAIAPI]) -> None:
    with pytest.raises(VendorValidationError, match="Acceptable Use Policy") as caught:
        client.send(api.generate_image("sdxl", {"prompt": "this violates-policy"}))
    assert caught.value.http_status == 400


def test_error_details_shapes() -> None:
    api = OctoAIAPI()
    detail = {"detail": [{"loc": ["body", "steps"], "msg": "too many", "type": "less_than_equal"}]}
    assert api.error_details(detail) == ("invalid request: steps: too many", "less_than_equal")
    assert api.error_details({"message": "nope"}) == ("nope", None)
    assert api.error_details({"detail": "Not Found"}) == ("Not Found", None)


def test_no_secret_in_errors_or_reprs(api: OctoAIAPI, emu: EmulatorServer) -> None:
    secret = "octo-sk-this-must-never-leak-1234"
    with SyncClient(api, Credentials.of(secret), SETTINGS) as wrong:
        with pytest.raises(AuthenticationError) as caught:
            wrong.send(api.generate_image("sdxl", SMALL))
        texts = [str(caught.value), repr(caught.value), repr(wrong), repr(wrong.auth), repr(api)]
        with pytest.raises(AuthenticationError) as on_poll:
            wrong.send(api.status("r-1"))
        texts += [str(on_poll.value), repr(on_poll.value)]
    assert all(secret not in t for t in texts)


# -- faults ----------------------------------------------------------------------------------


async def test_429_on_submit_is_retried_once_and_creates_one_job(
    api: OctoAIAPI, client: SyncClient[OctoAIAPI], aclient: AsyncClient[OctoAIAPI], state: EmulatorState
) -> None:
    state.scripted["octoai"].append({"kind": "429", "retry_after": 0})
    client.send(api.submit("generate/sdxl", SMALL))
    state.scripted["octoai"].append({"kind": "429", "retry_after": 0})
    await aclient.send(api.submit("generate/sdxl", {**SMALL, "seed": 1}))
    assert submissions(state) == 2
    assert octoai_requests(state) == {"octoai.generate_async": 2}  # the 429s never reached a handler
    assert state.snapshot()["faults_injected"] == {"octoai.429": 2}


def test_429_until_attempts_run_out(
    api: OctoAIAPI, client: SyncClient[OctoAIAPI], state: EmulatorState
) -> None:
    state.scripted["octoai"].extend([{"kind": "429", "retry_after": 0}] * 3)
    with pytest.raises(RateLimitError) as caught:
        client.send(api.submit("generate/sdxl", SMALL))
    assert caught.value.retry_after == 0
    assert submissions(state) == 0


def test_5xx_on_submit_is_retried_only_when_provably_unseen(
    api: OctoAIAPI, client: SyncClient[OctoAIAPI], state: EmulatorState
) -> None:
    state.scripted["octoai"].append({"kind": "5xx", "status": 503, "retry_after": 0})
    client.send(api.submit("generate/sdxl", SMALL))  # 503 + Retry-After: refused before any work
    state.scripted["octoai"].append({"kind": "5xx", "status": 500, "path": "/generate"})
    with pytest.raises(ServerError):
        client.send(api.submit("generate/sdxl", SMALL))
    assert state.snapshot()["faults_injected"] == {"octoai.5xx": 2}
    assert submissions(state) == 1


async def test_5xx_and_drop_on_poll_are_transient(
    api: OctoAIAPI, aclient: AsyncClient[OctoAIAPI], state: EmulatorState
) -> None:
    job = await aclient.send(api.submit("generate/sdxl", SMALL))
    state.scripted["octoai"].extend(
        [{"kind": "5xx", "status": 502, "path": "/v1/requests"}, {"kind": "drop", "path": "/v1/requests"}]
    )
    assert (await aclient.send(api.status(job.request_id))).state is JobState.SUCCEEDED
    assert octoai_requests(state)["octoai.poll"] == 2  # the 502 never reached the handler; drop did


async def test_drop_on_submit_is_outcome_unknown_not_resent(
    api: OctoAIAPI, client: SyncClient[OctoAIAPI], aclient: AsyncClient[OctoAIAPI], state: EmulatorState
) -> None:
    state.scripted["octoai"].append({"kind": "drop", "path": "/generate"})
    with pytest.raises(OutcomeUnknownError):
        client.send(api.submit("generate/sdxl", SMALL))
    state.scripted["octoai"].append({"kind": "drop", "path": "/generate"})
    with pytest.raises(OutcomeUnknownError):
        await aclient.send(api.submit("generate/sdxl", {**SMALL, "seed": 3}))
    assert submissions(state) == 2  # each was executed once and never repeated


def test_malformed_answers(api: OctoAIAPI, client: SyncClient[OctoAIAPI], state: EmulatorState) -> None:
    job = client.send(api.submit("generate/sdxl", SMALL))
    # A garbled answer to a read is read again...
    state.scripted["octoai"].append({"kind": "malformed", "path": "/v1/requests"})
    assert client.send(api.status(job.request_id)).request_id == job.request_id
    # ...until the attempts run out.
    state.scripted["octoai"].extend([{"kind": "malformed", "path": "/v1/requests"}] * 5)
    with pytest.raises(UnexpectedResponseError, match="malformed JSON"):
        client.send(api.status(job.request_id))
    state.scripted["octoai"].clear()
    # A garbled answer to a submission is never resent: it may have created work.
    state.scripted["octoai"].append({"kind": "malformed", "path": "/generate"})
    with pytest.raises(UnexpectedResponseError):
        client.send(api.generate_image("sdxl", SMALL))


def test_slow_answers(api: OctoAIAPI, client: SyncClient[OctoAIAPI], state: EmulatorState) -> None:
    state.scripted["octoai"].append({"kind": "slow", "seconds": 0.02})
    assert client.send(api.list_text_models()).data
    impatient = HttpSettings(read_timeout=0.002, retry=RetrySettings(max_attempts=2, initial_delay=0))
    state.scripted["octoai"].append({"kind": "slow", "seconds": 0.03, "path": "/generate"})
    with (
        SyncClient(api, Credentials.of(state.keys["octoai"]), impatient) as hurried,
        pytest.raises(OutcomeUnknownError, match="was sent but no answer came back"),
    ):
        hurried.send(api.submit("generate/sdxl", SMALL))
    # The emulator goes on after its delay; wait for it so its late count cannot land in the next
    # test's counters.
    deadline = time.monotonic() + 5
    while "octoai.generate_async" not in octoai_requests(state) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert octoai_requests(state)["octoai.generate_async"] == 1
    assert state.snapshot()["faults_injected"] == {"octoai.slow": 2}


# -- the hook's wiring -----------------------------------------------------------------------


def _connection(host: str, **extra: str) -> Any:
    from airflow.sdk import Connection

    return Connection(
        conn_id="octo", conn_type="edgeinfer_octoai", host=host, password="tok", extra=json.dumps(extra)
    )


def test_hook_derives_the_emulator_layout_from_a_loopback_host(emu: EmulatorServer) -> None:
    from airflow_provider_edgeinfer.hooks.octoai import OctoAIHook

    base = emu.vendor_url("octoai")
    api = OctoAIHook().build_api(_connection(base))
    assert (api.image_base_url, api.async_base_url, api.text_base_url) == (base, base, f"{base}/text")
    assert api.deployment_url_template == f"{base}/deployments/{{name}}"


def test_hook_real_defaults_and_extras() -> None:
    from airflow_provider_edgeinfer.hooks.octoai import OctoAIHook

    hook = OctoAIHook()
    assert hook.build_api(_connection("")).base_urls() == (
        "https://image.octoai.run",
        "https://async.octoai.run",
        "https://text.octoai.run",
    )
    api = hook.build_api(
        _connection(
            "image.example.com",
            async_host="async.example.com",
            text_host="https://text.example.com/",
            deployment_url_template="{name}.run.example.com",
        )
    )
    assert api.base_urls() == (
        "https://image.example.com",
        "https://async.example.com",
        "https://text.example.com",
    )
    assert api.endpoint("whisper").url == "https://whisper.run.example.com/predict"


def test_hook_test_connection_against_the_emulator(
    emu: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_edgeinfer.hooks.octoai import OctoAIHook

    for name, value in emu.connections().items():
        monkeypatch.setenv(name, value)
    ok, message = OctoAIHook().test_connection()
    assert ok and "token accepted (text models listed)" in message, message
    monkeypatch.setenv(
        "AIRFLOW_CONN_EDGEINFER_OCTOAI_DEFAULT",
        json.dumps({"conn_type": "edgeinfer_octoai", "host": emu.vendor_url("octoai"), "password": "wrong"}),
    )
    ok, message = OctoAIHook(http_settings=SETTINGS).test_connection()
    assert not ok and "HTTP 401" in message and "wrong" not in message


def test_a_whisper_deployment_takes_its_audio_inline_as_base64(api: OctoAIAPI) -> None:
    import base64
    import json

    from airflow_provider_edgeinfer.clients.core import InlineFile
    from airflow_provider_edgeinfer.clients.octoai import MAX_ASYNC_BODY_BYTES

    assert api.takes_files_inline("whisper") and api.takes_files_inline("whisper-large-v3")
    assert not api.takes_files_inline("generate/sdxl") and not api.takes_files_inline("chat/completions")
    audio = bytes(range(256)) * 40
    call = api.submit("whisper", {"audio": InlineFile("a.wav", audio), "task": "transcribe"})
    assert call.content is not None
    body = json.loads(call.content)
    assert base64.b64decode(body["audio"]) == audio and body["task"] == "transcribe"
    # The largest file taken inline still fits the asynchronous body limit once encoded.
    assert 4 * -(-api.max_inline_file_bytes // 3) < MAX_ASYNC_BODY_BYTES
    with pytest.raises(InputValidationError, match="only Whisper deployments"):
        api.submit("generate/sdxl", {"prompt": "x", "init_image": InlineFile("a.png", b"x")})
