"""The fifth vendor's hook: connection type ``edgeinfer_fifth``, registered only by the tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from airflow_provider_edgeinfer.hooks.base import EdgeInferHook, base_url_from
from tests.fifth_vendor.client import FifthAPI

if TYPE_CHECKING:
    from airflow.sdk import Connection

CONN_TYPE = "edgeinfer_fifth"
VENDOR = "fifth"
HOOK_PATH = "tests.fifth_vendor.hook.FifthHook"


class FifthHook(EdgeInferHook):
    # conn_type (CONN_TYPE) and default_conn_name follow from the vendor.
    hook_name: ClassVar[str] = "Fifth vendor (tests)"
    vendor: ClassVar[str] = VENDOR

    api: FifthAPI  # type: ignore[assignment]

    def build_api(self, conn: Connection) -> FifthAPI:
        return FifthAPI(base_url_from(conn, "https://api.fifth.invalid", self.vendor))
