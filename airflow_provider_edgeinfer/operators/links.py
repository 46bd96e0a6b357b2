"""Extra links to the vendor's own pages, on the host of the task's connection.

A task pushes the URL of its page to XCom once it knows it (a request id, a batch id). A link is
registered on a task only when the vendor behind its connection has such pages (the client's
``request_pages`` / ``batch_pages``), so a task on a vendor without pages shows no "Extra Links"
heading at all. The vendor is read from the connection's type when the DAG is parsed; when that
cannot be known then (a templated or mapped ``conn_id``, a connection defined only at run time) the
link is registered and simply stays empty if no page exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey


class _XComLink(BaseOperatorLink):
    """A link whose URL the task pushed to XCom under :attr:`xcom_key`."""

    name = ""

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        value = XCom.get_value(ti_key=ti_key, key=self.xcom_key)
        return str(value) if value else ""


class VendorRequestLink(_XComLink):
    """ "Vendor request": the vendor's page for the request the task submitted or waited for."""

    name = "Vendor request"


class VendorBatchLink(_XComLink):
    """ "Vendor batch": the vendor's page for a native batch, or its list of a fan-out's requests."""

    name = "Vendor batch"


def push_link(context: Context, link: _XComLink, url: str | None) -> None:
    """Make ``link`` open ``url`` for this task instance (nothing when the vendor has no page)."""
    if url:
        context["ti"].xcom_push(key=link.xcom_key, value=url)


def _conn_id(op: Any) -> str | None:
    partial = getattr(op, "partial_kwargs", None)  # a mapped task keeps its fixed arguments here
    value = partial.get("conn_id") if isinstance(partial, dict) else getattr(op, "conn_id", None)
    return value if isinstance(value, str) else None


#: Vendors found for connection ids in this process; only found ones are kept, so a connection that
#: appears later (defined after a first parse) is looked up again.
_VENDORS: dict[str, str] = {}


def _vendor_of(conn_id: str) -> str | None:
    """The vendor behind ``conn_id`` when the DAG is parsed, or None when that cannot be known."""
    if not conn_id or "{{" in conn_id or "{%" in conn_id:
        return None
    if conn_id in _VENDORS:
        return _VENDORS[conn_id]
    from airflow.sdk import BaseHook

    from airflow_provider_edgeinfer.hooks import HOOKS

    try:
        conn_type = BaseHook.get_connection(conn_id).conn_type
    except Exception:  # not defined where DAGs are parsed: decided when the task runs instead
        return None
    entry = HOOKS.get((conn_type or "").replace("-", "_"))
    if entry is None:
        return None
    _VENDORS[conn_id] = entry[0]
    return entry[0]


def registered(link: _XComLink, capability: str) -> property:
    """An ``operator_extra_links`` holding ``link`` unless the connection's vendor lacks ``capability``."""

    def links(op: Any) -> tuple[BaseOperatorLink, ...]:
        vendor = _vendor_of(_conn_id(op) or "")
        if vendor is None:
            return (link,)
        from airflow_provider_edgeinfer.clients.core import api_classes

        api = api_classes([vendor]).get(vendor)
        return (link,) if api is None or getattr(api, capability) else ()

    return property(links)


__all__ = ["VendorBatchLink", "VendorRequestLink", "push_link", "registered"]
