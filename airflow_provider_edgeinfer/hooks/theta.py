"""Theta EdgeCloud hook: connection type ``edgeinfer_theta``."""

from __future__ import annotations

import time
from collections.abc import Callable, Container, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_edgeinfer.hooks.base import EdgeInferHook

if TYPE_CHECKING:
    from airflow_provider_edgeinfer.clients.core import Call, HttpResult, Job
    from airflow_provider_edgeinfer.clients.theta import Service, ThetaAPI
    from airflow_provider_edgeinfer.hooks.checks import CheckResult

#: A request id Theta cannot know: a valid key gets 404, a wrong one 401 (the connection check).
PROBE_ID = "infr_rqst_" + "0" * 26


class ThetaHook(EdgeInferHook):
    """Theta EdgeCloud on-demand inference.

    Connection: host (default ``https://ondemand.thetaedgecloud.com``), password = API key, extra
    ``project_id`` (``prj_...``, needed to list requests), plus the common timeout/retry extras.

    Every endpoint is a method of :attr:`api` (:class:`~airflow_provider_edgeinfer.clients.theta.ThetaAPI`)
    returning a call; send it with :meth:`run` (worker) or :meth:`arun` (trigger)::

        hook = ThetaHook()
        created = hook.run(hook.api.create_request("whisper", {"audio_filename": "upl_..."}))
    """

    vendor: ClassVar[str] = "theta"

    api: ThetaAPI  # type: ignore[assignment]

    def services(self) -> dict[str, Service]:
        """The service catalogue by alias (one unauthenticated call, kept on the hook)."""
        return {s.alias: s for s in self.catalogue() or ()}

    @property
    def finds_lost_submissions(self) -> bool:
        """The project listing shows every request, so a lost one can be found (with a project id)."""
        return self.api.lists_request_states

    def find_lost_submissions(
        self,
        service: str,
        prediction: str | None,
        lost: Mapping[int, tuple[str, float]],
        known_ids: Container[str] = (),
        *,
        send: Callable[[Call[Any]], Any] | None = None,
    ) -> dict[int, Job]:
        """Walk the project's newest requests (one scan, :meth:`ThetaAPI.scan_requests`) for them.

        :param service: the service the submissions named.
        :param prediction: the prediction they named (None: any).
        :param lost: key -> (input hash, epoch seconds when it was sent).
        :param known_ids: request ids already accounted for, never matched.
        :param send: sends one listing call (default :meth:`run`).
        """
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
        """The service takes ``field`` (from the catalogue, one unauthenticated call), before any upload.

        :param service: the service alias the file is for.
        :param prediction: its prediction name (None: the default).
        :param field: the input field the uploaded file's name fills.
        """
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

    # -- connection checks ---------------------------------------------------------------------

    def read_only_checks(self) -> Iterator[CheckResult]:
        from airflow_provider_edgeinfer.exceptions import EdgeInferError, NotFoundError
        from airflow_provider_edgeinfer.hooks.checks import CheckResult, count, error_text

        api = self.api
        yield self.attempt(
            "services listed (no key needed)",
            api.list_services(),
            lambda page, _: count(page, "services: " + ", ".join(s.alias for s in page.items[:8])),
        )
        if api.project_id:
            listing = self.attempt(
                "key accepted (project listing)",
                api.list_requests(number=1),
                lambda page, _: (
                    f"project {api.project_id}: {page.total if page.total is not None else '?'} requests"
                ),
                lambda page, _: [] if page.total is not None else ["the listing gave no pagination.total"],
            )
            yield listing
            if listing.ok and listing.value.items:
                newest = listing.value.items[0].id
                yield self.attempt(
                    "one request read",
                    api.get_request(newest),
                    lambda request, _: f"{request.id}: {request.state}",
                    _get_shape,
                )
            return
        try:
            self.run(api.get_request(PROBE_ID))
            yield CheckResult("key accepted", True, "a probe request id was answered")
        except NotFoundError:
            yield CheckResult("key accepted", True, "an unknown request id was answered 404, not 401")
        except EdgeInferError as exc:
            yield CheckResult("key accepted", False, error_text(exc))
        yield CheckResult(
            "project listing", None, "no project_id extra: set it to let retries find lost submissions"
        )

    def paid_check(self, limit: float, wait: float) -> CheckResult:
        """The cheapest service whose (assumed) ``cost`` states a price, if that price is within ``limit``.

        :param limit: the most it may cost, in the vendor's billing currency.
        :param wait: seconds the inference may run before the check gives up on it.
        """
        from airflow_provider_edgeinfer.hooks.checks import CheckResult
        from airflow_provider_edgeinfer.progress import usd

        candidates = []
        for service in self.services().values():
            for name, spec in service.predictions.items():
                price = theta_price(spec.cost)
                data = _smallest_input(spec)
                if price is not None and data is not None:
                    candidates.append((price, service.alias, name, data))
        if not candidates:
            return CheckResult("paid inference", None, "refused: no service states a price; nothing was sent")
        price, alias, prediction, data = min(candidates, key=lambda c: c[0])
        if price > limit:
            return CheckResult(
                "paid inference",
                None,
                f"refused: the cheapest, {alias}, costs {usd(price)} > {usd(limit)}; nothing was sent",
            )
        self.validate_submission(alias, prediction, data)
        job = self.run(self.api.submit(alias, data, prediction=prediction))
        deadline = time.monotonic() + wait
        while not job.terminal and time.monotonic() < deadline:
            time.sleep(1.0)
            job = self.run(self.api.status(job.request_id))
        if not job.terminal:
            self.run(self.api.cancel(job.request_id))
            return CheckResult(
                "paid inference", False, f"{alias} {job.request_id} still {job.vendor_state}; cancelled"
            )
        cost = (
            usd(job.cost_usd) if job.cost_usd is not None else f"about {usd(price)} (the answer states none)"
        )
        return CheckResult(
            "paid inference",
            job.state.value == "succeeded",
            f"{alias}/{prediction} {job.request_id}: {job.vendor_state}"
            + (f" ({job.error})" if job.error else ""),
            cost=cost,
        )


