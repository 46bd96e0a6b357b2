"""Check a connection against its vendor before the first real run.

``python -m airflow_provider_edgeinfer.check --conn-id edgeinfer_theta_default [--spend-up-to 0.01]``

The connection is read the way Airflow reads it (``AIRFLOW_CONN_<ID>`` works). The check sends the
cheapest read-only calls through the vendor's hook and client (the key is accepted, the service or
model list reads, the balance where the vendor has one), each once, with no retries and a 10 s limit,
and reports what worked, what the vendor answered beyond the contract the client is written against
(answer fields the client does not know: it keeps them, but the contract may be out of date), and
what failed. Only with ``--spend-up-to`` does it make one smallest paid inference, and only when the
vendor's price or estimate is known and within the limit (in the vendor's billing currency).

:func:`read_only_checks` is the part a hook's ``test_connection`` can call.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from airflow_provider_edgeinfer.costs import usd
from airflow_provider_edgeinfer.exceptions import EdgeInferError, NotFoundError

if TYPE_CHECKING:
    from airflow_provider_edgeinfer.clients.core import Call, HttpResult
    from airflow_provider_edgeinfer.clients.transport import HttpSettings
    from airflow_provider_edgeinfer.hooks.base import EdgeInferHook

#: Longest a check call may take, and the longest wait for the paid inference to end.
CALL_SECONDS = 10.0
INFERENCE_WAIT_SECONDS = 120.0
#: A chat turn that costs as little as a model can charge.
TINY_CHAT = [{"role": "user", "content": "Reply with OK."}]
#: A probe id Theta cannot know: a valid key gets 404, a wrong one 401.
THETA_PROBE_ID = "infr_rqst_" + "0" * 26
OCTOAI_PROBE_ID = "edgeinfer-check-probe"


@dataclass
class CheckResult:
    """One check: ``ok`` is True (worked), False (failed) or None (skipped, nothing was sent)."""

    name: str
    ok: bool | None
    detail: str
    #: Answer fields the client's models do not declare (kept, but not in the contract).
    unknown_fields: list[str] = field(default_factory=list)
    #: Shapes the vendor chose where the client tolerates more than one.
    notes: list[str] = field(default_factory=list)
    cost: str | None = None
    #: The parsed answer, for a check that builds on it (not reported).
    value: Any = field(default=None, repr=False, compare=False)

    @property
    def label(self) -> str:
        return {True: "ok", False: "FAIL", None: "skip"}[self.ok]


def check_settings(seconds: float = CALL_SECONDS) -> HttpSettings:
    """HTTP settings of a check: each call sent once, bounded by ``seconds`` in all."""
    from airflow_provider_edgeinfer.clients.retry import RetrySettings
    from airflow_provider_edgeinfer.clients.transport import HttpSettings

    return HttpSettings(
        connect_timeout=seconds,
        read_timeout=seconds,
        retry=RetrySettings(max_attempts=1, max_total_delay=0.0),
        call_deadline=seconds,
    )


def checking_hook(conn_id: str, seconds: float = CALL_SECONDS) -> EdgeInferHook:
    """The vendor hook of ``conn_id`` (chosen by its type), with :func:`check_settings`."""
    from airflow.sdk import BaseHook

    from airflow_provider_edgeinfer.hooks import hook_class_for_conn_type

    conn = BaseHook.get_connection(conn_id)
    hook = hook_class_for_conn_type(conn.conn_type, conn_id)(conn_id, http_settings=check_settings(seconds))
    hook._conn = hook._check_type(conn)
    return hook


# -- what an answer holds beyond the contract ----------------------------------------------------


def unknown_fields(value: Any, path: str = "") -> list[str]:
    """Dotted paths of answer fields the client's (lenient) pydantic models kept as extras."""
    found: list[str] = []
    if isinstance(value, BaseModel):
        for name in sorted(value.model_extra or {}):
            found.append(f"{path}.{name}".lstrip("."))
        for name in type(value).model_fields:
            found += unknown_fields(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list | tuple):
        for item in value:
            found += unknown_fields(item, f"{path}[]")
    elif isinstance(value, dict):
        for key, item in value.items():
            found += unknown_fields(item, f"{path}.{key}")
    elif hasattr(value, "items") and hasattr(value, "next_call"):  # a Page
        found += unknown_fields(value.items, f"{path}items")
    return sorted(set(found))


