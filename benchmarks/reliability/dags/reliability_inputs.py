"""Inputs of the reliability DAGs, shared with the harness (which must not import the DAG framework).

Listed in ``.airflowignore``: it is a helper module on the bundle's import path, not a DAG file.
"""

from __future__ import annotations

#: Mapped inferences in ``edgeinfer_reliability_mapped``.
MAPPED_COUNT = 200
REATTACH_INPUT = {"audio_filename": "https://example.invalid/reattach.wav"}
CANCEL_INPUT = {"audio_filename": "https://example.invalid/cancel.wav"}
#: Items of the one task of ``edgeinfer_reliability_batch``.
BATCH_COUNT = 1000
#: Where the hanging task announces itself; set by the harness for every Airflow process.
MARKER_DIR_ENV = "EDGEINFER_RELIABILITY_MARKERS"
#: The batch's output directory; set by the harness for every Airflow process.
BATCH_OUTPUT_ENV = "EDGEINFER_RELIABILITY_BATCH_OUTPUT"


def mapped_inputs() -> list[dict[str, str]]:
    return [{"audio_filename": f"https://example.invalid/{n}.wav"} for n in range(MAPPED_COUNT)]


def batch_inputs() -> list[dict[str, str]]:
    return [{"audio_filename": f"https://example.invalid/batch/{n}.wav"} for n in range(BATCH_COUNT)]
