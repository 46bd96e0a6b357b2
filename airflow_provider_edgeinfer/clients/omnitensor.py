"""OmniTensor (contract examples: ``tests/contract/omnitensor``).

Pure: every method returns a :class:`~airflow_provider_edgeinfer.clients.core.Call`; send it with
``SyncClient`` or ``AsyncClient``. The credential is an API key plus a secret, exchanged for a
short-lived bearer token by :meth:`OmniTensorAPI.build_auth`.

Most bodies are assumed (the documents give paths, three examples and nothing else): every assumed
shape sits behind one constant or one small function below, so a correction is a one-line change.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any, ClassVar, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict

from airflow_provider_edgeinfer.clients.core import (
    Call,
    Credentials,
    HttpResult,
    Job,
    JobState,
    Page,
    TokenExchangeAuth,
    VendorAPI,
    check_base_url,
)
from airflow_provider_edgeinfer.clients.retry import Safety
from airflow_provider_edgeinfer.exceptions import (
    ConfigurationError,
    InputValidationError,
    UnexpectedResponseError,
)

T = TypeVar("T")

BASE_URL = "https://api.omnitensor.io"
AUTH_PATH = "/auth/token"
#: The documented example answer's lifetime, used when an answer omits ``expires_in``.
DEFAULT_TOKEN_TTL = 3600.0
#: Renew this long before the token expires, so a call never carries a token that dies in flight.
TOKEN_RENEW_MARGIN = 60.0
#: The exchange is a small call; it must not inherit an inference's generous timeout, nor none.
TOKEN_TIMEOUT = 30.0
#: Refuse bigger model files before sending (OmniTensor's documents, "Model upload size").
DEFAULT_MAX_MODEL_BYTES = 100 * 1024 * 1024
#: File bytes encoded per chunk of the streamed upload: a multiple of 3, so no chunk but the last pads.
UPLOAD_CHUNK_BYTES = 3 * 64 * 1024
#: Uploads may keep the vendor busy after the last byte (storing, hashing) before it answers.
UPLOAD_READ_TIMEOUT = 300.0
#: Inference is synchronous: the answer comes when the model has run.
INFERENCE_READ_TIMEOUT = 300.0
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
#: Assumed (OmniTensor's documents): ``purpose`` of a compute allocation.
PURPOSES = ("inference", "training")
#: Normalized-job ``vendor_state`` for a synchronous success (the README's table says "HTTP 200").
SYNC_VENDOR_STATE = "HTTP 200"

#: Assumed error codes (OmniTensor's documents, "Errors") -> the HTTP status the documents pair each with.
ERROR_CODES: dict[str, int] = {
    "INVALID_REQUEST": 400,
    "UNAUTHORIZED": 401,
    "INSUFFICIENT_BALANCE": 402,
    "NOT_FOUND": 404,
    "MODEL_NOT_FOUND": 404,
    "DATASET_NOT_FOUND": 404,
    "PAYLOAD_TOO_LARGE": 413,
    "RATE_LIMITED": 429,
    "NO_CAPACITY": 503,
}


class _Lenient(BaseModel):
    """Vendor objects grow fields; keep unknown ones rather than fail."""

    model_config = ConfigDict(extra="allow")


class Model(_Lenient):
    model_id: str
    model_name: str | None = None
    framework: str | None = None
    version: str | None = None
    created_at: str | None = None


class ModelUploaded(_Lenient):
    model_id: str
    status: str | None = None


class Inference(_Lenient):
    inference_id: str
    model_id: str | None = None
    output: Any = None
    latency_ms: float | None = None
    #: Kept as the vendor's decimal string: OMNIT amounts are money, never floats.
    cost_omnit: str | None = None


class Allocation(_Lenient):
    allocation_id: str
    status: str
    gpu_type: str | None = None
    gpu_count: int | None = None
    expires_at: str | None = None
    cost_omnit: Decimal | None = None


class DatasetUploaded(_Lenient):
    dataset_id: str
    status: str | None = None
    size_bytes: int | None = None
    checksum_sha256: str | None = None


class DatasetMetadata(_Lenient):
    dataset_id: str
    name: str | None = None
    description: str | None = None
    format: str | None = None
    size_bytes: int | None = None
    checksum_sha256: str | None = None
    created_at: str | None = None


class Balance(_Lenient):
    account_id: str | None = None
    balance: Decimal
    currency: str = "OMNIT"


class Transfer(_Lenient):
    transaction_id: str
    status: str
    amount: Decimal
    balance_after: Decimal | None = None


# -- assumed shapes, one small function each ---------------------------------------------------


def token_request_body(api_key: str, secret: str) -> dict[str, str]:
    return {"api_key": api_key, "secret": secret}


def token_fields(body: Any) -> tuple[Any, Any]:
    """(token, expires_in) from the exchange answer; ``access_token`` is the obvious alternative."""
    if not isinstance(body, dict):
        return None, None
    return body.get("token", body.get("access_token")), body.get("expires_in", DEFAULT_TOKEN_TTL)


def error_fields(body: Any) -> tuple[str | None, str | None]:
    """(message, code) from ``{"error": {"code", "message", "details"}}``, tolerating a flat body."""
    if not isinstance(body, dict):
        return None, None
    inner = body.get("error")
    if isinstance(inner, str):
        return inner, body.get("code") if isinstance(body.get("code"), str) else None
    source = inner if isinstance(inner, dict) else body
    message, code = source.get("message"), source.get("code")
    return (message if isinstance(message, str) else None), (code if isinstance(code, str) else None)


def model_items(body: Any) -> Any:
    """The documented bare array, or the obvious ``{"models": [...]}`` envelope."""
    if isinstance(body, dict) and isinstance(body.get("models"), list):
        return body["models"]
    return body


def inference_body(input: dict[str, Any], parameters: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"input": input}
    if parameters:
        body["parameters"] = parameters
    return body


def job_output(result: Inference) -> dict[str, Any]:
    """What a normalized Job carries: the model's output plus the facts only OmniTensor reports."""
    return {"output": result.output, "latency_ms": result.latency_ms, "cost_omnit": result.cost_omnit}


