"""The pure core every vendor client is written against (DESIGN principle 1).

A vendor API class (:class:`VendorAPI` subclass) turns each endpoint into a :class:`Call`: a plain
description of the HTTP request plus a pure ``parse`` function for the answer. It never does I/O.
Two thin shells carry calls: :class:`~airflow_provider_edgeinfer.clients.transport.SyncClient` on
workers and :class:`~airflow_provider_edgeinfer.clients.transport.AsyncClient` in triggers. So each
vendor call is written exactly once, and error mapping and retry rules are shared and pure.

**Credentials on the wire**, as ``httpx.Auth`` flows (:class:`BearerAuth`,
:class:`TokenExchangeAuth`), one generator serving sync and async clients. Both refuse to attach a
credential to a host the connection does not name, so a vendor answer that points elsewhere (an
OctoAI ``poll_url`` on a foreign host, a redirect) can never collect the key.

Every vendor's request states map onto one model, :class:`Job` (vendor contracts, "One model across
vendors"): what operators, triggers and XCom see of a request, whichever vendor ran it.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import hashlib
import ipaddress
import json
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import IO, TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar, cast
from urllib.parse import urlsplit

import httpx
import msgspec
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from airflow_provider_edgeinfer.clients.redact import describe_failure, redact_url, redact_vendor_text
from airflow_provider_edgeinfer.clients.retry import Safety
from airflow_provider_edgeinfer.exceptions import (
    MALFORMED_BODY,
    NESTING_TOO_DEEP,
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    EdgeInferError,
    NotFoundError,
    OutcomeUnknownError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
    UnexpectedResponseError,
    VendorAPIError,
    VendorConnectionError,
    VendorTimeoutError,
    VendorValidationError,
)
from airflow_provider_edgeinfer.secrets import amask, mask

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_edgeinfer.clients.theta import ListedRequest, ListingScan

T = TypeVar("T")
U = TypeVar("U")
M = TypeVar("M", bound=BaseModel)

#: How much of an error body may be quoted in a message.
MAX_QUOTED_BODY = 300


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        return self not in (JobState.QUEUED, JobState.RUNNING)


class Job(BaseModel):
    """One remote request in normalized form: small enough for XCom and trigger events."""

    model_config = ConfigDict(frozen=True)

    vendor: str
    request_id: str
    state: JobState
    vendor_state: str
    service: str | None = None
    output: Any = None
    error: str | None = None
    cost_usd: float | None = None
    #: Where the result is fetched when it is not inline (OctoAI ``response_url``).
    result_url: str | None = None

    @property
    def terminal(self) -> bool:
        return self.state.terminal


def map_state(
    vendor: str, vendor_state: str, table: Mapping[str, JobState], request_id: str | None
) -> JobState:
    """Map a vendor's state string; an unknown one is an error, never "still running"."""
    try:
        return table[vendor_state]
    except (KeyError, TypeError):
        raise UnexpectedResponseError(
            f"unknown state {vendor_state!r} (known: {', '.join(sorted(table))})",
            vendor=vendor,
            request_id=request_id,
        ) from None


@dataclass(frozen=True)
class HttpResult:
    """What a sender hands to ``parse``: the answer, fully read, without the request's secrets."""

    status: int
    #: Case-insensitive: httpx's ``Headers``, or aiohttp's own (copying them into httpx's cost a
    #: few per cent of a fan-out's CPU, three answers per uploaded file).
    headers: Mapping[str, str]
    content: bytes
    url: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True)
