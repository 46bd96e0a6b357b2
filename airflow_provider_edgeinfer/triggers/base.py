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
  connection's type, as on the worker (:func:`~airflow_provider_edgeinfer.hooks.alease_connection`),
  built once per connection and loop, and handed to every trigger with its lease (``lease.hook``).
- **Nothing blocking on start.** The vendor's hook module is imported off the loop the first time;
  the connection is read with the async API, and only by the first trigger of that connection on the
  loop (the others lease its open client and hook without reading it again).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any, ClassVar, TypeVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_edgeinfer.exceptions import EdgeInferError
from airflow_provider_edgeinfer.hooks import alease_connection
from airflow_provider_edgeinfer.hooks.base import ClientLease
from airflow_provider_edgeinfer.triggers.events import error_payload

T = TypeVar("T")

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


__all__ = ["DEFERRAL_GRACE_SECONDS", "EdgeInferTrigger", "deferral_timeout"]