def _raw(call: Call[Any]) -> Call[tuple[Any, HttpResult]]:
    """The same call, answered with its parsed value and the raw answer (status, shape)."""
    return call.reparse(lambda result: (call.parse(result), result))


def _attempt(
    name: str,
    hook: EdgeInferHook,
    call: Call[Any],
    describe: Callable[[Any, HttpResult], str],
    notes: Callable[[Any, HttpResult], list[str]] | None = None,
) -> CheckResult:
    started = time.monotonic()
    try:
        value, result = hook.run(_raw(call))
    except EdgeInferError as exc:
        return CheckResult(name, False, _error(exc))
    except Exception as exc:  # a check reports every failure; our errors carry no secrets
        return CheckResult(name, False, f"{type(exc).__name__}: {exc}")
    took = (time.monotonic() - started) * 1000
    where = f"{call.method} {_path(call.url)}, HTTP {result.status}, {took:.0f} ms"
    return CheckResult(
        name,
        True,
        f"{describe(value, result)} ({where})",
        unknown_fields=unknown_fields(value),
        notes=notes(value, result) if notes else [],
        value=value,
    )


def _path(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path or "/"


def _error(exc: EdgeInferError) -> str:
    # The message names the vendor, the operation and the HTTP status already.
    return f"{type(exc).__name__}: {exc}"


def _count(value: Any, what: str) -> str:
    items = value.items if hasattr(value, "next_call") else value
    return f"{len(items)} {what}"


# -- read-only checks, per vendor ------------------------------------------------------------------


def read_only_checks(hook: EdgeInferHook) -> list[CheckResult]:
    """The cheapest read-only calls of the hook's vendor; nothing is created or billed.

    Each call is sent as the hook is configured: give the hook :func:`check_settings` (as
    :func:`checking_hook` does) for one attempt within 10 s.
    """
    checks = {
        "theta": _theta_checks,
        "octoai": _octoai_checks,
        "infrai": _infrai_checks,
        "omnitensor": _omnitensor_checks,
    }[hook.vendor]
    try:
        return list(checks(hook))
    except EdgeInferError as exc:  # e.g. a connection without a key: nothing could be sent
        return [CheckResult("connection", False, _error(exc))]


def _theta_checks(hook: Any) -> Iterator[CheckResult]:
    api = hook.api
    yield _attempt(
        "services listed (no key needed)",
        hook,
        api.list_services(),
        lambda page, _: _count(page, "services: " + ", ".join(s.alias for s in page.items[:8])),
    )
    if api.project_id:
        listing = _attempt(
            "key accepted (project listing)",
            hook,
            api.list_requests(number=1),
            lambda page, _: (
                f"project {api.project_id}: {page.total if page.total is not None else '?'} requests"
            ),
            lambda page, _: [] if page.total is not None else ["the listing gave no pagination.total"],
        )
        yield listing
        if listing.ok and listing.value.items:
            newest = listing.value.items[0].id
            yield _attempt(
                "one request read",
                hook,
                api.get_request(newest),
                lambda request, _: f"{request.id}: {request.state}",
                _theta_get_shape,
            )
        return
    try:
        hook.run(api.get_request(THETA_PROBE_ID))
        yield CheckResult("key accepted", True, "a probe request id was answered")
    except NotFoundError:
        yield CheckResult("key accepted", True, "an unknown request id was answered 404, not 401")
    except EdgeInferError as exc:
        yield CheckResult("key accepted", False, _error(exc))
    yield CheckResult(
        "project listing", None, "no project_id extra: set it to let retries find lost submissions"
    )


def _theta_get_shape(request: Any, result: HttpResult) -> list[str]:
    """Which of the two tolerated forms ``GET /infer_request/{id}`` answered in."""
    import json

    try:
        body = json.loads(result.content).get("body")
    except (ValueError, AttributeError):
        return []
    if isinstance(body, dict) and "infer_requests" in body:
        return ["one request came as body.infer_requests[0] (the form public clients read)"]
    return ["one request came as a bare body (the tolerated alternative; please report it)"]


def _octoai_checks(hook: Any) -> Iterator[CheckResult]:
    api = hook.api
    yield _attempt(
        "token accepted (text models listed)",
        hook,
        api.list_text_models(),
        lambda models, _: _count(models.data, "text models"),
    )
    from airflow_provider_edgeinfer.exceptions import AuthenticationError, JobFailedError

    try:
        hook.run(api.poll(OCTOAI_PROBE_ID))
        yield CheckResult("async host reachable", True, "a probe id was answered")
    except JobFailedError as exc:
        # OctoAI reports an unknown request with a 4xx: the host answered and took the token.
        yield CheckResult("async host reachable", True, f"an unknown id was answered HTTP {exc.http_status}")
    except AuthenticationError as exc:
        yield CheckResult("async host reachable", False, _error(exc))
    except EdgeInferError as exc:
        yield CheckResult("async host reachable", False, _error(exc))


def _infrai_checks(hook: Any) -> Iterator[CheckResult]:
    api = hook.api
    yield _attempt(
        "key accepted (models listed)",
        hook,
        api.list_models(),
        lambda models, _: _count(models.data, "models"),
    )
    yield _attempt(
        "native methods (batch list)",
        hook,
        api.batch_list(limit=1),
        lambda page, _: f"{page.total if page.total is not None else len(page.items)} batches",
    )
    yield _attempt(
        "native methods (voices)",
        hook,
        api.tts_voices(limit=1),
        lambda page, _: f"{page.total if page.total is not None else len(page.items)} voices",
    )


def _omnitensor_checks(hook: Any) -> Iterator[CheckResult]:
    api = hook.api
    yield _attempt(
        "key and secret exchanged, balance read",
        hook,
        api.balance(),
        lambda balance, _: f"balance {balance.balance} {balance.currency}",
    )
    yield _attempt(
        "models listed",
        hook,
        api.list_models(limit=1),
        lambda page, _: _count(page, "model(s) on the first page"),
        lambda _, result: (
            ["the model list came as an object, not the documented bare array"]
            if result.content.lstrip()[:1] == b"{"
            else []
        ),
    )


# -- one paid inference --------------------------------------------------------------------------


def paid_check(hook: EdgeInferHook, limit: float, wait: float = INFERENCE_WAIT_SECONDS) -> CheckResult:
    """One smallest inference, only if its price or estimate is known and at most ``limit``."""
    spend = {"theta": _theta_paid, "infrai": _infrai_paid}.get(hook.vendor)
    if spend is None:
        reason = {
            "octoai": "OctoAI's API states no price before an inference",
            "omnitensor": "OmniTensor states an inference's cost (in OMNIT) only after it ran",
        }.get(hook.vendor, "no price is known")
        return CheckResult("paid inference", None, f"refused: {reason}; nothing was sent")
    try:
        return spend(hook, limit, wait)
    except EdgeInferError as exc:
        return CheckResult("paid inference", False, _error(exc))


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


def _theta_input(prediction: Any) -> dict[str, Any] | None:
    """The smallest input of a prediction, or None if it needs a file."""
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


def _theta_paid(hook: Any, limit: float, wait: float) -> CheckResult:
    candidates = []
    for service in hook.services().values():
        for name, prediction in service.predictions.items():
            price = theta_price(prediction.cost)
            data = _theta_input(prediction)
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
    hook.validate_submission(alias, prediction, data)
    job = hook.run(hook.api.submit(alias, data, prediction=prediction))
    deadline = time.monotonic() + wait
    while not job.terminal and time.monotonic() < deadline:
        time.sleep(1.0)
        job = hook.run(hook.api.status(job.request_id))
    if not job.terminal:
        hook.run(hook.api.cancel(job.request_id))
        return CheckResult(
            "paid inference", False, f"{alias} {job.request_id} still {job.vendor_state}; cancelled"
        )
    cost = usd(job.cost_usd) if job.cost_usd is not None else f"about {usd(price)} (the answer states none)"
    return CheckResult(
        "paid inference",
        job.state.value == "succeeded",
        f"{alias}/{prediction} {job.request_id}: {job.vendor_state}"
        + (f" ({job.error})" if job.error else ""),
        cost=cost,
    )


def _infrai_paid(hook: Any, limit: float, wait: float) -> CheckResult:
    api = hook.api
    estimates = hook.run(api.cost_compare(TINY_CHAT, expected_output_tokens=1)).data.estimates
    if not estimates:
        return CheckResult("paid inference", None, "refused: no estimate came back; nothing was sent")
    cheapest = min(estimates, key=lambda e: e.breakdown.total_usd)
    if cheapest.breakdown.total_usd > limit:
        return CheckResult(
            "paid inference",
            None,
            f"refused: the cheapest, {cheapest.model}, is estimated at {usd(cheapest.breakdown.total_usd)} "
            f"> {usd(limit)}; nothing was sent",
        )
    call = api.chat_completion(
        {"model": cheapest.model, "messages": TINY_CHAT, "max_tokens": 1}, idempotency_key=uuid.uuid4().hex
    )
    value, result = hook.run(_raw(call))
    from airflow_provider_edgeinfer.clients.infrai import core_cost

    cost = core_cost(api.json_body(result))
    return CheckResult(
        "paid inference",
        True,
        f"{cheapest.model}: {value.choices[0].message.content!r}" if value.choices else cheapest.model,
        unknown_fields=unknown_fields(value),
        cost=usd(cost) if cost is not None else f"estimated {usd(cheapest.breakdown.total_usd)}",
    )


# -- report and command line -----------------------------------------------------------------------


def summary(results: Sequence[CheckResult]) -> str:
    """One line for a UI: what failed, else what worked."""
    failed = [r for r in results if r.ok is False]
    if failed:
        return "; ".join(f"{r.name}: {r.detail}" for r in failed)
    return "; ".join(f"{r.name}: {r.detail}" for r in results if r.ok)


def report(hook: EdgeInferHook, results: Sequence[CheckResult]) -> str:
    base = ", ".join(hook.api.base_urls())
    lines = [f"edgeinfer check of connection {hook.conn_id!r}: {hook.vendor} at {base}"]
    for r in results:
        lines.append(f"  {r.label:<5} {r.name}: {r.detail}")
        if r.cost:
            lines.append(f"        cost: {r.cost}")
        for note in r.notes:
            lines.append(f"        shape: {note}")
        if r.unknown_fields:
            lines.append(
                "        fields the contract does not list (kept, please report them): "
                + ", ".join(r.unknown_fields[:20])
                + (f" (and {len(r.unknown_fields) - 20} more)" if len(r.unknown_fields) > 20 else "")
            )
    passed = sum(r.ok is True for r in results)
    failed = sum(r.ok is False for r in results)
    skipped = sum(r.ok is None for r in results)
    lines.append(f"result: {passed} passed, {failed} failed, {skipped} skipped")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_edgeinfer.check",
        description="Check an edgeinfer connection against its vendor: read-only calls, and one smallest "
        "paid inference only if asked.",
    )
    parser.add_argument("--conn-id", required=True, help="the Airflow connection (AIRFLOW_CONN_<ID> works)")
    parser.add_argument(
        "--spend-up-to",
        type=float,
        default=None,
        metavar="AMOUNT",
        help="also run one smallest paid inference, if its known price or estimate is at most AMOUNT "
        "(the vendor's billing currency: USD)",
    )
    parser.add_argument("--timeout", type=float, default=CALL_SECONDS, help="seconds per call (default 10)")
    parser.add_argument(
        "--wait", type=float, default=INFERENCE_WAIT_SECONDS, help="seconds the paid inference may take"
    )
    args = parser.parse_args(argv)
    if args.spend_up_to is not None and not 0 < args.spend_up_to < float("inf"):
        parser.error("--spend-up-to must be a positive amount")
    if not 0 < args.timeout < float("inf") or not 0 < args.wait < float("inf"):
        parser.error("--timeout and --wait must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """0 when every check that ran passed, 1 when one failed or a paid check was refused, 2 when
    the connection cannot be used at all."""
    args = parse_args(argv)
    try:
        hook = checking_hook(args.conn_id, args.timeout)
        hook.api  # noqa: B018 - builds the client: a bad host or extra fails here, clearly
    except Exception as exc:
        print(f"cannot use connection {args.conn_id!r}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    try:
        results = read_only_checks(hook)
        if args.spend_up_to is not None:
            results.append(paid_check(hook, args.spend_up_to, args.wait))
        else:
            results.append(
                CheckResult("paid inference", None, "not asked (--spend-up-to); nothing was billed")
            )
    finally:
        hook.close()
    print(report(hook, results))
    refused = args.spend_up_to is not None and results[-1].ok is None
    return 1 if any(r.ok is False for r in results) or refused else 0


if __name__ == "__main__":
    sys.exit(main())
