"""Checks of the numeric arguments of operators, sensors and triggers.

One place refuses what ``float()`` lets through: ``nan`` and ``inf`` (also as the strings
``"nan"``, ``"inf"``, ``"Infinity"``). Such a number compares false with everything, so range
checks pass it, and a NaN or infinite timeout would only fail (or never fire) after the request
was paid for. Every error names the argument. Connection extras are checked by their models'
declared bounds (:mod:`~airflow_provider_edgeinfer.hooks.connections`, which refuse ``nan`` and
``inf`` too); a refused numeric extra is told in these same words. Imported when DAG files are
parsed: stdlib only.
"""

from __future__ import annotations

import logging
import math
from datetime import timedelta
from typing import Any

#: Shortest wait between two polls of a vendor. A smaller ``poll_interval`` (``0`` above all) would
#: send thousands of status or listing calls per minute for no earlier result; it is raised to this.
MIN_POLL_INTERVAL = 1.0

log = logging.getLogger("airflow_provider_edgeinfer")


def finite(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    above: float | None = None,
    maximum: float | None = None,
) -> float:
    """``value`` as a finite float within the bounds, or a ``ValueError`` naming ``name``.

    Numbers and numeric strings are accepted (templated fields render to strings); booleans are not.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be at least {minimum:g}, got {value!r}")
    if above is not None and number <= above:
        raise ValueError(f"{name} must be greater than {above:g}, got {value!r}")
    if maximum is not None and number > maximum:
        raise ValueError(f"{name} must be at most {maximum:g}, got {value!r}")
    return number


def whole(name: str, value: Any, *, minimum: int | None = None) -> int:
    """``value`` as an int (``2.0`` is 2; ``2.5``, ``nan`` and ``inf`` are refused), naming ``name``."""
    number = finite(name, value)
    if number != int(number):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    return int(number)


def seconds(name: str, value: Any, *, above: float | None = 0.0, minimum: float | None = None) -> float:
    """A duration given as seconds or a ``timedelta``, finite and (by default) positive."""
    if isinstance(value, timedelta):
        value = value.total_seconds()
    return finite(name, value, above=above, minimum=minimum)


def poll_interval(name: str, value: Any, *, owner: str = "") -> float:
    """A poll interval in seconds, raised to :data:`MIN_POLL_INTERVAL` (with a warning) if below it."""
    interval = seconds(name, value, above=None, minimum=0.0)
    if interval < MIN_POLL_INTERVAL:
        log.warning(
            "%s%s=%g is below the %g s floor; polling every %g s instead, so the vendor is not flooded",
            f"{owner}: " if owner else "",
            name,
            interval,
            MIN_POLL_INTERVAL,
            MIN_POLL_INTERVAL,
        )
        return MIN_POLL_INTERVAL
    return interval


def sensor_arguments(kwargs: dict[str, Any]) -> None:
    """A sensor's own duration arguments (``timeout``, ``poke_interval``, ``max_wait``), checked before
    Airflow's ``BaseSensorOperator`` turns them into ``timedelta`` (which fails on nan with no name)."""
    for name in ("timeout", "poke_interval", "max_wait"):
        if kwargs.get(name) is not None:
            seconds(name, kwargs[name], above=None, minimum=0.0)


__all__ = [
    "MIN_POLL_INTERVAL",
    "finite",
    "poll_interval",
    "seconds",
    "sensor_arguments",
    "whole",
]
