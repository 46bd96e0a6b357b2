"""A vendor on 127.0.0.1 that answers something hostile: odd ids, echoed secrets, signed URLs.

- Ids that are paths (``../../x``, ``/etc/x``), carry NUL or newline, are longer than a file name
  may be, or are not ASCII: the paid result is kept, under ``output_path`` and nowhere else.
- Echoed credentials: the API key in a response header quoted by the error, an Authorization value
  or OmniTensor's session token in the error body: none reaches the exception.
- A signed media URL in a plain inference's output: httpx's INFO log line shows no query, whatever
  else was imported.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeinfer.clients.core import Credentials
from airflow_provider_edgeinfer.clients.infrai import InfraiAPI
from airflow_provider_edgeinfer.clients.omnitensor import OmniTensorAPI
from airflow_provider_edgeinfer.clients.retry import RetrySettings
from airflow_provider_edgeinfer.clients.transport import HttpSettings, SyncClient
from airflow_provider_edgeinfer.exceptions import EdgeInferError
from tests.security.hostile import (  # noqa: F401 (fixtures)
    PNG,
    PNG_B64,
    Answer,
    HostileServer,
    Seen,
    hostile_fixture,
)

KEY = "sk-hostile-0123456789abcdef"
SECRET = "omni-secret-fedcba9876543210"
SESSION_TOKEN = "sess-tok-5a5a5a5a5a5a5a5a"
SIGNATURE = "X-Amz-Signature=f00dfeed5ec7e7&sig=abcdef0123"
#: ``{tmp}`` is the test's own directory: should a writer regress, nothing lands outside it.
HOSTILE_IDS = [
    "../../escaped",
    "../sandbox/../../escaped-again",
    "{tmp}/absolute",
    "x/../../y.py",
    "nul\x00id",
    "new\nline\r\n",
    "L" * 300,
    "ü" * 200,
    "結果/../../結果",
    "..",
]
CONN_ID = "hostile_infrai"


class _TI:
    dag_id = "hostile"
    task_id = "infer"
    run_id = "manual__1"
    map_index = -1

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value)  # what reaches XCom must serialize
        self.pushed[key] = value


def _connect_infrai(monkeypatch: pytest.MonkeyPatch, server: HostileServer) -> None:
    conn = {"conn_type": "edgeinfer_infrai", "host": server.url, "password": KEY, "extra": {}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))


def _images_answer(request_id: str, media_url: str) -> Answer:
    # infrai's image answer, plus a linked image: both become files named from the answer's id.
    return Answer.json(
        {
            "id": request_id,
            "created": 1,
            "data": [{"b64_json": PNG_B64}, {"image_url": media_url, "revised_prompt": "a cat"}],
        }
    )


def _infer(tmp_path: Path, **kwargs: Any) -> tuple[dict[str, Any], _TI]:
    from airflow_provider_edgeinfer.operators.inference import InferenceOperator

    op = InferenceOperator(
        task_id="infer",
        conn_id=CONN_ID,
        service="images.generations",
        input={"model": "img-1", "prompt": "a cat"},
        deferrable=False,
        **kwargs,
    )
    ti = _TI()
    return op.execute({"ti": ti}), ti  # type: ignore[typeddict-item]


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("request_id", HOSTILE_IDS)
def test_a_hostile_request_id_keeps_the_result_inside_output_path(
    tmp_path: Path, hostile: HostileServer, monkeypatch: pytest.MonkeyPatch, request_id: str
) -> None:
    request_id = request_id.format(tmp=tmp_path)
    media = hostile.media("/m/x.py", b"#!/bin/sh\necho pwned\n") + "?" + SIGNATURE
    hostile.routes[("POST", "/v1/images/generations")] = lambda seen: _images_answer(request_id, media)
    _connect_infrai(monkeypatch, hostile)
    output_dir = tmp_path / "sandbox" / "out"

    result, ti = _infer(tmp_path, output_path=str(output_dir))

    files = _files(tmp_path)
    assert [p.parent for p in files] == [output_dir] * 3, files
    assert not any(p.suffix == ".py" for p in files)
    from airflow_provider_edgeinfer.outputs import safe_segment

    stem = safe_segment(request_id)
    written = json.loads((output_dir / f"{stem}.json").read_text())
    assert written["result"]["request_id"] == request_id
    assert (output_dir / f"{stem}_0.png").read_bytes() == PNG
    assert (output_dir / f"{stem}_1.bin").read_bytes() == b"#!/bin/sh\necho pwned\n"
    assert result["request_id"] == request_id
    assert result["output_path"] == f"file://{output_dir}/{stem}.json"
    assert ti.pushed["request_id"] == request_id
    assert "f00dfeed" not in json.dumps(result) + json.dumps(written)
    assert [s.path for s in hostile.seen if s.method == "POST"] == ["/v1/images/generations"]


@pytest.mark.parametrize("custom_id", HOSTILE_IDS)
def test_batch_media_names_stay_inside_the_media_directory(
    tmp_path: Path, hostile: HostileServer, custom_id: str
) -> None:
    from airflow_provider_edgeinfer.batch.inputs import BatchItem
    from airflow_provider_edgeinfer.batch.results import ResultsWriter
    from airflow_provider_edgeinfer.storage import as_storage_path

    custom_id = custom_id.format(tmp=tmp_path)
    media = hostile.media("/m/run.py", b"media") + "?" + SIGNATURE
    item = BatchItem(index=7, custom_id=custom_id, input={}, ref="inputs.jsonl:8")
    with ResultsWriter(as_storage_path(tmp_path / "out"), 8) as writer:
        output, files = writer.media(item, {"image_b64": PNG_B64, "nested": {"image_url": media}})
    assert files == 2
    media_files = _files(tmp_path / "out" / "media")
    assert len(media_files) == 2 and all(p.parent == tmp_path / "out" / "media" for p in media_files)
    assert {p.name for p in _files(tmp_path)} == {"results.jsonl", "failures.jsonl"} | {
        p.name for p in media_files
    }
    assert all(p.name.startswith("000007_") and p.suffix in (".png", ".bin") for p in media_files)
    assert output["nested"]["image_url"] == f"{hostile.url}/m/run.py?***"


# -- echoed secrets -------------------------------------------------------------------------------


def _no_retries() -> HttpSettings:
    return HttpSettings(retry=RetrySettings(max_attempts=1))


def test_a_key_echoed_in_the_request_id_header_and_body_is_scrubbed(hostile: HostileServer) -> None:
    def refuse(seen: Seen) -> Answer:
        sent = seen.headers["Authorization"]
        body = {"error": {"message": f"refused {sent}; key {KEY}", "code": f"bad_key_{KEY}"}}
        return Answer.json(body, 400, {"x-request-id": f"req-{KEY}"})

    hostile.routes[("POST", "/v1/chat/completions")] = refuse
    client = SyncClient(InfraiAPI(hostile.url), Credentials.of(KEY), _no_retries())
    call = client.api.chat_completion({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    with pytest.raises(EdgeInferError) as raised:
        client.send(call)
    error = raised.value
    assert error.message == "refused Bearer ***; key *** (vendor request id req-***)"
    assert error.code == "bad_key_***"
    assert KEY not in str(error) + repr(error) + str(error.code)


@pytest.mark.parametrize(
    ("echo", "shown"),
    [
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic ***"),
        ("Authorization: Token tok_0123456789", "Authorization: Token ***"),
    ],
)
def test_authorization_values_echoed_in_an_error_body_are_masked(
    hostile: HostileServer, echo: str, shown: str
) -> None:
    hostile.routes[("POST", "/v1/chat/completions")] = lambda seen: Answer(401, echo.encode())
    client = SyncClient(InfraiAPI(hostile.url), Credentials.of(KEY), _no_retries())
    call = client.api.chat_completion({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    with pytest.raises(EdgeInferError) as raised:
        client.send(call)
    assert raised.value.message == shown


def test_an_unparsable_retry_after_still_maps_to_a_rate_limit(hostile: HostileServer) -> None:
    from airflow_provider_edgeinfer.exceptions import RateLimitError

    hostile.routes[("POST", "/v1/chat/completions")] = lambda seen: Answer.json(
        {"error": {"message": "slow down"}}, 429, {"Retry-After": "Wed, 21 Oct 99999999999 07:28:00 GMT"}
    )
    client = SyncClient(InfraiAPI(hostile.url), Credentials.of(KEY), _no_retries())
    call = client.api.chat_completion({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    with pytest.raises(RateLimitError) as raised:
        client.send(call)
    assert raised.value.retry_after is None


def _omnitensor(server: HostileServer) -> None:
    server.routes[("POST", "/auth/token")] = lambda seen: Answer.json(
        {"token": SESSION_TOKEN, "expires_in": 3600}
    )

    def refuse(seen: Seen) -> Answer:
        body = {
            "error": {
                "code": f"TOKEN_{SESSION_TOKEN}",
                "message": f"session {SESSION_TOKEN} may not run this model (key {KEY}, secret {SECRET})",
            }
        }
        return Answer.json(body, 400)

    server.routes[("POST", "/ai/models/m1/inference")] = refuse


def test_omnitensor_session_token_echoed_in_an_error_is_scrubbed(hostile: HostileServer) -> None:
    _omnitensor(hostile)
    client = SyncClient(OmniTensorAPI(hostile.url), Credentials.of(KEY, SECRET), _no_retries())
    with pytest.raises(EdgeInferError) as raised:
        client.send(client.api.inference("m1", {"text": "hi"}))
    error = raised.value
    assert error.message == "session *** may not run this model (key ***, secret ***)"
    assert error.code == "TOKEN_***"
    assert [s.path for s in hostile.seen] == ["/auth/token", "/ai/models/m1/inference"]
    assert hostile.seen[1].headers["Authorization"] == f"Bearer {SESSION_TOKEN}"


async def test_omnitensor_session_token_is_scrubbed_on_the_async_client_too(hostile: HostileServer) -> None:
    from airflow_provider_edgeinfer.clients.transport import AsyncClient

    _omnitensor(hostile)
    async with AsyncClient(OmniTensorAPI(hostile.url), Credentials.of(KEY, SECRET), _no_retries()) as client:
        with pytest.raises(EdgeInferError) as raised:
            await client.send(client.api.inference("m1", {"text": "hi"}))
    assert SESSION_TOKEN not in str(raised.value)
    assert raised.value.message.startswith("session *** may not run this model")


# -- signed media URLs in httpx's log -------------------------------------------------------------


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_httpx_log_of_a_plain_inference_shows_no_signature(
    tmp_path: Path, hostile: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    media = hostile.media("/m/a.png", PNG) + "?" + SIGNATURE
    hostile.routes[("POST", "/v1/images/generations")] = lambda seen: _images_answer("img_1", media)
    _connect_infrai(monkeypatch, hostile)
    # Airflow configures logging on first use, dropping the handlers of the loggers it names (httpx
    # among them, at WARNING): one inference first, then listen at INFO as a user who raised it would.
    _infer(tmp_path, output_path=str(tmp_path / "warm-up"))
    logger = logging.getLogger("httpx")
    handler = _Lines()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        _infer(tmp_path, output_path=str(tmp_path / "out"))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert any(f"GET {hostile.url}/m/a.png?*** " in line for line in handler.lines), handler.lines
    assert "f00dfeed" not in "\n".join(handler.lines)


_CHILD = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s %(message)s")
from airflow_provider_edgeinfer.clients.core import Credentials
from airflow_provider_edgeinfer.clients.infrai import InfraiAPI
from airflow_provider_edgeinfer.clients.transport import SyncClient
client = SyncClient(InfraiAPI(sys.argv[1]), Credentials.of("sk-child-key"))
client.send(client.api.download(sys.argv[2]))
assert "airflow_provider_edgeinfer.clients.presigned" not in sys.modules, "the test needs no upload module"
print("DONE")
"""


def test_the_log_filter_needs_no_upload_module(hostile: HostileServer) -> None:
    # In a fresh interpreter: only the HTTP layer is imported, never the upload module that once
    # installed the filter.
    media = hostile.media("/m/a.png", PNG) + "?" + SIGNATURE
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, hostile.url, media],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    assert f"httpx HTTP Request: GET {hostile.url}/m/a.png?*** " in child.stdout
    assert "f00dfeed" not in child.stdout + child.stderr
