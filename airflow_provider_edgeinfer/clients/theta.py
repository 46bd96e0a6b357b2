"""Theta EdgeCloud on-demand inference (contract examples: ``tests/contract/theta``).

Pure: every method returns a :class:`~airflow_provider_edgeinfer.clients.core.Call`; send it with
``SyncClient`` or ``AsyncClient``.

**Listings read for their states.** A poller watching thousands of requests reads pages of the
project listing every interval and needs each item's ``id`` and ``state``; the whole request only for
the few that ended. Decoding a page into dicts (``json.loads``) was most of a trigger fleet's own CPU
time; here each item stays the raw bytes the vendor sent, beside a three-field head
(:class:`ListedRequest`), and the client validates it on demand. Everything that reads the listing to
find requests (a trigger watching a batch, a fan-out's results, a lost submission) walks it with
:class:`ListingScan`: one page size, one clock-skew allowance and one stop rule, following the
pagination each answer gives. The walk is the neutral ``VendorAPI.scan_requests``; it lives here
because this is the one vendor whose listing can be walked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote, urlsplit

import msgspec
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from airflow_provider_edgeinfer.clients.core import (
    STATUS_ERRORS,
    Call,
    HttpResult,
    Job,
    JobState,
    Page,
    VendorAPI,
    check_base_url,
    map_state,
)
from airflow_provider_edgeinfer.clients.retry import Safety
from airflow_provider_edgeinfer.exceptions import (
    MALFORMED_BODY,
    ConfigurationError,
    InputValidationError,
    ServerError,
    UnexpectedResponseError,
    VendorAPIError,
)

T = TypeVar("T")

BASE_URL = "https://ondemand.thetaedgecloud.com"
#: Assumed path (Theta's documents, "Cancel"): the official client's types show a cancel answer, not its path.
CANCEL_PATH = "/infer_request/{request_id}/cancel"
#: Theta holds a create call open at most this long (``wait``).
MAX_WAIT_SECONDS = 60
DEFAULT_PAGE_SIZE = 50
#: ``GET /infer_request/{id}`` answers ``body: {"infer_requests": [<InferRequest>]}``, the create
#: call's envelope: public clients that poll the live API (a background-removal web app, a TTS
#: polling manager, an MCP server's typed client) all read ``body.infer_requests[0]``. A bare
#: ``body: <InferRequest>`` is accepted too, in case the API changes back.
GET_REQUEST_LIST_KEY = "infer_requests"
#: LLM predictions stream server-sent events unless the input says ``"stream": false``
#: (contract, "Outputs by service"); a chat input is recognised by this key.
CHAT_INPUT_KEY = "messages"
#: Where the vendor's dashboard lives for its own API host (assumed; the documents give no path).
DASHBOARD_HOST = "https://www.thetaedgecloud.com"
#: The dashboard's list of inference requests; ``/<request id>`` is one request's page (assumed).
#: Any other API host (the emulator, a gateway) is asked for the same path on itself.
DASHBOARD_PATH = "/dashboard/ai/inference/request"
#: Human page for one request on the real dashboard.
CONSOLE_URL = DASHBOARD_HOST + DASHBOARD_PATH

STATES: dict[str, JobState] = {
    "pending": JobState.QUEUED,
    "processing": JobState.RUNNING,
    "success": JobState.SUCCEEDED,
    "error": JobState.FAILED,
    "failed": JobState.FAILED,
    "cancelled": JobState.CANCELLED,
}


class _Lenient(BaseModel):
    """Vendor objects grow fields; keep unknown ones rather than fail."""

    model_config = ConfigDict(extra="allow")


class InputVar(_Lenient):
    name: str
    type: str | None = None
    description: str | None = None
    required: bool = False
    default: Any = None


class Prediction(_Lenient):
    input_vars: list[InputVar] = Field(default_factory=list)
    output_vars: list[Any] = Field(default_factory=list)
    cost: Any = None


class Service(_Lenient):
    id: str
    name: str | None = None
    alias: str
    state: str | None = None
    default_prediction: str | None = None
    predictions: dict[str, Prediction] = Field(default_factory=dict)

    def prediction(self, name: str | None) -> tuple[str, Prediction]:
        chosen = name or self.default_prediction or next(iter(self.predictions), None)
        if chosen is None or chosen not in self.predictions:
            known = ", ".join(sorted(self.predictions)) or "none"
            raise InputValidationError(
                f"service {self.alias!r} has no prediction {chosen!r} (known: {known})", vendor="theta"
            )
        return chosen, self.predictions[chosen]


class InferRequest(_Lenient):
    id: str
    project_id: str | None = None
    service_id: str | None = None
    prediction: str | None = None
    variant: str | None = None
    state: str
    input: dict[str, Any] | None = None
    output: Any = None
    error_message: str | None = None
    usage: dict[str, Any] | None = None
    cost_usd: dict[str, float] | None = None
    create_time: str | None = None
    update_time: str | None = None
    process_time: str | None = None
    success_time: str | None = None
    error_time: str | None = None
    webhook: str | None = None

    @property
    def total_cost_usd(self) -> float | None:
        if not self.cost_usd:
            return None
        return round(float(sum(v for v in self.cost_usd.values() if isinstance(v, int | float))), 10)


class CreateResult(_Lenient):
    infer_requests: list[InferRequest] = Field(min_length=1)
    model_quotas: list[Any] = Field(default_factory=list)

    @property
    def request(self) -> InferRequest:
        return self.infer_requests[0]


class PresignedUpload(BaseModel):
    """Where to PUT one input file and the filename the inference input then names."""

    model_config = ConfigDict(frozen=True)

    field: str
    url: str = Field(repr=False)  # a bearer credential: never in a repr
    filename: str


class StateChange(_Lenient):
    previous: str | None = None
    current: str


class CancelResult(_Lenient):
    changes: dict[str, StateChange] = Field(default_factory=dict)


class ThetaAPI(VendorAPI):
    vendor: ClassVar[str] = "theta"
    #: A 409 is "No instances available": capacity, transient.
    status_errors: ClassVar[Mapping[int, type[VendorAPIError]]] = {**STATUS_ERRORS, 409: ServerError}

    default_base_url: ClassVar[str] = BASE_URL

    def __init__(self, base_url: str = BASE_URL, project_id: str | None = None) -> None:
        self.base_url = check_base_url(base_url, vendor=self.vendor)
        self.project_id = project_id

    @classmethod
    def for_connection(cls, base_url: str, extras: Mapping[str, Any]) -> ThetaAPI:
        return cls(base_url, project_id=extras.get("project_id"))

    def base_urls(self) -> tuple[str, ...]:
        return (self.base_url,)

    # -- envelope and errors -----------------------------------------------------------------

    def unwrap(self, result: HttpResult, request_id: str | None = None) -> Any:
        """``{"status": "success", "body": ...}`` -> body; any other status on a 2xx is an error."""
        data = self.json_body(result, request_id)
        if not isinstance(data, dict) or "body" not in data:
            raise self.unexpected(
                "answer lacks the {status, body} envelope",
                result,
                request_id,
            )
        if data.get("status") != "success":
            message = data.get("message") or data.get("error") or f"status {data.get('status')!r}"
            raise self.unexpected(
                f"HTTP {result.status} carried an error body: {str(message)[:200]}",
                result,
                request_id,
            )
        return data["body"]

    def _parser(self, model: type[Any], request_id: str | None = None) -> Any:
        def parse(result: HttpResult) -> Any:
            return self.model(model, self.unwrap(result, request_id), result, request_id)

        return parse

    def _url(self, *parts: str) -> str:
        return self.base_url + "/" + "/".join(quote(p, safe="") for p in parts)

    # -- services ----------------------------------------------------------------------------

    def list_services(
        self, *, page: int | None = None, number: int | None = None, expand: str | None = None
    ) -> Call[Page[Service]]:
        def parse(result: HttpResult) -> Page[Service]:
            body = self.unwrap(result)
            services = [self.model(Service, s, result) for s in (body or {}).get("services", [])]
            next_call = None
            pagination = (body or {}).get("pagination") or {}
            if page is not None and number and len(services) == number:
                total = pagination.get("total")
                if total is None or (page + 1) * number < int(total):
                    next_call = self.list_services(page=page + 1, number=number, expand=expand)
            return Page(services, next_call, pagination.get("total"))

        return Call(
            "list_services",
            "GET",
            self._url("service", "list"),
            parse,
            params={"expand": expand, "page": page, "number": number},
            authenticated=False,
        )

    def catalogue(self) -> Call[Page[Service]]:
        return self.list_services()

    def check_against(
        self, catalogue: Sequence[Any], service: str, prediction: str | None, input: dict[str, Any]
    ) -> None:
        by_alias = {s.alias: s for s in catalogue}
        if service not in by_alias:
            raise InputValidationError(
                f"unknown service {service!r} (available: {', '.join(sorted(by_alias))})", vendor=self.vendor
            )
        validate_input(by_alias[service], prediction, input)

    # -- inference ---------------------------------------------------------------------------

    def create_request(
        self,
        alias: str,
        input: dict[str, Any],
        *,
        prediction: str | None = None,
        wait: int = 0,
        variant: str | None = None,
        webhook: str | None = None,
    ) -> Call[CreateResult]:
        if not 0 <= wait <= MAX_WAIT_SECONDS:
            raise InputValidationError(
                f"wait must be 0..{MAX_WAIT_SECONDS} seconds, got {wait}", vendor=self.vendor
            )
        parts = ("infer_request", alias) + ((prediction,) if prediction else ())
        body = {"input": self._whole_answer(input), "wait": wait, "variant": variant, "webhook": webhook}
        parse_json = self._parser(CreateResult)

        def parse(result: HttpResult) -> CreateResult:
            if result.headers.get("content-type", "").startswith("text/event-stream"):
                raise self.unexpected(
                    f"{alias} answered with a server-sent-event stream, which this provider does not read: "
                    f'an LLM prediction streams unless its input holds "stream": false; set it',
                    result,
                )
            return parse_json(result)  # type: ignore[no-any-return]

        return Call(
            "create_request",
            "POST",
            self._url(*parts),
            parse,
            safety=Safety.CREATES_WORK,
            json=body,
            # The call is held open up to ``wait`` seconds: the read timeout must outlast it.
            read_timeout=(wait + 30.0) if wait else None,
        )

    def _whole_answer(self, input: dict[str, Any]) -> dict[str, Any]:
        """A chat input asks for one JSON answer: ``"stream": false`` unless the caller chose."""
        if input.get("stream") is True:
            raise InputValidationError(
                'input "stream": true asks for a server-sent-event stream, which this provider does not '
                'read: remove it (chat inputs are sent with "stream": false)',
                vendor=self.vendor,
            )
        if CHAT_INPUT_KEY in input and "stream" not in input:
            return {**input, "stream": False}
        return input

    def get_request(self, request_id: str) -> Call[InferRequest]:
        def parse(result: HttpResult) -> InferRequest:
            body = self.unwrap(result, request_id)
            if isinstance(body, dict) and GET_REQUEST_LIST_KEY in body:
                listed = body[GET_REQUEST_LIST_KEY]
                if not isinstance(listed, list) or len(listed) != 1:
                    raise self.unexpected(
                        f"expected exactly one request in body.{GET_REQUEST_LIST_KEY}, got "
                        f"{len(listed) if isinstance(listed, list) else type(listed).__name__}",
                        result,
                        request_id,
                    )
                body = listed[0]
            request: InferRequest = self.model(InferRequest, body, result, request_id)
            if request.id != request_id:
                raise self.unexpected(
                    "the answer is about another request",
                    result,
                    request_id,
                )
            return request

        return Call(
            "get_request",
            "GET",
            self._url("infer_request", request_id),
            parse,
            request_id=request_id,
        )

    def list_requests(
        self,
        project_id: str | None = None,
        *,
        page: int = 0,
        number: int = DEFAULT_PAGE_SIZE,
        state: str | None = None,
    ) -> Call[Page[InferRequest]]:
        def items(result: HttpResult) -> tuple[list[InferRequest], int | None, int | None]:
            body = self.unwrap(result) or {}
            listed = [self.model(InferRequest, raw, result) for raw in body.get("infer_requests", [])]
            pagination = body.get("pagination") or {}
            return listed, pagination.get("total"), pagination.get("number")

        return self._listing(project_id, page, number, state, items, self.list_requests)

    def list_request_states(
        self,
        project_id: str | None = None,
        *,
        page: int = 0,
        number: int = DEFAULT_PAGE_SIZE,
        state: str | None = None,
    ) -> Call[Page[ListedRequest]]:
        """The same listing, each request read for its id and state only (see :class:`ListedRequest`).

        For pollers watching thousands: only the requests that ended are then validated
        (:meth:`job_if_ended`).
        """

        def items(result: HttpResult) -> tuple[list[ListedRequest], int | None, int | None]:
            return decode_listing(result.content, vendor=self.vendor, status=result.status)

        return self._listing(project_id, page, number, state, items, self.list_request_states)

    def _listing(
        self,
        project_id: str | None,
        page: int,
        number: int,
        state: str | None,
        items_of: Callable[[HttpResult], tuple[list[T], int | None, int | None]],
        again: Callable[..., Call[Page[T]]],
    ) -> Call[Page[T]]:
        project = project_id or self.project_id
        if not project:
            raise ConfigurationError(
                "listing requests needs a project id",
                vendor=self.vendor,
                hint="Set extra 'project_id' (prj_...) on the Theta connection.",
            )

        def parse(result: HttpResult) -> Page[T]:
            items, total, served = items_of(result)
            more = listing_goes_on(page, number, len(items), total, served)
            next_call = again(project, page=page + 1, number=number, state=state) if more else None
            return Page(items, next_call, total)

        return Call(
            "list_requests",
            "GET",
            self._url("infer_request", project, "list"),
            parse,
            params={"page": page, "number": number, "state": state},
        )

    def cancel_request(self, request_id: str) -> Call[CancelResult]:
        url = self.base_url + CANCEL_PATH.format(request_id=quote(request_id, safe=""))
        # Cancelling twice is harmless, so it is retried like a read.
        return Call(
            "cancel_request", "POST", url, self._parser(CancelResult, request_id), request_id=request_id
        )

    # -- uploads -----------------------------------------------------------------------------

    def presign_input(self, service: str, prediction: str | None, field: str) -> Call[PresignedUpload]:
        urls = self.presigned_urls(service, prediction=prediction, input_fields=[field])

        def entry(result: HttpResult) -> PresignedUpload:
            found = urls.parse(result)
            if field not in found:
                raise UnexpectedResponseError(
                    f"the presigned URL answer for {service!r} has no entry for field {field!r}",
                    vendor=self.vendor,
                )
            return found[field]

        return urls.reparse(entry)

    def presigned_urls(
        self, alias: str, *, prediction: str | None = None, input_fields: list[str] | None = None
    ) -> Call[dict[str, PresignedUpload]]:
        parts = ("infer_request", alias) + ((prediction,) if prediction else ()) + ("input_presigned_urls",)

        def parse(result: HttpResult) -> dict[str, PresignedUpload]:
            body = self.unwrap(result) or {}
            # Two shapes exist (Theta's documents): {field: {presigned_url, filename}}
            # and {urls: {field: {upload_url, ...}}}.
            entries = body.get("urls", body) if isinstance(body, dict) else body
            if not isinstance(entries, dict):
                raise UnexpectedResponseError(
                    f"presigned URLs answer is a {type(entries).__name__}, not an object", vendor=self.vendor
                )
            out: dict[str, PresignedUpload] = {}
            for name, entry in entries.items():
                if not isinstance(entry, dict):
                    continue
                url = entry.get("presigned_url") or entry.get("upload_url")
                if not url or not entry.get("filename"):
                    raise UnexpectedResponseError(
                        f"presigned entry for {name!r} lacks a URL or filename", vendor=self.vendor
                    )
                out[name] = PresignedUpload(field=name, url=url, filename=entry["filename"])
            return out

        body = {"input_fields": input_fields} if input_fields else None
        # Asking for URLs creates no billable work and can be repeated.
        return Call("presigned_urls", "POST", self._url(*parts), parse, json=body)

    # -- vendor-neutral surface ---------------------------------------------------------------

    def submit(
        self,
        service: str,
        input: dict[str, Any],
        *,
        prediction: str | None = None,
        idempotency_key: str | None = None,  # Theta honours none: reattach relies on the task state store
        wait: int = 0,
    ) -> Call[Job]:
        create = self.create_request(service, input, prediction=prediction, wait=wait)

        def parse(result: HttpResult) -> Job:
            return self.to_job(create.parse(result).request, service)

        return create.reparse(parse)

    def status(self, request_id: str) -> Call[Job]:
        get = self.get_request(request_id)
        return get.reparse(lambda result: self.to_job(get.parse(result)))

    def cancel(self, request_id: str) -> Call[CancelResult]:
        return self.cancel_request(request_id)

    request_pages: ClassVar[bool] = True
    batch_pages: ClassVar[bool] = True

    def _dashboard(self) -> str:
        """The dashboard that shows this connection's requests: the vendor's own for its API host,
        else the connection's host itself (the emulator serves these pages)."""
        return (DASHBOARD_HOST if self.base_url == BASE_URL else self.base_url) + DASHBOARD_PATH

    def console_url(self, request_id: str) -> str | None:
        return f"{self._dashboard()}/{quote(request_id, safe='')}"

    def batch_console_url(self, batch_id: str | None) -> str | None:
        """A fan-out's requests are listed on the dashboard's request list."""
        return self._dashboard()

    # -- capabilities ------------------------------------------------------------------------

    upload_kinds: ClassVar[frozenset[str]] = frozenset({"input"})

    @property
    def lists_request_states(self) -> bool:
        """The project listing, when the connection names a project."""
        return bool(self.project_id)

    # The listing takes ``state`` (contract, "Listing"): a watcher reads only what has not ended.
    unfinished_states = tuple(name for name, job in STATES.items() if not job.terminal)
    unsuccessful_states = tuple(
        name for name, job in STATES.items() if job.terminal and job is not JobState.SUCCEEDED
    )

    def scan_requests(self, since: float, state: str | None = None) -> ListingScan:
        return ListingScan(self.list_request_states(number=PAGE_SIZE, state=state), since, PAGE_SIZE, state)

    def listed_job(self, listed: ListedRequest, service: str | None = None) -> Job:
        return self.to_job(self.listed_request(listed), service)

    # -- normalized view ---------------------------------------------------------------------

    def job_if_ended(self, listed: ListedRequest, service: str | None = None) -> Job | None:
        """A listed request as a Job once it ended; None, unvalidated, while it runs."""
        state = STATES.get(str(listed.state))
        if state is not None and not state.terminal:
            return None
        return self.to_job(self.listed_request(listed), service)

    def listed_request(self, listed: ListedRequest) -> InferRequest:
        """The whole request behind a listing entry, validated now."""
        try:
            return InferRequest.model_validate_json(listed.raw)
        except ValidationError as exc:
            raise UnexpectedResponseError(
                f"a listed request does not match InferRequest: {exc.errors()[0]['msg']}",
                vendor=self.vendor,
                request_id=listed.id,
            ) from None

    def to_job(self, request: InferRequest, service: str | None = None) -> Job:
        state = map_state(self.vendor, request.state, STATES, request.id)
        return Job(
            vendor=self.vendor,
            request_id=request.id,
            state=state,
            vendor_state=request.state,
            service=service or request.service_id,
            output=request.output if state is JobState.SUCCEEDED else None,
            error=request.error_message,
            cost_usd=request.total_cost_usd,
        )