class Call(Generic[T]):
    """One HTTP exchange with a vendor, described as data; ``parse`` turns the answer into ``T``."""

    operation: str
    method: str
    url: str
    parse: Callable[[HttpResult], T]
    safety: Safety = Safety.IDEMPOTENT
    json: Any = None
    params: Mapping[str, Any] | None = None
    headers: Mapping[str, str] | None = None
    content: bytes | None = None
    #: Multipart form parts (httpx ``files=``); file objects are streamed, never read whole.
    files: Mapping[str, Any] | None = None
    data: Mapping[str, Any] | None = None
    #: A body too big for memory, as a factory of byte chunks: each attempt (a retry, a renewal
    #: after 401) starts it afresh. Give its Content-Length in ``headers``.
    stream: Callable[[], Iterator[bytes]] | None = None
    #: Read timeout override (Theta ``wait``, OmniTensor's synchronous inference).
    read_timeout: float | None = None
    #: Identity quoted in errors (a request, batch or model id).
    request_id: str | None = None
    #: False for presigned URLs: the bearer credential is never attached.
    authenticated: bool = True
    #: Per-call error mapping that wins over the vendor's (e.g. OctoAI 404 on a result = expired).
    on_error: Callable[[HttpResult], EdgeInferError | None] | None = None
    #: Largest decoded answer this call accepts, overriding the connection's ``max_response_bytes``.
    max_response_bytes: int | None = None
    #: Total seconds this exchange may take, overriding the connection's ``call_deadline``.
    deadline: float | None = None

    def reparse(self, parse: Callable[[HttpResult], U]) -> Call[U]:
        """The same request, answered through another parser (e.g. into the normalized Job)."""
        return cast("Call[U]", replace(self, parse=parse))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing and the call that fetches the next one (None on the last page)."""

    items: list[T]
    next_call: Call[Page[T]] | None = None
    total: int | None = None


@dataclass(frozen=True, repr=False)
class InlineFile:
    """A file carried inside the submitting call itself (a multipart part), read whole beforehand.

    Only for a service whose client takes files inline (:meth:`VendorAPI.takes_files_inline`), which
    also bounds its size (:attr:`VendorAPI.max_inline_file_bytes`). ``repr`` shows no content.
    """

    name: str
    content: bytes
    content_type: str = "application/octet-stream"

    def __repr__(self) -> str:
        return f"InlineFile({self.name!r}, {len(self.content)} bytes, {self.content_type!r})"


@dataclass(frozen=True, repr=False)
class Credentials:
    """An API key and, for OmniTensor, a secret. ``repr`` shows neither."""

    api_key: SecretStr
    secret: SecretStr | None = None

    @classmethod
    def of(cls, api_key: str, secret: str | None = None) -> Credentials:
        return cls(SecretStr(api_key), SecretStr(secret) if secret else None)

    def __repr__(self) -> str:
        return "Credentials(api_key='**********')"

    def values(self) -> tuple[str, ...]:
        """The raw secrets, for scrubbing text that must never carry them."""
        out = [self.api_key.get_secret_value()]
        if self.secret is not None:
            out.append(self.secret.get_secret_value())
        return tuple(v for v in out if v)


@functools.lru_cache(maxsize=256)
def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(url: str, *, vendor: str, field_name: str = "host") -> str:
    """A usable base URL: https, or plain http only on a loopback host (the emulator)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"{field_name} {url!r} is not an http(s) URL",
            vendor=vendor,
            hint="Use e.g. https://api.example.com.",
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ConfigurationError(
            f"{field_name} {parts.scheme}://{parts.hostname} must use https "
            "(plain http is allowed only on loopback)",
            vendor=vendor,
        )
    return url.rstrip("/")


def host_of(url: str) -> str:
    parts = urlsplit(url)
    default_port = {"http": 80, "https": 443}.get(parts.scheme)  # httpx drops it from request URLs
    port = parts.port if parts.port != default_port else None
    return f"{parts.hostname}:{port}" if port else str(parts.hostname)


#: What an HTTP status means, as the exception raised for it; an unlisted status >= 500 is a
#: :class:`ServerError`, any other a plain :class:`VendorAPIError`.
STATUS_ERRORS: Mapping[int, type[VendorAPIError]] = {
    400: VendorValidationError,
    401: AuthenticationError,
    402: QuotaExceededError,
    403: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    413: VendorValidationError,
    422: VendorValidationError,
    429: RateLimitError,
}


def error_for_status(
    status: int, table: Mapping[int, type[VendorAPIError]] = STATUS_ERRORS
) -> type[VendorAPIError]:
    """The exception class for an HTTP ``status`` by ``table``."""
    cls = table.get(status)
    if cls is not None:
        return cls
    return ServerError if status >= 500 else VendorAPIError


