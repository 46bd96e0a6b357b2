"""A process's memory as Linux reports it in ``/proc/<pid>/status``.

Peaks are read as ``VmHWM``, the process's own high-water mark, never as ``ru_maxrss``: Linux
carries ``ru_maxrss`` over ``exec`` from the process that started this one, so a child started by a
bigger benchmark script reports the script's peak, not its own.
"""

from __future__ import annotations

from pathlib import Path


def status_mb(field: str, pid: int | str = "self") -> float:
    """A ``/proc/<pid>/status`` figure (``VmRSS``, ``VmHWM``) in MB; 0 when it is absent."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def own_peak_rss_mb() -> float:
    """This process's own peak RSS, MB."""
    return status_mb("VmHWM")
