"""A glob's matches in object storage, read page by page.

fsspec's ``glob(detail=True)`` returns every match at once, each with its whole listing entry (about
1.2 KB of Python objects an object in S3: 120 MB at 100,000 files), and s3fs caches the listing
too. A batch needs only each match's name, size and version, once, in a stream: for S3 the listing
is read here one page (1,000 objects) at a time, matched against the glob as fsspec matches it, and
nothing is kept past the page. Other stores are listed by their own ``glob``.

A local glob is walked here too (:func:`local_matches`): the standard library's ``glob.iglob``
lists each directory whole before matching it (a million names, about 75 MB, in one folder).
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import AsyncGenerator, Iterator
from typing import Any

#: Listing entries taken from the store's event loop at once (S3 answers 1,000 per page).
PAGE_ENTRIES = 1000
_MAGIC = "*?["


def entries(fs: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(name, listing entry)`` of each file (not directory) matching glob ``path`` on ``fs``, in
    the store's order. Raises what the store raises (``OSError``, ``ValueError``)."""
    paged = _s3_walk(fs, path)
    if paged is not None:
        yield from paged
        return
    listed = fs.glob(path, detail=True)
    # The filesystem keeps what it listed (its "dircache"): a batch keeps its own list on disk.
    fs.invalidate_cache()
    for name, info in listed.items():
        if info.get("type") != "directory":
            yield name, info


def _s3_walk(fs: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]] | None:
    """The paged walk, where the store is S3 and the glob's bucket is literal; else None."""
    try:
        from s3fs import S3FileSystem
    except ImportError:
        return None
    if not isinstance(fs, S3FileSystem):
        return None
    from fsspec.utils import glob_translate

    path = fs._strip_protocol(path)
    first = min((i for i in (path.find(c) for c in _MAGIC) if i >= 0), default=len(path))
    literal = path[:first]
    if "/" not in literal:
        return None  # a pattern over bucket names: s3fs's own glob refuses or handles it
    bucket, prefix = literal.split("/", 1)
    # The stem up to the first wildcard is the server-side prefix. Below one level the walk reads
    # every key under it (no delimiter) and the pattern decides the depth, as fsspec's glob does.
    one_level = "**" not in path and "/" not in path[first:]
    matcher = re.compile(glob_translate(path))
    return _matching(fs, bucket, prefix, "/" if one_level else "", matcher)


def _matching(
    fs: Any, bucket: str, prefix: str, delimiter: str, matcher: re.Pattern[str]
) -> Iterator[tuple[str, dict[str, Any]]]:
    for page in _pages(fs, fs._iterdir(bucket, delimiter=delimiter, prefix=prefix)):
        for info in page:
            name = info["name"]
            # A key ending in "/" is a folder marker, not a file.
            if info.get("type") == "directory" or name.endswith("/") or not matcher.match(name):
                continue
            yield name, info


def _pages(fs: Any, listing: AsyncGenerator[dict[str, Any], None]) -> Iterator[list[dict[str, Any]]]:
    """An async listing (run on the filesystem's own loop) as lists of at most PAGE_ENTRIES."""
    from fsspec.asyn import sync

    async def take() -> list[dict[str, Any]]:
        page: list[dict[str, Any]] = []
        async for info in listing:
            page.append(info)
            if len(page) >= PAGE_ENTRIES:
                break
        return page

    try:
        while page := sync(fs.loop, take):
            yield page
    finally:
        sync(fs.loop, listing.aclose)


def local_matches(pattern: str) -> Iterator[str]:
    """``glob.iglob(pattern, recursive=True, include_hidden=True)``, one directory entry at a time.

    Nothing is read ahead of the match yielded: a folder of a million files is never a list in
    memory (the batch sorts the names on disk, in bounded runs). Order is the file system's.
    """
    anchor = os.sep if pattern.startswith(os.sep) else ""
    parts = [part for part in pattern.split(os.sep) if part]
    return _walk(anchor, parts)


def _walk(base: str, parts: list[str]) -> Iterator[str]:
    if not parts:
        yield base
        return
    part, rest = parts[0], parts[1:]
    if part == "**":
        # Zero folders (a last ``**`` names the folder itself, as glob does: "in/"), then every
        # folder below at any depth.
        if rest:
            yield from _walk(base, rest)
        elif base:
            yield _join(base, "")
        yield from _below(base, rest)
        return
    if not any(c in _MAGIC for c in part):
        path = _join(base, part)
        if rest:
            if os.path.isdir(path):
                yield from _walk(path, rest)
        elif os.path.lexists(path):
            yield path
        return
    match = re.compile(fnmatch.translate(part)).match
    for entry in _entries(base):
        if match(entry.name) and (not rest or entry.is_dir()):
            yield from _walk(_join(base, entry.name), rest)


def _below(base: str, rest: list[str]) -> Iterator[str]:
    """What ``rest`` matches in each folder under ``base`` at any depth; without ``rest``, every
    file and folder. Not through a symbolic link to a folder: a link to a parent would loop."""
    for entry in _entries(base):
        path = _join(base, entry.name)
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(path, rest) if rest else iter([path])
            yield from _below(path, rest)
        elif not rest:
            yield path


def _entries(folder: str) -> Iterator[os.DirEntry[str]]:
    """A folder's entries as the kernel hands them out; an unreadable folder has none (as glob)."""
    try:
        with os.scandir(folder or ".") as listing:
            yield from listing
    except OSError:
        return


def _join(base: str, name: str) -> str:
    return os.path.join(base, name) if base else name
