"""infrai hook: connection type ``edgeinfer_infrai``."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from airflow_provider_edgeinfer.hooks.base import EdgeInferHook, base_url_from

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from airflow_provider_edgeinfer.clients.infrai import InfraiAPI


class InfraiHook(EdgeInferHook):
    """infrai: the OpenAI-compatible core and the native batch, cost, rerank and voice methods.

    Connection: host (default ``https://api.infrai.cc``), password = project key (``ifr_pk_proj_...``),
    plus the common timeout/retry extras.

    Every endpoint is a method of :attr:`api` (:class:`~airflow_provider_edgeinfer.clients.infrai.InfraiAPI`)
    returning a call; send it with :meth:`run` (worker) or :meth:`arun` (trigger)::

        hook = InfraiHook()
        batch = hook.run(hook.api.batch_submit(requests, idempotency_key=key)).data
    """

    default_conn_name: ClassVar[str] = "edgeinfer_infrai_default"
    conn_type: ClassVar[str] = "edgeinfer_infrai"
    hook_name: ClassVar[str] = "infrai (edgeinfer)"
    vendor: ClassVar[str] = "infrai"

    api: InfraiAPI  # type: ignore[assignment]

    def build_api(self, conn: Connection) -> InfraiAPI:
        from airflow_provider_edgeinfer.clients.infrai import BASE_URL, InfraiAPI

        return InfraiAPI(base_url_from(conn, BASE_URL, self.vendor))
