"""One hook per vendor, found one way: by the connection's type (:data:`HOOKS`).

Operators never name a vendor: switching vendor is switching ``conn_id``. A worker finds the hook
with :func:`hook_for_connection`; a trigger with :func:`alease_connection`, which reads the
connection only for the first trigger of it on the event loop (the others join its client and hook).
"""

from __future__ import annotations

import asyncio
import sys
from importlib import import_module
from typing import TYPE_CHECKING, Any

from airflow_provider_edgeinfer.exceptions import ConfigurationError

if TYPE_CHECKING:
    from airflow_provider_edgeinfer.clients.transport import AsyncClient, HttpSettings
    from airflow_provider_edgeinfer.hooks.base import ClientLease, EdgeInferHook

#: connection type -> (vendor, hook class path)
HOOKS: dict[str, tuple[str, str]] = {
    "edgeinfer_theta": ("theta", "airflow_provider_edgeinfer.hooks.theta.ThetaHook"),
    "edgeinfer_octoai": ("octoai", "airflow_provider_edgeinfer.hooks.octoai.OctoAIHook"),
    "edgeinfer_infrai": ("infrai", "airflow_provider_edgeinfer.hooks.infrai.InfraiHook"),
    "edgeinfer_omnitensor": ("omnitensor", "airflow_provider_edgeinfer.hooks.omnitensor.OmniTensorHook"),
}


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
    from airflow.sdk import BaseHook

    conn = BaseHook.get_connection(conn_id)
    cls = hook_class_for_conn_type(conn.conn_type, conn_id)
    return cls(conn_id, http_settings=http_settings, connection=conn)


async def alease_connection(conn_id: str) -> ClientLease:
    """A lease on ``conn_id``'s shared async client on the running loop; ``lease.hook`` is its hook.

    Only the first user on the loop reads the connection (asynchronously), chooses the hook by the
    connection's type, as :func:`hook_for_connection` does, and builds the client; the others join
    them. A hook module's first import in a process runs in a thread, not on the loop.
    """
    from airflow.sdk import BaseHook

    from airflow_provider_edgeinfer.hooks.base import shared_clients

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