def listing_goes_on(page: int, asked: int, got: int, total: int | None, served: int | None) -> bool:
    """Whether a listing has a page after ``page``, judged by the pagination the answer gave.

    The largest page Theta serves is undocumented, so a page shorter than asked for proves nothing:
    the server may cap it. The page size it reports (``pagination.number``) and the total decide;
    without them, only an empty page ends the walk (one call more than needed).
    """
    if got == 0:
        return False
    size = served if served and served > 0 else (asked if got >= asked else None)
    if total is None or size is None:
        return True
    return (page + 1) * size < total


def validate_input(service: Service, prediction: str | None, input: dict[str, Any]) -> str:
    """Check ``input`` against the prediction's ``input_vars`` before anything is sent.

    Returns the prediction name used. Unknown fields and missing required ones are errors that
    name the field.
    """
    name, spec = service.prediction(prediction)
    if not spec.input_vars:
        return name
    known = {v.name: v for v in spec.input_vars}
    missing = [v.name for v in spec.input_vars if v.required and v.default is None and v.name not in input]
    if missing:
        raise InputValidationError(
            f"service {service.alias!r} prediction {name!r}: "
            f"missing required input field(s) {', '.join(missing)}",
            vendor="theta",
        )
    unknown = sorted(set(input) - set(known))
    if unknown:
        raise InputValidationError(
            f"service {service.alias!r} prediction {name!r}: unknown input field(s) {', '.join(unknown)} "
            f"(accepted: {', '.join(sorted(known))})",
            vendor="theta",
        )
    for key, value in input.items():
        expected = (known[key].type or "").lower()
        if not _type_matches(expected, value):
            raise InputValidationError(
                f"service {service.alias!r} prediction {name!r}: field {key!r} must be {expected}, "
                f"got {type(value).__name__}",
                vendor="theta",
            )
        if expected in _FILE_TYPES and isinstance(value, str) and not is_file_reference(value):
            shown = value if len(value) <= 40 else value[:40] + "..."
            raise InputValidationError(
                f"service {service.alias!r} prediction {name!r}: file field {key!r} must hold an uploaded "
                f"file's name or an http(s) URL, got {shown!r}",
                vendor="theta",
                hint=f"Upload the file first: input_files={{{key!r}: path}}, or pull one field of "
                f"PresignedUploadOperator's result ({key!r}). Nothing was sent.",
            )
    return name


