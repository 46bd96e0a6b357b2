"""Memory traced while a glob is listed and frozen into a batch's sorted file list."""

from __future__ import annotations

import tracemalloc

from airflow_provider_edgeinfer.batch.filelist import FileList
from airflow_provider_edgeinfer.sources import matched_names


def freezing_peak(pattern: str, count: int) -> int:
    """Peak bytes traced while ``pattern``'s files are listed and frozen; checks there are ``count``."""
    tracemalloc.start()
    names = FileList.sorted_runs(matched_names(pattern))
    size = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(names) == count
    return size
