"""The fifth vendor's hook: connection type ``edgeinfer_fifth``, registered only by the tests."""

from __future__ import annotations

from typing import ClassVar

from airflow_provider_edgeinfer.hooks.base import EdgeInferHook
from tests.fifth_vendor.client import FifthAPI

CONN_TYPE = "edgeinfer_fifth"
VENDOR = "fifth"
HOOK_PATH = "tests.fifth_vendor.hook.FifthHook"


class FifthHook(EdgeInferHook):
    # conn_type (CONN_TYPE) and default_conn_name follow from the vendor.
    hook_name: ClassVar[str] = "Fifth vendor (tests)"
    vendor: ClassVar[str] = VENDOR

    api: FifthAPI  # type: ignore[assignment]
    # No build_api: the base hook builds FifthAPI from the connection's host or its default_base_url.