#: Input types whose value names a file: an uploaded file's name, or a URL the vendor fetches.
_FILE_TYPES = frozenset({"file", "filename"})
#: Characters no uploaded file's name holds: path separators, whitespace, and the quotes and brackets
#: of a rendered dict or list (a whole XCom value pulled into the field).
_NOT_IN_A_NAME = frozenset("/\\{}[]'\"") | frozenset(chr(c) for c in range(33))


def is_file_reference(value: str) -> bool:
    """Whether ``value`` can be a file field's value: an uploaded file's name or an http(s) URL.

    Anything else (a local path, a rendered dict) would be sent as it is and fail at the vendor, or
    worse, be taken for a name and answered for nothing.
    """
    if value.startswith(("https://", "http://")):
        parts = urlsplit(value)
        return bool(parts.hostname) and not any(c in value for c in " \t\r\n")
    return 0 < len(value) <= 1024 and not any(c in _NOT_IN_A_NAME for c in value)


_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "string": (str,),
    "text": (str,),
    "file": (str,),
    "filename": (str,),
    "int": (int,),
    "integer": (int,),
    "float": (int, float),
    "number": (int, float),
    "bool": (bool,),
    "boolean": (bool,),
    "list": (list,),
    "array": (list,),
    "dict": (dict,),
    "object": (dict,),
}


