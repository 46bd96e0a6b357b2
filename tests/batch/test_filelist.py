"""A glob's matches kept sorted on disk (``batch/filelist.py``), never as a list of a million strings."""

from __future__ import annotations

import random
import sys
import tracemalloc
from pathlib import Path

import pytest

from airflow_provider_edgeinfer.batch import filelist
from airflow_provider_edgeinfer.batch.filelist import FileList
from airflow_provider_edgeinfer.exceptions import InputValidationError
from airflow_provider_edgeinfer.sources import identity, matched_names, to_path


def test_names_are_sorted_across_spilled_runs_and_groups_keep_their_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(filelist, "RUN_NAMES", 7)
    first = [f"/in/{n:04d}.wav" for n in range(50)]
    shuffled = random.Random(3).sample(first, len(first))
    names = FileList.sorted_runs([iter(shuffled), iter(["/z/only.wav"]), iter(["b\nx", "a"])])
    assert len(names) == 53
    assert list(names) == [*first, "/z/only.wav", "a", "b\nx"]
    assert list(names) == list(names)  # read again for each pass


def test_memory_of_a_sorted_list_does_not_grow_with_the_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filelist, "RUN_NAMES", 1_000)

    def peak(count: int) -> int:
        tracemalloc.start()
        names = FileList.sorted_runs([(f"/in/{(n * 7919) % count:07d}.wav" for n in range(count))])
        assert sum(1 for _ in names) == count
        size = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return size

    count = 50_000
    as_a_list = sum(sys.getsizeof(f"/in/{n:07d}.wav") for n in range(count)) + 8 * count
    # One run of names in memory plus a line of each spilled run: a small part of the whole list.
    assert peak(count) < as_a_list / 10, as_a_list


def test_a_local_glob_is_matched_checked_and_named_as_uris(tmp_path: Path) -> None:
    for name in ("b.wav", "a.wav", ".hidden.wav"):
        (tmp_path / name).write_bytes(b"RIFF")
    (tmp_path / "dir.wav").mkdir()
    (groups,) = [sorted(group) for group in matched_names(str(tmp_path / "*.wav"))]
    assert [uri for uri, _, _ in groups] == [
        f"file://{tmp_path}/{n}" for n in (".hidden.wav", "a.wav", "b.wav")
    ]
    # Size and version as listed: the same as asking the file itself (the fingerprint's identity).
    known = identity(to_path(groups[1][0]))
    assert groups[1][1:] == [known["size"], known["version"]] == [4, known["version"]]
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(InputValidationError, match="empty"):
        [list(group) for group in matched_names(str(tmp_path / "*.wav"))]
    with pytest.raises(InputValidationError, match="matches no file"):
        [list(group) for group in matched_names(str(tmp_path / "*.mp3"))]


def test_the_file_list_a_batch_freezes_is_the_sorted_matches(tmp_path: Path) -> None:
    from airflow_provider_edgeinfer.batch.inputs import open_items

    for n in (3, 1, 2):
        (tmp_path / f"{n}.wav").write_bytes(b"RIFF")
    items = open_items(str(tmp_path / "*.wav"), file_field="audio")
    assert [uri for uri, _, _ in items.sources()] == [f"file://{tmp_path}/{n}.wav" for n in (1, 2, 3)]
    assert [item.input["audio"] for item in items] == [str(tmp_path / f"{n}.wav") for n in (1, 2, 3)]
