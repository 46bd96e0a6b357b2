"""What the four vendor hooks share: connection -> API + credentials + HTTP settings -> clients.

Workers use :meth:`EdgeInferHook.run` (blocking). Triggers use :meth:`EdgeInferHook.arun`, whose
client comes from one registry per event loop and connection, so a thousand triggers of one
connection share one connection pool (and OmniTensor one token) instead of one each.

A hook is found one way, by the connection's type (:data:`~airflow_provider_edgeinfer.hooks.HOOKS`):
a worker with :func:`hook_for_connection`, a trigger with :func:`alease_connection`, which reads the
connection only for the first trigger of it on the event loop (the others join its client and hook).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import ssl
import sys
import threading
import weakref
from collections.abc import Awaitable, Callable, Container, Iterator, Mapping, Sequence
from functools import cached_property
from importlib import import_module
from typing import IO, TYPE_CHECKING, Any, ClassVar, Self, TypeVar
from urllib.parse import urlsplit

from airflow.sdk import BaseHook

from airflow_provider_edgeinfer.exceptions import ConfigurationError
from airflow_provider_edgeinfer.hooks import HOOKS
from airflow_provider_edgeinfer.hooks.connections import MODELS, ConnectionExtras

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from airflow_provider_edgeinfer.clients.core import Call, Credentials, HttpResult, Job, VendorAPI
    from airflow_provider_edgeinfer.clients.presigned import PresignedTarget
    from airflow_provider_edgeinfer.clients.transport import AsyncClient, HttpSettings, SyncClient
    from airflow_provider_edgeinfer.hooks.checks import CheckResult

T = TypeVar("T")
E = TypeVar("E", bound=ConnectionExtras)

#: Taken while a hook builds a thread's blocking client or closes those of ended threads (rare).
_SYNC_CLIENTS_LOCK = threading.Lock()


def input_hash(input: Mapping[str, Any]) -> str:
    """A short digest of an inference input, to match a lost submission without keeping its input."""
    return hashlib.sha256(json.dumps(input, sort_keys=True, default=str).encode()).hexdigest()[:20]


def parse_extras(model: type[E], extra: Mapping[str, Any], conn_id: str) -> E:
    """A connection's extras checked by ``model``, or a ``ValueError`` naming each bad one.

    An untouched optional form field is stored as null or ``""``: that means the default. Keys the
    older forms stored as ``extra__<conn_type>__<name>`` are read as ``<name>``.
    """
    from pydantic import ValidationError

    prefix = f"extra__{model.conn_type}__"
    given = {k.removeprefix(prefix): v for k, v in extra.items() if v is not None and v != ""}
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        raise ValueError(model.refusal(given, exc, conn_id)) from None


def base_url_from(conn: Connection, default: str, vendor: str) -> str:
    """The API base URL: the connection's host (with or without scheme, port and path) or the default.

    ``http`` is assumed only for loopback hosts (the emulator); anything else defaults to https.
    """
    from airflow_provider_edgeinfer.clients.core import check_base_url, is_loopback

    host = (conn.host or "").strip()
    if not host:
        return default
    if "://" in host:
        url = host
    else:
        hostname = urlsplit(f"//{host}").hostname or host
        scheme = (conn.extra_dejson.get("scheme") or ("http" if is_loopback(hostname) else "https")).lower()
        url = f"{scheme}://{host}"
    parts = urlsplit(url)
    if conn.port and not parts.port:
        name = parts.hostname or ""
        url = f"{parts.scheme}://{f'[{name}]' if ':' in name else name}:{conn.port}{parts.path}"  # [IPv6]
    if conn.schema and not urlsplit(url).path.strip("/"):
        url = f"{url.rstrip('/')}/{conn.schema.strip('/')}"
    return check_base_url(url, vendor=vendor)


class _Entry:
    """One shared client, the hook that built it, and how many leases on it are outstanding."""

    __slots__ = ("client", "hook", "key", "users")

    def __init__(self, key: str, client: AsyncClient[Any], hook: EdgeInferHook) -> None:
        self.key = key
        self.client = client
        self.hook = hook
        self.users = 0


class ClientLease:
    """One user's hold on a connection's shared client (:meth:`EdgeInferHook.alease`).

    :meth:`release` gives back exactly this hold, once: later calls do nothing, and it never touches
    another user's client (a newer client of the same connection included). The client is closed
    when its last lease is released, never before.
    """

    __slots__ = ("_entry", "_registry", "client", "hook", "key")

    def __init__(self, registry: _SharedClients, entry: _Entry) -> None:
        self._registry = registry
        self._entry: _Entry | None = entry
        self.client = entry.client
        #: The hook that built the client (its connection already read): every holder's hook.
        self.hook = entry.hook
        #: The connection's key on this loop (what a poller of the connection is found by).
        self.key = entry.key

    def __repr__(self) -> str:
        return f"ClientLease(key={self.key!r}, released={self.released})"

    @property
    def released(self) -> bool:
        return self._entry is None

    def another(self) -> ClientLease:
        """A second lease on this very client, for a helper that may outlive this holder (a poller)."""
        if self._entry is None:
            raise RuntimeError("the lease was released: take a new one from the hook")
        self._entry.users += 1
        return ClientLease(self._registry, self._entry)

    def release_nowait(self) -> asyncio.Task[None] | None:
        """Give the lease back at once; returns the client's close if this was its last lease."""
        entry, self._entry = self._entry, None
        return None if entry is None else self._registry._drop(entry)

    async def release(self) -> None:
        """Give the lease back (once) and, if it was the client's last, wait for the client to close.

        Cancelled while waiting, the lease is already back and the close goes on in the background.
        """
        closing = self.release_nowait()
        if closing is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(closing)


