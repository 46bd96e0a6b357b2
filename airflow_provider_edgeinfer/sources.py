"""Input files: local paths, URIs and globs turned into checked, concrete files, then read inline or
uploaded.

Everything up to the upload runs before the first request to a vendor, so a missing, empty,
unreadable or directory source, or a vendor that takes no files, fails the task at no cost. The
operators and ``batch/`` share these pieces. Imported when a task runs, never when a DAG is parsed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import IO, TYPE_CHECKING, Any, cast

from airflow_provider_edgeinfer.exceptions import ConfigurationError, InputValidationError, naming_vendor

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_edgeinfer.clients.core import InlineFile
    from airflow_provider_edgeinfer.clients.presigned import LogLike, UploadSource
    from airflow_provider_edgeinfer.hooks.base import EdgeInferHook

#: Remote (object storage) files are read through a read-ahead buffer of this size. Measured with
#: s3fs against moto: a file's reader peaks at about 5x this (response, join, cache), whatever the
#: object's size; 2 MiB keeps eight concurrent uploads near 80 MB while range requests stay few.
REMOTE_BLOCK_BYTES = 2 * 1024 * 1024
_LOCAL = ("file", "local", "")
_GLOB_CHARS = frozenset("*?[")


def is_glob(value: Any) -> bool:
    """Whether a source spec is a pattern (``s3://b/audio/*.wav``, ``/data/*.wav``)."""
    text = value.path if hasattr(value, "protocol") else str(value)
    return any(c in _GLOB_CHARS for c in text)


def is_many(spec: Any) -> bool:
    """Whether a spec names several files (a list or a glob) rather than exactly one."""
    return (isinstance(spec, Sequence) and not isinstance(spec, str | bytes)) or is_glob(spec)


def to_path(value: Any, conn_id: str | None = None) -> ObjectStoragePath:
    """An ``ObjectStoragePath`` from a path, a URI or a path object; ``conn_id`` for URIs naming none."""
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_edgeinfer.storage import as_storage_path

    if isinstance(value, ObjectStoragePath):
        return value
    text = os.fspath(value) if isinstance(value, os.PathLike) else value
    if not isinstance(text, str) or not text.strip():
        raise InputValidationError(f"source {value!r} is not a path or URI")
    return as_storage_path(text, field="source", conn_id=conn_id)


def label(path: ObjectStoragePath) -> str:
    """Where a file is, for logs, errors and fingerprints: no connection id, no credentials."""
    protocol = path.protocol or "file"
    if protocol in _LOCAL:
        return str(path.path)
    return f"{protocol}://{path.path}"


def local_path_of(uri: str) -> str | None:
    """The path a local file's URI names (``file:///data/a.wav``: ``/data/a.wav``); None for a file
    in object storage. A glob's listed files are read this way: a path object per file cost about
    a twentieth of a batch's fan-out, and one per pass (check, send, results) for nothing."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return os.path.abspath(uri)
    return rest if scheme.lower() in _LOCAL and rest.startswith("/") else None


def listed_label(uri: str, conn_id: str | None = None) -> str:
    """:func:`label` of a file by the URI its listing gave."""
    from airflow_provider_edgeinfer.storage import as_storage_path

    local = local_path_of(uri)
    return local if local is not None else label(as_storage_path(uri, "source", conn_id=conn_id))


def _info(path: ObjectStoragePath) -> dict[str, Any]:
    try:
        return dict(path.fs.info(path.path))
    except FileNotFoundError:
        raise InputValidationError(f"source {label(path)} does not exist") from None
    except PermissionError:
        raise InputValidationError(f"source {label(path)} cannot be read: permission denied") from None
    except OSError as exc:
        raise InputValidationError(
            f"source {label(path)} cannot be read: {exc.strerror or type(exc).__name__}"
        ) from None


def _check_file(path: ObjectStoragePath, info: dict[str, Any]) -> int:
    local = (path.protocol or "file") in _LOCAL
    return _checked_size(label(path), info, str(path.path) if local else None)


def _checked_size(where: str, info: dict[str, Any], local: str | None) -> int:
    """The size of a source file (``where`` in messages); refused if a directory, empty or unreadable."""
    if info.get("type") == "directory":
        raise InputValidationError(
            f"source {where} is a directory",
            hint="Name a file, or a glob such as .../*.wav for every file in it; nothing was sent.",
        )
    size = int(info.get("size") or 0)
    if size == 0:
        raise InputValidationError(f"source {where} is empty (0 bytes)")
    if local is not None:
        # Opening proves the permission (stat does not); remote stores are judged by the listing.
        try:
            with open(local, "rb"):
                pass
        except PermissionError:
            raise InputValidationError(f"source {where} cannot be read: permission denied") from None
        except OSError as exc:
            raise InputValidationError(f"source {where} cannot be read: {exc.strerror}") from None
    return size


def _expand_one(path: ObjectStoragePath) -> list[ObjectStoragePath]:
    if not is_glob(path):
        _check_file(path, _info(path))
        return [path]
    matches = _listing(path)
    out = []
    for name in sorted(matches):
        concrete = path.with_segments(name)  # keeps the protocol and the connection
        _check_file(concrete, matches[name])
        out.append(concrete)
    return out


def expand_sources(
    spec: str | ObjectStoragePath | Sequence[str | ObjectStoragePath], conn_id: str | None = None
) -> list[ObjectStoragePath]:
    """Concrete, checked files from a path, a URI, a glob or a list of them.

    Each glob expands to its matches sorted by path; list items keep their order. A missing, empty,
    unreadable or directory source is an :class:`InputValidationError`, raised before any request.
    """
    items: list[Any] = list(spec) if isinstance(spec, Sequence) and not isinstance(spec, str) else [spec]
    if not items:
        raise InputValidationError("no source given")
    out: list[ObjectStoragePath] = []
    for item in items:
        out.extend(_expand_one(to_path(item, conn_id)))
    return out


def matched_names(
    spec: str | ObjectStoragePath | Sequence[str | ObjectStoragePath], conn_id: str | None = None
) -> Iterator[Iterator[list[Any]]]:
    """:func:`expand_sources` for a batch of many files: per entry of ``spec``, its checked files as
    ``[uri, size, version]`` (unsorted; :class:`~.batch.filelist.FileList` sorts them on disk), never
    as path objects. Size and version (etag or mtime) come from the listing, so no file is asked
    about again (no HEAD per object per pass). A local glob is walked one directory entry at a
    time (:func:`~.listing.local_matches`): a million matches never sit in memory.
    """
    entries: list[Any] = list(spec) if isinstance(spec, Sequence) and not isinstance(spec, str) else [spec]
    if not entries:
        raise InputValidationError("no source given")
    for entry in entries:
        path = to_path(entry, conn_id)
        if not is_glob(path):
            info = _info(path)
            yield iter([[str(path), _check_file(path, info), version_of(info)]])
        elif (path.protocol or "file") in _LOCAL:
            yield _local_matches(path)
        else:
            yield _remote_matches(path)


def _listed(pattern: ObjectStoragePath) -> Iterator[tuple[str, dict[str, Any]]]:
    """A glob's files (not directories) with their listing entries (size and etag), as the store
    lists them: a page of 1,000 objects at a time. Refused if it matches none."""
    from airflow_provider_edgeinfer.listing import entries

    found = False
    try:
        for name, info in entries(pattern.fs, pattern.path):
            found = True
            yield name, info
    except FileNotFoundError:
        pass  # no such bucket or folder: no match, as a glob finds none
    except (OSError, ValueError) as exc:
        raise InputValidationError(f"source pattern {label(pattern)} cannot be listed: {exc}") from None
    if not found:
        raise InputValidationError(f"source pattern {label(pattern)} matches no file")


def _listing(pattern: ObjectStoragePath) -> dict[str, dict[str, Any]]:
    """:func:`_listed` whole, for the few files of an upload task (they are sorted in memory)."""
    return dict(_listed(pattern))


def _remote_matches(pattern: ObjectStoragePath) -> Iterator[list[Any]]:
    # Streamed: only a page of the listing is in memory (a batch keeps its own list on disk).
    for name, info in _listed(pattern):
        concrete = pattern.with_segments(name)  # keeps the protocol and the connection
        yield [str(concrete), _check_file(concrete, info), version_of(info)]


def _local_matches(pattern: ObjectStoragePath) -> Iterator[list[Any]]:
    import stat

    from airflow_provider_edgeinfer.listing import local_matches

    text = str(pattern)
    # The URI of a match is the pattern's with the match's path (same protocol and connection).
    prefix = text[: len(text) - len(pattern.path)] if text.endswith(pattern.path) else "file://"
    found = False
    for name in local_matches(pattern.path):
        try:
            info = os.stat(name)
        except OSError:
            continue  # gone since it was listed
        if stat.S_ISDIR(info.st_mode):
            continue
        found = True
        size = _checked_size(name, {"size": info.st_size}, name)
        yield [prefix + name, size, version_of({"mtime": info.st_mtime})]
    if not found:
        raise InputValidationError(f"source pattern {label(pattern)} matches no file")


def identity(path: ObjectStoragePath) -> dict[str, Any]:
    """What a source *is*, for the never-pay-twice fingerprint: where, how big, which version."""
    info = _info(path)
    return {"source": label(path), "size": int(info.get("size") or 0), "version": version_of(info)}


def version_of(info: dict[str, Any]) -> str:
    """Which version of a file a listing or ``info`` entry describes: its etag, else its mtime."""
    return str(info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified"))


def upload_source(
    path: ObjectStoragePath | str, size: int | None = None, *, conn_id: str | None = None
) -> UploadSource:
    """A checked file as something the upload engine can stream (opened afresh per attempt).

    ``path``: a path object, or the URI a listing gave (read with ``conn_id`` if it names none).
    ``size``: as a listing gave it (the file was checked then); without it the file is checked now.
    """
    from airflow_provider_edgeinfer.clients.presigned import UploadSource, local_source
    from airflow_provider_edgeinfer.storage import as_storage_path

    if isinstance(path, str):
        local = local_path_of(path)
        if local is not None and size is not None:
            return local_source(local, size)
        path = as_storage_path(path, "source", conn_id=conn_id)
    if size is None:
        size = _check_file(path, _info(path))
    if (path.protocol or "file") in _LOCAL:
        return local_source(str(path.path), size)
    open_remote = cast("Callable[..., IO[bytes]]", path.open)  # ObjectStoragePath.open is untyped
    known = {"name": path.path, "size": size, "type": "file"}

    def open_known() -> IO[bytes]:
        from fsspec.spec import AbstractBufferedFile

        handle = open_remote("rb", block_size=REMOTE_BLOCK_BYTES, size=size)
        # Airflow wraps the file to record lineage on reads; the details are the wrapped file's.
        inner = getattr(handle, "_obj", handle)
        if isinstance(inner, AbstractBufferedFile):
            # What a read would otherwise ask the store for (a HEAD per file): the file is known.
            inner.details = dict(known)
        return handle

    return UploadSource(label(path), size, open_known, name=path.name)


def read_inline(
    hook: EdgeInferHook, service: str, field: str, path: ObjectStoragePath, *, logger: Any = None
) -> InlineFile:
    """A file read whole, for a client that sends it inside the call; never more than it takes."""
    import mimetypes

    from airflow_provider_edgeinfer.clients.core import InlineFile

    limit = hook.api.max_inline_file_bytes
    # One byte past the limit proves a file too large, whatever its listing said.
    with cast("Any", path).open("rb") as handle:  # ObjectStoragePath.open is untyped
        content = handle.read(limit + 1)
    if len(content) > limit:
        raise InputValidationError(
            f"input_files[{field!r}] ({label(path)}) is larger than the {limit:,} bytes "
            f"{hook.vendor} takes inline for {service}",
            vendor=hook.vendor,
            hint="Split or compress the file. Nothing was sent.",
        )
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if logger is not None:
        logger.info("read %s (%d bytes) to send inline as %r", label(path), len(content), field)
    return InlineFile(path.name, content, kind)


#: Files uploaded at once by default (threads sharing the hook's connection pool).
DEFAULT_MAX_CONCURRENCY = 8


def no_upload_alternative(hook: EdgeInferHook) -> str:
    """What to do instead on a vendor without uploaded input files (the error's hint)."""
    return hook.inline_files_hint()


def require_file_inputs(hook: EdgeInferHook, service: str, fields: Iterable[str]) -> None:
    """Refuse, before anything is sent, files for a service that takes none, naming the vendors that
    do (each described by its own client)."""
    if hook.api.takes_files_inline(service) or "input" in hook.api.upload_kinds:
        return
    from airflow_provider_edgeinfer.hooks.base import vendors_taking_files

    names = ", ".join(repr(f) for f in fields)
    raise InputValidationError(
        f"field {names} cannot take a file: {hook.vendor} has no presigned upload API and takes no file "
        f"inline for service {service!r}. Vendors that take input files: {vendors_taking_files()}",
        vendor=hook.vendor,
        hint=no_upload_alternative(hook),
    )


def require_uploads(hook: EdgeInferHook, field: str) -> None:
    """Refuse, naming the alternative, a vendor whose inputs cannot be uploaded files."""
    require_upload_kind(hook, "input", field)


def require_upload_kind(hook: EdgeInferHook, kind: str, field: str | None = None) -> None:
    kinds = hook.api.upload_kinds
    if kind in kinds:
        return
    if kind == "input":
        raise InputValidationError(
            f"{hook.vendor} has no presigned upload API, so field {field!r} cannot take an uploaded file",
            vendor=hook.vendor,
            hint=no_upload_alternative(hook),
        )
    takes = f" It takes kind={', '.join(repr(k) for k in sorted(kinds))}." if kinds else ""
    raise InputValidationError(
        f"{hook.vendor} takes no {kind} uploads (connection {hook.conn_id!r})",
        vendor=hook.vendor,
        hint=f"Use a connection whose vendor takes {kind} uploads.{takes} Nothing was sent.",
    )


def check_upload_field(hook: EdgeInferHook, service: str, prediction: str | None, field: str) -> None:
    """The service takes ``field`` (when the vendor publishes its inputs), before any upload."""
    hook.check_upload_field(service, prediction, field)


def upload_files(
    hook: EdgeInferHook,
    service: str,
    prediction: str | None,
    field: str,
    sources: Sequence[str | ObjectStoragePath],
    *,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    source_conn_id: str | None = None,
    logger: LogLike | None = None,
) -> list[str]:
    """Upload files for input ``field`` of ``service``; the uploaded filename of each, in input order.

    One presigned URL per file (asked right before it goes), streamed ``PUT`` s on at most
    ``max_concurrency`` threads; a dropped connection or 5xx restarts that file, an expired URL is
    renewed once. ``sources`` may hold globs (expanded by :func:`expand_sources`); every source is
    checked before any request. Other vendors: an :class:`InputValidationError` naming the alternative.
    """
    require_upload_kind(hook, "input", field)
    if max_concurrency < 1:
        raise ConfigurationError(f"max_concurrency must be at least 1, got {max_concurrency}")
    with naming_vendor(hook.vendor):
        paths = expand_sources(sources, conn_id=source_conn_id)
    hook.check_upload_field(service, prediction, field)
    files = [upload_source(p) for p in paths]
    return send_uploads(
        hook, service, prediction, field, files, max_concurrency=max_concurrency, logger=logger
    )


def send_uploads(
    hook: EdgeInferHook,
    service: str,
    prediction: str | None,
    field: str,
    files: Sequence[UploadSource],
    *,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    logger: LogLike | None = None,
) -> list[str]:
    """:func:`upload_files` of files already checked (whose sizes a listing gave)."""
    from airflow_provider_edgeinfer.clients.presigned import upload_many

    require_upload_kind(hook, "input", field)
    hook.get_conn()  # the connection checked (a missing key fails) before any thread starts
    return upload_many(
        hook.run,
        partial(hook.presign_input_upload, service, prediction, field),
        files,
        vendor=hook.vendor,
        field=field,
        max_concurrency=max_concurrency,
        logger=logger,
    )
