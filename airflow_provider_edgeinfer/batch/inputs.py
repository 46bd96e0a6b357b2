"""A batch's items: from a list of dicts, a JSONL file (local or object storage) or a glob of files.

Each item has a deterministic ``custom_id`` (given, or its index in the input) so that a retried
task recognises what a previous try already submitted. Problems are reported before anything is
sent: a malformed JSONL line names its line number, a duplicate ``custom_id`` names both items.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_edgeinfer.exceptions import InputValidationError

if TYPE_CHECKING:
    from airflow_provider_edgeinfer.batch.filelist import Names
    from airflow_provider_edgeinfer.batch.items import Items

#: A glob's characters: an ``inputs`` string holding one of them is a file pattern, not a JSONL file.
GLOB_CHARS = ("*", "?", "[")


@dataclass(frozen=True)
class BatchItem:
    index: int
    custom_id: str
    input: dict[str, Any]
    #: Where the item came from, for results.jsonl: ``inputs[3]``, ``s3://b/in.jsonl:12`` or a file URI.
    ref: str
    #: For file inputs: the source file's URI as listed, read (uploaded or inline) just before the
    #: item is submitted, with the batch's storage connection if it names none.
    source: str | None = field(default=None, compare=False)
    #: For file inputs: the file's size and version (etag or mtime). The input holds only its URI,
    #: so without this a file rewritten under the same name would look like the one already done.
    version: str | None = None
    #: For file inputs: the file's size as listed, so that its upload need not ask the store again.
    size: int | None = field(default=None, compare=False)


def _split(entry: Any, where: str) -> tuple[str | None, dict[str, Any]]:
    """(custom_id, input) from ``{"custom_id", "input": {...}}`` or from a plain input object."""
    if not isinstance(entry, dict):
        raise InputValidationError(f"{where} must be a JSON object, got {type(entry).__name__}")
    if isinstance(entry.get("input"), dict) and set(entry) <= {"custom_id", "input"}:
        custom_id, value = entry.get("custom_id"), entry["input"]
    else:
        value = dict(entry)
        custom_id = value.pop("custom_id", None)
    if custom_id is not None and (not isinstance(custom_id, str | int) or isinstance(custom_id, bool)):
        raise InputValidationError(f"{where}: custom_id must be a string, got {type(custom_id).__name__}")
    return (str(custom_id) if custom_id is not None else None), value


def is_glob(value: Any) -> bool:
    return isinstance(value, str) and any(c in value for c in GLOB_CHARS)


def is_files(inputs: Any, file_field: str | None) -> bool:
    return not isinstance(inputs, list | tuple) and bool(file_field or is_glob(inputs))


def open_items(
    inputs: Any,
    *,
    file_field: str | None = None,
    sources: Names | None = None,
    conn_id: str | None = None,
    file_input: dict[str, Any] | None = None,
) -> Items:
    """The items of ``inputs`` as a stream (:class:`~.items.Items`), not read yet.

    ``Items.check`` refuses an empty input (never a silently empty batch), malformed lines and
    duplicate ids. ``sources``: for a glob, the files it matched when the batch started (from the
    manifest), so that files arriving later do not change a running batch. ``conn_id``: the storage
    connection of URIs that name none. ``file_input``: the fields every file item's input has beside
    its file (e.g. a model and a language).
    """
    from airflow_provider_edgeinfer.batch.items import Items
    from airflow_provider_edgeinfer.storage import as_storage_path

    if inputs is None:
        raise InputValidationError("inputs is missing: give a list of input objects, a JSONL file or a glob")
    if file_input and not is_files(inputs, file_field):
        raise InputValidationError("file_input applies to a glob of files with file_field")
    if isinstance(inputs, list | tuple):
        if file_field:
            raise InputValidationError("file_field applies to a glob of files, not to a list of inputs")
        return Items.of_list(inputs)
    if is_files(inputs, file_field):
        if not file_field:
            raise InputValidationError(
                f"inputs {inputs!r} is a glob of files: also set file_field, the input field each file "
                "fills (e.g. file_field='audio_filename')"
            )
        common = file_input or {}
        if not isinstance(common, dict) or file_field in common:
            raise InputValidationError(
                f"file_input must be an object of the other input fields, without {file_field!r} (the file's)"
            )
        from airflow_provider_edgeinfer.batch.filelist import FileList
        from airflow_provider_edgeinfer.sources import matched_names

        if sources is None:
            sources = FileList.sorted_runs(matched_names(inputs, conn_id=conn_id))
        return Items.of_files(sources, file_field, f"the glob {inputs}", conn_id=conn_id, common=common)
    return Items.of_jsonl(as_storage_path(inputs, "inputs", conn_id=conn_id))


class Fingerprint:
    """Identity of a whole batch, item by item: a retry with the same fingerprint resumes it."""

    def __init__(self, vendor: str, service: str, prediction: str | None) -> None:
        self._digest = hashlib.sha256(json.dumps([vendor, service, prediction]).encode())

    def update(self, item: BatchItem) -> None:
        self._digest.update(b"\x1e")
        self._digest.update(_identity(item))

    def hexdigest(self) -> str:
        return self._digest.hexdigest()[:32]


def fingerprint(vendor: str, service: str, prediction: str | None, items: Iterable[BatchItem]) -> str:
    """Identity of the whole batch: a retry with the same fingerprint resumes it."""
    digest = Fingerprint(vendor, service, prediction)
    for item in items:
        digest.update(item)
    return digest.hexdigest()


def item_hash(item: BatchItem) -> str:
    """Identity of one item: a re-run keeps an earlier result only for the same custom_id and hash."""
    return hashlib.sha256(_identity(item)).hexdigest()[:32]


def _identity(item: BatchItem) -> bytes:
    # Items without a version encode as before, so batches started by an earlier release resume.
    parts: list[Any] = [item.custom_id, item.input]
    if item.version is not None:
        parts.append(item.version)
    return json.dumps(parts, sort_keys=True, default=str).encode()
