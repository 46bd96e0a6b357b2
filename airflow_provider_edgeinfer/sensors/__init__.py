"""Sensors for work started elsewhere: :mod:`.request` (one request), :mod:`.batch` (a batch)."""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.triggers.base import BaseTrigger

    from airflow_provider_edgeinfer.hooks.base import EdgeInferHook


class EdgeInferSensor(BaseSensorOperator):
    """What both sensors share: checked arguments, and either poking here or deferring to a trigger.

    :param conn_id: an ``edgeinfer_*`` connection; its type picks the vendor.
    :param deferrable: wait in the triggerer instead of poking from a worker.
    :param cancel_on_kill: cancel the remote work when the sensor is killed.
    """

    def __init__(self, *, conn_id: str, deferrable: bool, cancel_on_kill: bool, **kwargs: Any) -> None:
        from airflow_provider_edgeinfer.arguments import poll_interval, sensor_arguments

        sensor_arguments(kwargs)
        super().__init__(**kwargs)
        self.poke_interval = poll_interval("poke_interval", self.poke_interval, owner=self.task_id)
        self.conn_id = conn_id
        self.deferrable = deferrable
        self.cancel_on_kill = cancel_on_kill

    @abstractmethod
    def _start(self, context: Context, hook: EdgeInferHook) -> BaseTrigger:
        """Check what is waited for (fail before waiting), push the task's link; the trigger to defer to."""

    def execute(self, context: Context) -> Any:
        from airflow_provider_edgeinfer.hooks.base import hook_for_connection
        from airflow_provider_edgeinfer.triggers.base import deferral_timeout

        hook = hook_for_connection(self.conn_id)
        try:
            trigger = self._start(context, hook)
        finally:
            hook.close()
        if not self.deferrable:
            return super().execute(context)
        self.defer(
            trigger=trigger, method_name="execute_complete", timeout=deferral_timeout(float(self.timeout))
        )