def model_upload_envelope(
    model_name: str, description: str, framework: str, version: str
) -> tuple[bytes, bytes]:
    """The JSON around the base64 ``file`` string: (everything before it, everything after it).

    ``file`` goes last so the base64 text can stream between the two without being held anywhere.
    """
    head = {
        "model_name": model_name,
        "description": description,
        "config": {"framework": framework, "version": version},
    }
    text = json.dumps(head, ensure_ascii=False)
    return (text[:-1] + ', "file": "').encode(), b'"}'


def base64_length(size: int) -> int:
    return 4 * ((size + 2) // 3)


def decimal_amount(value: Decimal | str | int, what: str) -> str:
    """A positive amount as a plain decimal string (no exponent); floats are refused, not rounded."""
    if isinstance(value, float | bool):
        raise InputValidationError(
            f"{what} must be a Decimal, str or int, not {type(value).__name__}", vendor=OmniTensorAPI.vendor
        )
    try:
        amount = Decimal(value)
    except (InvalidOperation, ValueError, TypeError):
        raise InputValidationError(
            f"{what} {value!r} is not a decimal number", vendor=OmniTensorAPI.vendor
        ) from None
    if not amount.is_finite() or amount <= 0:
        raise InputValidationError(
            f"{what} must be a positive number, got {value!r}", vendor=OmniTensorAPI.vendor
        )
    return format(amount, "f")


class OmniTensorAPI(VendorAPI):
    """OmniTensor's endpoints as calls.

    Inference is synchronous: :meth:`submit` returns a call whose answer is already a terminal
    :class:`~airflow_provider_edgeinfer.clients.core.Job`, and ``status``/``cancel`` stay None.
    """

    vendor: ClassVar[str] = "omnitensor"
    synchronous: ClassVar[bool] = True
    upload_kinds: ClassVar[frozenset[str]] = frozenset({"dataset", "model"})
    error_codes: ClassVar[Mapping[str, int]] = ERROR_CODES
    default_base_url: ClassVar[str] = BASE_URL

    @classmethod
    def for_connection(cls, base_url: str, extras: Mapping[str, Any]) -> OmniTensorAPI:
        return cls(base_url, max_model_bytes=extras["max_model_bytes"])

    def __init__(
        self,
        base_url: str = BASE_URL,
        *,
        max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES,
        token_clock: Callable[[], float] = time.monotonic,
        renew_margin: float = TOKEN_RENEW_MARGIN,
    ) -> None:
        self.base_url = check_base_url(base_url, vendor=self.vendor)
        if max_model_bytes <= 0:
            raise ConfigurationError(
                f"max_model_bytes must be positive, got {max_model_bytes}", vendor=self.vendor
            )
        self.max_model_bytes = max_model_bytes
        self._token_clock = token_clock
        self._renew_margin = renew_margin
        # The latest exchanged tokens, scrubbed from errors should the vendor echo one back.
        self._session_tokens: deque[str] = deque(maxlen=4)

    def __repr__(self) -> str:
        return f"OmniTensorAPI(base_url={self.base_url!r})"

    def base_urls(self) -> tuple[str, ...]:
        return (self.base_url,)

    def session_secrets(self) -> tuple[str, ...]:
        return tuple(self._session_tokens)

    def _url(self, *parts: str) -> str:
        return self.base_url + "/" + "/".join(quote(p, safe="") for p in parts)

    # -- auth --------------------------------------------------------------------------------

    def build_auth(self, credentials: Credentials) -> TokenExchangeAuth:
        """A token exchange per connection: cached, renewed before expiry and once on a 401."""
        if credentials.secret is None or not credentials.secret.get_secret_value():
            raise ConfigurationError(
                "OmniTensor needs an API secret besides the API key",
                vendor=self.vendor,
                hint="Set extra 'secret' on the OmniTensor connection.",
            )
        api_key = credentials.api_key.get_secret_value()
        secret = credentials.secret.get_secret_value()
        url = self.base_url + AUTH_PATH
        timeout = httpx.Timeout(TOKEN_TIMEOUT).as_dict()
        # Describes the exchange for error mapping only; it is sent by the auth flow, not a shell.
        exchange = Call("auth_token", "POST", url, parse=lambda result: None)
        secrets = credentials.values()

        def token_request() -> httpx.Request:
            return httpx.Request(
                "POST", url, json=token_request_body(api_key, secret), extensions={"timeout": timeout}
            )

        def read_token(result: HttpResult) -> tuple[str, float]:
            if not result.ok:
                raise self.map_error(exchange, result, secrets)
            token, expires_in = token_fields(self.json_body(result))
            if (
                not isinstance(token, str)
                or not token
                or isinstance(expires_in, bool)
                or not isinstance(expires_in, int | float)
            ):
                raise UnexpectedResponseError(
                    "token answer lacks a string 'token' and a numeric 'expires_in'",
                    vendor=self.vendor,
                    http_status=result.status,
                    operation="auth_token",
                )
            self._session_tokens.append(token)
            return token, float(expires_in)

        return TokenExchangeAuth(
            token_request,
            read_token,
            self.allowed_hosts(),
            self.vendor,
            renew_margin=self._renew_margin,
            clock=self._token_clock,
        )

    # -- errors ------------------------------------------------------------------------------

    def error_details(self, body: Any) -> tuple[str | None, str | None]:
        return error_fields(body)

    def _money_json(self, result: HttpResult) -> Any:
        """The body with JSON numbers read as Decimal: an amount never passes through a float."""
        try:
            return json.loads(result.content, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError):
            return self.json_body(result)  # raises the usual malformed-JSON error

    # -- models ------------------------------------------------------------------------------

    def upload_model(
        self,
        path: str | os.PathLike[str],
        model_name: str,
        *,
        framework: str,
        version: str,
        description: str = "",
    ) -> Call[ModelUploaded]:
        """Upload a model file, base64-encoded while it streams: neither the file nor its encoding is held."""
        file = Path(path)
        try:
            size = file.stat().st_size
        except OSError as exc:
            raise InputValidationError(
                f"cannot read model file {file.name!r}: {exc.strerror}", vendor=self.vendor
            ) from None
        if not file.is_file():
            raise InputValidationError(f"model path {file.name!r} is not a regular file", vendor=self.vendor)
        return self.upload_model_from(
            lambda: file.open("rb"),
            size,
            file.name,
            model_name,
            framework=framework,
            version=version,
            description=description,
        )

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
    ) -> Call[ModelUploaded]:
        """The same from any storage: ``open_file`` opens the source afresh (binary) for each attempt.

        ``size`` is checked against the limit before anything is sent; ``label`` names the source in
        errors (no credentials).
        """
        if size > self.max_model_bytes:
            raise InputValidationError(
                f"model file {label!r} has {size} bytes, more than the limit of {self.max_model_bytes}",
                vendor=self.vendor,
                hint="Raise max_model_bytes (connection extra) if the vendor accepts it; nothing was sent.",
            )
        if not model_name or not framework or not version:
            raise InputValidationError("model_name, framework and version are required", vendor=self.vendor)
        prefix, suffix = model_upload_envelope(model_name, description, framework, version)
        length = len(prefix) + base64_length(size) + len(suffix)

        def chunks() -> Iterator[bytes]:
            yield prefix
            yield from _base64_chunks(open_file, label, size, self.vendor)
            yield suffix

        return Call(
            "upload_model",
            "POST",
            self._url("ai", "models", "upload"),
            self.parser(ModelUploaded),
            safety=Safety.CREATES_WORK,
            stream=chunks,
            headers={"Content-Type": "application/json", "Content-Length": str(length)},
            read_timeout=UPLOAD_READ_TIMEOUT,
        )

    def list_models(self, *, page: int = 1, limit: int = DEFAULT_PAGE_SIZE) -> Call[Page[Model]]:
        if page < 1 or not 1 <= limit <= MAX_PAGE_SIZE:
            raise InputValidationError(f"page must be >= 1 and limit 1..{MAX_PAGE_SIZE}", vendor=self.vendor)

        def parse(result: HttpResult) -> Page[Model]:
            items = model_items(self.json_body(result))
            if not isinstance(items, list):
                raise self.unexpected("model list is not a JSON array", result)
            models = [self.model(Model, m, result) for m in items]
            # No total in the answer (assumed paging): a short page is the last one.
            next_call = self.list_models(page=page + 1, limit=limit) if len(models) >= limit else None
            return Page(models, next_call)

        return Call(
            "list_models", "GET", self._url("ai", "models"), parse, params={"page": page, "limit": limit}
        )

    def inference(
        self, model_id: str, input: dict[str, Any], *, parameters: dict[str, Any] | None = None
    ) -> Call[Inference]:
        """Run a model; the answer is the result (synchronous, hence a generous read timeout)."""
        return self._inference_call(model_id, input, parameters, self._inference_parser())

    def _inference_call(
        self,
        model_id: str,
        input: dict[str, Any],
        parameters: dict[str, Any] | None,
        parse: Callable[[HttpResult], T],
    ) -> Call[T]:
        if not model_id:
            raise InputValidationError("model_id is required", vendor=self.vendor)
        if not isinstance(input, dict):
            raise InputValidationError("input must be a JSON object", vendor=self.vendor)
        return Call(
            "inference",
            "POST",
            self._url("ai", "models", model_id, "inference"),
            parse,
            safety=Safety.CREATES_WORK,
            json=inference_body(input, parameters),
            read_timeout=INFERENCE_READ_TIMEOUT,
            request_id=model_id,
        )

    def _inference_parser(self) -> Callable[[HttpResult], Inference]:
        def parse(result: HttpResult) -> Inference:
            body = self.json_body(result)
            if isinstance(body, dict) and "cost_omnit" in body:
                # Read the cost again with Decimal numbers: a numeric cost must not pass through a float.
                # The rest stays plain JSON, so the model's output remains XCom-serializable.
                exact = self._money_json(result).get("cost_omnit")
                if isinstance(exact, Decimal | int) and not isinstance(exact, bool):
                    exact = format(Decimal(exact), "f")
                body["cost_omnit"] = exact
            return self.model(Inference, body, result)

        return parse

    # -- compute -----------------------------------------------------------------------------

    def allocate_compute(
        self,
        gpu_type: str,
        *,
        gpu_count: int = 1,
        duration_hours: float = 1,
        purpose: str = "inference",
        model_id: str | None = None,
    ) -> Call[Allocation]:
        if not gpu_type or gpu_count < 1 or duration_hours <= 0:
            raise InputValidationError(
                "gpu_type, gpu_count >= 1 and duration_hours > 0 are required", vendor=self.vendor
            )
        if purpose not in PURPOSES:
            raise InputValidationError(
                f"purpose must be one of {', '.join(PURPOSES)}, got {purpose!r}", vendor=self.vendor
            )
        body: dict[str, Any] = {
            "gpu_type": gpu_type,
            "gpu_count": gpu_count,
            "duration_hours": duration_hours,
            "purpose": purpose,
        }
        if model_id:
            body["model_id"] = model_id

        def parse(result: HttpResult) -> Allocation:
            return self.model(Allocation, self._money_json(result), result)

        return Call(
            "allocate_compute",
            "POST",
            self._url("compute", "allocate"),
            parse,
            safety=Safety.CREATES_WORK,
            json=body,
        )

    # -- data --------------------------------------------------------------------------------

    def upload_dataset(
        self,
        file: IO[bytes],
        name: str,
        *,
        description: str | None = None,
        format: str | None = None,
        filename: str | None = None,
    ) -> Call[DatasetUploaded]:
        """Upload a dataset from an open binary file, streamed as a multipart part.

        The caller owns the file (``with open(path, "rb") as f: client.send(api.upload_dataset(f, ...))``);
        httpx rewinds it for a retry.
        """
        if not name:
            raise InputValidationError("dataset name is required", vendor=self.vendor)
        part_name = filename or os.path.basename(str(getattr(file, "name", "") or "")) or "dataset"
        fields = {"name": name, "description": description, "format": format}
        return Call(
            "upload_dataset",
            "POST",
            self._url("data", "upload"),
            self.parser(DatasetUploaded),
            safety=Safety.CREATES_WORK,
            files={"file": (part_name, file, "application/octet-stream")},
            data={k: v for k, v in fields.items() if v is not None},
            read_timeout=UPLOAD_READ_TIMEOUT,
        )

    def dataset_metadata(self, dataset_id: str) -> Call[DatasetMetadata]:
        return Call(
            "dataset_metadata",
            "GET",
            self._url("data", dataset_id, "metadata"),
            self.parser(DatasetMetadata),
            request_id=dataset_id,
        )

    # -- account -----------------------------------------------------------------------------

    def balance(self) -> Call[Balance]:
        def parse(result: HttpResult) -> Balance:
            return self.model(Balance, self._money_json(result), result)

        return Call("balance", "GET", self._url("account", "balance"), parse)

    def transfer(
        self,
        to_account: str,
        amount: Decimal | str | int,
        *,
        memo: str | None = None,
        idempotency_key: str | None = None,
    ) -> Call[Transfer]:
        """Move OMNIT to another account. Never repeated automatically, whatever happens."""
        if not to_account:
            raise InputValidationError("to_account is required", vendor=self.vendor)
        body: dict[str, Any] = {"to_account": to_account, "amount": decimal_amount(amount, "amount")}
        if memo is not None:
            body["memo"] = memo
        if idempotency_key is not None:
            body["idempotency_key"] = idempotency_key

        def parse(result: HttpResult) -> Transfer:
            return self.model(Transfer, self._money_json(result), result, idempotency_key)

        return Call(
            "transfer",
            "POST",
            self._url("account", "transfer"),
            parse,
            safety=Safety.NEVER,
            json=body,
            request_id=idempotency_key,
        )

    # -- vendor-neutral surface ---------------------------------------------------------------

    def submit(
        self,
        service: str,
        input: dict[str, Any],
        *,
        prediction: str | None = None,
        idempotency_key: str | None = None,  # OmniTensor inference honours none
        parameters: dict[str, Any] | None = None,
    ) -> Call[Job]:
        if prediction is not None:
            raise InputValidationError(
                "OmniTensor models have no named predictions; leave prediction unset", vendor=self.vendor
            )
        read = self._inference_parser()

        def parse(result: HttpResult) -> Job:
            return self.to_job(read(result), service)

        return self._inference_call(service, input, parameters, parse)

    def to_job(self, result: Inference, service: str | None = None) -> Job:
        return Job(
            vendor=self.vendor,
            request_id=result.inference_id,
            state=JobState.SUCCEEDED,
            vendor_state=SYNC_VENDOR_STATE,
            service=result.model_id or service,
            output=job_output(result),
            cost_usd=None,  # billed in OMNIT, which has no fixed USD price
        )


