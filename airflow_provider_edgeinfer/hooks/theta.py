"""Theta EdgeCloud hook: connection type ``edgeinfer_theta``."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_edgeinfer.hooks.base import EdgeInferHook, base_url_from
from airflow_provider_edgeinfer.hooks.connections import ThetaExtras

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from airflow_provider_edgeinfer.clients.core import Call
    from airflow_provider_edgeinfer.clients.jobs import Job
    from airflow_provider_edgeinfer.clients.theta import PresignedUpload, Service, ThetaAPI


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

        extras = self.read_extras(conn, ThetaExtras)
        return ThetaAPI(base_url_from(conn, BASE_URL, self.vendor), project_id=extras.project_id)

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

    @property
    def finds_lost_submissions(self) -> bool:
        """The project listing shows every request, so a lost one can be found (with a project id)."""
        return self.api.lists_request_states

    def find_lost_submissions(
        self,
        service: str,
        prediction: str | None,
        lost: Mapping[int, tuple[str, float]],
        known_ids: Collection[str] = (),
        *,
        send: Callable[[Call[Any]], Any] | None = None,
    ) -> dict[int, Job]:
        """Walk the project's newest requests (one scan, :meth:`ThetaAPI.scan_requests`) for them."""
        from airflow_provider_edgeinfer.hooks.base import input_hash

        if not lost or not self.finds_lost_submissions:
            return {}
        wanted: dict[str, list[int]] = {}
        for key, (digest, _) in sorted(lost.items()):
            wanted.setdefault(digest, []).append(key)
        listed_service = self.services().get(service)
        service_id = listed_service.id if listed_service is not None else None
        found: dict[int, Job] = {}
        scan = self.api.scan_requests(min(sent_at for _, sent_at in lost.values()))
        for listed in scan.walk(send or self.run):
            request = self.api.listed_request(listed)
            if request.id in known_ids or (service_id and request.service_id != service_id):
                continue
            if prediction and request.prediction != prediction:
                continue
            keys = wanted.get(input_hash(request.input or {}))
            if keys:
                found[keys.pop(0)] = self.api.to_job(request, service)
                if not any(wanted.values()):
                    break
        return found

    # -- uploads -------------------------------------------------------------------------------

    def check_upload_field(self, service: str, prediction: str | None, field: str) -> None:
        """The service takes ``field`` (from the catalogue, one unauthenticated call), before any upload."""
        from airflow_provider_edgeinfer.exceptions import InputValidationError

        catalogue = self.services()
        if service not in catalogue:
            raise InputValidationError(
                f"unknown service {service!r} (available: {', '.join(sorted(catalogue))})", vendor=self.vendor
            )
        name, spec = catalogue[service].prediction(prediction)
        if not spec.input_vars:
            return  # the vendor publishes no inputs for this prediction: its answer will judge
        if field not in {v.name for v in spec.input_vars}:
            files = [v.name for v in spec.input_vars if (v.type or "").lower() in ("file", "filename")]
            raise InputValidationError(
                f"service {service!r} prediction {name!r} takes no input field {field!r} "
                f"(file inputs: {', '.join(files) or 'none'}; "
                f"all inputs: {', '.join(v.name for v in spec.input_vars)})",
                vendor=self.vendor,
            )

    def presign_input_upload(self, service: str, prediction: str | None, field: str) -> PresignedUpload:
        """A fresh presigned URL for one file of input ``field``."""
        from airflow_provider_edgeinfer.exceptions import UnexpectedResponseError

        urls = self.run(self.api.presigned_urls(service, prediction=prediction, input_fields=[field]))
        if field not in urls:
            raise UnexpectedResponseError(
                f"the presigned URL answer for {service!r} has no entry for field {field!r}",
                vendor=self.vendor,
            )
        return urls[field]
