"""Writing a finished job: media files, the https guard, redirects, names from vendor data, XCom."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_edgeinfer.clients.core import Job, JobState
from airflow_provider_edgeinfer.clients.media_urls import MAX_REDIRECTS, check_media_url
from airflow_provider_edgeinfer.exceptions import ConfigurationError, UnexpectedResponseError
from airflow_provider_edgeinfer.outputs import (
    _MEDIA_EXTENSIONS,
    DEFAULT_XCOM_OUTPUT_MAX_BYTES,
    SEGMENT_MAX,
    MediaWriter,
    _download,
    prepare_output_dir,
    safe_segment,
)
from airflow_provider_edgeinfer.storage import as_storage_path
from airflow_provider_edgeinfer.triggers.base import build_result
from tests.security.hostile import (  # noqa: F401 (fixtures)
    PNG,
    PNG_B64,
    HostileServer,
    hostile_fixture,
    loopback_only_fixture,
)

SIGNATURE = "X-Amz-Signature=f00dfeed5ec7e7&X-Amz-Credential=AKIAEXAMPLE&sig=abcdef0123"
#: Request ids a hostile vendor might answer with (traversal, absolute, NUL, newline, long, unicode).
HOSTILE_IDS = [
    "../../x",
    "../../../../etc/x",
    "/etc/cron.d/x",
    "a/../../b.py",
    "..",
    ".",
    "",
    "nul\x00id",
    "new\nline",
    "x" * 300,
    "é" * 200,
    "請求/../../../x",
    "C:\\Windows\\x",
]


#: Ids a writer test uses: ``{tmp}`` is the test's own directory and no traversal climbs above it,
#: so a regression writes nowhere else.
WRITER_IDS = [
    "../../x",
    "a/../../b.py",
    "..",
    ".",
    "",
    "nul\x00id",
    "new\nline",
    "x" * 300,
    "é" * 200,
    "請求/../../x",
    "{tmp}/absolute",
    "{tmp}/deep/x.py",
]


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _job(request_id: str = "req_1") -> Job:
    return Job(vendor="theta", request_id=request_id, state=JobState.SUCCEEDED, vendor_state="success")


# -- safe_segment ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["infr_rqst_01HZ-abc.def", "a", "x" * 64])
def test_safe_segment_keeps_safe_names(name: str) -> None:
    assert safe_segment(name) == name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # readable prefix (unsafe characters -> "_", leading dots dropped) + 16 hex of the SHA-256
        ("../../x", "_.._x-9cdf6a50100a862e"),
        ("/etc/cron.d/x", "_etc_cron.d_x-f949aa359535a780"),
        ("Xy/z", "Xy_z-26061717c8042b90"),
        ("nul\x00id", "nul_id-934046520806abf1"),
        ("new\nline", "new_line-58fb6729e555d21b"),
        (".hidden", "hidden-1692419006a88aab"),
        ("請求/../x", "___.._x-6319dd34b5b0b799"),
        ("x" * 65, "x" * 40 + "-9537c5fdf120482f"),
        # nothing readable left: the hash alone
        ("", "e3b0c44298fc1c14"),
        ("..", "5ec1f7e700f37c3d"),
    ],
)
def test_safe_segment_exact_form_of_changed_names(name: str, expected: str) -> None:
    assert safe_segment(name) == expected


@pytest.mark.parametrize("name", HOSTILE_IDS)
def test_safe_segment_is_one_harmless_segment(name: str) -> None:
    out = safe_segment(name)
    assert out not in ("", ".", "..")
    assert not out.startswith(".")
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in out), out
    assert len(out.encode()) <= 64
    assert safe_segment(name) == out  # the same id always names the same file


def test_safe_segment_never_merges_two_names() -> None:
    names = [*HOSTILE_IDS, "a_b", "a/b", "a\\b", "a b", "x" * 301, "y" * 64 + "z"]
    assert len({safe_segment(n) for n in names}) == len(names)


def test_safe_segment_survives_lone_surrogates() -> None:
    # Not encodable as UTF-8 (a JSON answer can still carry one): hashed all the same.
    assert safe_segment("\ud800id") == "_id-" + hashlib.sha256(b"\xed\xa0\x80id").hexdigest()[:16]


# -- prepare_output_dir ----------------------------------------------------------------------


def test_prepare_output_dir_creates_it_and_leaves_no_probe(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    assert str(prepare_output_dir(str(target), "theta")) == f"file://{target}"
    assert target.is_dir()
    assert list(target.iterdir()) == []


def test_prepare_output_dir_accepts_an_existing_directory(tmp_path: Path) -> None:
    (tmp_path / "kept.txt").write_text("x")
    assert str(prepare_output_dir(str(tmp_path), "theta")) == f"file://{tmp_path}"
    assert [p.name for p in tmp_path.iterdir()] == ["kept.txt"]


def test_prepare_output_dir_refuses_an_unwritable_directory(tmp_path: Path) -> None:
    # The directory exists (mkdir succeeds) but nothing can be written where the probe goes.
    (tmp_path / ".edgeinfer-write-probe").mkdir()
    with pytest.raises(ConfigurationError, match="is not writable") as raised:
        prepare_output_dir(str(tmp_path), "theta")
    assert raised.value.vendor == "theta"
    assert "nothing was submitted" in str(raised.value)


# -- media written from each key ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "path_key", "data", "suffix"),
    [
        ("image_b64", "image_path", PNG, ".png"),
        ("b64_json", "image_path", b"\xff\xd8\xff\xe0jpeg", ".jpg"),
        ("video_b64", "video_path", b"\x1aE\xdf\xa3webm", ".webm"),
        ("audio_b64", "audio_path", b"RIFF\x00\x00WAVE", ".wav"),
        ("audio_base64", "audio_path", b"ID3\x04mp3", ".mp3"),
        ("image_b64", "image_path", b"GIF89a", ".gif"),
        ("image_b64", "image_path", b"unknown bytes", ".bin"),
    ],
)
def test_inline_media_becomes_a_file(
    tmp_path: Path, key: str, path_key: str, data: bytes, suffix: str
) -> None:
    writer = MediaWriter(as_storage_path(tmp_path), "req")
    out = writer.walk({"nested": [{key: base64.b64encode(data).decode(), "seed": 7}]})
    entry = out["nested"][0]
    assert entry == {path_key: f"file://{tmp_path}/req_0{suffix}", "seed": 7}
    assert (tmp_path / f"req_0{suffix}").read_bytes() == data
    assert writer.files == [f"file://{tmp_path}/req_0{suffix}"]


@pytest.mark.parametrize("value", ["not base64!", "aGVsbG8=!!", "aGVsbG8"])
def test_invalid_base64_is_an_unexpected_response(tmp_path: Path, value: str) -> None:
    # "aGVsbG8=!!" decodes to b"hello" if stray characters are skipped: they must not be.
    with pytest.raises(UnexpectedResponseError, match="'image_b64' of the output is not valid base64"):
        MediaWriter(as_storage_path(tmp_path), "req").walk({"image_b64": value})
    assert _files(tmp_path) == []


def test_empty_or_non_string_media_fields_stay_as_they_are(tmp_path: Path) -> None:
    value = {"image_b64": None, "audio_b64": "", "image_url": "file:///etc/passwd", "video_url": 3}
    assert MediaWriter(as_storage_path(tmp_path), "req").walk(value) == value
    assert _files(tmp_path) == []


@pytest.mark.parametrize(
    ("key", "path_key", "name", "suffix"),
    [
        ("image_url", "image_path", "a.png", ".png"),
        ("audio_url", "audio_path", "speech.WAV", ".wav"),
        ("video_url", "video_path", "clip.mp4", ".mp4"),
        ("image_url", "image_path", "noext", ".bin"),
        # A vendor-chosen extension never names an executable or a script.
        ("image_url", "image_path", "evil.py", ".bin"),
        ("audio_url", "audio_path", "x.sh", ".bin"),
    ],
)
def test_linked_media_is_downloaded_and_its_query_dropped(
    tmp_path: Path, hostile: HostileServer, key: str, path_key: str, name: str, suffix: str
) -> None:
    url = hostile.media(f"/m/{name}", b"media-bytes-" + name.encode()) + "?" + SIGNATURE
    out = MediaWriter(as_storage_path(tmp_path), "req").walk({key: url})
    assert out == {key: f"{hostile.url}/m/{name}?***", path_key: f"file://{tmp_path}/req_0{suffix}"}
    assert (tmp_path / f"req_0{suffix}").read_bytes() == b"media-bytes-" + name.encode()


MEDIA_EXTENSIONS = [
    "aac",
    "avi",
    "bmp",
    "flac",
    "gif",
    "jpeg",
    "jpg",
    "m4a",
    "m4v",
    "mkv",
    "mov",
    "mp3",
    "mp4",
    "oga",
    "ogg",
    "opus",
    "png",
    "tif",
    "tiff",
    "wav",
    "webm",
    "webp",
]


def test_the_known_media_extensions() -> None:
    assert sorted(_MEDIA_EXTENSIONS) == MEDIA_EXTENSIONS
    assert SEGMENT_MAX == 64


@pytest.mark.parametrize("extension", MEDIA_EXTENSIONS)
def test_every_known_media_extension_is_kept(tmp_path: Path, hostile: HostileServer, extension: str) -> None:
    url = hostile.media(f"/m.d/file.{extension.upper()}", b"x")
    writer = MediaWriter(as_storage_path(tmp_path), "req")
    writer.walk({"video_url": url})
    assert writer.files == [f"file://{tmp_path}/req_0.{extension}"]


@pytest.mark.parametrize("path", ["/m.png/noext", "/m/archive.tar.gz", "/m/.png", "/m/a.png/"])
def test_other_url_paths_give_bin(tmp_path: Path, hostile: HostileServer, path: str) -> None:
    writer = MediaWriter(as_storage_path(tmp_path), "req")
    writer.walk({"image_url": hostile.media(path, b"x")})
    assert writer.files == [f"file://{tmp_path}/req_0.bin"]


def test_several_media_in_one_output_are_kept_apart(tmp_path: Path, hostile: HostileServer) -> None:
    first = hostile.media("/m/1.png", b"first")
    second = hostile.media("/m/2.png", b"second")
    output = {
        "images": [{"image_b64": base64.b64encode(b"one").decode()}, {"image_b64": PNG_B64}],
        "previews": [{"image_url": first}, {"image_url": second}],
        "audio_url": hostile.media("/m/a.wav", b"audio"),
    }
    writer = MediaWriter(as_storage_path(tmp_path), "req")
    out = writer.walk(output)
    assert [f.rsplit("/", 1)[-1] for f in writer.files] == [
        "req_0.bin",
        "req_1.png",
        "req_2.png",
        "req_3.png",
        "req_4.wav",
    ]
    contents = [(tmp_path / f.rsplit("/", 1)[-1]).read_bytes() for f in writer.files]
    assert contents == [b"one", PNG, b"first", b"second", b"audio"]
    assert out["previews"][1]["image_path"] == writer.files[3]


# -- the https guard and redirects ----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["https://cdn.example.com/a.png", "http://127.0.0.1:9/a.png", "http://localhost/a", "http://[::1]:8/a"],
)
def test_check_media_url_accepts_https_and_loopback_http(url: str) -> None:
    check_media_url(url)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://cdn.example.com/a.png?sig=s3cr3t", "http://cdn.example.com/a.png?***"),
        ("http://169.254.169.254/latest/meta-data", "http://169.254.169.254/latest/meta-data"),
        ("file:///etc/passwd", "a file URL"),
        ("ftp://cdn.example.com/a.png", "a ftp URL"),
        ("https:///nohost", "https:///nohost"),
        ("cdn.example.com/a.png", "a schemeless URL"),
    ],
)
def test_check_media_url_refuses_the_rest(url: str, shown: str) -> None:
    with pytest.raises(UnexpectedResponseError) as raised:
        check_media_url(url)
    assert str(raised.value).startswith(f"refusing to download media from {shown} (https required")
    assert "s3cr3t" not in str(raised.value)


def test_plain_http_media_is_refused_before_connecting(
    tmp_path: Path,
    loopback_only: list[Any],
) -> None:
    with pytest.raises(UnexpectedResponseError, match="https required"):
        MediaWriter(as_storage_path(tmp_path), "req").walk({"image_url": "http://cdn.example.com/a.png"})
    assert loopback_only == []
    assert _files(tmp_path) == []


def test_non_200_media_download_fails_without_the_query(tmp_path: Path, hostile: HostileServer) -> None:
    url = f"{hostile.url}/m/missing.png?{SIGNATURE}"
    with pytest.raises(UnexpectedResponseError) as raised:
        MediaWriter(as_storage_path(tmp_path), "req").walk({"image_url": url})
    assert str(raised.value).startswith(
        f"media download from {hostile.url}/m/missing.png?*** answered HTTP 404"
    )
    assert raised.value.http_status == 404
    assert "f00dfeed" not in str(raised.value)
    assert _files(tmp_path) == []


def test_redirect_to_the_metadata_service_is_refused_before_connecting(
    tmp_path: Path,
    hostile: HostileServer,
    loopback_only: list[Any],
) -> None:
    url = hostile.redirect("/m/a.png", "http://169.254.169.254/latest/meta-data/iam/security-credentials/")
    with pytest.raises(UnexpectedResponseError) as raised:
        MediaWriter(as_storage_path(tmp_path), "req").walk({"image_url": url + "?sig=abc"})
    assert raised.value.message == (
        f"refusing to follow the redirect from {hostile.url}/m/a.png?*** to "
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/ (https required outside loopback)"
    )
    assert loopback_only == []
    assert [s.path for s in hostile.seen] == ["/m/a.png?sig=abc"]
    assert _files(tmp_path) == []


@pytest.mark.parametrize(
    ("location", "shown"),
    [("file:///etc/passwd", "a file URL"), ("http://10.0.0.7:8080/x", "http://10.0.0.7:8080/x")],
)
def test_every_redirect_hop_is_checked(
    tmp_path: Path,
    hostile: HostileServer,
    loopback_only: list[Any],
    location: str,
    shown: str,
) -> None:
    # Two good hops (relative and absolute) before the bad one: the check is not only on the first.
    hostile.redirect("/r1", "/r2", status=301)
    hostile.redirect("/r2", f"{hostile.url}/r3", status=307)
    hostile.redirect("/r3", location, status=308)
    with pytest.raises(UnexpectedResponseError, match=f"redirect from {hostile.url}/r3 to {shown} "):
        _download(f"{hostile.url}/r1", as_storage_path(tmp_path) / "x.bin")
    assert loopback_only == []
    assert [s.path for s in hostile.seen] == ["/r1", "/r2", "/r3"]


def test_loopback_redirects_are_followed(tmp_path: Path, hostile: HostileServer) -> None:
    hostile.media("/final.png", b"final")
    hostile.redirect("/start", "/final.png", status=303)
    target = as_storage_path(tmp_path) / "x.png"
    assert _download(f"{hostile.url}/start", target) == len(b"final")
    assert (tmp_path / "x.png").read_bytes() == b"final"


def test_a_redirect_to_an_unparsable_location_is_refused(tmp_path: Path, hostile: HostileServer) -> None:
    hostile.redirect("/bad", "http://[::1")
    with pytest.raises(UnexpectedResponseError) as raised:
        _download(f"{hostile.url}/bad?sig=zz", as_storage_path(tmp_path) / "x.bin")
    assert raised.value.message == f"media download from {hostile.url}/bad?*** redirected to an invalid URL"


def test_a_broken_http_answer_is_not_mistaken_for_a_bad_redirect(tmp_path: Path) -> None:
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))

    def answer_garbage() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        conn.close()

    thread = threading.Thread(target=answer_garbage, daemon=True)
    thread.start()
    try:
        with pytest.raises(httpx.RemoteProtocolError):
            _download(f"http://127.0.0.1:{listener.getsockname()[1]}/a.png", as_storage_path(tmp_path) / "x")
    finally:
        thread.join(5)
        listener.close()


def test_a_redirect_loop_ends(tmp_path: Path, hostile: HostileServer) -> None:
    hostile.redirect("/loop", "/loop")
    with pytest.raises(UnexpectedResponseError, match=f"redirected more than {MAX_REDIRECTS} times"):
        _download(f"{hostile.url}/loop?sig=zz", as_storage_path(tmp_path) / "x.bin")
    assert len(hostile.seen) == MAX_REDIRECTS + 1
    assert _files(tmp_path) == []


# -- build_result ---------------------------------------------------------------------------------


def test_build_result_writes_the_output_and_media(tmp_path: Path, hostile: HostileServer) -> None:
    url = hostile.media("/m/a.png", PNG) + "?" + SIGNATURE
    output = {"image_url": url, "caption": "a cat"}
    result = build_result(
        _job("req_7"), output, output_path=str(tmp_path / "out"), submitted_at=1.0, xcom_max_bytes=10_000
    )
    written = json.loads((tmp_path / "out" / "req_7.json").read_text())
    assert written["result"]["request_id"] == "req_7"
    assert written["output"] == result["output"]
    assert result["output"]["caption"] == "a cat"
    assert result["output_path"] == f"file://{tmp_path}/out/req_7.json"
    assert result["files"] == [f"file://{tmp_path}/out/req_7_0.png"]
    assert "f00dfeed" not in json.dumps(result) + json.dumps(written)


def test_default_xcom_limit() -> None:
    assert DEFAULT_XCOM_OUTPUT_MAX_BYTES == 48 * 1024


def test_build_result_fields(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime
    import decimal
    import time

    monkeypatch.setattr(time, "time", lambda: 1000.0)
    job = Job(
        vendor="theta",
        request_id="req_9",
        state=JobState.SUCCEEDED,
        vendor_state="success",
        service="whisper",
        cost_usd=0.25,
    )
    output = {"when": datetime.date(2026, 1, 2), "amount": decimal.Decimal("1.5")}
    result = build_result(job, output, output_path=str(tmp_path), submitted_at=998.76543, xcom_max_bytes=1000)
    assert result == {
        "vendor": "theta",
        "request_id": "req_9",
        "service": "whisper",
        "input_ref": None,
        "state": "succeeded",
        "cost_usd": 0.25,
        "timings": {"submitted_at": 998.76543, "completed_at": 1000.0, "duration_s": 1.235},
        "output_path": f"file://{tmp_path}/req_9.json",
        "files": [],
        "output": output,
    }
    text = (tmp_path / "req_9.json").read_text()
    assert text.startswith('{\n  "result": {\n    "vendor": "theta",')
    assert json.loads(text) == {
        "result": {
            "vendor": "theta",
            "request_id": "req_9",
            "service": "whisper",
            "input_ref": None,
            "state": "succeeded",
            "cost_usd": 0.25,
        },
        "output": {"when": "2026-01-02", "amount": "1.5"},
    }


def test_build_result_xcom_limit_is_inclusive(tmp_path: Path) -> None:
    output = {"text": "x" * 10}
    size = len(json.dumps(output))
    at_limit = build_result(_job(), output, output_path=str(tmp_path), submitted_at=None, xcom_max_bytes=size)
    assert at_limit["output"] == output
    inline = build_result(_job(), output, output_path=None, submitted_at=None, xcom_max_bytes=size)
    assert inline["output"] == output
    with pytest.raises(ConfigurationError) as raised:
        build_result(_job("req_x"), output, output_path=None, submitted_at=None, xcom_max_bytes=size - 1)
    assert (raised.value.vendor, raised.value.request_id) == ("theta", "req_x")
    assert raised.value.message == (
        f"the output of request req_x is {size} bytes, above the XCom limit of {size - 1} bytes"
    )


def test_build_result_without_output_path_accepts_non_json_values() -> None:
    import datetime

    output = {"when": datetime.date(2026, 1, 2)}
    result = build_result(_job(), output, output_path=None, submitted_at=None, xcom_max_bytes=100)
    assert result["output"] == output


def test_build_result_keeps_a_large_output_out_of_xcom(tmp_path: Path) -> None:
    output = {"text": "x" * 200}
    result = build_result(_job(), output, output_path=str(tmp_path), submitted_at=None, xcom_max_bytes=100)
    assert result["output"] is None
    assert json.loads((tmp_path / "req_1.json").read_text())["output"] == output
    assert result["timings"]["duration_s"] is None


def test_build_result_without_output_path_refuses_a_large_output() -> None:
    with pytest.raises(ConfigurationError, match="above the XCom limit of 100 bytes"):
        build_result(_job(), {"text": "x" * 200}, output_path=None, submitted_at=None, xcom_max_bytes=100)
    small = build_result(_job(), {"text": "x"}, output_path=None, submitted_at=None, xcom_max_bytes=100)
    assert small["output"] == {"text": "x"}


@pytest.mark.parametrize("request_id", WRITER_IDS)
def test_build_result_writes_nothing_outside_output_path(
    tmp_path: Path, hostile: HostileServer, request_id: str
) -> None:
    request_id = request_id.format(tmp=tmp_path)
    output_dir = tmp_path / "deep" / "out"
    output = {"image_b64": PNG_B64, "audio_url": hostile.media("/m/a.py", b"not code")}
    result = build_result(
        _job(request_id), output, output_path=str(output_dir), submitted_at=1.0, xcom_max_bytes=10_000
    )
    files = _files(tmp_path)
    assert files and all(p.parent == output_dir for p in files), files
    assert not any(p.suffix == ".py" for p in files)
    assert len(files) == 3
    stem = safe_segment(request_id)
    assert result["output_path"] == f"file://{output_dir}/{stem}.json"
    assert json.loads((output_dir / f"{stem}.json").read_text())["result"]["request_id"] == request_id
    assert result["request_id"] == request_id


def test_httpx_log_of_a_media_download_has_no_query(
    tmp_path: Path, hostile: HostileServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = hostile.media("/m/a.png", PNG) + "?" + SIGNATURE
    with caplog.at_level(logging.INFO, logger="httpx"):
        MediaWriter(as_storage_path(tmp_path), "req").walk({"image_url": url})
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert lines and all("/m/a.png?***" in line for line in lines), lines
    assert "f00dfeed" not in caplog.text


def test_a_result_from_a_source_file_carries_it_and_is_named_after_it(tmp_path: Path) -> None:
    job = Job(vendor="theta", request_id="req_9", state=JobState.SUCCEEDED, vendor_state="success")
    output = {"text": "hello"}
    result = build_result(
        job,
        output,
        output_path=str(tmp_path),
        submitted_at=None,
        xcom_max_bytes=1000,
        input_ref="s3://calls/2026-11-21/call-7.wav",
    )
    assert result["input_ref"] == "s3://calls/2026-11-21/call-7.wav"
    assert result["output_path"] == f"file://{tmp_path}/call-7.wav.req_9.json"
    written = json.loads((tmp_path / "call-7.wav.req_9.json").read_text())
    assert written["result"]["input_ref"] == "s3://calls/2026-11-21/call-7.wav"
    # A source name that is not a safe file name still gives one file, inside the directory.
    hostile = build_result(
        job,
        output,
        output_path=str(tmp_path),
        submitted_at=None,
        xcom_max_bytes=1000,
        input_ref="/x/../é v.wav",
    )
    assert Path(hostile["output_path"].removeprefix("file://")).parent == tmp_path