class _SharedClients:
    """One AsyncClient per (event loop, connection), leased to its users; the last lease closes it.

    Rules that hold however the users' tasks end (finished, failed, cancelled at any await):

    - A user is counted only once :meth:`lease` (or :meth:`acquire`) returns its lease. Building a
      client may suspend the builder, even in code that looks synchronous: in the triggerer, reading
      a connection's extras sends ``MaskSecret`` to the supervisor through greenback, and other
      triggers run meanwhile. :meth:`lease` lets one user build while the others wait for it, and
      :meth:`acquire` reads the table again after its factory, so users who joined meanwhile stay
      joined to the one client (a client built in vain is closed, never left to the collector).
    - A lease releases its own entry, once. A client leaves the table the moment its last lease
      goes, before it is closed, so no one can join a client being closed; the close runs shielded,
      so a release cancelled half-way still closes it.
    """

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Entry]] = (
            weakref.WeakKeyDictionary()
        )
        #: Clients being built, per loop and key, with the users waiting for them (one future each).
        self._building: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, list[asyncio.Future[None]]]
        ] = weakref.WeakKeyDictionary()
        #: Closes under way (clients built in vain, releases cancelled while closing): kept referenced.
        self._closing: set[asyncio.Task[None]] = set()

    def _table(self) -> dict[str, _Entry]:
        loop = asyncio.get_running_loop()
        return self._by_loop.setdefault(loop, {})

    async def lease(
        self, key: str, build: Callable[[], Awaitable[tuple[AsyncClient[Any], EdgeInferHook]]]
    ) -> ClientLease:
        """A lease on the client of ``key``; only the first of many users arriving together builds it
        (``build`` returns the client and the hook that built it, which every lease hands out).

        The others wait for that build (a waiter cancelled holds nothing; a build that fails or is
        cancelled lets the next waiter try).
        """
        loop = asyncio.get_running_loop()
        building = self._building.setdefault(loop, {})
        while True:
            live = self.acquire_live(key)
            if live is not None:
                return live
            waiting = building.get(key)
            if waiting is None:
                break
            # A future of its own: cancelling this waiter cancels no one else's wait.
            mine = loop.create_future()
            waiting.append(mine)
            await mine
        waiting = building[key] = []
        try:
            client, hook = await build()
            return self.acquire(key, lambda: client, hook)
        finally:
            del building[key]
            # Woken now, ahead of any task the builder goes on to start (a poller): they join first.
            for waiter in waiting:
                if not waiter.done():
                    waiter.set_result(None)

    def acquire(self, key: str, factory: Callable[[], AsyncClient[Any]], hook: EdgeInferHook) -> ClientLease:
        """A lease on the client of ``key``, built by ``factory`` (for ``hook``) if there is none on
        this loop."""
        table = self._table()
        entry = table.get(key)
        if entry is None:
            client = factory()  # may suspend this task (see the class docstring)
            entry = table.get(key)
            if entry is None:
                entry = table[key] = _Entry(key, client, hook)
            else:
                self._close_later(client)
        entry.users += 1
        return ClientLease(self, entry)

    def acquire_live(self, key: str) -> ClientLease | None:
        """A lease on the client of ``key`` already on this loop, or None if there is none."""
        entry = self._table().get(key)
        if entry is None:
            return None
        entry.users += 1
        return ClientLease(self, entry)

    def peek(self, key: str) -> AsyncClient[Any] | None:
        entry = self._table().get(key)
        return entry.client if entry else None

    def users(self, key: str) -> int:
        """Leases outstanding on the client of ``key`` on this loop (0 when there is none)."""
        entry = self._table().get(key)
        return entry.users if entry else 0

    def _drop(self, entry: _Entry) -> asyncio.Task[None] | None:
        entry.users -= 1
        if entry.users > 0:
            return None
        table = self._table()
        if table.get(entry.key) is entry:
            del table[entry.key]
        return self._close_later(entry.client)

    def _close_later(self, client: AsyncClient[Any]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(client.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closed)
        return task

    def _closed(self, task: asyncio.Task[None]) -> None:
        self._closing.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a failed close frees nothing more and must not be logged as unread

    def active(self) -> int:
        """Open shared clients on the running loop (tests assert none leak)."""
        return len(self._table())

    async def drain(self) -> None:
        """Wait for every close under way on this loop (tests and shutdown)."""
        loop = asyncio.get_running_loop()
        while mine := [task for task in self._closing if task.get_loop() is loop]:
            await asyncio.gather(*mine, return_exceptions=True)

    async def close_all(self) -> None:
        """Close every client on this loop, leased or not (shutdown; later releases are harmless)."""
        table = self._table()
        while table:
            _, entry = table.popitem()
            await entry.client.aclose()
        await self.drain()


shared_clients = _SharedClients()


class EdgeInferHook(BaseHook):
    """Base of the vendor hooks: an Airflow connection turned into a vendor API client."""

    conn_name_attr = "conn_id"
    #: The one attribute a vendor's hook must set; the three below follow from it unless it sets them.
    vendor: ClassVar[str] = ""
    #: ``edgeinfer_<vendor>``.
    conn_type: ClassVar[str] = ""
    #: ``<conn_type>_default``.
    default_conn_name: ClassVar[str] = ""
    #: The name of the connection type's form (its model's ``hook_name``).
    hook_name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Airflow reads these as class attributes, so they are set on the class when it is made.
        super().__init_subclass__(**kwargs)
        if not cls.vendor:
            return
        if "conn_type" not in cls.__dict__:
            cls.conn_type = f"edgeinfer_{cls.vendor}"
        if "default_conn_name" not in cls.__dict__:
            cls.default_conn_name = f"{cls.conn_type}_default"
        model = MODELS.get(cls.conn_type)
        if "hook_name" not in cls.__dict__ and model is not None:
            cls.hook_name = model.hook_name

    def __init__(
        self,
        conn_id: str | None = None,
        *,
        http_settings: HttpSettings | None = None,
        connection: Connection | None = None,
    ) -> None:
        """Read nothing yet: the connection is looked up on first use.

        :param conn_id: the Airflow connection (default: the vendor's ``edgeinfer_<vendor>_default``).
        :param http_settings: timeouts, retries and limits to use instead of the connection's extras
            (the connection check sends every call once with its own).
        :param connection: the connection, when the caller already read it (to choose this hook by
            its type): checked and used instead of being read again.
        """
        super().__init__()
        self.conn_id = conn_id or self.default_conn_name
        self._http_settings = http_settings
        self._conn: Connection | None = None if connection is None else self._check_type(connection)
        #: Leases taken by :meth:`aget_client`, given back by :meth:`arelease` (newest first).
        self._leases: list[ClientLease] = []

    _catalogue: list[Any] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(conn_id={self.conn_id!r})"

    # -- what each vendor defines --------------------------------------------------------------

    def build_api(self, conn: Connection) -> VendorAPI:
        """The vendor's API client (pure call builders) for this connection's hosts and extras.

        By default the vendor's API class (the one whose ``vendor`` is this hook's) on the
        connection's host, or its ``default_base_url``, given the connection's extras; a vendor
        with several hosts overrides this.

        :param conn: the connection, already read.
        """
        from airflow_provider_edgeinfer.clients.core import api_classes

        api_class = api_classes([self.vendor])[self.vendor]
        base_url = base_url_from(conn, api_class.default_base_url, self.vendor)
        return api_class.for_connection(base_url, self.extras(conn).model_dump())

    def credentials(self, conn: Connection) -> Credentials:
        """The connection's API key (the password field, or the ``api_key`` extra) and any secret.

        :param conn: the connection, already read.
        """
        from airflow_provider_edgeinfer.clients.core import Credentials

        if conn.password:
            # Airflow masks a connection's password itself whenever it hands the connection out.
            return Credentials.of(conn.password)
        api_key = self.extras(conn).api_key
        key = api_key.get_secret_value() if api_key else None
        if not key:
            raise ConfigurationError(
                f"connection {self.conn_id!r} has no API key",
                vendor=self.vendor,
                hint="Put the key in the connection's password field.",
            )
        # An extra is masked by its name only when read through the SDK's Connection; Airflow 3.1
        # may hand out its core Connection, whose masker is another one.
        from airflow_provider_edgeinfer.secrets import mask

        mask(key)
        return Credentials.of(key)

    def validate_submission(
        self, service: str, prediction: str | None, input: dict[str, Any], **options: Any
    ) -> None:
        """Reject an input the vendor would refuse, before anything is sent.

        A vendor that publishes a catalogue of its services has the input checked against it first
        (:meth:`catalogue`, listed once per hook); then building the submit call, which is pure,
        runs the client's local checks (OctoAI's OpenAPI schema and 10 MB limit, infrai's routes,
        prediction support).

        :param service: the service, in the vendor's naming.
        :param prediction: the prediction name, for services that have several (None: the default).
        :param input: the inference input.
        :param options: extra keyword arguments of the vendor's submit.
        """
        from airflow_provider_edgeinfer.exceptions import InputValidationError

        if not isinstance(input, dict):
            raise InputValidationError("input must be a JSON object", vendor=self.vendor)
        catalogue = self.catalogue()
        if catalogue is not None:
            self.api.check_against(catalogue, service, prediction, input)
        try:
            self.api.submit(service, input, prediction=prediction, **options)
        except TypeError as exc:
            raise InputValidationError(
                f"unsupported vendor option for {self.vendor}: {exc}", vendor=self.vendor
            ) from None

    def catalogue(self) -> list[Any] | None:
        """The services the vendor publishes with what each takes (one listing, kept on the hook),
        or None when it publishes none (``VendorAPI.catalogue``)."""
        if self._catalogue is None:
            call = self.api.catalogue()
            if call is None:
                return None
            self._catalogue = list(self.get_conn().iterate(call))
        return self._catalogue

    # -- what this vendor can do that takes more than one call ---------------------------------
    #
    # Operators and sensors choose by these (and by the client's, see ``VendorAPI``), never by the
    # vendor's name. Every default means "cannot".

    @property
    def finds_lost_submissions(self) -> bool:
        """Submissions whose answer was lost can be found at the vendor (:meth:`find_lost_submissions`)."""
        return False

    def find_lost_submissions(
        self,
        service: str,
        prediction: str | None,
        lost: Mapping[int, tuple[str, float]],
        known_ids: Container[str] = (),
        *,
        send: Callable[[Call[Any]], Any] | None = None,
    ) -> dict[int, Job]:
        """Requests at the vendor that match submissions whose answer was lost.

        ``lost`` maps a key to (:func:`input_hash` of the input sent, when it was sent). A match has
        the same service, prediction and input, was made no earlier than it was sent (give or take
        the clocks' difference), and is not one of ``known_ids``; submissions with equal inputs are
        matched one request each. ``send`` reads each page (default :meth:`run`). Without
        :attr:`finds_lost_submissions` nothing is found: a key missing from the answer may still exist.

        :param service: the service the submissions named.
        :param prediction: the prediction they named (None: any).
        :param lost: key -> (input hash, epoch seconds when it was sent).
        :param known_ids: request ids already accounted for, never matched.
        :param send: sends one listing call (default :meth:`run`).
        """
        return {}

    def find_submission(
        self, service: str, prediction: str | None, input: dict[str, Any], since: float
    ) -> Job | None:
        """A request matching this submission made at or after ``since``, if the vendor can list them.

        Used when a previous try died between sending a request and learning its id.

        :param service: the service the submission named.
        :param prediction: the prediction it named (None: any).
        :param input: the input it sent.
        :param since: epoch seconds when it was sent.
        """
        if not self.finds_lost_submissions:
            return None
        return self.find_lost_submissions(service, prediction, {0: (input_hash(input), since)}).get(0)

    def check_upload_field(self, service: str, prediction: str | None, field: str) -> None:
        """Refuse, before any upload, an input ``field`` the service does not take (if the vendor says).

        :param service: the service the file is for.
        :param prediction: its prediction name (None: the default).
        :param field: the input field the uploaded file's name fills.
        """

    def presign_input_upload(self, service: str, prediction: str | None, field: str) -> PresignedTarget:
        """Where one file for input ``field`` goes; only when ``"input"`` is in ``api.upload_kinds``.

        :param service: the service the file is for.
        :param prediction: its prediction name (None: the default).
        :param field: the input field the uploaded file's name fills.
        """
        target: PresignedTarget = self.run(self.api.presign_input(service, prediction, field))
        return target

    def inline_files_hint(self) -> str:
        """How to give this vendor a file instead of uploading it (an error's hint)."""
        return "Put the data inline in the input. Nothing was sent."

    def check_native_batch_service(self, service: str) -> None:
        """Refuse, before anything is sent, a service the vendor's native batch does not run.

        :param service: the service of the batch.
        """

    def estimate_batch_cost(self, service: str, inputs: Sequence[dict[str, Any]]) -> float | None:
        """The vendor's estimate of a native batch's cost before it is submitted, if it gives one.

        :param service: the service of the batch.
        :param inputs: every item's input.
        """
        return None

    # -- connection ----------------------------------------------------------------------------

    def _check_type(self, conn: Connection) -> Connection:
        if conn.conn_type and conn.conn_type.replace("-", "_") != self.conn_type:
            raise ConfigurationError(
                f"connection {self.conn_id!r} is of type {conn.conn_type!r}, not {self.conn_type!r}",
                vendor=self.vendor,
                hint=f"Use a connection of type {self.conn_type}.",
            )
        self.extras(conn)  # refuse a typo'd or invalid extra before anything is built from it
        return conn

    def extras(self, conn: Connection) -> ConnectionExtras:
        """The connection's extras, checked by its type's model (:mod:`~.connections`).

        :param conn: the connection, already read.
        """
        # A connection type without a model of its own (a vendor added outside this package) has
        # the extras every vendor takes.
        return self.read_extras(conn, MODELS.get(self.conn_type, ConnectionExtras))

    def read_extras(self, conn: Connection, model: type[E]) -> E:
        """:meth:`extras` as ``model`` (a vendor hook's own fields), or a ``ConfigurationError``.

        :param conn: the connection, already read.
        :param model: the extras model to read them as.
        """
        try:
            return parse_extras(model, conn.extra_dejson, self.conn_id)
        except ValueError as exc:
            raise ConfigurationError(str(exc), vendor=self.vendor) from None

    @property
    def connection(self) -> Connection:
        if self._conn is None:
            self._conn = self._check_type(self.get_connection(self.conn_id))
        return self._conn

    async def aconnection(self) -> Connection:
        """The connection, looked up without blocking the event loop."""
        if self._conn is None:
            self._conn = self._check_type(await self.aget_connection(self.conn_id))
        return self._conn

    def http_settings(self, conn: Connection) -> HttpSettings:
        """Timeouts, retries and limits from the connection's extras (or the hook's own settings).

        :param conn: the connection, already read.
        """
        from airflow_provider_edgeinfer.clients.retry import RetrySettings
        from airflow_provider_edgeinfer.clients.transport import HttpSettings

        if self._http_settings is not None:
            return self._http_settings
        extras = self.extras(conn)  # numbers checked there: finite, whole, within bounds
        retry = RetrySettings(
            max_attempts=extras.max_retries + 1,
            initial_delay=extras.retry_initial_delay,
            max_delay=extras.retry_max_delay,
            max_total_delay=extras.retry_max_total_delay,
        )
        return HttpSettings(
            connect_timeout=extras.connect_timeout,
            read_timeout=extras.timeout,
            max_connections=extras.max_connections,
            retry=retry,
            max_response_bytes=extras.max_response_bytes,
            call_deadline=extras.call_deadline,
            max_download_bytes=extras.max_download_bytes,
            download_deadline=extras.download_deadline,
        )

    # -- clients -------------------------------------------------------------------------------

    @cached_property
    def api(self) -> VendorAPI:
        return self.build_api(self.connection)

    def get_conn(self) -> SyncClient[Any]:
        """The calling thread's blocking client (built once per thread, kept on the hook).

        One per thread: httpx's connection pool serves its users under one lock and walks every
        pooled connection and waiting request under it for each request, so threads sharing one
        client (a batch's uploads: as many as its senders) mostly queue there. Measured with 64
        upload threads against the emulator: 106 presigned uploads a second through one client,
        about 450 with a client per thread. The clients of threads that ended are closed when the
        next one is built, and all of them by :meth:`close`.
        """
        clients: dict[threading.Thread, SyncClient[Any]] = self.__dict__.setdefault("_sync_clients", {})
        thread = threading.current_thread()
        client = clients.get(thread)
        if client is not None:
            return client
        with _SYNC_CLIENTS_LOCK:
            ended = [t for t in clients if not t.is_alive()]
            for gone in ended:
                clients.pop(gone).close()
            client = clients[thread] = self._new_sync_client()
        return client

    @cached_property
    def _ssl_context(self) -> ssl.SSLContext:
        """One TLS context for every thread's client (building one reads the CA bundle: ~90 ms)."""
        import httpx

        return httpx.create_ssl_context()

    def _new_sync_client(self) -> SyncClient[Any]:
        from airflow_provider_edgeinfer.clients.transport import SyncClient

        conn = self.connection
        return SyncClient(
            self.api, self.credentials(conn), self.http_settings(conn), verify=self._ssl_context
        )

    def run(self, call: Call[T]) -> T:
        """Send one call from a worker.

        :param call: a call built by :attr:`api`'s methods.
        """
        return self.get_conn().send(call)

    @property
    def shared_key(self) -> str:
        """The key of this connection's shared async client: the connection id alone, so a trigger
        joins a live client before it knows the connection's type (see :func:`alease_connection`)."""
        return self.conn_id

    def async_client(self, conn: Connection) -> AsyncClient[Any]:
        """A new async client of ``conn`` (the shared registry decides when one is needed).

        :param conn: the connection, already read.
        """
        from airflow_provider_edgeinfer.clients.transport import AsyncClient

        return AsyncClient(self.api, self.credentials(conn), self.http_settings(conn))

    async def alease(self) -> ClientLease:
        """A lease on the async client shared by every user of this connection on the running loop.

        Release it exactly once (``await lease.release()``, harmless to repeat); the client stays
        open while any lease on it is held. Cancelled while waiting, it holds nothing. Only the
        first user reads the connection and builds the client: a thousand triggers joining it (or
        starting together) neither look the connection up a thousand times nor build spare clients.
        """

        async def build() -> tuple[AsyncClient[Any], EdgeInferHook]:
            return self.async_client(await self.aconnection()), self

        return await shared_clients.lease(self.shared_key, build)

    async def aget_client(self) -> AsyncClient[Any]:
        """The shared async client (see :meth:`alease`), held until this hook's :meth:`arelease`.

        Each call takes one lease and each :meth:`arelease` gives back this hook's latest one, so a
        hook that took none releases nothing.
        """
        lease = await self.alease()
        self._leases.append(lease)
        return lease.client

    async def arelease(self) -> None:
        """Give back the latest lease :meth:`aget_client` took (nothing if it took none)."""
        if self._leases:
            await self._leases.pop().release()

    def download(self, url: str, out: IO[bytes]) -> int:
        """Stream the media at ``url`` (an output's ``*_url``) into ``out``; returns the bytes written.

        Bounded by the connection's ``max_download_bytes`` and ``download_deadline``; no credential
        is sent. See :func:`~airflow_provider_edgeinfer.clients.media_urls.download_media`.

        :param url: the media's http(s) URL.
        :param out: a binary file object the bytes are written to.
        """
        from airflow_provider_edgeinfer.clients.media_urls import download_media

        return download_media(url, out, self.http_settings(self.connection), vendor=self.vendor)

    async def arun(self, call: Call[T]) -> T:
        """Send one call from an event loop, on the shared client.

        :param call: a call built by :attr:`api`'s methods.
        """
        client = await self.aget_client()
        try:
            return await client.send(call)
        finally:
            await self.arelease()

    def close(self) -> None:
        """Close the blocking client's connections; the hook can be used again afterwards."""
        clients = self.__dict__.pop("_sync_clients", {})
        for client in clients.values():
            client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connection checks (``python -m airflow_provider_edgeinfer.check`` and the Test button) ----

    #: Why :meth:`paid_check` refuses, for a vendor that states no price before an inference.
    paid_check_refusal: ClassVar[str] = "no price is known"

    def read_only_checks(self) -> Iterator[CheckResult]:
        """The cheapest read-only calls of this vendor (key accepted, lists read), one result each.

        Nothing is created or billed. Each call is sent as this hook is configured: give it
        :func:`~airflow_provider_edgeinfer.hooks.checks.check_settings` for one attempt within 10 s.
        """
        from airflow_provider_edgeinfer.hooks.checks import CheckResult

        yield CheckResult("read-only checks", None, f"{self.vendor} declares none; nothing was sent")

    def attempt(
        self,
        name: str,
        call: Call[Any],
        describe: Callable[[Any, HttpResult], str],
        notes: Callable[[Any, HttpResult], list[str]] | None = None,
    ) -> CheckResult:
        """One check of :meth:`read_only_checks`: ``call`` sent as this hook is configured.

        :param name: what the check shows (``"key accepted (models listed)"``).
        :param call: the read-only call to send.
        :param describe: what worked, from the parsed answer and the raw one.
        :param notes: the shapes the vendor chose where the client tolerates more than one.
        """
        from airflow_provider_edgeinfer.hooks.checks import attempt

        return attempt(name, self, call, describe, notes)

    def paid_check(self, limit: float, wait: float) -> CheckResult:
        """One smallest inference, only if its price or estimate is known and at most ``limit``.

        :param limit: the most it may cost, in the vendor's billing currency.
        :param wait: seconds the inference may run before the check gives up on it.
        """
        from airflow_provider_edgeinfer.hooks.checks import CheckResult

        return CheckResult("paid inference", None, f"refused: {self.paid_check_refusal}; nothing was sent")

    # -- Airflow UI ----------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """The UI's Test button: the read-only checks of ``python -m airflow_provider_edgeinfer.check``.

        Every call is sent once (no retries), all within :data:`~.probe.TEST_CONNECTION_SECONDS`,
        and the answer says which check failed, in words Airflow's CLI prints as written.
        """
        from airflow_provider_edgeinfer.hooks.probe import probe_connection

        return probe_connection(self)


# -- finding the hook of a connection ----------------------------------------------------------


def vendors() -> list[str]:
    """The vendors of the registered connection types."""
    return [vendor for vendor, _ in HOOKS.values()]


def _hook_path(conn_type: str | None, conn_id: str) -> str:
    key = (conn_type or "").replace("-", "_")
    if key not in HOOKS:
        raise ConfigurationError(
            f"connection {conn_id!r} is of type {conn_type!r}, which is not an edgeinfer connection",
            hint=f"Use one of: {', '.join(sorted(HOOKS))}.",
        )
    return HOOKS[key][1]


def hook_class_for_conn_type(conn_type: str | None, conn_id: str) -> type[EdgeInferHook]:
    module, _, name = _hook_path(conn_type, conn_id).rpartition(".")
    cls: type[EdgeInferHook] = getattr(import_module(module), name)
    return cls


def hook_for_connection(conn_id: str, *, http_settings: HttpSettings | None = None) -> EdgeInferHook:
    """The vendor hook for ``conn_id``, chosen by the connection's type (worker side, blocking)."""
    conn = BaseHook.get_connection(conn_id)
    cls = hook_class_for_conn_type(conn.conn_type, conn_id)
    return cls(conn_id, http_settings=http_settings, connection=conn)


async def alease_connection(conn_id: str) -> ClientLease:
    """A lease on ``conn_id``'s shared async client on the running loop; ``lease.hook`` is its hook.

    Only the first user on the loop reads the connection (asynchronously), chooses the hook by the
    connection's type, as :func:`hook_for_connection` does, and builds the client; the others join
    them. A hook module's first import in a process runs in a thread, not on the loop.
    """

    async def build() -> tuple[AsyncClient[Any], EdgeInferHook]:
        conn = await BaseHook.aget_connection(conn_id)
        if _hook_path(conn.conn_type, conn_id).rpartition(".")[0] in sys.modules:
            cls = hook_class_for_conn_type(conn.conn_type, conn_id)
        else:
            cls = await asyncio.to_thread(hook_class_for_conn_type, conn.conn_type, conn_id)
        hook = cls(conn_id, connection=conn)
        return hook.async_client(conn), hook

    return await shared_clients.lease(conn_id, build)


def vendors_taking_files() -> str:
    """Every vendor that takes input files and how, each in its client's own words (for errors that
    send a user to a connection that can)."""
    from airflow_provider_edgeinfer.clients.core import api_classes

    ways = []
    for vendor, api in sorted(api_classes(vendors()).items()):
        how = api.describe_file_inputs()
        if how:
            ways.append(f"{vendor} ({how})")
    return "; ".join(ways) or "none"
