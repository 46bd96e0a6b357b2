"""A glob over S3 (moto) read page by page (``listing.py``): fsspec's matches, and memory that does
not grow with the number of files listed and frozen into a batch's file list."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from airflow_provider_edgeinfer import listing
from airflow_provider_edgeinfer.batch import filelist
from airflow_provider_edgeinfer.listing import entries
from airflow_provider_edgeinfer.sources import matched_names
from tests.batch.freezing import freezing_peak
from tests.s3 import CONN_ID, MotoS3

BUCKET = "edgeinfer-glob-listing"
KEYS = [
    "in/a.wav",
    "in/b.wav",
    "in/b.mp3",
    "in/0.wav",
    "in/sub/c.wav",
    "in/sub/deep/d.wav",
    "in/sub/",  # a folder marker
    "in/[x].wav",
    "other/e.wav",
]


@pytest.fixture(scope="module")
def s3() -> Any:
    s3 = MotoS3.shared()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in s3.env().items():
            patch.setenv(name, value)
        client = s3.bucket(BUCKET)
        for key in KEYS:
            client.put_object(Bucket=BUCKET, Key=key, Body=b"" if key.endswith("/") else b"RIFF")
        yield s3


def _fs() -> Any:
    from airflow.sdk import ObjectStoragePath

    fs = ObjectStoragePath(f"s3://{CONN_ID}@{BUCKET}/").fs
    fs.invalidate_cache()
    return fs


@pytest.mark.parametrize(
    "pattern",
    ["in/*.wav", "in/b*", "in/?.wav", "in/[ab].wav", "in/*/*.wav", "in/**/*.wav", "in/**", "*/*.wav"],
)
def test_the_paged_walk_matches_what_fsspec_globs(s3: MotoS3, pattern: str) -> None:
    fs = _fs()
    path = f"{BUCKET}/{pattern}"
    expected = sorted(
        (name, info["size"], info["ETag"])
        for name, info in fs.glob(path, detail=True).items()
        if info["type"] != "directory" and not name.endswith("/")
    )
    fs.invalidate_cache()
    got = sorted((name, info["size"], info["ETag"]) for name, info in entries(fs, path))
    assert got == expected
    assert got  # every pattern here matches something


def test_a_missing_bucket_matches_no_file(s3: MotoS3) -> None:
    from airflow_provider_edgeinfer.exceptions import InputValidationError

    with pytest.raises(InputValidationError, match="matches no file"):
        [list(group) for group in matched_names(f"s3://{CONN_ID}@edgeinfer-no-such-bucket/in/*.wav")]


def test_listing_and_freezing_a_glob_takes_no_memory_per_file(
    s3: MotoS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sorting keeps one run of names in memory: small here, so that only a growth per file shows.
    monkeypatch.setattr(filelist, "RUN_NAMES", 100)
    # Pages of 100 keys (S3's are 1,000): the walk holds a page or two whatever the count.
    monkeypatch.setattr(_fs(), "req_kw", {"MaxKeys": 100})
    monkeypatch.setattr(listing, "PAGE_ENTRIES", 100)
    client = s3.bucket(BUCKET)

    def put(key: str) -> None:
        client.put_object(Bucket=BUCKET, Key=key, Body=b"RIFF")

    with ThreadPoolExecutor(16) as pool:
        list(
            pool.map(
                put, [f"few/{i:04d}.wav" for i in range(200)] + [f"many/{i:04d}.wav" for i in range(2_000)]
            )
        )

    def peak(folder: str, count: int) -> int:
        _fs()
        return freezing_peak(f"s3://{CONN_ID}@{BUCKET}/{folder}/*.wav", count)

    peak("few", 200)  # the store's client loads its service model on first use
    few = peak("few", 200)
    growth = peak("many", 2_000) - few
    # Every listing entry kept (fsspec's glob) is about 1.2 KB a file: 2 MB for 1,800 more files.
    assert growth < 400_000, (few, growth)
