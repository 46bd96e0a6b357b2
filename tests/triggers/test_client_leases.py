"""Leases on a connection's shared client: exact however their holders' tasks end.

The registry is exercised with stand-in clients (only ``aclose`` and ``closed`` are used) where the
test needs to stop time at a given await; the hook and poller tests use the emulator.
"""

from __future__ import annotations

import asyncio
from typing import Any

import greenback
import pytest

from airflow_provider_edgeinfer.hooks.base import _SharedClients, shared_clients
from airflow_provider_edgeinfer.hooks.theta import ThetaHook
from airflow_provider_edgeinfer.triggers.inference import pollers, watch
from tests.triggers.conftest import submit
from tests.triggers.test_poller import until
from tests.triggers.triggerer import Triggerer


class StandIn:
    """A client as the registry sees it; ``aclose`` waits for ``may_close`` when given one."""

    built = 0

    def __init__(self, may_close: asyncio.Event | None = None) -> None:
        StandIn.built += 1
        self.closed = False
        self._may_close = may_close

    async def aclose(self) -> None:
        if self._may_close is not None:
            await self._may_close.wait()
        self.closed = True


def building(client: Any, started: asyncio.Event | None = None, go: asyncio.Event | None = None) -> Any:
    async def build() -> Any:
        if started is not None:
            started.set()
        if go is not None:
            await go.wait()
        return client, None  # no hook: the registry only hands it out

    return build


async def test_a_lease_gives_back_its_own_hold_once() -> None:
    registry = _SharedClients()
    first = await registry.lease("k", building(StandIn()))
    second = registry.acquire_live("k")
    assert second is not None and second.client is first.client and registry.users("k") == 2

    await first.release()
    await first.release()  # a second release must not take the other holder's count
    assert registry.users("k") == 1 and not second.client.closed

    await second.release()
    await registry.drain()
    assert registry.active() == 0 and second.client.closed


async def test_users_arriving_while_one_builds_wait_for_it_and_share_it() -> None:
    registry = _SharedClients()
    started, go = asyncio.Event(), asyncio.Event()
    client = StandIn()
    builder = asyncio.create_task(registry.lease("k", building(client, started, go)))
    await started.wait()
    spare = StandIn()
    others = [asyncio.create_task(registry.lease("k", building(spare))) for _ in range(20)]
    await asyncio.sleep(0.01)
    assert not any(task.done() for task in others), "they wait for the one being built"

    go.set()
    leases = [await builder, *[await task for task in others]]
    assert {id(lease.client) for lease in leases} == {id(client)} and registry.users("k") == 21
    for lease in leases:
        await lease.release()
    await registry.drain()
    assert client.closed and registry.active() == 0


async def test_a_waiter_cancelled_holds_nothing_and_a_failed_build_lets_the_next_one_build() -> None:
    registry = _SharedClients()
    started, go = asyncio.Event(), asyncio.Event()

    async def failing() -> Any:
        started.set()
        await go.wait()
        raise OSError("no client today")

    builder = asyncio.create_task(registry.lease("k", failing))
    await started.wait()
    cancelled = asyncio.create_task(registry.lease("k", building(StandIn())))
    waiter = asyncio.create_task(registry.lease("k", building(StandIn())))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    go.set()

    with pytest.raises(OSError, match="no client today"):
        await builder
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    lease = await waiter  # it built the client itself once the first build failed
    assert registry.users("k") == 1
    await lease.release()
    assert registry.active() == 0


async def test_a_factory_that_suspends_does_not_split_its_users() -> None:
    """``acquire`` with a factory that yields to the loop (as extras do in the triggerer, via greenback)."""
    registry = _SharedClients()

    async def user() -> Any:
        await greenback.ensure_portal()

        def factory() -> Any:
            greenback.await_(asyncio.sleep(0.01))  # the supervisor answering MaskSecret
            return StandIn()

        no_hook: Any = None
        return registry.acquire("k", factory, no_hook)

    leases = await asyncio.gather(*(user() for _ in range(10)))
    assert len({id(lease.client) for lease in leases}) == 1 and registry.users("k") == 10
    for lease in leases:
        await lease.release()
    await registry.drain()
    assert registry.active() == 0 and leases[0].client.closed


