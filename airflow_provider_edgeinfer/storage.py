"""Where files live: one reading of a path, URI or ``ObjectStoragePath`` for every layer.

Operators write outputs through it, the batch package keeps its manifest with it and triggers read
that manifest through it; it sits below all of them, so none imports another to reach a file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_edgeinfer.exceptions import ConfigurationError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


#: The connection a URI that names none (``s3://bucket/key``) is read and written with, by scheme:
#: the default connection of the provider serving it. Without one, Airflow's filesystem ignores
#: ``aws_default`` (its endpoint, region and keys) and falls back to the environment's credentials.
DEFAULT_STORAGE_CONNECTIONS = {
    "s3": "aws_default",
    "s3a": "aws_default",
    "s3n": "aws_default",
    "gs": "google_cloud_default",
    "gcs": "google_cloud_default",
}


def as_storage_path(value: Any, field: str = "output_path", conn_id: str | None = None) -> ObjectStoragePath:
    """An ``ObjectStoragePath`` from a path object, a URI, or a plain local path.

    A URI that names no connection (no ``conn_id@`` before the bucket) uses ``conn_id``, or else its
    scheme's default connection (:data:`DEFAULT_STORAGE_CONNECTIONS`); a path object is kept as it is.
    """
    import os

    from airflow.sdk import ObjectStoragePath

    if isinstance(value, ObjectStoragePath):
        return value
    text = str(value)
    if "://" not in text:
        text = "file://" + os.path.abspath(text)
    scheme, _, rest = text.partition("://")
    if scheme.lower() in ("file", "local") or "@" in rest.split("/", 1)[0]:
        conn_id = None  # a local file needs none; a URI's own connection wins
    else:
        conn_id = conn_id or DEFAULT_STORAGE_CONNECTIONS.get(scheme.lower())
    try:
        path = ObjectStoragePath(text, conn_id=conn_id) if conn_id else ObjectStoragePath(text)
        path.fs  # noqa: B018  (Airflow 3.1 finds the filesystem only when asked: an unknown scheme fails here)
        return path
    except Exception as exc:
        raise ConfigurationError(f"{field} {value!r} is not a usable path: {exc}") from None
