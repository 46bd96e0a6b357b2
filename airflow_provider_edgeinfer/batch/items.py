"""A batch's items as a stream, read again for each pass and never held whole.

A JSONL file of a million inputs is about 100 MB on disk and well over a gigabyte as Python objects.
:class:`Items` reads its source again for each pass (checking, sending, results) and keeps only what
a pass needs: the count, and while checking, an :class:`~.index.IdIndex` of custom ids (a few bytes
an item) to refuse a duplicate. A list given in the DAG is already in memory; a glob's matches are
read from a sorted file list on disk (:mod:`.filelist`, the list the manifest freezes).

One checking pass (:meth:`Items.check`) counts the items, refuses duplicate ids, computes the batch's
fingerprint and runs the caller's per-item check, before anything is sent. A pass that needs only
some items (a resumed fan-out) skips the others without decoding their JSONL lines.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any

from airflow_provider_edgeinfer.batch.filelist import FileList, Names
from airflow_provider_edgeinfer.batch.index import IdIndex
from airflow_provider_edgeinfer.batch.inputs import BatchItem, Fingerprint, _split
from airflow_provider_edgeinfer.exceptions import InputValidationError

#: Bytes read at once when counting a JSONL file's lines.
_COUNT_CHUNK = 1 << 20


def _entry_item(index: int, entry: Any, where: str) -> BatchItem:
    from airflow_provider_edgeinfer.outputs import INPUT_REF_KEY

    custom_id, value = _split(entry, where)
    # An upload's result names its source file: the better reference of the two.
    ref = value.get(INPUT_REF_KEY)
    value = {k: v for k, v in value.items() if k != INPUT_REF_KEY}
    return BatchItem(
        index,
        custom_id if custom_id is not None else str(index),
        value,
        ref if isinstance(ref, str) and ref else where,
    )


def _identity_of(uri: str, conn_id: str | None) -> tuple[int, str]:
    from airflow_provider_edgeinfer.sources import identity
    from airflow_provider_edgeinfer.storage import as_storage_path

    known = identity(as_storage_path(uri, "source", conn_id=conn_id))
    return int(known["size"]), str(known["version"])


class Items:
    """The items of a batch: from a list, a JSONL file or a glob's files (``kind``).

    ``len()`` is known once :meth:`check` ran. Iterating yields every item in order; :meth:`select`
    only those whose index a predicate accepts.
    """

    def __init__(
        self,
        kind: str,
        source: Any,
        what: str,
        *,
        file_field: str | None = None,
        conn_id: str | None = None,
        common: dict[str, Any] | None = None,
    ) -> None:
        self.kind = kind  # "list" | "jsonl" | "files"
        self.source = source
        self.what = what
        self.file_field = file_field
        #: The storage connection of a glob's URIs that name none.
        self.conn_id = conn_id
        #: The fields every file item's input has beside its file.
        self.common = common or {}
        self.total: int | None = None
        #: A JSONL file's line count plus one, once its bytes were read.
        self._lines: int | None = None

    @classmethod
    def of_list(cls, entries: list[Any] | tuple[Any, ...]) -> Items:
        return cls("list", entries, "the inputs list")

    @classmethod
    def of_jsonl(cls, path: Any) -> Items:
        return cls("jsonl", path, f"the inputs file {path}")

    @classmethod
    def of_files(
        cls,
        sources: Names,
        file_field: str,
        what: str,
        *,
        conn_id: str | None = None,
        common: dict[str, Any] | None = None,
    ) -> Items:
        return cls("files", sources, what, file_field=file_field, conn_id=conn_id, common=common)

    def __len__(self) -> int:
        if self.total is None:
            raise RuntimeError("the items were not checked yet")
        return self.total

    @property
    def has_files(self) -> bool:
        return self.kind == "files"

    def sources(self) -> Names:
        """A glob's files, as the manifest freezes them (a :class:`~.filelist.FileList`: a stream)."""
        return self.source if self.kind == "files" else ()

    # -- reading --------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[BatchItem]:
        return self.select(None)

    def select(self, wanted: Callable[[int], bool] | None) -> Iterator[BatchItem]:
        """Items in order; with ``wanted``, only those whose index it accepts (others not decoded)."""
        if self.kind == "jsonl":
            yield from self._jsonl(wanted)
            return
        for index, entry in enumerate(self.source):
            if wanted is None or wanted(index):
                yield self._item(index, entry)

    def first(self) -> BatchItem:
        for item in self:
            return item
        raise InputValidationError(f"{self.what} holds no items")

    def _item(self, index: int, entry: Any) -> BatchItem:
        if self.kind == "files":
            from airflow_provider_edgeinfer.sources import listed_label

            # ``[uri, size, version]`` as listed; a bare URI from a manifest of an earlier release.
            listed = isinstance(entry, list)
            text = str(entry[0] if listed else entry)
            # No connection id in the reference: it names the data, wherever it is read from. The
            # URI stands in for the upload until it is made, keeping the fingerprint stable.
            uri = listed_label(text, self.conn_id)
            # Size and etag or mtime: a file rewritten under its name is a changed item. Listed, they
            # cost no call to the store (a HEAD per file per pass, before).
            size, known = (int(entry[1]), str(entry[2])) if listed else _identity_of(text, self.conn_id)
            fields = {**self.common, str(self.file_field): uri}
            # The source stays the listed URI: a path object is made only where a file is read.
            version = f"{size}:{known}"
            return BatchItem(index, str(index), fields, uri, text, version, size if listed else None)
        return _entry_item(index, entry, f"inputs[{index}]")

    def _jsonl(self, wanted: Callable[[int], bool] | None) -> Iterator[BatchItem]:
        name = str(self.source)
        index = 0
        with self._open() as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                if wanted is None or wanted(index):
                    where = f"{name}:{number}"
                    try:
                        entry = json.loads(raw)
                    except ValueError as exc:
                        raise InputValidationError(
                            f"inputs file {name}, line {number}: not valid JSON ({exc})",
                            hint="Each line must hold one JSON object; nothing was submitted.",
                        ) from None
                    yield _entry_item(index, entry, where)
                index += 1

    def _open(self) -> Any:
        try:
            return self.source.open("rb")
        except Exception as exc:
            raise InputValidationError(
                f"cannot open inputs file {self.source}: {type(exc).__name__}: {exc}"
            ) from None

    def _upper_bound(self) -> int:
        """At least the number of items (a JSONL file's lines), to size the id table."""
        if self.kind != "jsonl":
            return len(self.source)
        if self._lines is None:
            self._read_raw(None)
        assert self._lines is not None
        return self._lines

    def raw_digest(self, identity: tuple[str, str, str | None]) -> str | None:
        """A digest of a JSONL file's bytes, or of a glob's frozen file list, with ``identity``
        (vendor, service, prediction); None for a list. The same digest means the same items, so a
        retry of a running batch whose inputs are unchanged need not decode and check a million
        lines again (a million files: 30 s more to the first new submission): one read at disk
        speed (which also counts a JSONL file's lines, for :meth:`_upper_bound`)."""
        if self.kind == "files" and isinstance(self.source, FileList):
            # A glob's frozen list (one line per file, as listed) and what each item adds to it.
            what = [*identity, self.file_field, self.conn_id, self.common]
            digest = hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode())
            self.source.digest_into(digest)
            return digest.hexdigest()[:32]
        if self.kind != "jsonl":
            return None
        digest = hashlib.sha256(json.dumps(list(identity)).encode())
        self._read_raw(digest)
        return digest.hexdigest()[:32]

    def _read_raw(self, digest: Any | None) -> None:
        """One read of the file's bytes (into ``digest`` if given), counting its lines."""
        lines = 1
        with self._open() as handle:
            while chunk := handle.read(_COUNT_CHUNK):
                if digest is not None:
                    digest.update(chunk)
                lines += chunk.count(b"\n")
        self._lines = lines

    def trust(self, total: int) -> None:
        """Take ``total`` items as checked (a retry whose :meth:`raw_digest` matches the batch's)."""
        self.total = total

    # -- checking -------------------------------------------------------------------------------

    def check(
        self,
        fingerprint_of: tuple[str, str, str | None],
        each: Callable[[BatchItem], None] | None = None,
    ) -> str:
        """One pass: count, refuse duplicate ids and an empty batch, run ``each`` on every item.

        Returns the batch's fingerprint (``fingerprint_of`` is vendor, service, prediction): a retry
        with the same fingerprint resumes the batch.
        """
        digest = Fingerprint(*fingerprint_of)
        ids = IdIndex(self._upper_bound()) if self.kind != "files" else None
        count = 0
        for item in self:
            if ids is not None:
                first = ids.get(item.custom_id)
                if first is not None:
                    self._duplicate(first, item)
                ids.add(item.custom_id, item.index)
            digest.update(item)
            if each is not None:
                each(item)
            count += 1
        if not count:
            raise InputValidationError(
                f"{self.what} holds no items", hint="A batch needs at least one input; nothing was submitted."
            )
        self.total = count
        return digest.hexdigest()

    def _duplicate(self, first: int, item: BatchItem) -> None:
        """Refuse ``item`` if item ``first`` has its id (equal 64-bit hashes are checked again)."""
        earlier = next(self.select(lambda index: index == first), None)
        if earlier is None or earlier.custom_id != item.custom_id:
            return
        raise InputValidationError(
            f"duplicate custom_id {item.custom_id!r}: {earlier.ref} and {item.ref}",
            hint="Every item needs its own custom_id; nothing was submitted.",
        )
