"""A local glob walked one directory entry at a time (``listing.local_matches``): the standard
library's matches, and memory that does not grow with the number of files in a folder."""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_edgeinfer.batch import filelist
from airflow_provider_edgeinfer.batch.filelist import FileList
from airflow_provider_edgeinfer.listing import local_matches
from airflow_provider_edgeinfer.sources import matched_names
from tests.batch.freezing import freezing_peak

FILES = [
    "in/a.wav",
    "in/b.wav",
    "in/b.mp3",
    "in/0.wav",
    "in/.hidden.wav",
    "in/[x].wav",
    "in/sub/c.wav",
    "in/sub/deep/d.wav",
    "in/.dot/e.wav",
    "other/e.wav",
]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"RIFF")
    (tmp_path / "in" / "empty").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    "pattern",
    [
        "in/*.wav",
        "in/b*",
        "in/?.wav",
        "in/[ab].wav",
        "in/[[]x].wav",
        "in/*/*.wav",
        "in/**/*.wav",
        "in/**",
        "**/e.wav",
        "*/*.wav",
        "in/sub/**/*.wav",
        "in/*",
        "in/nothing*/*.wav",
    ],
)
def test_the_walk_matches_what_glob_matches(
    tree: Path, pattern: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    absolute = f"{tree}/{pattern}"
    assert sorted(local_matches(absolute)) == sorted(glob.glob(absolute, recursive=True, include_hidden=True))
    monkeypatch.chdir(tree)  # a relative pattern names what glob names
    assert sorted(local_matches(pattern)) == sorted(glob.glob(pattern, recursive=True, include_hidden=True))


def test_a_link_back_to_a_parent_folder_is_not_walked_forever(tree: Path) -> None:
    os.symlink(tree / "in", tree / "in" / "sub" / "loop")
    found = list(local_matches(f"{tree}/in/**/*.wav"))
    assert f"{tree}/in/sub/deep/d.wav" in found
    assert not [name for name in found if "/loop/" in name]


def test_walking_and_freezing_a_folder_takes_no_memory_per_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sorting keeps one run of names in memory, and a read buffer per run while merging: runs of
    # 1,000 here, both folders fill several, so that only a growth per file shows.
    monkeypatch.setattr(filelist, "RUN_NAMES", 1_000)
    for folder, count in (("few", 2_000), ("many", 6_000)):
        (tmp_path / folder).mkdir()
        for i in range(count):
            (tmp_path / folder / f"recording-{i:06d}.wav").write_bytes(b"RIFF")

    def peak(folder: str, count: int) -> int:
        return freezing_peak(f"{tmp_path}/{folder}/*.wav", count)

    peak("few", 2_000)
    few = peak("few", 2_000)
    growth = peak("many", 6_000) - few
    # glob.iglob holds the folder's names as a list, then the matches as another: about 100 bytes a
    # file, 400 KB for 4,000 more files.
    assert growth < 120_000, (few, growth)


@pytest.mark.parametrize("uri", ["file:///data/in/a.wav", "local:///data/in/b c.wav", "/data/in/[x].wav"])
def test_a_local_uri_is_read_as_its_path_object_reads_it(uri: str) -> None:
    from airflow_provider_edgeinfer.sources import label, listed_label, local_path_of
    from airflow_provider_edgeinfer.storage import as_storage_path

    path = as_storage_path(uri, "source")
    assert local_path_of(uri) == str(path.path)
    assert listed_label(uri) == label(path)


def test_the_items_of_a_local_glob_build_no_path_object_per_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_edgeinfer import storage
    from airflow_provider_edgeinfer.batch.items import Items
    from airflow_provider_edgeinfer.sources import upload_source

    for i in range(50):
        (tmp_path / f"{i:03d}.wav").write_bytes(b"RIFF" * (i + 1))
    files = FileList.sorted_runs(matched_names(f"{tmp_path}/*.wav"))
    items = Items.of_files(files, "audio", "the glob")
    built: list[object] = []
    real = storage.as_storage_path

    def counted(*args: Any, **kwargs: Any) -> Any:
        built.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(storage, "as_storage_path", counted)
    listed = list(iter(items))
    sources = [upload_source(item.source, item.size) for item in listed if item.source]
    assert built == []  # a path object per file cost about a twentieth of a glob batch's fan-out
    assert [item.ref for item in listed] == [f"{tmp_path}/{i:03d}.wav" for i in range(50)]
    assert [s.size for s in sources] == [4 * (i + 1) for i in range(50)]
    with sources[7].open() as handle:
        assert handle.read() == b"RIFF" * 8
