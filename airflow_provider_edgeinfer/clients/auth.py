"""Credentials on the wire, as ``httpx.Auth`` flows: one generator serves sync and async clients.

Both flows refuse to attach a credential to a host the connection does not name, so a vendor
answer that points elsewhere (an OctoAI ``poll_url`` on a foreign host, a redirect) can never
collect the key.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncGenerator, Callable, Generator

import httpx

from airflow_provider_edgeinfer.clients.core import HttpResult, host_of
from airflow_provider_edgeinfer.exceptions import ConfigurationError
from airflow_provider_edgeinfer.secrets import amask, mask


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


__all__ = ["BearerAuth", "TokenExchangeAuth", "host_allowed"]