def _type_matches(expected: str, value: Any) -> bool:
    types = _TYPES.get(expected)
    if types is None or value is None:
        return True  # unknown type names are the vendor's to judge
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types)


# -- listings read for their states, and the one walk down them ------------------------------

#: Requests asked for per listing page. A server may serve fewer (its pagination says how many, and
#: the walk follows it: :func:`~airflow_provider_edgeinfer.clients.theta.listing_goes_on`).
PAGE_SIZE = 1000
#: Tolerated difference between this machine's clock and the vendor's when judging that a listed
#: request is older than anything sought.
CLOCK_SKEW_SECONDS = 300.0


class _Head(msgspec.Struct):
    id: str
    state: str | None = None
    create_time: str | None = None


class _Pagination(msgspec.Struct):
    total: int | None = None
    number: int | None = None


class _Body(msgspec.Struct):
    infer_requests: list[msgspec.Raw] = msgspec.field(default_factory=list)
    pagination: _Pagination | None = None


class _Envelope(msgspec.Struct):
    status: Any = None
    message: Any = None
    error: Any = None
    body: _Body | None = None


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_HEAD = msgspec.json.Decoder(_Head)


class ListedRequest:
    """One request of a listing: its id, state and creation time, and its JSON left unparsed."""

    __slots__ = ("create_time", "id", "raw", "state")

    def __init__(self, id: str, state: str | None, create_time: str | None, raw: bytes) -> None:
        self.id = id
        self.state = state
        self.create_time = create_time
        self.raw = raw

    def __repr__(self) -> str:
        return f"ListedRequest(id={self.id!r}, state={self.state!r})"


