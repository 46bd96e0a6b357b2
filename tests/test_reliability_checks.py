"""The leak scanner of `make reliability` finds what it must (the system run is not in this suite)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from benchmarks.reliability import checks
from benchmarks.reliability.checks import count_in_file, scan_paths, scan_values, secret_needles

SECRET = "rlbt-theta-0123456789abcdef"


def test_finds_raw_and_base64_forms_at_any_alignment(tmp_path: Path) -> None:
    needles = secret_needles([SECRET])
    for prefix in (b"", b"u", b"us"):  # base64 of the secret behind 0, 1 and 2 other bytes
        path = tmp_path / f"b64-{len(prefix)}.log"
        path.write_bytes(b"Authorization: Basic " + base64.b64encode(prefix + SECRET.encode() + b":x"))
        assert count_in_file(path, needles) >= 1, prefix
    clean = tmp_path / "clean.log"
    clean.write_text("submitted whisper request infr_rqst_abc; key ***\n")
    assert count_in_file(clean, needles) == 0


def test_counts_a_secret_split_across_chunks_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checks, "CHUNK", 16)
    path = tmp_path / "big.log"
    path.write_text("x" * 10 + SECRET + "y" * 40 + SECRET)
    assert count_in_file(path, [SECRET.encode()]) == 2


def test_scan_paths_reports_files_not_secrets(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "task.log").write_text(f"oops {SECRET}")
    keys = tmp_path / "keys.json"
    keys.write_text(SECRET)
    hits = scan_paths([tmp_path], secret_needles([SECRET]), exclude={keys.resolve()})
    assert hits == {str(tmp_path / "logs" / "task.log"): 1}
    assert SECRET not in " ".join(hits)
    assert scan_values("xcom", [{"a": SECRET}, {"b": "fine"}], [SECRET.encode()]) == {"xcom": 1}