async def test_a_release_cancelled_while_closing_still_closes_the_client() -> None:
    registry = _SharedClients()
    may_close = asyncio.Event()
    lease = await registry.lease("k", building(StandIn(may_close)))
    releasing = asyncio.create_task(lease.release())
    await asyncio.sleep(0.01)
    assert registry.active() == 0, "a client leaves the table before it closes: no one joins it"
    releasing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await releasing
    may_close.set()
    await registry.drain()
    assert lease.client.closed


async def test_an_old_lease_never_closes_a_newer_client() -> None:
    registry = _SharedClients()
    old = await registry.lease("k", building(StandIn()))
    await registry.close_all()  # a shutdown closes it under its holder
    new = await registry.lease("k", building(StandIn()))
    await old.release()
    assert registry.users("k") == 1 and not new.client.closed
    await new.release()
    await registry.drain()
    assert new.client.closed and registry.active() == 0


# -- through the hooks and the poller, against the emulator ----------------------------------------


async def test_a_hook_releases_only_what_it_took(theta: Any) -> None:
    holder = ThetaHook()
    client = await holder.aget_client()
    await ThetaHook().arelease()  # took nothing: gives nothing back
    assert shared_clients.users(holder.shared_key) == 1 and not client.closed
    await holder.arelease()
    await holder.arelease()
    await shared_clients.drain()
    assert shared_clients.active() == 0 and client.closed


async def test_triggers_starting_together_build_one_client_and_read_the_connection_once(
    theta: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under the triggerer's comms a connection's extras suspend the reader; still one client."""
    built: list[Any] = []
    lookups: list[str] = []
    build_client = ThetaHook.async_client
    read_connection = ThetaHook.aconnection

    def counting_build(self: ThetaHook, conn: Any) -> Any:
        built.append(conn)
        return build_client(self, conn)

    async def counting_read(self: ThetaHook) -> Any:
        lookups.append(self.conn_id)
        return await read_connection(self)

    monkeypatch.setattr(ThetaHook, "async_client", counting_build)
    monkeypatch.setattr(ThetaHook, "aconnection", counting_read)

    async def start() -> Any:
        await greenback.ensure_portal()
        return await ThetaHook().alease()

    async with Triggerer():
        leases = await asyncio.gather(*(start() for _ in range(30)))
        assert len(built) == 1 and len(lookups) == 1
        assert len({id(lease.client) for lease in leases}) == 1
        for lease in leases:
            await lease.release()
    await shared_clients.drain()
    assert shared_clients.active() == 0 and leases[0].client.closed


async def test_triggers_find_the_hook_by_connection_type_and_read_the_connection_once(
    theta: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The triggerer finds the hook as the worker does (by the connection's type), once per loop."""
    from airflow.sdk import BaseHook

    from airflow_provider_edgeinfer.hooks.base import alease_connection

    lookups: list[str] = []
    read = BaseHook.aget_connection.__func__  # type: ignore[attr-defined]

    async def counting(cls: type[BaseHook], conn_id: str) -> Any:
        lookups.append(conn_id)
        return await read(cls, conn_id)

    monkeypatch.setattr(BaseHook, "aget_connection", classmethod(counting))

    async def start() -> Any:
        await greenback.ensure_portal()
        return await alease_connection("edgeinfer_theta_default")

    async with Triggerer():
        leases = await asyncio.gather(*(start() for _ in range(30)))
        assert lookups == ["edgeinfer_theta_default"]
        assert {type(lease.hook) for lease in leases} == {ThetaHook}
        assert len({id(lease.hook) for lease in leases}) == 1  # built once, handed to every holder
        own = await leases[0].hook.alease()  # a hook's own lease: one key for both ways in
        assert own.client is leases[0].client and own.key == leases[0].key
        await own.release()
        for lease in leases:
            await lease.release()
    await shared_clients.drain()
    assert shared_clients.active() == 0 and leases[0].client.closed


async def test_the_poller_holds_its_own_lease(theta: Any) -> None:
    (request_id,) = submit(1)
    hook = ThetaHook()
    lease = await hook.alease()
    key = hook.shared_key
    async with watch(key, lease, request_id, interval=0.02, max_failures=3):
        assert shared_clients.users(key) == 2
        await lease.release()  # the watcher lets go first: the poller still polls on an open client
        assert shared_clients.users(key) == 1 and not lease.client.closed
        poller = pollers.get(key)
        assert poller is not None
        rounds = poller.rounds
        await until(lambda: poller.rounds > rounds + 1)
    await shared_clients.drain()
    assert pollers.active() == 0 and shared_clients.active() == 0 and lease.client.closed
