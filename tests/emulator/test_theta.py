"""The Theta emulator as a client sees it on the wire (plain httpx, no provider client)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from airflow_provider_edgeinfer.emulator import media
from airflow_provider_edgeinfer.emulator.server import EmulatorServer
from airflow_provider_edgeinfer.emulator.state import Timing
from airflow_provider_edgeinfer.emulator.theta import MAX_INPUT_BYTES


@pytest.fixture
def emu(edgeinfer_emulator: EmulatorServer) -> EmulatorServer:
    return edgeinfer_emulator


@pytest.fixture
def key(emu: EmulatorServer) -> str:
    return emu.state.keys["theta"]


@pytest.fixture
def http(emu: EmulatorServer, key: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=emu.vendor_url("theta"), headers={"Authorization": f"Bearer {key}"}, timeout=10
    ) as c:
        yield c


@pytest.fixture
def anon(emu: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.vendor_url("theta"), timeout=10) as c:
        yield c


def create(
    http: httpx.Client, alias: str = "flux", input: dict[str, Any] | None = None, **kw: Any
) -> dict[str, Any]:
    response = http.post(
        f"/infer_request/{alias}", json={"input": input or {"prompt": "a cat"}, "wait": 0}, **kw
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success"
    return body["body"]["infer_requests"][0]  # type: ignore[no-any-return]


def get(http: httpx.Client, request_id: str) -> dict[str, Any]:
    response = http.get(f"/infer_request/{request_id}")
    assert response.status_code == 200, response.text
    listed = response.json()["body"]["infer_requests"]  # the create call's envelope, as the live API
    assert len(listed) == 1
    return listed[0]  # type: ignore[no-any-return]


# -- auth ------------------------------------------------------------------------------------------


def test_bearer_key_accepted(http: httpx.Client) -> None:
    assert create(http)["id"].startswith("infr_rqst_")


def test_x_theta_api_key_accepted(anon: httpx.Client, key: str) -> None:
    assert create(anon, headers={"x-theta-api-key": key})["state"]


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"x-theta-api-key": "wrong"}, {"Authorization": "Basic abc"}],
)
def test_wrong_or_missing_key_is_401(
    anon: httpx.Client, emu: EmulatorServer, headers: dict[str, str]
) -> None:
    for response in (
        anon.post("/infer_request/flux", json={"input": {"prompt": "x"}}, headers=headers),
        anon.get("/infer_request/infr_rqst_x", headers=headers),
        anon.get("/infer_request/prj_emulator/list", headers=headers),
        anon.post("/infer_request/whisper/input_presigned_urls", headers=headers),
    ):
        assert response.status_code == 401
        assert response.json() == {"status": "error", "message": "invalid or missing API key"}
    assert emu.state.snapshot()["submissions"]["theta"] == {}


def test_service_list_without_auth(anon: httpx.Client) -> None:
    response = anon.get("/service/list")
    assert response.status_code == 200
    body = response.json()["body"]
    assert len(body["services"]) == body["pagination"]["total"] >= 6
    service = body["services"][0]
    assert {"id", "name", "alias", "state", "default_prediction", "predictions"} <= set(service)


def test_service_list_pages(anon: httpx.Client) -> None:
    everything = anon.get("/service/list").json()["body"]["services"]
    first = anon.get("/service/list", params={"page": 0, "number": 4}).json()["body"]
    second = anon.get("/service/list", params={"page": 1, "number": 4}).json()["body"]
    assert first["pagination"] == {"page": 0, "number": 4, "total": len(everything)}
    assert first["services"] + second["services"] == everything


# -- jobs over the clock ---------------------------------------------------------------------------


def test_state_transitions_follow_the_clock(http: httpx.Client, emu: EmulatorServer) -> None:
    emu.state.timing["theta"] = Timing(queued=10, running=10)
    job = create(http)
    assert job["state"] == "pending"
    assert job["process_time"] is None
    emu.state.clock.advance(10)
    running = get(http, job["id"])
    assert running["state"] == "processing"
    assert running["process_time"] is not None
    assert running["output"] is None
    emu.state.clock.advance(10)
    done = get(http, job["id"])
    assert done["state"] == "success"
    assert done["success_time"] is not None
    assert done["output"]["image_url"].startswith(emu.url + "/_media/")
    assert done["cost_usd"]["output"] > 0
    assert done["error_message"] is None


def test_job_failure_rate_one_gives_error(http: httpx.Client, emu: EmulatorServer) -> None:
    emu.state.faults["theta"].update({"job_failure_rate": 1})
    job = create(http)
    done = get(http, job["id"])
    assert done["state"] == "error"
    assert done["output"] is None
    assert done["error_message"]
    assert done["error_time"] is not None


def test_output_is_stable_across_reads(http: httpx.Client) -> None:
    job = create(http)
    assert get(http, job["id"])["output"] == get(http, job["id"])["output"]


def test_wait_and_prediction_as_query_parameters(http: httpx.Client, emu: EmulatorServer) -> None:
    emu.state.timing["theta"] = Timing(queued=0, running=0.02)
    response = http.post(
        "/infer_request/image_to_image",
        params={"wait": 5, "prediction": "background_removal"},
        json={"input": {"image_filename": "upl_x"}},
    )
    job = response.json()["body"]["infer_requests"][0]
    assert job["prediction"] == "background_removal"
    assert job["state"] == "success"


def test_llm_completion_output(http: httpx.Client) -> None:
    messages = [{"role": "user", "content": "summarise the quarterly call"}]
    job = create(http, "llama_3_1_70b", {"messages": messages, "max_tokens": 10, "stream": False})
    output = get(http, job["id"])["output"]
    assert output["object"] == "chat.completion"
    assert "quarterly" in output["choices"][0]["message"]["content"]


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/infer_request/whisper", {"input": {"language": "en"}}, 400),
        ("/infer_request/flux", {"input": "a cat"}, 400),
        ("/infer_request/nosuchservice", {"input": {}}, 404),
        ("/infer_request/flux/nosuchprediction", {"input": {"prompt": "x"}}, 404),
    ],
)
def test_create_refusals(http: httpx.Client, emu: EmulatorServer, path: str, body: Any, status: int) -> None:
    response = http.post(path, json=body)
    assert response.status_code == status
    assert response.json()["status"] == "error"
    assert response.json()["message"]
    assert emu.state.snapshot()["submissions"]["theta"] == {}


def test_invalid_json_body_is_400(http: httpx.Client) -> None:
    response = http.post(
        "/infer_request/flux", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400


def test_input_size_limit_is_413(http: httpx.Client, emu: EmulatorServer) -> None:
    big = {"input": {"prompt": "x" * (MAX_INPUT_BYTES + 1)}}
    response = http.post("/infer_request/flux", json=big)
    assert response.status_code == 413
    assert emu.state.snapshot()["submissions"]["theta"] == {}


def test_unknown_request_is_404(http: httpx.Client) -> None:
    response = http.get("/infer_request/infr_rqst_missing")
    assert response.status_code == 404
    assert "infr_rqst_missing" in response.json()["message"]


def test_submission_counter_sees_duplicates(http: httpx.Client, emu: EmulatorServer) -> None:
    create(http, input={"prompt": "same"})
    create(http, input={"prompt": "same"})
    create(http, input={"prompt": "other"})
    snap = emu.state.snapshot()
    assert sorted(snap["submissions"]["theta"].values()) == [1, 2]
    assert list(snap["duplicates"]["theta"].values()) == [2]
    assert snap["requests"]["theta.create_request"] == 3


# -- listing and cancel ----------------------------------------------------------------------------


def test_listing_newest_first_with_pagination(http: httpx.Client, emu: EmulatorServer) -> None:
    ids = []
    for i in range(3):
        ids.append(create(http, input={"prompt": f"p{i}"})["id"])
        emu.state.clock.advance(0.001)
    body = http.get("/infer_request/prj_emulator/list", params={"page": 0, "number": 2}).json()["body"]
    assert [r["id"] for r in body["infer_requests"]] == [ids[2], ids[1]]
    assert body["pagination"] == {"page": 0, "number": 2, "total": 3}
    rest = http.get("/infer_request/prj_emulator/list", params={"page": 1, "number": 2}).json()["body"]
    assert [r["id"] for r in rest["infer_requests"]] == [ids[0]]


def test_listing_unknown_project_is_404(http: httpx.Client) -> None:
    assert http.get("/infer_request/prj_nope/list").status_code == 404


def test_cancel_counts_only_real_cancellations(http: httpx.Client, emu: EmulatorServer) -> None:
    emu.state.timing["theta"] = Timing(queued=100, running=100)
    pending = create(http)
    before = time.time()
    response = http.post(f"/infer_request/{pending['id']}/cancel")
    # Wall-clock stamp of the cancel, whatever the emulator's movable clock says: latency is read from it.
    assert before <= emu.state.snapshot(brief=True)["last_cancelled_at"]["theta"] <= time.time()
    assert response.json()["body"] == {"changes": {"state": {"previous": "pending", "current": "cancelled"}}}
    assert get(http, pending["id"])["state"] == "cancelled"
    emu.state.timing["theta"] = Timing(queued=0, running=0)
    finished = create(http)
    again = http.post(f"/infer_request/{finished['id']}/cancel").json()["body"]
    assert again == {"changes": {"state": {"previous": "success", "current": "success"}}}
    http.post(f"/infer_request/{pending['id']}/cancel")  # already cancelled: not counted twice
    snap = emu.state.snapshot()
    assert snap["cancellations"] == {"theta": 1}
    assert snap["requests"]["theta.cancel_request"] == 3
    assert "theta.create_request" in snap["requests"]
    assert http.post("/infer_request/infr_rqst_missing/cancel").status_code == 404


# -- presigned uploads and media -------------------------------------------------------------------


def presign(http: httpx.Client, alias: str = "whisper") -> dict[str, Any]:
    response = http.post(
        f"/infer_request/{alias}/input_presigned_urls", json={"input_fields": ["audio_filename"]}
    )
    assert response.status_code == 200
    return response.json()["body"]["audio_filename"]  # type: ignore[no-any-return]


def test_presigned_upload_round_trip(http: httpx.Client, emu: EmulatorServer) -> None:
    entry = presign(http)
    audio = media.wav(0.1)
    put = httpx.put(
        entry["presigned_url"], content=audio, headers={"Content-Type": "application/octet-stream"}
    )
    assert put.status_code == 200
    assert put.headers["etag"] == f'"{hashlib.sha256(audio).hexdigest()[:32]}"'
    blob = emu.state.blobs[entry["filename"]]
    assert (blob.size, blob.sha256) == (len(audio), hashlib.sha256(audio).hexdigest())
    assert emu.state.read_blob(entry["filename"]) == audio
    assert emu.state.snapshot()["requests"]["storage.put"] == 1
    blob.path.unlink()  # the transcript comes from the upload's digest, not its bytes read back
    job = create(http, "whisper", {"audio_filename": entry["filename"], "language": "fr"})
    assert get(http, job["id"])["output"]["text"] == media.transcript(audio, "fr")


def test_the_same_bytes_uploaded_again_and_submitted_again_count_as_resent_content(
    http: httpx.Client, emu: EmulatorServer
) -> None:
    names = []
    for audio in (media.wav(0.1), media.wav(0.1), media.wav(0.2)):
        entry = presign(http)
        assert httpx.put(entry["presigned_url"], content=audio).status_code == 200
        names.append(entry["filename"])
    for name in names:
        create(http, "whisper", {"audio_filename": name})
    create(http, "flux", {"prompt": "no file"})
    counters = httpx.get(f"{emu.url}/_emulator/counters?brief=1").json()
    # Each upload has a fresh name: by names nothing was submitted twice, by bytes the first was.
    assert counters["resent"].get("theta", 0) == 0
    assert counters["resent_content"] == {"theta": 1}
    emu.state.reset()
    assert emu.state.snapshot()["resent_content"] == {}


def test_presign_without_body_covers_every_file_input(http: httpx.Client) -> None:
    body = http.post("/infer_request/image_to_image/background_removal/input_presigned_urls").json()["body"]
    assert set(body) == {"image_filename"}


def _tamper(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    query = {k: v for k, v in query.items() if v}
    return parts._replace(query=urlencode(query)).geturl()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"signature": "0" * 64}, "bad signature"),
        ({"expires": "9999999999"}, "bad signature"),
        ({"expires": "soon"}, "bad expiry"),
        ({"signature": ""}, "missing signature"),
    ],
)
def test_presigned_put_with_bad_signature_is_403(
    http: httpx.Client, emu: EmulatorServer, changes: dict[str, str], reason: str
) -> None:
    entry = presign(http)
    put = httpx.put(_tamper(entry["presigned_url"], **changes), content=b"data")
    assert put.status_code == 403
    assert reason in put.text
    assert entry["filename"] not in emu.state.blobs


def test_presigned_put_to_another_blob_is_403(http: httpx.Client) -> None:
    entry = presign(http)
    other = entry["presigned_url"].replace(entry["filename"], "upl_someoneelse")
    assert httpx.put(other, content=b"data").status_code == 403


def test_presigned_put_expired_is_403(http: httpx.Client, emu: EmulatorServer) -> None:
    emu.state.presign_ttl = -10
    entry = presign(http)
    put = httpx.put(entry["presigned_url"], content=b"data")
    assert put.status_code == 403
    assert "expired" in put.text


def test_media_is_served(http: httpx.Client, emu: EmulatorServer) -> None:
    job = create(http, "flux", {"prompt": "a lighthouse", "width": 32, "height": 16})
    url = get(http, job["id"])["output"]["image_url"]
    image = httpx.get(url)
    assert image.status_code == 200
    assert image.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert int.from_bytes(image.content[16:20], "big") == 32  # IHDR width
    assert int.from_bytes(image.content[20:24], "big") == 16
    speech = create(http, "kokoro_82m", {"text": "hello", "voice": "af"})
    wav = httpx.get(get(http, speech["id"])["output"]["audio_url"])
    assert wav.content[:4] == b"RIFF"
    assert httpx.get(f"{emu.url}/_media/media_nope.png").status_code == 404
    assert emu.state.snapshot()["requests"]["storage.get"] == 2


# -- injected faults on the wire -------------------------------------------------------------------


def test_rate_429_refuses_with_retry_after(http: httpx.Client, emu: EmulatorServer) -> None:
    emu.state.faults["theta"].update({"rate_429": 1, "retry_after": 7})
    response = http.post("/infer_request/flux", json={"input": {"prompt": "x"}})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7.0"
    assert response.json()["status"] == "error"
    assert emu.state.snapshot()["submissions"]["theta"] == {}
    # Control endpoints are never faulted.
    assert httpx.get(f"{emu.url}/_emulator/counters").status_code == 200


def test_rate_5xx_gives_503_with_retry_after(http: httpx.Client, emu: EmulatorServer) -> None:
    emu.state.faults["theta"].update({"rate_5xx": 1})
    response = http.get("/service/list")
    assert response.status_code == 503
    assert "retry-after" in response.headers


def test_scripted_drop_creates_work_then_breaks_the_answer(http: httpx.Client, emu: EmulatorServer) -> None:
    emu.state.scripted["theta"].append({"kind": "drop", "path": "/infer_request/flux", "method": "POST"})
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/infer_request/flux", json={"input": {"prompt": "x"}})
    assert sum(emu.state.snapshot()["submissions"]["theta"].values()) == 1
    assert create(http)["id"]  # the script is consumed: the next call is normal


def test_scripted_malformed_cuts_the_body(http: httpx.Client, emu: EmulatorServer) -> None:
    emu.state.scripted["theta"].append({"kind": "malformed", "path": "/service/list"})
    response = http.get("/service/list")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_scripted_fault_matches_method_and_path(http: httpx.Client, emu: EmulatorServer) -> None:
    emu.state.scripted["theta"].append(
        {"kind": "429", "retry_after": 0, "path": "/service/list", "method": "POST"}
    )
    assert http.get("/service/list").status_code == 200  # wrong method: not consumed
    assert http.post("/infer_request/flux", json={"input": {"prompt": "x"}}).status_code == 200  # wrong path
    assert len(emu.state.scripted["theta"]) == 1
