"""Turning a finished job into files under ``output_path`` and a small XCom result.

Media never stays inline: base64 images are decoded to files and ``*_url`` media are streamed
down, each replaced in the written JSON by the file it became. XCom carries the result only when
it is small; a large output without ``output_path`` is a clear error, not a database failure.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_edgeinfer.exceptions import ConfigurationError, UnexpectedResponseError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_edgeinfer.clients.jobs import Job

#: Default largest output returned inline through XCom.
DEFAULT_XCOM_OUTPUT_MAX_BYTES = 48 * 1024
_BASE64_KEYS = ("image_b64", "b64_json", "video_b64", "audio_b64")
_URL_KEYS = ("image_url", "audio_url", "video_url")
_MAGIC = (
    (b"\x89PNG", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"RIFF", ".wav"),
    (b"GIF8", ".gif"),
    (b"\x1aE\xdf\xa3", ".webm"),
    (b"ID3", ".mp3"),
)
_CHUNK = 1024 * 1024


def as_storage_path(value: Any, field: str = "output_path") -> ObjectStoragePath:
    """An ``ObjectStoragePath`` from a path object, a URI, or a plain local path."""
    import os

    from airflow.sdk import ObjectStoragePath

    if isinstance(value, ObjectStoragePath):
        return value
    text = str(value)
    if "://" not in text:
        text = "file://" + os.path.abspath(text)
    try:
        return ObjectStoragePath(text)
    except Exception as exc:
        raise ConfigurationError(f"{field} {value!r} is not a usable path: {exc}") from None


def prepare_output_dir(value: Any, vendor: str) -> ObjectStoragePath:
    """Create the directory and prove it writable before anything is submitted (and paid for)."""
    path = as_storage_path(value)
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
    """Stream ``url`` into ``target``; returns bytes written. Media URLs carry no credential."""
    import httpx

    from airflow_provider_edgeinfer.clients.core import is_loopback
    from airflow_provider_edgeinfer.clients.redact import redact_url

    parts = urlsplit(url)
    if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback(parts.hostname or "")):
        raise UnexpectedResponseError(f"refusing to download media from {redact_url(url)} (https required)")
    size = 0
    with httpx.stream("GET", url, timeout=60.0, follow_redirects=True) as response:
        if response.status_code != 200:
            raise UnexpectedResponseError(
                f"media download from {redact_url(url)} answered HTTP {response.status_code}",
                http_status=response.status_code,
            )
        with target.open("wb") as out:
            for chunk in response.iter_bytes(_CHUNK):
                out.write(chunk)
                size += len(chunk)
    return size


class MediaWriter:
    """Replaces inline and linked media in an output by files under one directory."""

    def __init__(self, directory: ObjectStoragePath, stem: str) -> None:
        self.directory = directory
        self.stem = stem
        self.files: list[str] = []

    def _target(self, suffix: str) -> ObjectStoragePath:
        target = self.directory / f"{self.stem}_{len(self.files)}{suffix}"
        self.files.append(str(target))
        return target

    def walk(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.walk(v) for v in value]
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in _BASE64_KEYS and isinstance(item, str) and item:
                try:
                    data = base64.b64decode(item, validate=True)
                except (binascii.Error, ValueError):
                    raise UnexpectedResponseError(
                        f"field {key!r} of the output is not valid base64"
                    ) from None
                target = self._target(_suffix(data))
                with target.open("wb") as handle:
                    handle.write(data)
                out[key.replace("b64", "path").replace("_json", "_path")] = str(target)
            elif key in _URL_KEYS and isinstance(item, str) and item.startswith("http"):
                suffix = (
                    "." + urlsplit(item).path.rsplit(".", 1)[-1] if "." in urlsplit(item).path else ".bin"
                )
                target = self._target(suffix[:6])
                _download(item, target)
                out[key] = item.split("?", 1)[0]  # a signed media URL is a credential: keep no query
                out[key.replace("_url", "_path")] = str(target)
            else:
                out[key] = self.walk(item)
        return out


def build_result(
    job: Job,
    output: Any,
    *,
    output_path: Any,
    submitted_at: float | None,
    xcom_max_bytes: int,
) -> dict[str, Any]:
    """The XCom result; with ``output_path``, the output and its media are written there first."""
    finished = time.time()
    result: dict[str, Any] = {
        "vendor": job.vendor,
        "request_id": job.request_id,
        "service": job.service,
        "state": job.state.value,
        "cost_usd": job.cost_usd,
        "timings": {
            "submitted_at": submitted_at,
            "completed_at": finished,
            "duration_s": round(finished - submitted_at, 3) if submitted_at else None,
        },
    }
    if output_path is not None:
        directory = as_storage_path(output_path)
        directory.mkdir(parents=True, exist_ok=True)
        writer = MediaWriter(directory, job.request_id)
        written = writer.walk(output)
        result_file = directory / f"{job.request_id}.json"
        with result_file.open("wb") as handle:
            handle.write(
                json.dumps(
                    {"result": {k: v for k, v in result.items() if k != "timings"}, "output": written},
                    indent=2,
                    default=str,
                ).encode()
            )
        result.update({"output_path": str(result_file), "files": writer.files})
        size = len(json.dumps(written, default=str))
        result["output"] = written if size <= xcom_max_bytes else None
        return result
    size = len(json.dumps(output, default=str))
    if size > xcom_max_bytes:
        raise ConfigurationError(
            f"the output of request {job.request_id} is {size} bytes, above the XCom limit of "
            f"{xcom_max_bytes} bytes",
            vendor=job.vendor,
            request_id=job.request_id,
            hint="Set output_path (a local path or an object-storage URI) to write it there; the request "
            "succeeded and the retry will reattach to it without paying again.",
        )
    result["output"] = output
    return result
