"""Where files live: one reading of a path, URI or ``ObjectStoragePath`` for every layer.

Operators write outputs through it, the batch package keeps its manifest with it and triggers read
that manifest through it; it sits below all of them, so none imports another to reach a file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_edgeinfer.exceptions import ConfigurationError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


def as_storage_path(value: Any, field: str = "output_path") -> ObjectStoragePath:
    """An ``ObjectStoragePath`` from a path object, a URI, or a plain local path."""
    import os

    from airflow.sdk import ObjectStoragePath

    if isinstance(value, ObjectStoragePath):
        return value
    text = str(value)
    if "://" not in text:
        text = "file://" + os.path.abspath(text)
    try:
        return ObjectStoragePath(text)
    except Exception as exc:
        raise ConfigurationError(f"{field} {value!r} is not a usable path: {exc}") from None
