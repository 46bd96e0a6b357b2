"""A lean aiohttp shell for many small calls in a row (the BatchOperator's fan-out).

It carries the same :class:`~airflow_provider_edgeinfer.clients.core.Call` objects as the httpx
shells, with the same answer handling (``api.map_error`` / ``call.parse``) and the same judgement of
transport errors, but skips httpx's request and header models, which cost more CPU per request
than the whole aiohttp exchange (measured by ``benchmarks/batch_fanout.py``). One attempt per
``send``: the fan-out owns retries and the shared 429 gate.

It serves only what it can serve exactly like the httpx shells: JSON or raw bodies, and a bearer
key sent to the connection's own hosts. :func:`supports` says whether a call qualifies; anything
else (token-exchange auth, multipart, streams) goes through the httpx ``AsyncClient``.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from airflow_provider_edgeinfer import __version__
from airflow_provider_edgeinfer.clients.core import Call, Credentials, HttpResult, VendorAPI, host_of
from airflow_provider_edgeinfer.clients.redact import redact_url
from airflow_provider_edgeinfer.exceptions import (
    ConfigurationError,
    EdgeInferError,
)

T = TypeVar("T")


def supports(api: VendorAPI, call: Call[Any]) -> bool:
    """Whether :class:`LeanSender` sends ``call`` exactly as the httpx shells would."""
    if call.files is not None or call.data is not None or call.stream is not None:
        return False
    # Only the default auth (a bearer key) is reproduced; vendors with their own flow keep httpx.
    return call.authenticated and type(api).build_auth is VendorAPI.build_auth


class LeanSender:
    """``async with LeanSender(api, credentials, limit) as sender: job = await sender.send(call)``."""

    def __init__(
        self, api: VendorAPI, credentials: Credentials, limit: int, *, read_timeout: float = 60.0
    ) -> None:
        self.api = api
        self._secrets = credentials.values()
        self._authorization = f"Bearer {credentials.api_key.get_secret_value()}"
        self._allowed = api.allowed_hosts()
        self._limit = limit
        self._read_timeout = read_timeout
        self._session: Any = None

    def __repr__(self) -> str:
        return f"LeanSender(vendor={self.api.vendor!r})"

    async def __aenter__(self) -> Self:
        import aiohttp

        connector = aiohttp.TCPConnector(
            limit=self._limit, ssl=httpx.create_ssl_context(), keepalive_timeout=30
        )
        # The key is a session header (merging it into every request's headers costs more CPU than
        # the rest of the request); every call is checked against the allowed hosts before it goes.
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={
                "User-Agent": f"airflow-provider-edgeinfer/{__version__}",
                "Authorization": self._authorization,
            },
            timeout=aiohttp.ClientTimeout(sock_connect=10.0, sock_read=self._read_timeout),
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._session.close()

    def _check(self, call: Call[Any]) -> None:
        if not call.authenticated:
            raise ConfigurationError("LeanSender carries authenticated calls only", vendor=self.api.vendor)
        if host_of(call.url) not in self._allowed:
            raise ConfigurationError(
                f"refusing to send the {self.api.vendor} credential to {redact_url(call.url)}",
                vendor=self.api.vendor,
            )

    async def send(self, call: Call[T]) -> T:
        import aiohttp

        self._check(call)
        kwargs: dict[str, Any] = {}
        if call.headers:
            kwargs["headers"] = dict(call.headers)
        if call.json is not None:
            kwargs["json"] = call.json
        elif call.content is not None:
            kwargs["data"] = call.content
        if call.params:
            kwargs["params"] = {k: str(v) for k, v in call.params.items() if v is not None}
        if call.read_timeout is not None:
            kwargs["timeout"] = aiohttp.ClientTimeout(sock_connect=10.0, sock_read=call.read_timeout)
        try:
            async with self._session.request(
                call.method, call.url, allow_redirects=False, **kwargs
            ) as response:
                body = await response.read()
                result = HttpResult(response.status, httpx.Headers(dict(response.headers)), body, call.url)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._transport_error(call, exc) from None
        if not result.ok:
            raise self.api.map_error(call, result, self._secrets)
        return call.parse(result)

    def _transport_error(self, call: Call[Any], exc: BaseException) -> EdgeInferError:
        import aiohttp

        never_sent = isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
        return self.api.transport_error(call, exc, self._secrets, never_sent=never_sent)
