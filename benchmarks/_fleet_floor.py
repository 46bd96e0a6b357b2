"""The least any trigger costs in Airflow's triggerer: no I/O, it wakes when its request would end.

``benchmarks/trigger_fleet.py`` runs N of these as the "floor" fleet, so that what Airflow's runner
itself spends per trigger (its task, greenback portal, span, the once-a-second sweep over all
triggers) can be told apart from what a trigger's own polling costs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class SleepTrigger(BaseTrigger):
    def __init__(self, wake_at: float) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.wake_at = wake_at

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("_fleet_floor.SleepTrigger", {"wake_at": self.wake_at})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await asyncio.sleep(max(0.0, self.wake_at - time.time()))
        yield TriggerEvent({"status": "success"})  # type: ignore[no-untyped-call]