def _get_shape(request: Any, result: HttpResult) -> list[str]:
    """Which of the two tolerated forms ``GET /infer_request/{id}`` answered in."""
    import json

    try:
        body = json.loads(result.content).get("body")
    except (ValueError, AttributeError):
        return []
    if isinstance(body, dict) and "infer_requests" in body:
        return ["one request came as body.infer_requests[0] (the form public clients read)"]
    return ["one request came as a bare body (the tolerated alternative; please report it)"]


def theta_price(cost: Any) -> float | None:
    """A prediction's price per request in USD, if its (assumed) ``cost`` object states one."""
    if isinstance(cost, int | float) and not isinstance(cost, bool):
        return float(cost)
    if isinstance(cost, dict):
        prices = [
            float(v)
            for k, v in cost.items()
            if "usd" in str(k).lower() and isinstance(v, int | float) and not isinstance(v, bool)
        ]
        return max(prices) if prices else None
    return None


def _smallest_input(prediction: Any) -> dict[str, Any] | None:
    """The smallest input of a prediction, or None if it needs a file."""
    from airflow_provider_edgeinfer.hooks.checks import TINY_CHAT

    values: dict[str, Any] = {}
    for var in prediction.input_vars:
        if not var.required or var.default is not None:
            continue
        kind = (var.type or "").lower()
        if var.name == "messages":
            values["messages"] = TINY_CHAT
        elif kind in ("str", "string", "text"):
            values[var.name] = "OK"
        elif kind in ("int", "integer"):
            values[var.name] = 1
        elif kind in ("float", "number"):
            values[var.name] = 0.0
        else:
            return None  # files and lists need real content
    if any(v.name == "max_tokens" for v in prediction.input_vars):
        values["max_tokens"] = 1
    return values
