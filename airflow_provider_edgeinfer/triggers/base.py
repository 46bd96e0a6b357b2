"""What every trigger of this provider shares: its kwargs, its hook, its lease on the client, its errors.

Each trigger here fires exactly one event. A subclass declares the constructor arguments it
serializes (:attr:`EdgeInferTrigger.serialized`, once), the fields every event of it carries
(:meth:`~EdgeInferTrigger.event_fields`) and how its event is made while it holds a lease on the
connection's shared client (:meth:`~EdgeInferTrigger.watch`). The base does the rest:

- **The client's lifecycle.** ``run()`` takes one lease on the connection's shared client and gives
  it back exactly once, before the event is yielded, whether ``watch()`` returned, raised or was
  cancelled. Nothing is held while the triggerer logs and stores the event, so a runner that cancels
  the trigger there (the supervisor does when the event was persisted before the trigger reported
  finished) or never resumes the generator leaks nothing; ``cleanup()`` has nothing left to give back.
  The client is closed when its last lease goes, never under another user (see
  :class:`~airflow_provider_edgeinfer.hooks.base.ClientLease`).
- **Error events.** A provider error raised before or in ``watch()`` becomes an ``error`` event with
  the trigger's fields and a short, redacted payload.
- **The hook, found one way.** The trigger knows its connection id only: the hook is chosen by the
  connection's type, as on the worker (:func:`~airflow_provider_edgeinfer.hooks.base.alease_connection`),
  built once per connection and loop, and handed to every trigger with its lease (``lease.hook``).
- **Nothing blocking on start.** The vendor's hook module is imported off the loop the first time;
  the connection is read with the async API, and only by the first trigger of that connection on the
  loop (the others lease its open client and hook without reading it again).

**The shape of events.** An event carries ids, states, costs, timings and short errors (errors as
data: :func:`~airflow_provider_edgeinfer.exceptions.error_payload`), never a model's output. Airflow's
triggerer writes every event it fires in full into the task's log (``Trigger fired event ...
result=TriggerEvent<{...}>``) and stores it in the metadata database (the task instance's
``next_kwargs``), and outputs are the user's data (call transcripts, customer tickets).

- **Asynchronous vendors** (the trigger only polls): the event says the request ended and
  ``execute_complete`` reads the result once, on the worker, through the normal client path.
- **Services that answer in the call** (``api.answers_in_call``): the deferred call ran in the
  triggerer, so its answer exists only there and nothing can fetch it again. It travels inside the
  event **sealed**: AES-256-GCM under a key derived (HKDF-SHA256) from the connection's secrets (API
  key, and a vendor's second secret if it has one) and the task instance's identity (dag, run, task, map
  index: Airflow's key of a task instance, the same in the triggerer and on the resumed worker; a
  try is left out, so a deferral never depends on how an Airflow version numbers resumed tries).
  The triggerer and the worker both already read that connection, so both derive the
  key and nothing new is shared between machines; the log and the database hold only ciphertext;
  the identity is also the AEAD's associated data, so a sealed output opens only for the task
  instance it was made for, and any change to it is detected.

Why not the alternatives:

- Airflow's own Fernet key encrypts trigger kwargs in the database, but events (``next_kwargs``) are
  stored as plain JSON, and Airflow 3 workers need not hold that key (they reach the database only
  through the API server).
- The task state store is not reachable from a trigger: Airflow 3.3's triggerer answers XCom,
  variable, connection and asset-state requests from triggers, not task-state-store ones.
- XCom written by the trigger (``SetXCom`` is answered) would work, but puts the whole output in
  the XCom table, visible in the UI's XCom tab even when the operator would have written it to
  ``output_path`` only, and a trigger would then write results, which triggers here never do; a
  second copy of a trigger (triggerer HA) would write it again.

A sealed output is bounded by :data:`MAX_EVENT_OUTPUT_BYTES` of plaintext JSON: the event is one
database value and one log line, so a bound keeps both sane. Above it the output is *withheld*:
the event says so (with the size) and the task fails with an error saying to run it with
``deferrable=False``, which makes the call on the worker and has no such limit. The bound is
therefore a limit of deferring a synchronous call, not of the provider.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from airflow.triggers.base import BaseTrigger, TriggerEvent
from pydantic import BaseModel, ConfigDict, ValidationError

from airflow_provider_edgeinfer import exceptions
from airflow_provider_edgeinfer.exceptions import (
    ConfigurationError,
    EdgeInferError,
    ErrorPayload,
    error_payload,
    short_text,
)
from airflow_provider_edgeinfer.hooks.base import ClientLease, alease_connection

if TYPE_CHECKING:
    from airflow_provider_edgeinfer.clients.core import Job

T = TypeVar("T")

#: Largest output (JSON bytes) a synchronous vendor's deferred call may hand back through its event.
MAX_EVENT_OUTPUT_BYTES = 512 * 1024

_SEAL_VERSION = "v1"
_HKDF_SALT = b"airflow-provider-edgeinfer/trigger-event-output"
_NONCE_BYTES = 12

_STATUS_BY_STATE = {
    "succeeded": "success",
    "failed": "failed",
    "cancelled": "cancelled",
    "expired": "failed",
}

#: Airflow's own deferral timeout waits this long past a trigger's deadline, so the trigger (which
#: cancels the remote work and says why) always ends the wait first.
DEFERRAL_GRACE_SECONDS = 120.0


def deferral_timeout(seconds_left: float) -> timedelta:
    """The ``timeout`` to defer with, for a trigger whose own deadline is ``seconds_left`` away."""
    return timedelta(seconds=max(1.0, seconds_left) + DEFERRAL_GRACE_SECONDS)


class EdgeInferTrigger(BaseTrigger):
    """Base of this provider's triggers (see the module docstring).

    :param conn_id: the Airflow connection; its type chooses the hook.
    :param vendor: only a label for events until the connection's hook names the vendor (a trigger
        deferred by an earlier version of this provider still carries it).
    """

    #: Constructor arguments, read back from attributes of the same name, that :meth:`serialize` returns.
    serialized: ClassVar[tuple[str, ...]] = ("conn_id",)

    def __init__(self, *, conn_id: str, vendor: str | None = None) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.vendor = vendor

    def run_on_worker(self) -> dict[str, Any]:
        """Non-deferrable mode: the very same polling, run on the worker until its one event."""
        return asyncio.run(self._first_event())

    async def _first_event(self) -> dict[str, Any]:
        async for event in self.run():
            return dict(event.payload)
        raise RuntimeError("the trigger ended without an event")

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {name: getattr(self, name) for name in self.serialized},
        )

    # -- what a subclass defines ---------------------------------------------------------------

    def event_fields(self) -> dict[str, Any]:
        """Fields every event of this trigger carries besides ``status`` and ``vendor``."""
        return {}

    async def watch(self, lease: ClientLease) -> TriggerEvent:
        """Wait for what this trigger watches and return its one event (``lease`` is held meanwhile)."""
        raise NotImplementedError

    # -- shared ----------------------------------------------------------------------------------

    def event(self, status: str, **extra: Any) -> TriggerEvent:
        vendor = self.vendor or ""  # empty only when the connection could not be read
        return TriggerEvent({"status": status, "vendor": vendor, **self.event_fields(), **extra})

    def error_event(self, error: EdgeInferError) -> TriggerEvent:
        return self.event("error", error=error_payload(error))

    async def with_lease(self, work: Callable[[ClientLease], Awaitable[T]]) -> T:
        """``work`` run with a lease on the connection's shared client (and its hook, ``lease.hook``),
        released once however it ends."""
        lease = await alease_connection(self.conn_id)
        self.vendor = lease.hook.vendor
        try:
            return await work(lease)
        finally:
            await lease.release()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # A coroutine, not the generator, holds the lease: it is back before the yield.
        try:
            event = await self.with_lease(self.watch)
        except EdgeInferError as exc:
            event = self.error_event(exc)
        yield event


# -- the shape of events --------------------------------------------------------------------------


class EventPayload(BaseModel):
    """What ``execute_complete`` accepts; anything else is an error, not a success."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["success", "failed", "cancelled", "timeout", "error"]
    vendor: str
    request_id: str | None = None
    job: dict[str, Any] | None = None
    #: A synchronous vendor's output, sealed for one task instance (see the module docstring).
    sealed_output: str | None = None
    #: Size in bytes of an output too large to travel (it was not sealed, and is lost).
    withheld_output_bytes: int | None = None
    error: ErrorPayload | None = None