class VendorAPI:
    """Base of the pure vendor API classes: error mapping and helpers shared by all four."""

    vendor: ClassVar[str] = "vendor"
    #: Every inference answers in the submitting call itself (no status endpoint): infrai core,
    #: OmniTensor. A vendor with both kinds of service answers :meth:`answers_in_call` per service.
    synchronous: ClassVar[bool] = False
    #: Services whose ``submit`` takes a file inline, as an :class:`InlineFile` input value.
    inline_file_services: ClassVar[frozenset[str]] = frozenset()
    #: Largest file a service of :attr:`inline_file_services` takes.
    max_inline_file_bytes: ClassVar[int] = 0
    #: The vendor honours idempotency keys, so a submission can be repeated safely with the same key.
    honours_idempotency: ClassVar[bool] = False
    #: Response headers that carry the vendor's own request id, appended to error messages.
    request_id_headers: ClassVar[tuple[str, ...]] = ()
    #: The vendor's documented error codes -> the HTTP status each is documented with: an answer's
    #: code wins over its status (a gateway may answer a coded error with another status).
    error_codes: ClassVar[Mapping[str, int]] = {}
    #: What each HTTP status means from this vendor (see :data:`STATUS_ERRORS`).
    status_errors: ClassVar[Mapping[int, type[VendorAPIError]]] = STATUS_ERRORS
    #: The API's base URL when a connection names no host (a vendor with one API host).
    default_base_url: ClassVar[str] = ""

    @classmethod
    def for_connection(cls, base_url: str, extras: Mapping[str, Any]) -> Self:
        """The client of one connection: its base URL (its host, or :attr:`default_base_url`) and its
        extras, already checked against the vendor's extras model. A vendor whose client takes no
        extra is built from the URL alone."""
        return cls(base_url)  # type: ignore[call-arg]

    def base_urls(self) -> tuple[str, ...]:
        """Every base URL of this connection: the only hosts that may receive the credential."""
        raise NotImplementedError

    def allowed_hosts(self) -> frozenset[str]:
        return frozenset(host_of(u) for u in self.base_urls())

    def build_auth(self, credentials: Credentials) -> httpx.Auth:
        """How the credential travels; the default is a bearer header to this connection's hosts."""
        return BearerAuth(credentials.api_key.get_secret_value(), self.allowed_hosts(), self.vendor)

    # -- capabilities: what operators ask instead of which vendor this is ----------------------

    def answers_in_call(self, service: str) -> bool:
        """Whether ``submit(service, ...)`` answers with the finished job (nothing to poll or fetch)."""
        return self.synchronous

    @classmethod
    def takes_files_inline(cls, service: str) -> bool:
        """Whether ``submit(service, ...)`` takes input files inline (:class:`InlineFile` values)."""
        return service in cls.inline_file_services

    @classmethod
    def describe_file_inputs(cls) -> str | None:
        """How this vendor takes input files, for an error that sends a user elsewhere; None: it does not."""
        if "input" in cls.upload_kinds:
            return "presigned uploads, any service"
        if cls.inline_file_services:
            services = ", ".join(repr(s) for s in sorted(cls.inline_file_services))
            return f"inline for {services}, at most {cls.max_inline_file_bytes:,} bytes per file"
        return None

    def catalogue(self) -> Call[Page[Any]] | None:
        """The call listing the services the vendor publishes with what each takes, when it does
        (None: it publishes none); an input is checked against it (:meth:`check_against`) before
        anything is sent."""
        return None

    def check_against(
        self, catalogue: Sequence[Any], service: str, prediction: str | None, input: dict[str, Any]
    ) -> None:
        """Refuse an input the :meth:`catalogue`'s entries say the vendor would refuse (an
        ``InputValidationError`` naming the service or field)."""

    # -- the vendor-neutral surface used by operators, triggers and sensors ---------------------
    #
    # ``service`` is the Theta alias, OctoAI endpoint, infrai route or OmniTensor model id. A vendor
    # whose inference is synchronous returns an already terminal Job from ``submit`` and None from
    # ``status``. Operators never ask which vendor they talk to: only these five methods.

    def submit(
        self,
        service: str,
        input: dict[str, Any],
        *,
        prediction: str | None = None,
        idempotency_key: str | None = None,
    ) -> Call[Job]:
        raise NotImplementedError(f"{self.vendor} does not support single inference requests")

    def status(self, request_id: str) -> Call[Job] | None:
        """The call that reads a request's current state, or None if the vendor is synchronous."""
        return None

    def cancel(self, request_id: str) -> Call[Any] | None:
        """The call that cancels a request, or None if the vendor cannot cancel."""
        return None

    def fetch_output(self, job: Job) -> Call[Any] | None:
        """The call that downloads a finished job's output, or None when ``job.output`` holds it."""
        return None

    def output_read(self, job: Job, *, output_known: bool) -> Call[Job] | None:
        """The one call that reads a succeeded job's output into the job, or None if it is in hand.

        The output is read once: from the vendor's result endpoint if it has one, else, when
        ``output_known`` is False (the job came from a listing or an event without it), from one
        status read that carries it. The operator, its trigger and the batch results share this rule.
        """
        fetch = self.fetch_output(job)
        if fetch is not None:
            parse = fetch.parse
            return fetch.reparse(lambda answer: job.model_copy(update={"output": parse(answer)}))
        if output_known:
            return None
        return self.status(job.request_id)

    #: The vendor has a page for humans per request (:meth:`console_url`): tasks get a link to it.
    request_pages: ClassVar[bool] = False
    #: The vendor has a page for a batch (:meth:`batch_console_url`): batch tasks get a link to it.
    batch_pages: ClassVar[bool] = False

    def console_url(self, request_id: str) -> str | None:
        """A page for humans about this request (operator extra link), on this connection's host."""
        return None

    def batch_console_url(self, batch_id: str | None) -> str | None:
        """A page for humans about a batch: the native batch ``batch_id``, or (None) a fan-out's requests."""
        return None

    # -- what this vendor can do, beyond submit and status ---------------------------------------
    #
    # Operators, triggers and sensors choose by these, never by the vendor's name. Every default
    # means "cannot". Cancelling is :meth:`cancel` returning None; the hook declares the abilities
    # that take several calls (finding lost submissions, uploads, native batches).

    #: Runs a whole batch itself: ``batch_submit``, ``batch_status_job``, ``batch_results``,
    #: ``batch_cancel`` (and optionally ``batch_export``, ``batch_set_retention``) are its calls.
    runs_native_batches: ClassVar[bool] = False

    @property
    def lists_request_states(self) -> bool:
        """Many requests' states come in one call: a listing of recent requests, newest first."""
        return False

    #: The vendor's names of the states a request is in before it ends, in lifecycle order, when
    #: its listing can be filtered by state (``scan_requests(since, state=...)``); empty: it cannot.
    #: A watcher then reads only the unfinished requests: its calls follow what is left, not the batch.
    unfinished_states: ClassVar[tuple[str, ...]] = ()
    #: The vendor's names of the states a request ends in without success (with ``unfinished_states``).
    unsuccessful_states: ClassVar[tuple[str, ...]] = ()

    def scan_requests(self, since: float, state: str | None = None) -> ListingScan:
        """The walk down the listing for requests made since ``since`` (see :class:`ListingScan`),
        only those in the vendor's ``state`` when one is given.

        Only when :attr:`lists_request_states`.
        """
        raise ConfigurationError(f"{self.vendor} cannot list its requests", vendor=self.vendor)

    def job_if_ended(self, listed: ListedRequest, service: str | None = None) -> Job | None:
        """A listed request as a Job once it ended; None, unvalidated, while it runs."""
        raise ConfigurationError(f"{self.vendor} cannot list its requests", vendor=self.vendor)

    def listed_job(self, listed: ListedRequest, service: str | None = None) -> Job:
        """A listed request as a Job, whatever its state."""
        raise ConfigurationError(f"{self.vendor} cannot list its requests", vendor=self.vendor)

    def batch_submit(
        self,
        requests: Sequence[Mapping[str, Any]],
        *,
        batch_timeout: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Call[Any]:
        """Submit a native batch of ``{"capability", "body", "custom_id"}`` requests."""
        raise ConfigurationError(f"{self.vendor} runs no native batches", vendor=self.vendor)

    def batch_status(self, batch_id: str) -> Call[Any]:
        """A native batch's status: its answer's ``data`` has ``state``, ``total_count``,
        ``completed_count``, ``failed_count`` and ``total_cost_usd`` (:meth:`batch_to_job` reads it)."""
        raise ConfigurationError(f"{self.vendor} runs no native batches", vendor=self.vendor)

    def batch_to_job(self, status: Any) -> Job:
        """A :meth:`batch_status` answer's ``data`` as a Job; an unknown state is an error."""
        raise ConfigurationError(f"{self.vendor} runs no native batches", vendor=self.vendor)

    def batch_status_job(self, batch_id: str) -> Call[Job]:
        """A native batch's state, as a Job whose request id is the batch id."""
        raise ConfigurationError(f"{self.vendor} runs no native batches", vendor=self.vendor)

    def batch_results(
        self, batch_id: str, *, cursor: str | None = None, limit: int | None = None
    ) -> Call[Page[Any]]:
        """The first page of a native batch's per-item results (``index``, ``state``, ``response``, ...)."""
        raise ConfigurationError(f"{self.vendor} runs no native batches", vendor=self.vendor)

    def batch_cancel(self, batch_id: str, *, idempotency_key: str | None = None) -> Call[Any]:
        raise ConfigurationError(f"{self.vendor} runs no native batches", vendor=self.vendor)

    def batch_export(
        self, batch_id: str, *, format: str | None = None, idempotency_key: str | None = None
    ) -> Call[Any]:
        """The vendor's own export of a native batch (its answer's ``data`` carries ``download_url``)."""
        raise ConfigurationError(f"{self.vendor} exports no batches", vendor=self.vendor)

    def batch_set_retention(
        self, batch_id: str, retention_days: float, *, idempotency_key: str | None = None
    ) -> Call[Any]:
        raise ConfigurationError(f"{self.vendor} keeps no batch results", vendor=self.vendor)

    #: What this vendor takes as uploaded files: ``"input"`` (a file an inference input then names,
    #: see the hook's ``presign_input_upload``), ``"dataset"`` (:meth:`upload_dataset`) or ``"model"``
    #: (:meth:`upload_model_from`). Empty: files travel inline in the input.
    upload_kinds: ClassVar[frozenset[str]] = frozenset()

    def presign_input(self, service: str, prediction: str | None, field: str) -> Call[Any]:
        """Where one file for input ``field`` goes (a ``PresignedTarget``); only when ``"input"`` is
        in :attr:`upload_kinds`. A call, so the worker's shells and the fan-out's event loop send it alike."""
        raise ConfigurationError(f"{self.vendor} takes no uploaded input files", vendor=self.vendor)

    def upload_dataset(
        self,
        file: IO[bytes],
        name: str,
        *,
        description: str | None = None,
        format: str | None = None,
        filename: str | None = None,
    ) -> Call[Any]:
        """Stream an open file as a dataset; the answer has ``dataset_id``, size and sha256."""
        raise ConfigurationError(f"{self.vendor} takes no dataset uploads", vendor=self.vendor)

    def dataset_metadata(self, dataset_id: str) -> Call[Any]:
        """What the vendor holds of a dataset (``name``, ``size_bytes``, ``checksum_sha256``)."""
        raise ConfigurationError(f"{self.vendor} takes no dataset uploads", vendor=self.vendor)

    def upload_model_from(
        self,
        open_file: Callable[[], IO[bytes]],
        size: int,
        label: str,
        model_name: str,
        *,
        framework: str,
        version: str,
        description: str = "",
    ) -> Call[Any]:
        """Upload a model file (``open_file`` opens it afresh for each attempt); answers ``model_id``."""
        raise ConfigurationError(f"{self.vendor} takes no model uploads", vendor=self.vendor)

    # -- answers -------------------------------------------------------------------------------

    def unexpected(
        self, message: str, result: HttpResult, request_id: str | None = None, *, code: str | None = None
    ) -> UnexpectedResponseError:
        """The error for an answer that is not what this vendor documents."""
        return UnexpectedResponseError(
            message, vendor=self.vendor, http_status=result.status, request_id=request_id, code=code
        )

    def json_body(self, result: HttpResult, call_request_id: str | None = None) -> Any:
        """The decoded JSON body; malformed JSON is an :class:`UnexpectedResponseError`."""
        try:
            return msgspec.json.decode(result.content)
        except msgspec.DecodeError:
            pass  # what msgspec refuses but json accepts (NaN, huge integers) is still an answer
        except RecursionError:
            raise too_deep(result.url, result.status, call_request_id, self.vendor) from None
        try:
            return json.loads(result.content)
        except RecursionError:
            raise too_deep(result.url, result.status, call_request_id, self.vendor) from None
        except (ValueError, UnicodeDecodeError):
            raise self.unexpected(
                f"malformed JSON in the answer from {redact_url(result.url)} (HTTP {result.status}, "
                f"{len(result.content)} bytes)",
                result,
                call_request_id,
                code=MALFORMED_BODY,
            ) from None

    def model(self, model: type[M], data: Any, result: HttpResult, request_id: str | None = None) -> M:
        """Validate ``data`` as ``model``; a shape mismatch is an :class:`UnexpectedResponseError`."""
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()[:5]
            )
            raise self.unexpected(
                f"answer does not match {model.__name__}: {problems}",
                result,
                request_id,
            ) from None

    def parser(
        self, model: type[M], *, unwrap: Callable[[Any], Any] | None = None
    ) -> Callable[[HttpResult], M]:
        """A ``parse`` function: JSON body (optionally unwrapped from an envelope) validated as ``model``."""

        def parse(result: HttpResult) -> M:
            body = self.json_body(result)
            return self.model(model, unwrap(body) if unwrap else body, result)

        return parse

    # -- errors --------------------------------------------------------------------------------

    def error_details(self, body: Any) -> tuple[str | None, str | None]:
        """(message, code) from a vendor error body; vendors override for their shape."""
        if isinstance(body, dict):
            for key in ("message", "error", "detail"):
                value = body.get(key)
                if isinstance(value, str):
                    return value, None
        return None, None

    def error_class(self, status: int, code: str | None, message: str) -> type[VendorAPIError]:
        return error_for_status(self.error_codes.get(code or "", status), self.status_errors)

    def session_secrets(self) -> tuple[str, ...]:
        """Secrets learned at run time (OmniTensor's session tokens): scrubbed from every error."""
        return ()

    def transport_error(
        self,
        call: Call[Any],
        exc: BaseException,
        secrets: tuple[str, ...] = (),
        *,
        never_sent: bool,
        reason: str | None = None,
        code: str | None = None,
    ) -> EdgeInferError:
        """The exception for a call that got no complete answer (whatever HTTP stack sent it).

        ``never_sent``: nothing left this machine, so the call may be sent again whatever it does.
        Otherwise a call that creates work may have done so: its outcome is unknown. The message is
        built from safe parts only (:func:`~airflow_provider_edgeinfer.clients.redact.describe_failure`):
        an HTTP library's own exception text may quote the request's headers.
        """
        where = redact_url(call.url)
        what = describe_failure(exc, call.method, call.url, (*secrets, *self.session_secrets()), reason)
        cls: type[EdgeInferError]
        if never_sent:
            cls, message = VendorConnectionError, f"could not reach {where} ({what})"
        elif call.safety is Safety.IDEMPOTENT:
            cls, message = VendorTimeoutError, f"no complete answer from {where} ({what})"
        else:
            cls, message = (
                OutcomeUnknownError,
                f"{call.method} {where} was sent but no answer came back ({what})",
            )
        return cls(
            message, vendor=self.vendor, request_id=call.request_id, operation=call.operation, code=code
        )

    def map_error(self, call: Call[Any], result: HttpResult, secrets: tuple[str, ...] = ()) -> EdgeInferError:
        """The exception for a non-2xx answer: class by status/code, message quoted and scrubbed."""
        from airflow_provider_edgeinfer.clients.retry import parse_retry_after

        if call.on_error is not None:
            special = call.on_error(result)
            if special is not None:
                return special
        try:
            body: Any = json.loads(result.content) if result.content else None
        except (ValueError, UnicodeDecodeError):
            body = None
        message, code = self.error_details(body)
        if message is None:
            # Cut after redacting: a cut through a secret would leave its head unrecognized.
            text = result.content[: MAX_QUOTED_BODY * 4].decode("utf-8", "replace").strip()
            message = text or "no error message in the answer"
        # A vendor may echo the key (or the session token) anywhere it answers: body, code, headers.
        secrets = (*secrets, *self.session_secrets())
        # The vendor's words: names of headers and placeholders stay, secrets go.
        message = redact_vendor_text(message, secrets)[:MAX_QUOTED_BODY]
        vendor_ids = [result.headers[h] for h in self.request_id_headers if h in result.headers]
        if vendor_ids:
            vendor_id = redact_vendor_text(vendor_ids[0], secrets)[:MAX_QUOTED_BODY]
            message = f"{message} (vendor request id {vendor_id})"
        cls = self.error_class(result.status, code, message)
        code = redact_vendor_text(code, secrets) if code else code
        return cls(
            message,
            vendor=self.vendor,
            http_status=result.status,
            request_id=call.request_id,
            operation=call.operation,
            retry_after=parse_retry_after(result.headers.get("retry-after")),
            code=code,
        )


