"""Check a connection against its vendor before the first real run.

``python -m airflow_provider_edgeinfer.check --conn-id <conn_id> [--spend-up-to 0.01]``

The connection is read the way Airflow reads it (``AIRFLOW_CONN_<ID>`` works). The check sends the
cheapest read-only calls through the vendor's hook and client (the key is accepted, the service or
model list reads, the balance where the vendor has one), each once, with no retries and a 10 s limit,
and reports what worked, what the vendor answered beyond the contract the client is written against
(answer fields the client does not know: it keeps them, but the contract may be out of date), and
what failed. Only with ``--spend-up-to`` does it make one smallest paid inference, and only when the
vendor's price or estimate is known and within the limit (in the vendor's billing currency).

:func:`read_only_checks` is the part a hook's ``test_connection`` can call. What each vendor checks
is its hook's (:meth:`~airflow_provider_edgeinfer.hooks.base.EdgeInferHook.read_only_checks` and
``paid_check``); this module only runs them and reports.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from airflow_provider_edgeinfer.exceptions import EdgeInferError
from airflow_provider_edgeinfer.hooks.checks import (
    CALL_SECONDS,
    INFERENCE_WAIT_SECONDS,
    CheckResult,
    check_settings,
    error_text,
    read_only_checks,
    summary,
    unknown_fields,
)

if TYPE_CHECKING:
    from airflow_provider_edgeinfer.hooks.base import EdgeInferHook


def checking_hook(conn_id: str, seconds: float = CALL_SECONDS) -> EdgeInferHook:
    """The vendor hook of ``conn_id`` (chosen by its type), with :func:`check_settings`."""
    from airflow_provider_edgeinfer.hooks.base import hook_for_connection

    return hook_for_connection(conn_id, http_settings=check_settings(seconds))


def paid_check(hook: EdgeInferHook, limit: float, wait: float = INFERENCE_WAIT_SECONDS) -> CheckResult:
    """One smallest inference, only if its price or estimate is known and at most ``limit``."""
    try:
        return hook.paid_check(limit, wait)
    except EdgeInferError as exc:
        return CheckResult("paid inference", False, error_text(exc))


# -- report and command line -----------------------------------------------------------------------


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


__all__ = [
    "CheckResult",
    "check_settings",
    "checking_hook",
    "main",
    "paid_check",
    "read_only_checks",
    "summary",
    "unknown_fields",
]


if __name__ == "__main__":
    sys.exit(main())
