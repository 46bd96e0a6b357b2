"""One reading of a path, URI or ObjectStoragePath (``storage.as_storage_path``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_provider_edgeinfer.exceptions import ConfigurationError
from airflow_provider_edgeinfer.storage import as_storage_path


def test_as_storage_path_makes_a_local_path_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = as_storage_path("out")
    assert str(path) == f"file://{tmp_path}/out"
    assert as_storage_path(path) is path


def test_as_storage_path_refuses_an_unusable_uri() -> None:
    with pytest.raises(ConfigurationError) as raised:
        as_storage_path("nosuchscheme-xyz://bucket/key")
    assert raised.value.message.startswith(
        "output_path 'nosuchscheme-xyz://bucket/key' is not a usable path: "
    )
    with pytest.raises(ConfigurationError) as raised:
        as_storage_path("nosuchscheme-xyz://b", "inputs")
    assert raised.value.message.startswith("inputs 'nosuchscheme-xyz://b' is not a usable path: ")


def test_as_storage_path_keeps_a_uri() -> None:
    assert str(as_storage_path("file:///tmp/x/y")) == "file:///tmp/x/y"