def too_deep(
    url: str, status: int, request_id: str | None = None, vendor: str | None = None
) -> EdgeInferError:
    return UnexpectedResponseError(
        f"the answer from {redact_url(url)} (HTTP {status}) nests JSON deeper than can be decoded",
        vendor=vendor,
        http_status=status,
        request_id=request_id,
        code=NESTING_TOO_DEEP,
    )


def idempotency_key(context: Context, content: str) -> str:
    """Same task instance (any try) and same content -> same key, so the vendor dedupes a retry.

    Shared by single inferences and native batches: a retried try of the same task instance derives
    the same key for the same content, so a vendor that deduplicates by key
    (:attr:`VendorAPI.honours_idempotency`) answers the retry with the request the previous try made
    instead of running, and billing, it again.
    """
    ti = context["ti"]
    parts = [ti.dag_id, ti.task_id, ti.run_id, str(getattr(ti, "map_index", -1)), content]
    return "edgeinfer-" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]


# -- credentials on the wire -------------------------------------------------------------------


def host_allowed(host: str, allowed_hosts: frozenset[str]) -> bool:
    """Exact ``host[:port]`` match, or a ``*.domain`` pattern (OctoAI's per-deployment hosts)."""
    if host in allowed_hosts:
        return True
    return any(p.startswith("*.") and host.endswith(p[1:]) for p in allowed_hosts)


