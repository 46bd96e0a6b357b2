"""A batch's items: from a list of dicts, a JSONL file (local or object storage) or a glob of files.

Each item has a deterministic ``custom_id`` (given, or its index in the input) so that a retried
task recognises what a previous try already submitted. Problems are reported before anything is
sent: a malformed JSONL line names its line number, a duplicate ``custom_id`` names both items.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_edgeinfer.exceptions import InputValidationError
from airflow_provider_edgeinfer.operators.outputs import INPUT_REF_KEY

#: A glob's characters: an ``inputs`` string holding one of them is a file pattern, not a JSONL file.
GLOB_CHARS = ("*", "?", "[")


@dataclass(frozen=True)
class BatchItem:
    index: int
    custom_id: str
    input: dict[str, Any]
    #: Where the item came from, for results.jsonl: ``inputs[3]``, ``s3://b/in.jsonl:12`` or a file URI.
    ref: str
    #: For file inputs: the source file, uploaded just before the item is submitted.
    source: Any = field(default=None, compare=False)


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


def _checked(entries: Iterable[tuple[Any, str]]) -> list[BatchItem]:
    items: list[BatchItem] = []
    seen: dict[str, str] = {}
    for index, (entry, where) in enumerate(entries):
        custom_id, value = _split(entry, where)
        custom_id = custom_id if custom_id is not None else str(index)
        if custom_id in seen:
            raise InputValidationError(
                f"duplicate custom_id {custom_id!r}: {seen[custom_id]} and {where}",
                hint="Every item needs its own custom_id; nothing was submitted.",
            )
        seen[custom_id] = where
        # An upload's result names its source file: the better reference of the two.
        ref = value.get(INPUT_REF_KEY)
        value = {k: v for k, v in value.items() if k != INPUT_REF_KEY}
        items.append(BatchItem(index, custom_id, value, ref if isinstance(ref, str) and ref else where))
    return items


def _jsonl_lines(path: Any) -> Iterator[tuple[Any, str]]:
    """Decoded lines of a JSONL file, read as a stream; blank lines are skipped."""
    name = str(path)
    try:
        handle = path.open("rb")
    except Exception as exc:
        raise InputValidationError(f"cannot open inputs file {name}: {type(exc).__name__}: {exc}") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                yield json.loads(raw), f"{name}:{number}"
            except ValueError as exc:
                raise InputValidationError(
                    f"inputs file {name}, line {number}: not valid JSON ({exc})",
                    hint="Each line must hold one JSON object; nothing was submitted.",
                ) from None


def is_glob(value: Any) -> bool:
    return isinstance(value, str) and any(c in value for c in GLOB_CHARS)


def is_files(inputs: Any, file_field: str | None) -> bool:
    return not isinstance(inputs, list | tuple) and bool(file_field or is_glob(inputs))


def load_items(
    inputs: Any,
    *,
    file_field: str | None = None,
    sources: list[str] | None = None,
    conn_id: str | None = None,
    file_input: dict[str, Any] | None = None,
) -> list[BatchItem]:
    """Every item of ``inputs``; an empty input is an error, never a silently empty batch.

    ``sources``: for a glob, the files it matched when the batch started (from the manifest), so
    that files arriving later do not change a running batch. ``conn_id``: the storage connection of
    URIs that name none. ``file_input``: the fields every file item's input has beside its file
    (e.g. a model and a language).
    """
    from airflow_provider_edgeinfer.storage import as_storage_path

    if inputs is None:
        raise InputValidationError("inputs is missing: give a list of input objects, a JSONL file or a glob")
    if file_input and not is_files(inputs, file_field):
        raise InputValidationError("file_input applies to a glob of files with file_field")
    if isinstance(inputs, list | tuple):
        if file_field:
            raise InputValidationError("file_field applies to a glob of files, not to a list of inputs")
        items = _checked((entry, f"inputs[{i}]") for i, entry in enumerate(inputs))
        what = "the inputs list"
    elif is_files(inputs, file_field):
        items = _file_items(inputs, file_field, sources, conn_id, file_input or {})
        what = f"the glob {inputs}"
    else:
        path = as_storage_path(inputs, "inputs", conn_id=conn_id)
        items = _checked(_jsonl_lines(path))
        what = f"the inputs file {path}"
    if not items:
        raise InputValidationError(
            f"{what} holds no items", hint="A batch needs at least one input; nothing was submitted."
        )
    return items


def _file_items(
    spec: Any,
    file_field: str | None,
    frozen: list[str] | None,
    conn_id: str | None,
    common: dict[str, Any],
) -> list[BatchItem]:
    if not file_field:
        raise InputValidationError(
            f"inputs {spec!r} is a glob of files: also set file_field, the input field each file fills "
            "(e.g. file_field='audio_filename')"
        )
    from airflow_provider_edgeinfer.operators.upload import expand_sources
    from airflow_provider_edgeinfer.storage import as_storage_path

    if not isinstance(common, dict) or file_field in common:
        raise InputValidationError(
            f"file_input must be an object of the other input fields, without {file_field!r} (the file's)"
        )
    if frozen is not None:
        sources = [as_storage_path(s, "source", conn_id=conn_id) for s in frozen]
    else:
        sources = expand_sources(spec, conn_id=conn_id)
    items = []
    for index, source in enumerate(sources):
        protocol = source.protocol or "file"
        # No connection id in the reference: it names the data, wherever it is read from.
        uri = f"{protocol}://{source.path}" if protocol not in ("file", "local") else str(source.path)
        # The source's URI stands in for the upload until it is made: it keeps the batch's
        # fingerprint stable across tries, so a retry does not upload (or submit) twice.
        items.append(BatchItem(index, str(index), {**common, file_field: uri}, uri, source))
    return items


def fingerprint(vendor: str, service: str, prediction: str | None, items: Iterable[BatchItem]) -> str:
    """Identity of the whole batch: a retry with the same fingerprint resumes it."""
    digest = hashlib.sha256(json.dumps([vendor, service, prediction]).encode())
    for item in items:
        digest.update(b"\x1e")
        digest.update(json.dumps([item.custom_id, item.input], sort_keys=True, default=str).encode())
    return digest.hexdigest()[:32]
