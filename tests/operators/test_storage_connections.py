"""Which storage connection a path uses: the URI's own, the one given, or the scheme's default."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_edgeinfer.sources import to_path
from airflow_provider_edgeinfer.storage import as_storage_path


@pytest.fixture(autouse=True)
def no_real_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Building an s3 path attaches a filesystem; nothing may reach past loopback.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    yield
    # Airflow keeps one filesystem per (scheme, connection) for the process: the ones attached here,
    # without a real aws_default, must not serve a later test whose aws_default points at moto.
    from airflow.sdk.io import store

    for alias in [a for a in store._STORE_CACHE if a.startswith("s3")]:
        del store._STORE_CACHE[alias]


def _conn(path: ObjectStoragePath) -> str | None:
    """The connection a path uses: its ``conn_id`` (Airflow 3.2 on), or on 3.1 its storage options."""
    conn_id: str | None = getattr(path, "conn_id", None) or path.storage_options.get("conn_id")
    return conn_id


def test_a_bare_s3_uri_uses_aws_default() -> None:
    assert _conn(as_storage_path("s3://my-bucket/transcripts")) == "aws_default"
    assert _conn(to_path("s3://my-bucket/audio/a.wav")) == "aws_default"


def test_a_given_connection_beats_the_default() -> None:
    assert _conn(as_storage_path("s3://my-bucket/out", conn_id="lake")) == "lake"
    assert _conn(to_path("s3://my-bucket/a.wav", conn_id="lake")) == "lake"


def test_the_uri_s_own_connection_beats_both() -> None:
    assert _conn(as_storage_path("s3://mine@my-bucket/out", conn_id="lake")) == "mine"


def test_local_paths_take_no_connection(tmp_path: Path) -> None:
    assert _conn(as_storage_path(str(tmp_path), conn_id="lake")) is None
    assert _conn(as_storage_path(f"file://{tmp_path}")) is None


def test_the_connection_survives_the_path_s_text() -> None:
    # Trigger kwargs and manifests carry the path as text: it must still name its connection.
    path = as_storage_path("s3://my-bucket/out", conn_id="lake")
    assert _conn(as_storage_path(str(path / "x"))) == "lake"
