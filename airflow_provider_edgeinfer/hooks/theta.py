"""Theta EdgeCloud hook: connection type ``edgeinfer_theta``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_edgeinfer.hooks.base import EdgeInferHook, base_url_from

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from airflow_provider_edgeinfer.clients.jobs import Job
    from airflow_provider_edgeinfer.clients.theta import Service, ThetaAPI

#: Tolerated difference between this machine's clock and Theta's when matching a lost submission.
SUBMISSION_CLOCK_SKEW = 300.0
#: How many pages of 100 requests are searched for a lost submission.
FIND_SUBMISSION_MAX_PAGES = 5


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
    _services: dict[str, Service] | None = None

    def build_api(self, conn: Connection) -> ThetaAPI:
        from airflow_provider_edgeinfer.clients.theta import BASE_URL, ThetaAPI

        return ThetaAPI(
            base_url_from(conn, BASE_URL, self.vendor), project_id=conn.extra_dejson.get("project_id")
        )

    def services(self) -> dict[str, Service]:
        """The service catalogue by alias (one unauthenticated call, cached on the hook)."""
        if self._services is None:
            self._services = {s.alias: s for s in self.get_conn().iterate(self.api.list_services())}
        return self._services

    def validate_submission(
        self, service: str, prediction: str | None, input: dict[str, Any], **options: Any
    ) -> None:
        from airflow_provider_edgeinfer.clients.theta import validate_input
        from airflow_provider_edgeinfer.exceptions import InputValidationError

        catalogue = self.services()
        if service not in catalogue:
            raise InputValidationError(
                f"unknown service {service!r} (available: {', '.join(sorted(catalogue))})", vendor=self.vendor
            )
        validate_input(catalogue[service], prediction, input)
        super().validate_submission(service, prediction, input, **options)

    def find_submission(
        self, service: str, prediction: str | None, input: dict[str, Any], since: float
    ) -> Job | None:
        """Search the project's newest requests for one with this service and input made since ``since``."""
        from datetime import datetime

        if not self.api.project_id:
            return None
        wanted = self.services().get(service)
        for pages, page in enumerate(self.get_conn().pages(self.api.list_requests(number=100)), start=1):
            for request in page.items:
                created = datetime.fromisoformat(
                    (request.create_time or "").replace("Z", "+00:00")
                ).timestamp()
                if created < since - SUBMISSION_CLOCK_SKEW:
                    return None  # newest first: everything further is older
                same_service = wanted is None or request.service_id == wanted.id
                if (
                    same_service
                    and request.input == input
                    and (not prediction or request.prediction == prediction)
                ):
                    return self.api.to_job(request, service)
            if pages >= FIND_SUBMISSION_MAX_PAGES:
                return None
        return None
