"""The batch fan-out's lean aiohttp sender sends exactly what the httpx shells send.

The fan-out (:mod:`airflow_provider_edgeinfer.batch.fanout`) sends each item's
``api.submit(...)`` through :func:`~airflow_provider_edgeinfer.batch.fanout.sender_for`:
the :class:`~airflow_provider_edgeinfer.clients.aiosend.LeanSender` when it qualifies, else the httpx
``AsyncClient``. The lean sender may differ from the httpx shells only in the HTTP library under the
same :class:`~airflow_provider_edgeinfer.clients.core.Call`, so every vendor-neutral call of every
vendor (submit of every service kind, status, cancel, fetch_output) goes through three stacks (the
httpx ``SyncClient``, the ``AsyncClient`` as the fan-out builds it, the lean sender) to the emulator
behind a recording front on 127.0.0.1, and the recorded requests must be equal. OctoAI's
``<name>.octoai.test``-style deployment hosts are served over TLS on loopback (a CA made for the run,
and a resolver that answers the reserved ``.test`` names with 127.0.0.1). Host guard decisions, the
errors raised for the same failure and the timeouts and limits taken from one ``HttpSettings`` are
compared as well.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from airflow_provider_edgeinfer.batch.fanout import sender_for, single_attempt
from airflow_provider_edgeinfer.clients.aiosend import LeanSender, supports
from airflow_provider_edgeinfer.clients.core import Call, Credentials, InlineFile, Job, VendorAPI
from airflow_provider_edgeinfer.clients.infrai import InfraiAPI
from airflow_provider_edgeinfer.clients.octoai import OctoAIAPI
from airflow_provider_edgeinfer.clients.omnitensor import OmniTensorAPI
from airflow_provider_edgeinfer.clients.retry import RetrySettings
from airflow_provider_edgeinfer.clients.theta import ThetaAPI
from airflow_provider_edgeinfer.clients.transport import AsyncClient, HttpSettings, SyncClient
from airflow_provider_edgeinfer.emulator.app import create_app
from airflow_provider_edgeinfer.emulator.state import (
    DEFAULT_KEYS,
    DEFAULT_OMNITENSOR_SECRET,
    VENDORS,
    EmulatorState,
    Timing,
)
from airflow_provider_edgeinfer.exceptions import ConfigurationError, EdgeInferError

#: The test domain of host-style OctoAI deployments; every ``.test`` name resolves to 127.0.0.1 here.
DEPLOY_DOMAIN = "octoai.test"

#: The only request header left out of the comparison. httpx writes ``Connection: keep-alive``,
#: aiohttp leaves it out because HTTP/1.1 keeps connections alive unless told otherwise: the same
#: request, and connection reuse is the pool's business, not the vendor's. Everything else (Host,
#: User-Agent, Accept, Accept-Encoding, Content-Length, Content-Type, Authorization, the vendor's
#: own headers) and the body must be byte-for-byte the same.
FRAMING_HEADERS = {"connection"}

STACKS = ("sync", "async", "lean")


# -- the recording proxy --------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass
class Recorder:
    """An ASGI app in front of the emulator that records each request as it arrived."""

    app: Any
    requests: list[Recorded] = field(default_factory=list)
    #: Answers given instead of the emulator's, first in first out: (status, headers, body).
    script: list[tuple[int, list[tuple[str, str]], bytes]] = field(default_factory=list)
    #: Session tokens the emulator issued, in order, so their use can be compared across stacks.
    tokens: list[str] = field(default_factory=list)
    #: ``host:port`` of the plain server, where the emulator's answers for deployments point.
    plain_host: str = ""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        headers = tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"])
        self.requests.append(
            Recorded(scope["method"], scope["path"], scope["query_string"].decode(), headers, body)
        )
        if self.script:
            status, answer_headers, content = self.script.pop(0)
            raw = [(k.encode(), v.encode()) for k, v in answer_headers]
            raw.append((b"content-length", str(len(content)).encode()))
            await send({"type": "http.response.start", "status": status, "headers": raw})
            await send({"type": "http.response.body", "body": content})
            return
        host = dict(headers).get("host", "").split(":")[0]
        if host.endswith("." + DEPLOY_DOMAIN):
            # A host-style deployment: the emulator serves it under a path.
            name = host.removesuffix("." + DEPLOY_DOMAIN)
            path = f"/octoai/deployments/{name}{scope['path']}"
            # The emulator builds its poll URL from the Host it was asked on: the async host it is.
            rest = [(k, v) for k, v in scope["headers"] if k.lower() != b"host"]
            host_header = [(b"host", self.plain_host.encode())]
            scope = {**scope, "path": path, "raw_path": path.encode(), "headers": host_header + rest}
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        answer: list[bytes] = []

        async def keep(message: Any) -> None:
            if scope["path"].endswith("/auth/token") and message["type"] == "http.response.body":
                answer.append(message.get("body", b""))
                if not message.get("more_body"):
                    self.tokens.append(json.loads(b"".join(answer))["token"])
            await send(message)

        await self.app(scope, replay, keep)


def _uvicorn(app: Any, **tls: Any) -> tuple[Any, threading.Thread, int]:
    import uvicorn

    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", access_log=False, **tls
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the recording server did not start"
        time.sleep(0.01)
    return server, thread, server.servers[0].sockets[0].getsockname()[1]


def _test_ca(directory: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) for ``*.octoai.test``, made for this run."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "conformance test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"*.{DEPLOY_DOMAIN}")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(f"*.{DEPLOY_DOMAIN}"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "ca.pem", directory / "server.pem", directory / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@dataclass
class Stand:
    recorder: Recorder
    url: str
    tls_port: int

    def apis(self) -> dict[str, VendorAPI]:
        root = self.url
        return {
            "theta": ThetaAPI(f"{root}/theta", project_id="prj_emulator"),
            "octoai": OctoAIAPI(
                f"{root}/octoai",
                f"{root}/octoai",
                f"{root}/octoai/text",
                f"https://{{name}}.{DEPLOY_DOMAIN}:{self.tls_port}",
            ),
            "infrai": InfraiAPI(f"{root}/infrai"),
            "omnitensor": OmniTensorAPI(f"{root}/omnitensor"),
        }


@pytest.fixture(scope="module")
def stand(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stand]:
    state = EmulatorState()
    for vendor in VENDORS:
        state.timing[vendor] = Timing(queued=0.0, running=0.0)
    recorder = Recorder(create_app(state))
    ca, cert, key = _test_ca(tmp_path_factory.mktemp("tls"))
    plain, plain_thread, port = _uvicorn(recorder)
    recorder.plain_host = f"127.0.0.1:{port}"
    tls, tls_thread, tls_port = _uvicorn(recorder, ssl_certfile=str(cert), ssl_keyfile=str(key))
    patch = pytest.MonkeyPatch()
    # Every stack builds its TLS context with httpx.create_ssl_context, which honours SSL_CERT_FILE.
    patch.setenv("SSL_CERT_FILE", str(ca))
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        patch.delenv(name, raising=False)
    real = socket.getaddrinfo

    def loopback_dns(host: Any, *args: Any, **kwargs: Any) -> Any:
        # The reserved .test names are answered with loopback: no request (nor a DNS query for one of
        # them) leaves this machine, even one the host guard should have refused and did not.
        if isinstance(host, str) and host.endswith(".test"):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    patch.setattr(socket, "getaddrinfo", loopback_dns)
    try:
        yield Stand(recorder, f"http://127.0.0.1:{port}", tls_port)
    finally:
        patch.undo()
        for server, thread in ((plain, plain_thread), (tls, tls_thread)):
            server.should_exit = True
            thread.join(timeout=10)
        state.close()


CREDENTIALS = {
    "theta": Credentials.of(DEFAULT_KEYS["theta"]),
    "octoai": Credentials.of(DEFAULT_KEYS["octoai"]),
    "infrai": Credentials.of(DEFAULT_KEYS["infrai"]),
    "omnitensor": Credentials.of(DEFAULT_KEYS["omnitensor"], DEFAULT_OMNITENSOR_SECRET),
}


def fan_out_settings(**kwargs: Any) -> HttpSettings:
    """What the fan-out hands its sender: one attempt per send, a pool as wide as the fan-out."""
    return single_attempt(HttpSettings(retry=RetrySettings(initial_delay=0.0), **kwargs), 8)


async def send_with(
    stack: str, api: VendorAPI, credentials: Credentials, http: HttpSettings, call: Call[Any]
) -> Any:
    if stack == "sync":
        with SyncClient(api, credentials, http) as client:
            return client.send(call)
    if stack == "async":
        async with AsyncClient(api, credentials, http) as aclient:
            return await aclient.send(call)
    async with LeanSender(api, credentials, http.max_connections, settings=http) as sender:
        return await sender.send(call)


def normalised(recorded: list[Recorded], tokens: list[str]) -> list[Recorded]:
    """The requests with framing headers left out and session tokens named by their order."""
    out = []
    for request in recorded:
        headers = []
        body = request.body
        content_type = dict(request.headers).get("content-type", "")
        if "boundary=" in content_type:
            # A multipart boundary is drawn at random for every request.
            boundary = content_type.split("boundary=", 1)[1]
            body = body.replace(boundary.encode(), b"<boundary>")
        for name, value in request.headers:
            if "boundary=" in value:
                value = value.replace(value.split("boundary=", 1)[1], "<boundary>")
            if name in FRAMING_HEADERS:
                continue
            for index, token in enumerate(tokens):
                value = value.replace(token, f"<session token {index}>")
            headers.append((name, value))
        # Header order carries no meaning in HTTP (and no request here repeats a header).
        out.append(Recorded(request.method, request.path, request.query, tuple(sorted(headers)), body))
    return out


async def record_each_stack(
    stand: Stand, vendor: str, make: Callable[[VendorAPI], Call[Any]]
) -> tuple[dict[str, list[Recorded]], dict[str, Any], Call[Any]]:
    """What each stack sent for the same call (built once, by the real API class), and its answer."""
    api = stand.apis()[vendor]
    call = make(api)
    sent: dict[str, list[Recorded]] = {}
    answers: dict[str, Any] = {}
    for stack in STACKS:
        stand.recorder.requests.clear()
        stand.recorder.tokens.clear()
        answers[stack] = await send_with(stack, api, CREDENTIALS[vendor], fan_out_settings(), call)
        sent[stack] = normalised(stand.recorder.requests, stand.recorder.tokens)
    return sent, answers, call


# -- the calls -------------------------------------------------------------------------------------

SMALL_IMAGE = {"prompt": "a lighthouse at dawn", "width": 16, "height": 8}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "summarize the numbers"}]}
AUDIO = InlineFile("a.wav", b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(64), "audio/wav")


def _submitted(stand: Stand, vendor: str, service: str, input: dict[str, Any]) -> Job:
    api = stand.apis()[vendor]
    with SyncClient(api, CREDENTIALS[vendor], fan_out_settings()) as client:
        job: Job = client.send(api.submit(service, input))
        status = api.status(job.request_id)
        for _ in range(50):
            if job.terminal or status is None:
                break
            job = client.send(status)
    return job


#: (vendor, what, builder): ``builder(stand, api)`` makes the call; every kind the vendor has.
CASES: list[tuple[str, str, Callable[[Stand, Any], Call[Any] | None]]] = [
    ("theta", "submit", lambda s, api: api.submit("flux", {"prompt": "p"})),
    ("theta", "submit-with-prediction", lambda s, api: api.submit("llama_3_1_70b", dict(CHAT))),
    (
        "theta",
        "status",
        lambda s, api: api.status(_submitted(s, "theta", "flux", {"prompt": "p"}).request_id),
    ),
    (
        "theta",
        "cancel",
        lambda s, api: api.cancel(_submitted(s, "theta", "flux", {"prompt": "q"}).request_id),
    ),
    ("octoai", "submit-engine", lambda s, api: api.submit("generate/sdxl", SMALL_IMAGE)),
    (
        "octoai",
        "submit-deployment-host",
        lambda s, api: api.submit("whisper-conf", api.whisper_input(b"abc")),
    ),
    ("octoai", "submit-text", lambda s, api: api.submit("chat/completions", CHAT)),
    (
        "octoai",
        "status",
        lambda s, api: api.status(_submitted(s, "octoai", "generate/sdxl", SMALL_IMAGE).request_id),
    ),
    (
        "octoai",
        "fetch_output",
        lambda s, api: api.fetch_output(_submitted(s, "octoai", "generate/sdxl", SMALL_IMAGE)),
    ),
    ("infrai", "submit-chat", lambda s, api: api.submit("chat.completions", CHAT)),
    (
        "infrai",
        "submit-chat-keyed",
        lambda s, api: api.submit("chat.completions", CHAT, idempotency_key="conformance-1"),
    ),
    (
        "infrai",
        "submit-embeddings",
        lambda s, api: api.submit("embeddings", {"model": "text-embedding-3-small", "input": "x"}),
    ),
    (
        "infrai",
        "submit-image",
        lambda s, api: api.submit("images.generations", {"prompt": "fox", "size": "16x16"}),
    ),
    (
        "infrai",
        "submit-speech",
        lambda s, api: api.submit("audio.speech", {"model": "tts-1", "input": "hi", "voice": "alloy"}),
    ),
    (
        "infrai",
        "submit-transcription-multipart",
        lambda s, api: api.submit("audio.transcriptions", {"model": "whisper-1", "file": AUDIO}),
    ),
    ("omnitensor", "submit-token-exchange", lambda s, api: api.submit("sentiment-v1", {"text": "good"})),
]


@pytest.mark.parametrize(("vendor", "what", "build"), CASES, ids=[f"{v}-{w}" for v, w, _ in CASES])
async def test_every_stack_sends_the_same_request(
    stand: Stand, vendor: str, what: str, build: Callable[[Stand, Any], Call[Any] | None]
) -> None:
    sent, answers, call = await record_each_stack(stand, vendor, lambda api: _required(build(stand, api)))
    assert sent["sync"], "nothing reached the recording server"
    assert _without_aiohttp_defaults(sent["async"], sent["sync"]) == sent["sync"]
    if supports(stand.apis()[vendor], call):
        assert sent["lean"] == sent["sync"]
    else:
        # The lean sender hands a call it cannot reproduce to the httpx AsyncClient itself.
        assert sent["lean"] == sent["async"]
    assert _comparable(answers["lean"]) == _comparable(answers["async"])


#: Headers aiohttp writes on its own when a request lacks them (``ClientRequest`` defaults).
AIOHTTP_DEFAULTS = {
    ("accept", "*/*"),
    ("accept-encoding", "gzip, deflate"),
    ("content-type", "application/octet-stream"),
    ("user-agent", f"Python/{sys.version_info[0]}.{sys.version_info[1]} aiohttp/{aiohttp.__version__}"),
}


def _without_aiohttp_defaults(sent: list[Recorded], reference: list[Recorded]) -> list[Recorded]:
    """The AsyncClient's requests less the headers its aiohttp transport adds to what httpx built.

    httpx-aiohttp hands aiohttp httpx's request, and aiohttp fills in its defaults where a header is
    missing: ``Content-Type: application/octet-stream`` on a POST whose call names none (Theta's
    bodiless cancel), and its own User-Agent, Accept and Accept-Encoding on OmniTensor's token
    exchange (a bare request the auth flow builds without the client's headers). The vendors ignore
    them; only these exact values are forgiven, and only where the httpx request had no such header.
    The lean sender gets no such allowance: it is held to the pure httpx requests.
    """
    out = []
    for request, expected in zip(sent, reference, strict=True):
        present = {name for name, _ in expected.headers}
        kept = tuple(h for h in request.headers if h not in AIOHTTP_DEFAULTS or h[0] in present)
        out.append(Recorded(request.method, request.path, request.query, kept, request.body))
    return out


def _required(call: Call[Any] | None) -> Call[Any]:
    assert call is not None
    return call


def _comparable(answer: Any) -> Any:
    """An answer without what the emulator draws afresh for every request (ids, times)."""
    if isinstance(answer, Job):
        return (answer.vendor, answer.state, answer.vendor_state, answer.service, answer.terminal)
    return type(answer).__name__


async def test_the_calls_the_vendors_do_not_have_are_none(stand: Stand) -> None:
    """Every call kind missing from CASES is missing at the vendor too (so none is left untested)."""
    apis = stand.apis()
    theta_job = Job(vendor="theta", request_id="r", state="succeeded", vendor_state="success")
    assert apis["theta"].fetch_output(theta_job) is None
    assert apis["octoai"].cancel("r") is None
    text_job = Job(
        vendor="octoai",
        request_id="r",
        state="succeeded",
        vendor_state="completed",
        service="chat/completions",
    )
    assert apis["octoai"].fetch_output(text_job) is None
    for vendor in ("infrai", "omnitensor"):
        assert apis[vendor].status("r") is None and apis[vendor].cancel("r") is None


# -- which stack the fan-out picks -----------------------------------------------------------------


def test_the_fan_out_keeps_token_exchange_on_httpx(stand: Stand) -> None:
    apis = stand.apis()
    http = fan_out_settings()
    omni = sender_for(apis["omnitensor"], CREDENTIALS["omnitensor"], http, apis["omnitensor"].submit("m", {}))
    assert isinstance(omni, AsyncClient)
    theta = sender_for(
        apis["theta"], CREDENTIALS["theta"], http, apis["theta"].submit("flux", {"prompt": "p"})
    )
    assert isinstance(theta, LeanSender)


# -- host guard ------------------------------------------------------------------------------------


def _guard_urls(stand: Stand) -> list[tuple[str, str]]:
    """URLs each vendor's connection may or may not send its credential to; all lead to loopback."""
    port = int(stand.url.rsplit(":", 1)[1])
    tls = stand.tls_port
    return [
        ("theta", f"{stand.url}/theta/infer_request/x"),
        ("theta", f"http://127.0.0.1:{port + 1}/theta/infer_request/x"),
        ("theta", f"http://localhost:{port}/theta/infer_request/x"),
        ("theta", f"http://127.0.0.2:{port}/theta/infer_request/x"),
        ("theta", f"https://api.theta.test:{tls}/infer_request/x"),
        ("octoai", f"{stand.url}/octoai/v1/requests/x"),
        ("octoai", f"https://whisper-a.{DEPLOY_DOMAIN}:{tls}/predict"),
        ("octoai", f"https://a.b.{DEPLOY_DOMAIN}:{tls}/predict"),
        ("octoai", f"https://{DEPLOY_DOMAIN}:{tls}/predict"),
        ("octoai", f"https://evil{DEPLOY_DOMAIN}:{tls}/predict"),
        ("octoai", f"https://whisper-a.{DEPLOY_DOMAIN}:{port}/predict"),
        ("octoai", f"https://whisper-a.{DEPLOY_DOMAIN}.evil.test:{tls}/predict"),
        ("octoai", f"http://127.0.0.2:{port}/octoai/v1/requests/x"),
        ("infrai", f"{stand.url}/infrai/v1/models"),
        ("infrai", f"https://api.infrai.test:{tls}/v1/models"),
        ("infrai", f"http://localhost:{port}/infrai/v1/models"),
        ("omnitensor", f"{stand.url}/omnitensor/ai/models"),
        ("omnitensor", f"http://127.0.0.1:{port + 1}/omnitensor/ai/models"),
        ("omnitensor", f"https://api.omnitensor.test:{tls}/ai/models"),
    ]


async def test_every_stack_guards_the_same_hosts(stand: Stand) -> None:
    """Each stack really sends (or refuses) a call to each URL; a refusal is a ConfigurationError."""
    decisions: dict[tuple[str, str], dict[str, bool]] = {}
    for vendor, url in _guard_urls(stand):
        api = stand.apis()[vendor]
        call = Call("probe", "GET", url, lambda result: result.status)
        seen = decisions.setdefault((vendor, url), {})
        for stack in STACKS:
            stand.recorder.requests.clear()
            try:
                await send_with(stack, api, CREDENTIALS[vendor], fan_out_settings(connect_timeout=2.0), call)
            except ConfigurationError:
                seen[stack] = False
                assert not [r for r in stand.recorder.requests if r.path != "/omnitensor/auth/token"]
            except EdgeInferError:
                seen[stack] = True  # sent, and answered or not: the guard let it go
            else:
                seen[stack] = True
    assert all(len(set(d.values())) == 1 for d in decisions.values()), decisions
    allowed = {key for key, d in decisions.items() if d["sync"]}
    assert allowed == {
        ("theta", f"{stand.url}/theta/infer_request/x"),
        ("octoai", f"{stand.url}/octoai/v1/requests/x"),
        ("octoai", f"https://whisper-a.{DEPLOY_DOMAIN}:{stand.tls_port}/predict"),
        ("octoai", f"https://a.b.{DEPLOY_DOMAIN}:{stand.tls_port}/predict"),
        ("infrai", f"{stand.url}/infrai/v1/models"),
        ("omnitensor", f"{stand.url}/omnitensor/ai/models"),
    }


# -- errors ----------------------------------------------------------------------------------------


def _error_shape(error: BaseException) -> tuple[Any, ...]:
    assert isinstance(error, EdgeInferError)
    return (
        type(error).__name__,
        error.http_status,
        error.retry_after,
        error.code,
        error.vendor,
        error.operation,
        error.request_id,
    )


async def _errors(
    stack_send: Callable[[str], Awaitable[Any]], before: Callable[[], None] = lambda: None
) -> dict[str, tuple[Any, ...]]:
    out = {}
    for stack in STACKS:
        before()
        with pytest.raises(EdgeInferError) as raised:
            await stack_send(stack)
        out[stack] = _error_shape(raised.value)
    return out


SCRIPTED = [
    ("500", 500, [("content-type", "application/json")], b'{"message": "boom"}'),
    ("429", 429, [("retry-after", "7"), ("content-type", "application/json")], b'{"message": "slow down"}'),
    ("503-retry-after", 503, [("retry-after", "3")], b"busy"),
    ("401", 401, [("content-type", "application/json")], b'{"message": "bad key"}'),
    ("not-json-200", 200, [("content-type", "application/json")], b"{not json"),
]


@pytest.mark.parametrize("vendor", ["theta", "octoai", "infrai", "omnitensor"])
@pytest.mark.parametrize(("name", "status", "headers", "body"), SCRIPTED, ids=[s[0] for s in SCRIPTED])
async def test_every_stack_raises_the_same_error_for_the_same_answer(
    stand: Stand, vendor: str, name: str, status: int, headers: list[tuple[str, str]], body: bytes
) -> None:
    api = stand.apis()[vendor]
    submits = {
        "theta": lambda: api.submit("flux", {"prompt": "p"}),
        "octoai": lambda: api.submit("generate/sdxl", SMALL_IMAGE),
        "infrai": lambda: api.submit("chat.completions", CHAT),
        # The scripted answer meets the token exchange first: its failure, on every stack.
        "omnitensor": lambda: api.submit("sentiment-v1", {"text": "good"}),
    }
    call = submits[vendor]()

    def script() -> None:
        stand.recorder.script[:] = [(status, headers, body)]

    errors = await _errors(
        lambda stack: send_with(stack, api, CREDENTIALS[vendor], fan_out_settings(), call), script
    )
    assert errors["lean"] == errors["async"] == errors["sync"]


def _sender_of(api: VendorAPI, credentials: Credentials, call: Call[Any]) -> Callable[[str], Awaitable[Any]]:
    return lambda stack: send_with(stack, api, credentials, fan_out_settings(), call)


async def test_every_stack_raises_the_same_error_when_the_port_is_closed() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    # The port is closed now: connecting is refused before anything is sent.
    for vendor, api in {
        "theta": ThetaAPI(f"http://127.0.0.1:{port}/theta"),
        "infrai": InfraiAPI(f"http://127.0.0.1:{port}/infrai"),
        "omnitensor": OmniTensorAPI(f"http://127.0.0.1:{port}/omnitensor"),
    }.items():
        call = (
            api.submit("chat.completions", CHAT)
            if vendor == "infrai"
            else api.submit("flux", {"prompt": "p"})
        )
        errors = await _errors(_sender_of(api, CREDENTIALS[vendor], call))
        assert errors["lean"] == errors["async"] == errors["sync"], vendor
        assert errors["lean"][0] == "VendorConnectionError"


async def test_every_stack_raises_the_same_error_when_the_answer_is_cut() -> None:
    """A declared length that never arrives: sent, outcome unknown for a submission."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        api = InfraiAPI(f"http://127.0.0.1:{port}/infrai")
        call = api.submit("chat.completions", CHAT)

        def answer_half() -> None:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"id":')

        errors: dict[str, tuple[Any, ...]] = {}
        for stack in STACKS:
            thread = threading.Thread(target=answer_half, daemon=True)
            thread.start()
            with pytest.raises(EdgeInferError) as raised:
                await send_with(stack, api, CREDENTIALS["infrai"], fan_out_settings(), call)
            thread.join(timeout=10)
            errors[stack] = _error_shape(raised.value)
    assert errors["lean"] == errors["async"] == errors["sync"]
    assert errors["lean"][0] == "OutcomeUnknownError"


# -- settings --------------------------------------------------------------------------------------


async def test_every_stack_takes_its_timeouts_and_limits_from_one_settings() -> None:
    http = fan_out_settings(connect_timeout=3.5, read_timeout=42.0, max_connections=17)
    api = ThetaAPI("http://127.0.0.1:9/theta")
    credentials = CREDENTIALS["theta"]
    long_call = api.submit("flux", {"prompt": "p"}, wait=30)
    assert long_call.read_timeout is not None
    async with LeanSender(api, credentials, http.max_connections, settings=http) as lean:
        session = lean._session
        # aiohttp's (sock_connect, sock_read, connect) are httpx's (connect, read, pool), as
        # httpx-aiohttp maps them; aiohttp has no write timeout, and call_deadline bounds both.
        lean_timeouts = (session.timeout.sock_connect, session.timeout.sock_read, session.timeout.connect)
        lean_long = lean._timeout(long_call.read_timeout)
        lean_long_timeouts = (lean_long.sock_connect, lean_long.sock_read, lean_long.connect)
        assert session.connector is not None
        lean_pool = session.connector.limit
    async with AsyncClient(api, credentials, http) as aclient:
        timeout = aclient._http.timeout
        httpx_timeouts = (timeout.connect, timeout.read, timeout.pool)
        per_call = aclient._request_kwargs(long_call)["timeout"]
        httpx_long_timeouts = (per_call.connect, per_call.read, per_call.pool)
        # The fan-out's AsyncClient runs on aiohttp too (default_async_transport): its session.
        factory = getattr(aclient._http._transport, "client", None)
        assert callable(factory)
        built = factory()
        assert isinstance(built, aiohttp.ClientSession) and built.connector is not None
        httpx_pool = built.connector.limit
        httpx_proxies = built.trust_env  # httpx-aiohttp reads the environment through aiohttp
        await built.close()
    assert lean_timeouts == httpx_timeouts == (3.5, 42.0, 3.5)
    assert lean_long_timeouts == httpx_long_timeouts == (3.5, long_call.read_timeout, 3.5)
    assert lean_pool == httpx_pool == 17
    # The lean sender reads the same environment once per origin: test_hostile_transport.py
    # (test_lean_sender_takes_proxies_from_the_environment).
    assert httpx_proxies is True
    with SyncClient(api, credentials, http) as client:
        sync = client._http.timeout
        assert (sync.connect, sync.read, sync.pool) == (3.5, 42.0, 3.5)
        assert client._http.trust_env is True
    # The answer's size limit and the exchange's deadline: one rule (HttpSettings.limits_of), read
    # from the settings each sender holds, which must be the fan-out's own.
    assert lean.settings == aclient.settings == http