def decode_listing(
    content: bytes, *, vendor: str, status: int
) -> tuple[list[ListedRequest], int | None, int | None]:
    """``(items, total, page size served)`` of a listing; a broken answer is an UnexpectedResponseError."""
    try:
        envelope = _ENVELOPE.decode(content)
        if envelope.status != "success" or envelope.body is None:
            message = envelope.message or envelope.error or f"status {envelope.status!r}"
            raise UnexpectedResponseError(
                f"HTTP {status} carried no listing: {str(message)[:200]}", vendor=vendor, http_status=status
            )
        items = []
        for raw in envelope.body.infer_requests:
            head = _HEAD.decode(raw)
            items.append(ListedRequest(head.id, head.state, head.create_time, bytes(raw)))
    # ValidationError first: it is a kind of DecodeError.
    except msgspec.ValidationError as exc:
        raise UnexpectedResponseError(
            f"a listing does not have the documented shape: {exc}", vendor=vendor, http_status=status
        ) from None
    except msgspec.DecodeError:
        raise UnexpectedResponseError(
            f"malformed JSON in a listing (HTTP {status}, {len(content)} bytes)",
            vendor=vendor,
            http_status=status,
            code=MALFORMED_BODY,
        ) from None
    pagination = envelope.body.pagination or _Pagination()
    return items, pagination.total, pagination.number


