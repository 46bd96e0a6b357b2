"""The response check a user of ``HttpEventTrigger`` would write to wait for a Theta request.

``benchmarks/trigger_fleet.py`` points the anchor triggers here (``HttpEventTrigger`` imports, and
reloads, this module on every poll, as it does with any ``response_check_path``).
"""

from __future__ import annotations

from typing import Any

TERMINAL = frozenset({"success", "error", "failed", "cancelled"})


async def request_ended(response: Any) -> bool:
    return response.json()["body"]["state"] in TERMINAL
