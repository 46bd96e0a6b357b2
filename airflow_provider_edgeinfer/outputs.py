"""Turning a finished job into files under ``output_path`` and a small XCom result.

Media never stays inline: base64 images and audio are decoded to files and ``*_url`` media are
streamed down, each replaced in the written JSON by the file it became. XCom carries the result only
when it is small; a large output without ``output_path`` is a clear error, not a database failure.

Vendor answers are untrusted: every file name built from them (request ids, item ids, URL
extensions) goes through :func:`safe_segment`, and every hop of a media download is checked before
it is connected to (:mod:`~airflow_provider_edgeinfer.clients.media_urls`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import posixpath
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_edgeinfer.exceptions import ConfigurationError, UnexpectedResponseError
from airflow_provider_edgeinfer.storage import as_storage_path

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


#: The input key naming where an input came from (PresignedUploadOperator sets it on each result).
#: InferenceOperator and BatchOperator take it out of the input, which never reaches the vendor, and
#: carry it in their results as ``input_ref``.
INPUT_REF_KEY = "edgeinfer_input_ref"
#: Default largest output returned inline through XCom.
DEFAULT_XCOM_OUTPUT_MAX_BYTES = 48 * 1024
#: Inline media fields and the field naming the file each becomes.
_BASE64_KEYS = {
    "image_b64": "image_path",
    "b64_json": "image_path",
    "video_b64": "video_path",
    "audio_b64": "audio_path",
    "audio_base64": "audio_path",
}
_URL_KEYS = {"image_url": "image_path", "audio_url": "audio_path", "video_url": "video_path"}
_MAGIC = (
    (b"\x89PNG", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"RIFF", ".wav"),
    (b"GIF8", ".gif"),
    (b"\x1aE\xdf\xa3", ".webm"),
    (b"ID3", ".mp3"),
)
#: Extensions a linked media file may keep from its URL; anything else (``.py``, ``.sh``) is ``.bin``.
_MEDIA_EXTENSIONS = frozenset(
    {"png", "jpg", "jpeg", "gif", "webp", "bmp", "tif", "tiff", "wav", "mp3", "ogg", "oga", "opus",
     "flac", "m4a", "aac", "mp4", "m4v", "mov", "webm", "mkv", "avi"}
)  # fmt: skip
_CHUNK = 1024 * 1024
_SEGMENT_SAFE = re.compile(r"[^A-Za-z0-9._-]")
#: Longest name :func:`safe_segment` returns: room for ``_<n>.<ext>`` and ``.json`` within the
#: 255-byte limit of common file systems, and short enough to read.
SEGMENT_MAX = 64
_SEGMENT_PREFIX = 40


def safe_segment(name: str) -> str:
    """``name`` as one safe path segment, for every file named from vendor (or item) data.

    The rule: a name made only of ASCII letters, digits, ``.``, ``_`` and ``-``, not starting with
    ``.`` and at most :data:`SEGMENT_MAX` characters is kept as it is. Any other name (``../../x``,
    ``/etc/x``, NUL, newline, unicode, too long, empty) becomes a readable prefix (up to 40 of its
    characters, each unsafe one replaced by ``_``, leading dots dropped) joined by ``-`` to 16 hex
    digits of the SHA-256 of the original, so two different names never share a file and the paid
    result is always kept. The result never contains a path separator and is never ``.`` or ``..``.
    """
    if name and len(name) <= SEGMENT_MAX and not name.startswith(".") and not _SEGMENT_SAFE.search(name):
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    prefix = _SEGMENT_SAFE.sub("_", name[:_SEGMENT_PREFIX]).lstrip(".")
    return f"{prefix}-{digest}" if prefix else digest


def prepare_output_dir(value: Any, vendor: str, conn_id: str | None = None) -> ObjectStoragePath:
    """Create the directory and prove it writable before anything is submitted (and paid for)."""
    path = as_storage_path(value, conn_id=conn_id)
    probe = path / ".edgeinfer-write-probe"
    try:
        path.mkdir(parents=True, exist_ok=True)
        with probe.open("wb") as handle:
            handle.write(b"ok")
        probe.unlink()
    except Exception as exc:
        raise ConfigurationError(
            f"output_path {value} is not writable: {type(exc).__name__}: {exc}",
            vendor=vendor,
            hint="Fix the path or its permissions; nothing was submitted.",
        ) from None
    return path


def _suffix(data: bytes, default: str = ".bin") -> str:
    for magic, suffix in _MAGIC:
        if data.startswith(magic):
            return suffix
    return default


def _download(url: str, target: ObjectStoragePath) -> int:
    """Stream ``url`` into ``target``; returns bytes written. Media URLs carry no credential.

    The URL and every redirect hop (at most ``MAX_REDIRECTS``) pass
    :class:`~airflow_provider_edgeinfer.clients.media_urls.MediaURLGuard` before anything connects.
    """
    import httpx

    from airflow_provider_edgeinfer.clients.media_urls import MAX_REDIRECTS, MediaURLGuard
    from airflow_provider_edgeinfer.clients.redact import redact_url

    client = httpx.Client(
        timeout=60.0,
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        event_hooks={"request": [MediaURLGuard()]},
    )
    size = 0
    try:
        with client, client.stream("GET", url) as response:
            if response.status_code != 200:
                where = redact_url(str(response.url))
                raise UnexpectedResponseError(
                    f"media download from {where} answered HTTP {response.status_code}",
                    http_status=response.status_code,
                )
            with target.open("wb") as out:
                for chunk in response.iter_bytes(_CHUNK):
                    out.write(chunk)
                    size += len(chunk)
    except httpx.TooManyRedirects:
        raise UnexpectedResponseError(
            f"media download from {redact_url(url)} redirected more than {MAX_REDIRECTS} times"
        ) from None
    except httpx.RemoteProtocolError as exc:
        if "location" not in str(exc).lower():
            raise
        raise UnexpectedResponseError(
            f"media download from {redact_url(url)} redirected to an invalid URL"
        ) from None
    return size


def _url_suffix(url: str) -> str:
    extension = posixpath.splitext(urlsplit(url).path)[1].lower()
    return extension if extension[1:] in _MEDIA_EXTENSIONS else ".bin"


class MediaWriter:
    """Replaces inline and linked media in an output by files under one directory.

    Files are named ``<stem>_<n><suffix>``: ``stem`` passes through :func:`safe_segment`, ``n``
    counts the media of this output (so several never overwrite each other) and the suffix comes
    from the data's magic bytes or a known media extension, never from arbitrary vendor text.
    """

    def __init__(self, directory: ObjectStoragePath, stem: str) -> None:
        self.directory = directory
        self.stem = safe_segment(stem)
        self.files: list[str] = []

    def _target(self, suffix: str) -> ObjectStoragePath:
        target = self.directory / f"{self.stem}_{len(self.files)}{suffix}"
        self.files.append(str(target))
        return target

    def walk(self, value: Any) -> Any:
        from airflow_provider_edgeinfer.clients.redact import redact_url

        if isinstance(value, list):
            return [self.walk(v) for v in value]
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in _BASE64_KEYS and isinstance(item, str) and item:
                try:
                    data = base64.b64decode(item, validate=True)
                except ValueError:  # binascii.Error is one
                    raise UnexpectedResponseError(
                        f"field {key!r} of the output is not valid base64"
                    ) from None
                target = self._target(_suffix(data))
                with target.open("wb") as handle:
                    handle.write(data)
                out[_BASE64_KEYS[key]] = str(target)
            elif key in _URL_KEYS and isinstance(item, str) and item.startswith("http"):
                target = self._target(_url_suffix(item))
                _download(item, target)
                out[key] = redact_url(item)  # a signed media URL is a credential: keep no query
                out[_URL_KEYS[key]] = str(target)
            else:
                out[key] = self.walk(item)
        return out


def result_stem(request_id: str, input_ref: str | None) -> str:
    """The name of a single result's files: the source file's name, then the request id, so that the
    result of a given input is found by its name (``call-7.wav.<request id>.json``)."""
    if not input_ref:
        return request_id
    return f"{input_ref.rstrip('/').rsplit('/', 1)[-1]}.{request_id}"


def write_result(
    output_path: Any, result: dict[str, Any], output: Any, *, input_ref: str | None, xcom_max_bytes: int
) -> dict[str, Any]:
    """Write a request's ``output`` (its media as files beside it) and ``result`` (its ``timings``
    left out) under ``output_path``; ``result`` is returned with where they went (``output_path``,
    ``files``) and the written output, inline only when it is at most ``xcom_max_bytes``.

    ``input_ref``: where the input came from (a source file), the start of the files' names.
    """
    directory = as_storage_path(output_path)
    directory.mkdir(parents=True, exist_ok=True)
    writer = MediaWriter(directory, result_stem(result["request_id"], input_ref))
    written = writer.walk(output)
    result_file = directory / f"{writer.stem}.json"
    with result_file.open("wb") as handle:
        handle.write(
            json.dumps(
                {"result": {k: v for k, v in result.items() if k != "timings"}, "output": written},
                indent=2,
                default=str,
            ).encode()
        )
    size = len(json.dumps(written, default=str))
    return {
        **result,
        "output_path": str(result_file),
        "files": writer.files,
        "output": written if size <= xcom_max_bytes else None,
    }