def _guard(request: httpx.Request, allowed_hosts: frozenset[str], vendor: str) -> None:
    host = host_of(str(request.url))
    if not host_allowed(host, allowed_hosts):
        raise ConfigurationError(
            f"refusing to send the credential to {request.url.scheme}://{host}, which the connection "
            f"does not name (allowed: {', '.join(sorted(allowed_hosts))})",
            vendor=vendor,
            hint="If the vendor really moved, add the host to the connection's extras.",
        )


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <key>``, only towards the connection's own hosts."""

    def __init__(self, token: str, allowed_hosts: frozenset[str], vendor: str) -> None:
        self._token = token
        self._allowed = allowed_hosts
        self._vendor = vendor

    def __repr__(self) -> str:
        return f"BearerAuth(vendor={self._vendor!r}, hosts={sorted(self._allowed)!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        _guard(request, self._allowed, self._vendor)
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request


class TokenExchangeAuth(httpx.Auth):
    """A short-lived bearer token obtained from the vendor, cached, renewed before expiry and on 401.

    ``token_request`` builds the exchange request; ``read_token`` returns ``(token, expires_in)`` or
    raises the vendor's mapped error. The cache lives on this object, which a hook keeps per
    connection, so every call of that connection shares one token.
    """

    #: False: httpx would then read every answer whole before the shell bounds its size; both flows
    #: read the token exchange's answers themselves and leave the vendor's answers to the shell.
    requires_response_body = False

    def __init__(
        self,
        token_request: Callable[[], httpx.Request],
        read_token: Callable[[HttpResult], tuple[str, float]],
        allowed_hosts: frozenset[str],
        vendor: str,
        *,
        renew_margin: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._token_request = token_request
        self._read_token = read_token
        self._allowed = allowed_hosts
        self._vendor = vendor
        self._margin = renew_margin
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        #: How many exchanges were made: tests assert caching with it.
        self.exchanges = 0
        # One lock per event loop: the same auth may serve a worker's asyncio.run and a triggerer loop,
        # and an asyncio.Lock must not be shared between loops.
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return f"TokenExchangeAuth(vendor={self._vendor!r}, cached={self._token is not None})"

    def _valid(self) -> bool:
        return self._token is not None and self._clock() < self._expires_at - self._margin

    def _store(self, response: httpx.Response) -> None:
        result = HttpResult(response.status_code, response.headers, response.content, str(response.url))
        token, expires_in = self._read_token(result)
        self._token = token
        self._expires_at = self._clock() + expires_in
        self.exchanges += 1

    def invalidate(self) -> None:
        self._token = None

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """The async twin of :meth:`auth_flow`, with single-flight exchanges.

        Without the lock, a thousand triggers starting together on one shared client would each find
        no token and each make an exchange; with it the first exchanges and the others reuse its token.
        """
        _guard(request, self._allowed, self._vendor)
        if not self._valid():
            async with self._lock():
                if not self._valid():  # still missing once our turn came: exchange ourselves
                    response = yield self._token_request()
                    await response.aread()
                    self._store(response)
                    await amask(self._token)
        sent_with = self._token
        request.headers["Authorization"] = f"Bearer {sent_with}"
        response = yield request
        if response.status_code == 401:
            async with self._lock():
                # Renew once, unless a concurrent call already replaced the token this one carried.
                if self._token == sent_with or not self._valid():
                    response = yield self._token_request()
                    await response.aread()
                    self._store(response)
                    await amask(self._token)
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """:meth:`auth_flow`, reading only the token exchange's answers (see ``requires_response_body``)."""
        flow = self.auth_flow(request)
        outgoing = next(flow)
        while True:
            response = yield outgoing
            if outgoing is not request:
                response.read()
            try:
                outgoing = flow.send(response)
            except StopIteration:
                return

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        _guard(request, self._allowed, self._vendor)
        if not self._valid():
            self._store((yield self._token_request()))
            mask(self._token)
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401:
            # The token may have been revoked or expired early: renew once and repeat.
            self._store((yield self._token_request()))
            mask(self._token)
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request


def _subclasses(cls: type[VendorAPI]) -> Iterator[type[VendorAPI]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def api_classes(vendors: Iterable[str]) -> dict[str, type[VendorAPI]]:
    """Each vendor's API class: for capability questions asked without a connection (e.g. which
    vendors take input files). A packaged vendor's client module ``clients/<vendor>.py`` is loaded
    first; a vendor defined elsewhere is found among the API classes already loaded, or left out."""
    from importlib import import_module

    for vendor in vendors:
        name = f"{__package__}.{vendor}"
        try:
            import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    wanted = set(vendors)
    out: dict[str, type[VendorAPI]] = {}
    for cls in _subclasses(VendorAPI):
        if cls.vendor in wanted:
            out.setdefault(cls.vendor, cls)  # the vendor's own class, not a subclass of it
    return out


__all__ = [
    "BearerAuth",
    "Call",
    "Credentials",
    "HttpResult",
    "InlineFile",
    "Job",
    "JobState",
    "Page",
    "TokenExchangeAuth",
    "VendorAPI",
    "api_classes",
    "check_base_url",
    "host_allowed",
    "host_of",
    "idempotency_key",
    "is_loopback",
    "map_state",
    "too_deep",
]