# -- sealing a synchronous vendor's output --------------------------------------------------------


def task_identity(dag_id: str, run_id: str, task_id: str, map_index: int | None) -> str:
    """The task instance a sealed output belongs to; the same in the triggerer and on the worker."""
    return "\x1f".join([dag_id, run_id, task_id, str(-1 if map_index is None else map_index)])


def task_identity_of(ti: Any) -> str:
    """:func:`task_identity` of a task instance (Airflow's runtime one or any with the same fields)."""
    return task_identity(ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1))


def _aead(secrets: tuple[str, ...], identity: str) -> Any:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    if not any(secrets):
        raise exceptions.ConfigurationError("the connection has no secret to seal the output with")
    # Length-prefixed, so that ("ab", "c") and ("a", "bc") give different keys.
    material = b"".join(len(s.encode()).to_bytes(4, "big") + s.encode() for s in secrets)
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=identity.encode()).derive(material)
    return AESGCM(key)


def seal_output(output: Any, *, secrets: tuple[str, ...], identity: str) -> str:
    """``output`` as text only the task instance ``identity`` on this connection can read back."""
    plain = json.dumps(output, separators=(",", ":"), default=str).encode()
    nonce = os.urandom(_NONCE_BYTES)
    sealed = _aead(secrets, identity).encrypt(nonce, plain, identity.encode())
    return f"{_SEAL_VERSION}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def open_output(sealed: str, *, secrets: tuple[str, ...], identity: str, vendor: str | None = None) -> Any:
    """The output :func:`seal_output` sealed; a wrong key, task instance or altered text is an error."""
    from cryptography.exceptions import InvalidTag

    version, _, body = sealed.partition(".")
    try:
        if version != _SEAL_VERSION:
            raise ValueError(version)
        raw = base64.urlsafe_b64decode(body.encode())
        plain = _aead(secrets, identity).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], identity.encode())
        return json.loads(plain)
    except (InvalidTag, ValueError):
        raise exceptions.ConfigurationError(
            "the output the triggerer sealed cannot be opened here: the connection's key changed "
            "between the call and its completion, or the event was not made for this task instance",
            vendor=vendor,
            hint="Retry the task: the call is made again (with its idempotency key, where the vendor "
            "honours one).",
        ) from None


