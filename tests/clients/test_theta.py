"""ThetaAPI against the emulator over loopback, with the sync and the async shell."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from airflow_provider_edgeinfer.clients.core import Call, Credentials, HttpResult, JobState
from airflow_provider_edgeinfer.clients.retry import RetrySettings
from airflow_provider_edgeinfer.clients.theta import (
    STATES,
    CancelResult,
    CreateResult,
    InferRequest,
    PresignedUpload,
    Service,
    ThetaAPI,
    listing_goes_on,
    validate_input,
)
from airflow_provider_edgeinfer.clients.transport import AsyncClient, HttpSettings, SyncClient
from airflow_provider_edgeinfer.emulator import media
from airflow_provider_edgeinfer.emulator.server import EmulatorServer
from airflow_provider_edgeinfer.emulator.state import Timing
from airflow_provider_edgeinfer.exceptions import (
    MALFORMED_BODY,
    AuthenticationError,
    ConfigurationError,
    InputValidationError,
    NotFoundError,
    OutcomeUnknownError,
    RateLimitError,
    ServerError,
    UnexpectedResponseError,
    VendorTimeoutError,
)

FAST = HttpSettings(read_timeout=10.0, retry=RetrySettings(max_attempts=3, initial_delay=0, max_delay=0))
PROJECT = "prj_emulator"


class Both:
    """Send a call with the sync or the async client, so each test body runs once per shell."""

    def __init__(self, mode: str, sync: SyncClient[ThetaAPI], aio: AsyncClient[ThetaAPI]) -> None:
        self.mode = mode
        self.sync = sync
        self.aio = aio
        self.api = sync.api

    async def send(self, call: Call[Any]) -> Any:
        if self.mode == "sync":
            return self.sync.send(call)
        return await self.aio.send(call)

    async def all(self, call: Call[Any]) -> list[Any]:
        if self.mode == "sync":
            return list(self.sync.iterate(call))
        return [item async for item in self.aio.iterate(call)]


@pytest.fixture
def emu(edgeinfer_emulator: EmulatorServer) -> EmulatorServer:
    return edgeinfer_emulator


@pytest.fixture
def api(emu: EmulatorServer) -> ThetaAPI:
    return ThetaAPI(emu.vendor_url("theta"), project_id=PROJECT)


def make_clients(
    api: ThetaAPI, key: str, settings: HttpSettings = FAST
) -> tuple[SyncClient[ThetaAPI], AsyncClient[ThetaAPI]]:
    creds = Credentials.of(key)
    return SyncClient(api, creds, settings), AsyncClient(api, creds, settings)


@pytest.fixture(params=["sync", "async"])
async def theta(request: pytest.FixtureRequest, api: ThetaAPI, emu: EmulatorServer) -> AsyncIterator[Both]:
    sync, aio = make_clients(api, emu.state.keys["theta"])
    try:
        yield Both(str(request.param), sync, aio)
    finally:
        sync.close()
        await aio.aclose()


def submissions(emu: EmulatorServer) -> int:
    return sum(emu.state.snapshot()["submissions"]["theta"].values())


def requests(emu: EmulatorServer, operation: str) -> int:
    return int(emu.state.snapshot()["requests"].get(f"theta.{operation}", 0))


def script(emu: EmulatorServer, **fault: Any) -> None:
    emu.state.scripted["theta"].append(fault)


def result_of(body: Any, status: int = 200, url: str = "https://ondemand.thetaedgecloud.com/x") -> HttpResult:
    return HttpResult(status, httpx.Headers(), json.dumps(body).encode(), url)


# -- services --------------------------------------------------------------------------------------


async def test_list_services_one_page(theta: Both) -> None:
    page = await theta.send(theta.api.list_services())
    aliases = [s.alias for s in page.items]
    assert {"whisper", "flux", "kokoro_82m", "image_to_image", "llama_3_1_70b"} <= set(aliases)
    assert page.next_call is None
    whisper = next(s for s in page.items if s.alias == "whisper")
    assert whisper.default_prediction == "predict"
    assert [v.name for v in whisper.predictions["predict"].input_vars] == ["audio_filename", "language"]


@pytest.mark.parametrize("number", [1, 2, 3, 4, 10])
async def test_list_services_paging(theta: Both, emu: EmulatorServer, number: int) -> None:
    everything = (await theta.send(theta.api.list_services())).items
    before = requests(emu, "list_services")
    paged = await theta.all(theta.api.list_services(page=0, number=number))
    assert [s.id for s in paged] == [s.id for s in everything]
    expected_pages = -(-len(everything) // number)
    assert requests(emu, "list_services") - before == expected_pages


async def test_list_services_needs_no_key(api: ThetaAPI) -> None:
    async with AsyncClient(api, None, FAST) as client:
        page = await client.send(api.list_services(page=0, number=1))
    assert len(page.items) == 1
    assert page.total is not None and page.total > 1


# -- create / get ----------------------------------------------------------------------------------


async def test_create_default_prediction(theta: Both, emu: EmulatorServer) -> None:
    emu.state.timing["theta"] = Timing(queued=100, running=100)
    created = await theta.send(theta.api.create_request("flux", {"prompt": "a red fox"}))
    assert isinstance(created, CreateResult)
    req = created.request
    assert req.id.startswith("infr_rqst_")
    assert (req.state, req.prediction, req.service_id, req.project_id) == (
        "pending",
        "predict",
        "srvc_flux",
        PROJECT,
    )
    assert req.input == {"prompt": "a red fox"}
    assert req.output is None
    assert submissions(emu) == 1


async def test_create_named_prediction(theta: Both) -> None:
    call = theta.api.create_request(
        "image_to_image", {"image_filename": "upl_x"}, prediction="background_removal"
    )
    assert call.url.endswith("/infer_request/image_to_image/background_removal")
    req = (await theta.send(call)).request
    assert req.prediction == "background_removal"


async def test_create_unknown_prediction_is_not_found(theta: Both) -> None:
    with pytest.raises(NotFoundError):
        await theta.send(theta.api.create_request("flux", {"prompt": "x"}, prediction="nope"))


async def test_create_with_wait_returns_finished_request(theta: Both, emu: EmulatorServer) -> None:
    emu.state.timing["theta"] = Timing(queued=0.0, running=0.02)
    call = theta.api.create_request("flux", {"prompt": "fast"}, wait=5)
    assert call.json["wait"] == 5
    assert call.read_timeout is not None and call.read_timeout > 5
    req = (await theta.send(call)).request
    assert req.state == "success"
    assert req.output["image_url"].startswith(emu.url + "/_media/")


def test_create_rejects_wait_out_of_range(api: ThetaAPI) -> None:
    with pytest.raises(InputValidationError):
        api.create_request("flux", {"prompt": "x"}, wait=61)
    with pytest.raises(InputValidationError):
        api.create_request("flux", {"prompt": "x"}, wait=-1)


async def test_missing_required_input_refused_by_vendor(theta: Both, emu: EmulatorServer) -> None:
    from airflow_provider_edgeinfer.exceptions import VendorValidationError

    with pytest.raises(VendorValidationError, match="audio_filename"):
        await theta.send(theta.api.create_request("whisper", {"language": "en"}))
    assert submissions(emu) == 0


async def test_get_moves_through_states(theta: Both, emu: EmulatorServer) -> None:
    emu.state.timing["theta"] = Timing(queued=10, running=20)
    req = (await theta.send(theta.api.create_request("kokoro_82m", {"text": "hi", "voice": "af"}))).request
    seen = []
    for step in (0, 15, 20):
        emu.state.clock.advance(step)
        got = await theta.send(theta.api.get_request(req.id))
        assert isinstance(got, InferRequest)
        assert got.id == req.id
        seen.append(got.state)
    assert seen == ["pending", "processing", "success"]
    assert got.output["audio_url"].startswith(emu.url + "/_media/")
    assert got.total_cost_usd and got.total_cost_usd > 0


async def test_get_unknown_request_is_not_found(theta: Both) -> None:
    with pytest.raises(NotFoundError) as info:
        await theta.send(theta.api.get_request("infr_rqst_doesnotexist"))
    assert info.value.request_id == "infr_rqst_doesnotexist"
    assert info.value.http_status == 404


async def test_wrong_key_is_authentication_error(api: ThetaAPI) -> None:
    sync, aio = make_clients(api, "wrong-key-123456")
    try:
        with pytest.raises(AuthenticationError) as info:
            sync.send(api.get_request("infr_rqst_x"))
        assert "wrong-key-123456" not in str(info.value)
        with pytest.raises(AuthenticationError):
            await aio.send(api.create_request("flux", {"prompt": "x"}))
    finally:
        sync.close()
        await aio.aclose()


async def test_submit_and_status_are_neutral_jobs(theta: Both, emu: EmulatorServer) -> None:
    emu.state.timing["theta"] = Timing(queued=5, running=5)
    job = await theta.send(theta.api.submit("flux", {"prompt": "p"}))
    assert (job.vendor, job.state, job.vendor_state, job.service) == (
        "theta",
        JobState.QUEUED,
        "pending",
        "flux",
    )
    emu.state.clock.advance(11)
    done = await theta.send(theta.api.status(job.request_id))
    assert done.state is JobState.SUCCEEDED
    assert done.terminal
    assert done.output["image_url"]
    assert done.cost_usd == pytest.approx(0.0003)
    assert theta.api.console_url(job.request_id).endswith(job.request_id)


# -- listing ---------------------------------------------------------------------------------------


async def test_list_requests_paging(theta: Both, emu: EmulatorServer) -> None:
    emu.state.timing["theta"] = Timing(queued=100, running=100)
    ids = []
    for i in range(5):
        ids.append((await theta.send(theta.api.create_request("flux", {"prompt": f"p{i}"}))).request.id)
        emu.state.clock.advance(0.001)  # distinct creation times: newest first is well defined
    before = requests(emu, "list_requests")
    listed = await theta.all(theta.api.list_requests(number=2))
    assert [r.id for r in listed] == list(reversed(ids))
    assert requests(emu, "list_requests") - before == 3
    first = await theta.send(theta.api.list_requests(number=2))
    assert first.total == 5
    assert first.next_call is not None


async def test_list_requests_exact_multiple_stops(theta: Both, emu: EmulatorServer) -> None:
    for i in range(4):
        await theta.send(theta.api.create_request("flux", {"prompt": f"p{i}"}))
    before = requests(emu, "list_requests")
    assert len(await theta.all(theta.api.list_requests(number=2))) == 4
    assert requests(emu, "list_requests") - before == 2  # total says there is no third page


@pytest.mark.parametrize("listing", ["list_requests", "list_request_states"])
async def test_a_listing_capped_below_the_page_asked_for_is_walked_whole(
    theta: Both, emu: EmulatorServer, listing: str
) -> None:
    """The largest page is undocumented: a server serving 3 when 10 are asked for loses nothing."""
    emu.state.theta_page_cap = 3
    ids = []
    for i in range(7):
        ids.append((await theta.send(theta.api.create_request("flux", {"prompt": f"p{i}"}))).request.id)
        emu.state.clock.advance(0.001)
    before = requests(emu, "list_requests")
    listed = await theta.all(getattr(theta.api, listing)(number=10))
    assert [r.id for r in listed] == list(reversed(ids))
    assert requests(emu, "list_requests") - before == 3  # pages of 3, 3 and 1: the total says when to stop


@pytest.mark.parametrize(
    ("page", "asked", "got", "total", "served", "more"),
    [
        (0, 10, 0, 50, 10, False),  # an empty page always ends the walk
        (0, 10, 3, 7, 3, True),  # capped at 3: the served size and the total decide
        (2, 10, 1, 7, 3, False),
        (1, 10, 10, 20, 10, False),  # an exact multiple stops without asking for an empty page
        (0, 10, 10, None, None, True),  # no total: go on until an empty page
        (0, 10, 4, None, None, True),
        (0, 10, 4, 9, None, True),  # short page, no size given: the cap is unknown, go on
        (0, 10, 10, 10, None, False),
        (0, 10, 10, 30, 0, True),  # a served size of 0 is no size
    ],
)
def test_listing_goes_on_by_the_pagination_given(
    page: int, asked: int, got: int, total: int | None, served: int | None, more: bool
) -> None:
    assert listing_goes_on(page, asked, got, total, served) is more


async def test_list_requests_state_filter(theta: Both, emu: EmulatorServer) -> None:
    emu.state.timing["theta"] = Timing(queued=0, running=50)
    running = (await theta.send(theta.api.create_request("flux", {"prompt": "a"}))).request.id
    emu.state.timing["theta"] = Timing(queued=50, running=50)
    await theta.send(theta.api.create_request("flux", {"prompt": "b"}))
    listed = await theta.all(theta.api.list_requests(PROJECT, state="processing"))
    assert [r.id for r in listed] == [running]


async def test_list_request_states_validates_only_what_ended(theta: Both, emu: EmulatorServer) -> None:
    emu.state.timing["theta"] = Timing(queued=0, running=0)
    done = (await theta.send(theta.api.create_request("flux", {"prompt": "done"}))).request.id
    emu.state.timing["theta"] = Timing(queued=0, running=100)
    emu.state.clock.advance(0.001)
    running = (await theta.send(theta.api.create_request("flux", {"prompt": "running"}))).request.id
    page = await theta.send(theta.api.list_request_states(number=10))
    assert [(r.id, r.state) for r in page.items] == [(running, "processing"), (done, "success")]
    assert page.items[1].create_time is not None
    assert theta.api.job_if_ended(page.items[0]) is None
    job = theta.api.job_if_ended(page.items[1], "flux")
    assert job is not None and job.state is JobState.SUCCEEDED and job.request_id == done
    assert job.service == "flux" and job.output is not None
    # The whole request behind an entry is the one a GET returns (but for when it was rendered).
    got = await theta.send(theta.api.get_request(done))
    fresh = {"update_time"}
    assert theta.api.listed_request(page.items[1]).model_dump(exclude=fresh) == got.model_dump(exclude=fresh)


def _listing_answer(body: bytes) -> HttpResult:
    return HttpResult(200, httpx.Headers(), body, f"http://127.0.0.1/infer_request/{PROJECT}/list")


@pytest.mark.parametrize(
    ("body", "code", "match"),
    [
        (b'{"status": "success", "body": {"infer_requests": [', MALFORMED_BODY, "malformed JSON"),
        (b'{"status": "error", "message": "project suspended"}', None, "project suspended"),
        (b'{"status": "success", "body": {"infer_requests": [7]}}', None, "documented shape"),
        (b'{"status": "success", "body": {"infer_requests": [{"state": "success"}]}}', None, "id"),
        (b'{"status": "success", "body": {"infer_requests": {}}}', None, "documented shape"),
    ],
)
def test_list_request_states_refuses_broken_answers(body: bytes, code: str | None, match: str) -> None:
    api = ThetaAPI("http://127.0.0.1:1", project_id=PROJECT)
    with pytest.raises(UnexpectedResponseError, match=match) as caught:
        api.list_request_states().parse(_listing_answer(body))
    assert caught.value.vendor == "theta"
    if code:
        assert caught.value.code == code


def test_a_listed_request_that_does_not_match_is_named() -> None:
    api = ThetaAPI("http://127.0.0.1:1", project_id=PROJECT)
    body = (
        b'{"status": "success", "body": {"infer_requests": [{"id": "r1", "state": "success", "input": 3}]}}'
    )
    (listed,) = api.list_request_states().parse(_listing_answer(body)).items
    with pytest.raises(UnexpectedResponseError, match="InferRequest") as caught:
        api.job_if_ended(listed)
    assert caught.value.request_id == "r1"


def test_list_requests_needs_a_project(emu: EmulatorServer) -> None:
    with pytest.raises(ConfigurationError, match="project"):
        ThetaAPI(emu.vendor_url("theta")).list_requests()


async def test_list_requests_unknown_project(theta: Both) -> None:
    with pytest.raises(NotFoundError):
        await theta.send(theta.api.list_requests("prj_other"))


# -- uploads ---------------------------------------------------------------------------------------


async def test_presigned_urls_default_and_named(theta: Both, emu: EmulatorServer) -> None:
    urls = await theta.send(theta.api.presigned_urls("whisper"))
    assert set(urls) == {"audio_filename"}
    upload = urls["audio_filename"]
    assert isinstance(upload, PresignedUpload)
    assert upload.filename.startswith("upl_")
    assert upload.url.startswith(emu.url + "/_uploads/")
    assert "signature=" not in repr(upload)
    named = await theta.send(
        theta.api.presigned_urls(
            "image_to_image", prediction="background_removal", input_fields=["image_filename"]
        )
    )
    assert set(named) == {"image_filename"}


async def test_presigned_urls_unknown_field(theta: Both) -> None:
    from airflow_provider_edgeinfer.exceptions import VendorValidationError

    with pytest.raises(VendorValidationError):
        await theta.send(theta.api.presigned_urls("whisper", input_fields=["language"]))


def test_presigned_urls_parser_accepts_both_shapes(api: ThetaAPI) -> None:
    call = api.presigned_urls("whisper")
    observed = result_of(
        {
            "status": "success",
            "body": {"audio_filename": {"presigned_url": "https://s3/u?sig=1", "filename": "upl_a"}},
        }
    )
    official = result_of(
        {
            "status": "success",
            "body": {"urls": {"audio_filename": {"upload_url": "https://s3/v?sig=2", "filename": "upl_b"}}},
        }
    )
    assert call.parse(observed) == {
        "audio_filename": PresignedUpload(field="audio_filename", url="https://s3/u?sig=1", filename="upl_a")
    }
    assert call.parse(official) == {
        "audio_filename": PresignedUpload(field="audio_filename", url="https://s3/v?sig=2", filename="upl_b")
    }


@pytest.mark.parametrize(
    "body",
    [
        {"audio_filename": {"filename": "upl_a"}},
        {"audio_filename": {"presigned_url": "https://s3/u?sig=1"}},
        ["not", "an", "object"],
        {"urls": ["nope"]},
    ],
)
def test_presigned_urls_parser_rejects_broken_entries(api: ThetaAPI, body: Any) -> None:
    with pytest.raises(UnexpectedResponseError) as info:
        api.presigned_urls("whisper").parse(result_of({"status": "success", "body": body}))
    assert "sig=1" not in str(info.value)


async def test_upload_then_transcribe(theta: Both, emu: EmulatorServer) -> None:
    audio = media.wav(0.2) + theta.mode.encode()
    upload = (await theta.send(theta.api.presigned_urls("whisper")))["audio_filename"]
    async with httpx.AsyncClient() as storage:
        put = await storage.put(
            upload.url, content=audio, headers={"Content-Type": "application/octet-stream"}
        )
    assert put.status_code == 200
    req = (
        await theta.send(
            theta.api.create_request("whisper", {"audio_filename": upload.filename, "language": "en"})
        )
    ).request
    done = await theta.send(theta.api.get_request(req.id))
    assert done.state == "success"
    assert done.output["text"] == media.transcript(audio, "en")
    assert f"({len(audio)} bytes of audio)" in done.output["text"]


# -- cancel ----------------------------------------------------------------------------------------


async def test_cancel(theta: Both, emu: EmulatorServer) -> None:
    emu.state.timing["theta"] = Timing(queued=100, running=100)
    req = (await theta.send(theta.api.create_request("flux", {"prompt": "x"}))).request
    result = await theta.send(theta.api.cancel(req.id))
    assert isinstance(result, CancelResult)
    assert (result.changes["state"].previous, result.changes["state"].current) == ("pending", "cancelled")
    job = await theta.send(theta.api.status(req.id))
    assert job.state is JobState.CANCELLED
    assert emu.state.snapshot()["cancellations"] == {"theta": 1}
    again = await theta.send(theta.api.cancel_request(req.id))
    assert again.changes["state"].current == "cancelled"
    assert emu.state.snapshot()["cancellations"] == {"theta": 1}


async def test_cancel_unknown_is_not_found(theta: Both) -> None:
    with pytest.raises(NotFoundError):
        await theta.send(theta.api.cancel("infr_rqst_nope"))


# -- normalized view and validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("vendor_state", "expected"),
    [
        ("pending", JobState.QUEUED),
        ("processing", JobState.RUNNING),
        ("success", JobState.SUCCEEDED),
        ("error", JobState.FAILED),
        ("failed", JobState.FAILED),
        ("cancelled", JobState.CANCELLED),
    ],
)
def test_to_job_state_mapping(api: ThetaAPI, vendor_state: str, expected: JobState) -> None:
    req = InferRequest(
        id="infr_rqst_1",
        state=vendor_state,
        service_id="srvc_x",
        output={"text": "hi"},
        error_message="boom" if expected is JobState.FAILED else None,
        cost_usd={"input": 0.25, "output": 0.5},
    )
    job = api.to_job(req)
    assert job.state is expected
    assert job.vendor_state == vendor_state
    assert job.service == "srvc_x"
    assert job.output == ({"text": "hi"} if expected is JobState.SUCCEEDED else None)
    assert job.cost_usd == 0.75
    assert job.error == req.error_message


def test_states_table_covers_the_contract() -> None:
    assert set(STATES) == {"pending", "processing", "success", "error", "failed", "cancelled"}


def test_to_job_unknown_state_is_an_error(api: ThetaAPI) -> None:
    with pytest.raises(UnexpectedResponseError) as info:
        api.to_job(InferRequest(id="infr_rqst_odd", state="paused"))
    assert "paused" in str(info.value)
    assert info.value.request_id == "infr_rqst_odd"
    assert info.value.vendor == "theta"


def test_status_parse_unknown_state(api: ThetaAPI) -> None:
    body = {"status": "success", "body": {"id": "infr_rqst_odd", "state": "warming_up"}}
    with pytest.raises(UnexpectedResponseError, match="warming_up"):
        api.status("infr_rqst_odd").parse(result_of(body))


@pytest.fixture
def services(api: ThetaAPI) -> dict[str, Service]:
    with SyncClient(api, None, FAST) as client:
        return {s.alias: s for s in client.send(api.list_services()).items}


def test_validate_input_accepts_good_input(services: dict[str, Service]) -> None:
    assert (
        validate_input(services["whisper"], None, {"audio_filename": "upl_x", "language": "en"}) == "predict"
    )
    assert validate_input(services["flux"], "predict", {"prompt": "p", "width": 512}) == "predict"
    assert (
        validate_input(services["stable_diffusion_xl_turbo"], None, {"prompt": "p", "guidance": 1})
        == "predict"
    )
    assert validate_input(services["image_to_image"], None, {"image_filename": "u"}) == "background_removal"


@pytest.mark.parametrize(
    ("alias", "prediction", "input", "match"),
    [
        ("whisper", None, {"language": "en"}, "missing required input field.*audio_filename"),
        ("kokoro_82m", None, {"text": "hi"}, "missing.*voice"),
        ("flux", None, {"prompt": "p", "seed": 1}, "unknown input field.*seed"),
        ("flux", None, {"prompt": "p", "width": "512"}, "'width' must be int, got str"),
        ("flux", None, {"prompt": "p", "width": True}, "'width' must be int, got bool"),
        ("flux", None, {"prompt": 3}, "'prompt' must be str"),
        ("llama_3_1_70b", None, {"messages": "hi"}, "'messages' must be list"),
        ("flux", "upscale", {"prompt": "p"}, "no prediction 'upscale'"),
    ],
)
def test_validate_input_rejects(
    services: dict[str, Service], alias: str, prediction: str | None, input: dict[str, Any], match: str
) -> None:
    with pytest.raises(InputValidationError, match=match) as info:
        validate_input(services[alias], prediction, input)
    assert info.value.vendor == "theta"


# -- envelope --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"status": "error", "message": "No instances available", "body": {}},
        {"status": "failure", "body": {"id": "infr_rqst_1", "state": "pending"}},
        {"id": "infr_rqst_1", "state": "pending"},
        ["not", "an", "envelope"],
    ],
)
def test_envelope_error_on_200_is_unexpected(api: ThetaAPI, body: Any) -> None:
    with pytest.raises(UnexpectedResponseError) as info:
        api.get_request("infr_rqst_1").parse(result_of(body))
    assert info.value.http_status == 200
    assert info.value.request_id == "infr_rqst_1"


_REQUEST = {"id": "infr_rqst_1", "state": "success", "output": {"text": "hi"}}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"infer_requests": [_REQUEST]}, id="list-envelope-as-the-live-api"),
        pytest.param(_REQUEST, id="bare-request"),
    ],
)
def test_get_request_reads_both_answer_shapes(api: ThetaAPI, body: Any) -> None:
    got = api.status("infr_rqst_1").parse(result_of({"status": "success", "body": body}))
    assert (got.request_id, got.state.value, got.output) == ("infr_rqst_1", "succeeded", {"text": "hi"})


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"infer_requests": []}, id="empty-list"),
        pytest.param({"infer_requests": [_REQUEST, _REQUEST]}, id="two-requests"),
        pytest.param({"infer_requests": {"id": "infr_rqst_1"}}, id="not-a-list"),
        pytest.param({"infer_requests": [dict(_REQUEST, id="infr_rqst_2")]}, id="another-request"),
    ],
)
def test_get_request_refuses_a_list_that_is_not_this_one_request(api: ThetaAPI, body: Any) -> None:
    with pytest.raises(UnexpectedResponseError) as info:
        api.get_request("infr_rqst_1").parse(result_of({"status": "success", "body": body}))
    assert info.value.request_id == "infr_rqst_1"


def test_create_without_requests_is_unexpected(api: ThetaAPI) -> None:
    body = {"status": "success", "body": {"infer_requests": [], "model_quotas": []}}
    with pytest.raises(UnexpectedResponseError):
        api.submit("flux", {"prompt": "p"}).parse(result_of(body))


def test_error_body_message_is_quoted(api: ThetaAPI) -> None:
    call = api.get_request("infr_rqst_1")
    error = api.map_error(call, result_of({"status": "error", "message": "10 minute quota reached"}, 429))
    assert isinstance(error, RateLimitError)
    assert "10 minute quota reached" in str(error)
    capacity = api.map_error(call, result_of({"status": "error", "message": "No instances available"}, 409))
    assert isinstance(capacity, ServerError)


# -- faults ----------------------------------------------------------------------------------------


async def test_capacity_409_retried_on_get(theta: Both, emu: EmulatorServer) -> None:
    req = (await theta.send(theta.api.create_request("flux", {"prompt": "p"}))).request
    script(emu, kind="5xx", status=409, path="/infer_request/infr_rqst_", method="GET")
    got = await theta.send(theta.api.get_request(req.id))
    assert got.id == req.id
    assert emu.state.snapshot()["faults_injected"] == {"theta.5xx": 1}
    assert requests(emu, "get_request") == 1  # the refused attempt never reached the handler


async def test_capacity_409_on_create_not_retried(theta: Both, emu: EmulatorServer) -> None:
    script(emu, kind="5xx", status=409, path="/infer_request/flux", method="POST")
    with pytest.raises(ServerError) as info:
        await theta.send(theta.api.create_request("flux", {"prompt": "p"}))
    assert info.value.http_status == 409
    assert submissions(emu) == 0


async def test_503_retried_on_get(theta: Both, emu: EmulatorServer) -> None:
    script(emu, kind="5xx", status=503, retry_after=0, path="/service/list", method="GET")
    script(emu, kind="5xx", status=500, path="/service/list", method="GET")
    page = await theta.send(theta.api.list_services())
    assert page.items
    assert emu.state.snapshot()["faults_injected"] == {"theta.5xx": 2}


async def test_429_on_create_retried_and_submitted_once(theta: Both, emu: EmulatorServer) -> None:
    script(emu, kind="429", retry_after=0, path="/infer_request/flux", method="POST")
    req = (await theta.send(theta.api.create_request("flux", {"prompt": "once"}))).request
    assert req.id.startswith("infr_rqst_")
    snap = emu.state.snapshot()
    assert snap["faults_injected"] == {"theta.429": 1}
    assert submissions(emu) == 1
    assert snap["duplicates"]["theta"] == {}


async def test_429_persisting_gives_rate_limit_error(theta: Both, emu: EmulatorServer) -> None:
    for _ in range(3):
        script(emu, kind="429", retry_after=0, path="/infer_request/flux", method="POST")
    with pytest.raises(RateLimitError) as info:
        await theta.send(theta.api.create_request("flux", {"prompt": "p"}))
    assert info.value.retry_after == 0.0
    assert submissions(emu) == 0


async def test_dropped_create_is_outcome_unknown_submitted_once(theta: Both, emu: EmulatorServer) -> None:
    script(emu, kind="drop", path="/infer_request/flux", method="POST")
    with pytest.raises(OutcomeUnknownError) as info:
        await theta.send(theta.api.create_request("flux", {"prompt": "dropped"}))
    assert info.value.operation == "create_request"
    assert submissions(emu) == 1
    assert emu.state.snapshot()["duplicates"]["theta"] == {}
    assert emu.state.keys["theta"] not in str(info.value)


async def test_dropped_get_is_retried(theta: Both, emu: EmulatorServer) -> None:
    req = (await theta.send(theta.api.create_request("flux", {"prompt": "p"}))).request
    script(emu, kind="drop", path="/infer_request/infr_rqst_", method="GET")
    assert (await theta.send(theta.api.get_request(req.id))).id == req.id
    assert requests(emu, "get_request") == 2


async def _aiter(both: Both, call: Any) -> Any:
    page = await both.send(call)
    for item in page.items:
        yield item


async def test_malformed_answer_is_unexpected(theta: Both, emu: EmulatorServer) -> None:
    script(emu, kind="malformed", path="/infer_request/flux", method="POST")
    with pytest.raises(UnexpectedResponseError, match="malformed JSON"):
        await theta.send(theta.api.create_request("flux", {"prompt": "p"}))
    assert submissions(emu) == 1  # the work was created; the answer was garbage
    # A garbled answer to a read is simply read again.
    script(emu, kind="malformed", path="/service/list", method="GET")
    assert [s async for s in _aiter(theta, theta.api.list_services())]


async def test_slow_answer_on_get_times_out_then_retries(api: ThetaAPI, emu: EmulatorServer) -> None:
    settings = HttpSettings(read_timeout=0.05, retry=RetrySettings(max_attempts=2, initial_delay=0))
    sync, aio = make_clients(api, emu.state.keys["theta"], settings)
    try:
        script(emu, kind="slow", seconds=0.2, path="/service/list", method="GET")
        assert (await aio.send(api.list_services())).items
        for _ in range(2):
            script(emu, kind="slow", seconds=0.2, path="/service/list", method="GET")
        with pytest.raises(VendorTimeoutError):
            sync.send(api.list_services())
    finally:
        sync.close()
        await aio.aclose()
    # Let the abandoned handlers finish so they do not touch the next test's counters.
    deadline = time.monotonic() + 5
    for _ in range(500):
        if requests(emu, "list_services") >= 4 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.01)
    assert requests(emu, "list_services") == 4


def test_clients_are_reusable_across_calls(api: ThetaAPI, emu: EmulatorServer) -> None:
    sync, _ = make_clients(api, emu.state.keys["theta"])
    with sync:
        for _ in range(3):
            sync.send(api.list_services(page=0, number=1))
    assert requests(emu, "list_services") == 3


# -- LLM predictions stream unless told not to -------------------------------------------------------


CHAT = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 16}


async def test_chat_input_is_sent_with_stream_false_and_answers_json(theta: Both) -> None:
    job = await theta.send(theta.api.submit("llama_3_1_70b", dict(CHAT), wait=5))
    assert job.state is JobState.SUCCEEDED
    assert job.output["choices"][0]["message"]["content"]
    sent = theta.api.create_request("llama_3_1_70b", dict(CHAT)).json
    assert sent["input"]["stream"] is False
    assert "stream" not in CHAT  # the caller's dict is not changed


def test_an_explicit_stream_false_is_kept_and_stream_true_refused_before_sending(api: ThetaAPI) -> None:
    assert api.create_request("llama_3_1_70b", {**CHAT, "stream": False}).json["input"]["stream"] is False
    with pytest.raises(InputValidationError, match='"stream": true'):
        api.create_request("llama_3_1_70b", {**CHAT, "stream": True})


def test_non_chat_input_gets_no_stream_key(api: ThetaAPI) -> None:
    assert "stream" not in api.create_request("flux", {"prompt": "p"}).json["input"]


def test_an_unasked_event_stream_is_a_clear_error(api: ThetaAPI) -> None:
    result = HttpResult(
        200,
        httpx.Headers({"content-type": "text/event-stream"}),
        b"data: {}\n\ndata: [DONE]\n\n",
        "https://x/y",
    )
    with pytest.raises(UnexpectedResponseError, match='"stream": false'):
        api.create_request("llama_3_1_70b", {"messages": []}).parse(result)


def test_emulator_streams_an_llm_request_that_does_not_say_stream_false(emu: EmulatorServer) -> None:
    auth = {"Authorization": f"Bearer {emu.state.keys['theta']}"}
    with httpx.Client(base_url=emu.vendor_url("theta"), headers=auth) as http:
        streamed = http.post("/infer_request/llama_3_1_70b", json={"input": CHAT})
        whole = http.post("/infer_request/llama_3_1_70b", json={"input": {**CHAT, "stream": False}})
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert streamed.text.rstrip().endswith("data: [DONE]")
    assert whole.json()["body"]["infer_requests"][0]["id"].startswith("infr_rqst_")
