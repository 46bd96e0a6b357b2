"""Money in log lines: a cost the vendor did not state is unknown, never $0.

Results (XCom, ``results.jsonl``) carry ``cost_usd: null`` for such a cost; a batch total sums only
the stated costs and counts the items without one. Every log line that shows money formats it here.
"""

from __future__ import annotations

#: Decimal places of a logged USD amount: per-token prices make single requests cost fractions of a
#: cent (``$0.000038``), which fewer places would round to $0.
USD_DECIMALS = 6
#: What a log line says for a cost the vendor did not state.
UNKNOWN_COST = "cost unknown"


def usd(amount: float) -> str:
    """``$0.000038``: a known amount, always with :data:`USD_DECIMALS` places."""
    return f"${amount:.{USD_DECIMALS}f}"


def format_cost(amount: float | None) -> str:
    """``cost $0.000038``, or ``cost unknown`` when the vendor stated none."""
    return UNKNOWN_COST if amount is None else f"cost {usd(amount)}"


def format_total(known: float | None, items_without_cost: int) -> str:
    """A batch's cost: the sum of the stated costs, and how many items stated none."""
    text = format_cost(known)
    if items_without_cost:
        text += f" ({items_without_cost} item{'s' if items_without_cost != 1 else ''} without a stated cost)"
    return text


__all__ = ["UNKNOWN_COST", "USD_DECIMALS", "format_cost", "format_total", "usd"]