# -- events ---------------------------------------------------------------------------------------


def job_event(
    job: Job, *, secrets: tuple[str, ...] | None = None, identity: str | None = None
) -> dict[str, Any]:
    """The event of an ended request; its output travels only sealed, and only when a key is given."""
    data = job.model_dump(mode="json", exclude={"output"})
    if data.get("error"):
        data["error"] = short_text(data["error"])
    event: dict[str, Any] = {
        "status": _STATUS_BY_STATE.get(job.state.value, "error"),
        "vendor": job.vendor,
        "request_id": job.request_id,
        "job": data,
    }
    if job.output is not None and secrets is not None and identity is not None:
        size = len(json.dumps(job.output, separators=(",", ":"), default=str).encode())
        if size <= MAX_EVENT_OUTPUT_BYTES:
            event["sealed_output"] = seal_output(job.output, secrets=secrets, identity=identity)
        else:
            event["withheld_output_bytes"] = size
    return event


def parse_event(event: Any, vendor: str) -> EventPayload:
    try:
        return EventPayload.model_validate(event)
    except ValidationError as exc:
        raise exceptions.UnexpectedResponseError(
            f"the trigger sent an event this operator does not understand: {exc.errors()[0]['msg']}",
            vendor=vendor,
        ) from None


# -- the XCom result of one request --------------------------------------------------------------


def build_result(
    job: Job,
    output: Any,
    *,
    output_path: Any,
    submitted_at: float | None,
    xcom_max_bytes: int,
    input_ref: str | None = None,
) -> dict[str, Any]:
    """The XCom result of one request; with ``output_path``, the output and its media are written
    there first (``outputs.write_result``), else the output must fit in ``xcom_max_bytes``.

    ``input_ref``: where the input came from (a source file), carried in the result and its name.
    """
    finished = time.time()
    result: dict[str, Any] = {
        "vendor": job.vendor,
        "request_id": job.request_id,
        "service": job.service,
        "input_ref": input_ref,
        "state": job.state.value,
        "cost_usd": job.cost_usd,
        "timings": {
            "submitted_at": submitted_at,
            "completed_at": finished,
            "duration_s": round(finished - submitted_at, 3) if submitted_at else None,
        },
    }
    if output_path is not None:
        from airflow_provider_edgeinfer.outputs import write_result

        return write_result(output_path, result, output, input_ref=input_ref, xcom_max_bytes=xcom_max_bytes)
    size = len(json.dumps(output, default=str))
    if size > xcom_max_bytes:
        raise ConfigurationError(
            f"the output of request {job.request_id} is {size} bytes, above the XCom limit of "
            f"{xcom_max_bytes} bytes",
            vendor=job.vendor,
            request_id=job.request_id,
            hint="Set output_path (a local path or an object-storage URI) to write it there; the request "
            "succeeded and the retry will reattach to it without paying again.",
        )
    result["output"] = output
    return result


__all__ = [
    "DEFERRAL_GRACE_SECONDS",
    "MAX_EVENT_OUTPUT_BYTES",
    "EdgeInferTrigger",
    "EventPayload",
    "build_result",
    "deferral_timeout",
    "job_event",
    "open_output",
    "parse_event",
    "seal_output",
    "task_identity",
    "task_identity_of",
]