def epoch_of(value: str | None) -> float | None:
    """Epoch seconds of an ISO-8601 timestamp (``Z`` allowed); None if absent or unreadable."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class ListingScan:
    """One walk down a listing, newest first, to the oldest request that can be one sought.

    Sought requests were made at or after ``since`` (this machine's clock). The walk ends at the
    first entry created before ``since`` minus :data:`CLOCK_SKEW_SECONDS` (everything further down
    is older, and is not yielded), at the listing's last page, or when the caller stops iterating
    (it found everything it wanted). An entry without a readable creation time is yielded.

    Pure: :meth:`walk` (blocking) and :meth:`awalk` (async) take the function that sends a call.
    """

    def __init__(
        self, first: Call[Page[ListedRequest]], since: float, page_size: int, state: str | None = None
    ) -> None:
        self.next_call: Call[Page[ListedRequest]] | None = first
        #: Requests asked for per page (a server may serve fewer: a walk follows its pagination).
        self.page_size = page_size
        #: The vendor state the listing was asked for (None: every state).
        self.state = state
        self.cutoff = since - CLOCK_SKEW_SECONDS
        #: Pages read so far (a cost measure for pollers and tests).
        self.pages = 0
        #: The listing's total on its first page, and whether a later page gave another: entries
        #: moved between pages during the walk, so one may have been skipped (pages are offsets).
        self.first_total: int | None = None
        self.shifted = False

    def take(self, page: Page[ListedRequest]) -> list[ListedRequest]:
        """The entries of one page within the window; decides whether another page is read."""
        self.pages += 1
        if self.pages == 1:
            self.first_total = page.total
        elif page.total != self.first_total:
            self.shifted = True
        self.next_call = page.next_call
        kept: list[ListedRequest] = []
        for entry in page.items:
            created = epoch_of(entry.create_time)
            if created is not None and created < self.cutoff:
                self.next_call = None
                break
            kept.append(entry)
        return kept

    def walk(
        self, send: Callable[[Call[Page[ListedRequest]]], Page[ListedRequest]]
    ) -> Iterator[ListedRequest]:
        while self.next_call is not None:
            yield from self.take(send(self.next_call))

    async def awalk(
        self, send: Callable[[Call[Page[ListedRequest]]], Awaitable[Page[ListedRequest]]]
    ) -> AsyncIterator[ListedRequest]:
        while self.next_call is not None:
            for entry in self.take(await send(self.next_call)):
                yield entry
