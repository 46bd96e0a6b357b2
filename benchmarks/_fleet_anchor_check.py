"""The response check a user of ``HttpEventTrigger`` would write to wait for a Theta request.

``benchmarks/trigger_fleet.py`` points the anchor triggers here (``HttpEventTrigger`` imports, and
reloads, this module on every poll, as it does with any ``response_check_path``).
"""

from __future__ import annotations

from typing import Any

TERMINAL = frozenset({"success", "error", "failed", "cancelled"})


async def request_ended(response: Any) -> bool:
    # One request is answered in the create call's list envelope, as the live API does.
    return response.json()["body"]["infer_requests"][0]["state"] in TERMINAL
