"""Theta EdgeCloud hook: connection type ``edgeinfer_theta``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_edgeinfer.hooks.base import EdgeInferHook, base_url_from

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from airflow_provider_edgeinfer.clients.core import Call
    from airflow_provider_edgeinfer.clients.theta import ThetaAPI


class ThetaHook(EdgeInferHook):
    """Theta EdgeCloud on-demand inference.

    Connection: host (default ``https://ondemand.thetaedgecloud.com``), password = API key, extra
    ``project_id`` (``prj_...``, needed to list requests), plus the common timeout/retry extras.

    Every endpoint is a method of :attr:`api` (:class:`~airflow_provider_edgeinfer.clients.theta.ThetaAPI`)
    returning a call; send it with :meth:`run` (worker) or :meth:`arun` (trigger)::

        hook = ThetaHook()
        created = hook.run(hook.api.create_request("whisper", {"audio_filename": "upl_..."}))
    """

    default_conn_name: ClassVar[str] = "edgeinfer_theta_default"
    conn_type: ClassVar[str] = "edgeinfer_theta"
    hook_name: ClassVar[str] = "Theta EdgeCloud (edgeinfer)"
    vendor: ClassVar[str] = "theta"

    api: ThetaAPI  # type: ignore[assignment]

    def build_api(self, conn: Connection) -> ThetaAPI:
        from airflow_provider_edgeinfer.clients.theta import BASE_URL, ThetaAPI

        return ThetaAPI(base_url_from(conn, BASE_URL, self.vendor), project_id=conn.extra_dejson.get("project_id"))

    def test_call(self, api: Any) -> Call[Any]:
        # /service/list needs no key, so list one page of the project's requests when we can.
        if api.project_id:
            return api.list_requests(number=1)  # type: ignore[no-any-return]
        return api.list_services(page=0, number=1)  # type: ignore[no-any-return]