def _base64_chunks(open_file: Callable[[], IO[bytes]], label: str, size: int, vendor: str) -> Iterator[bytes]:
    """Base64 of exactly ``size`` bytes of the source, one bounded chunk at a time.

    The Content-Length was promised from ``size``: a file that changed since is an error rather than
    a body of the wrong length.
    """
    remaining = size
    carry = b""
    with open_file() as handle:
        while remaining > 0:
            block = handle.read(min(UPLOAD_CHUNK_BYTES, remaining))
            if not block:
                raise InputValidationError(
                    f"model file {label!r} shrank while it was uploaded", vendor=vendor
                )
            remaining -= len(block)
            data = carry + block
            cut = len(data) - len(data) % 3
            carry = data[cut:]
            if cut:
                yield base64.b64encode(data[:cut])
        if handle.read(1):
            raise InputValidationError(f"model file {label!r} grew while it was uploaded", vendor=vendor)
    if carry:
        yield base64.b64encode(carry)


__all__ = [
    "BASE_URL",
    "DEFAULT_MAX_MODEL_BYTES",
    "Allocation",
    "Balance",
    "DatasetMetadata",
    "DatasetUploaded",
    "Inference",
    "Model",
    "ModelUploaded",
    "OmniTensorAPI",
    "Transfer",
]
