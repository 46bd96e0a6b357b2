"""Operator extra link to the vendor's page for the request."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


class VendorRequestLink(BaseOperatorLink):
    """ "Vendor request": the operator pushes the URL to XCom under :attr:`xcom_key` once it submits."""

    name = "Vendor request"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        value = XCom.get_value(ti_key=ti_key, key=self.xcom_key)
        return str(value) if value else ""
