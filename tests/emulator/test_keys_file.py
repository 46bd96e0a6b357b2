"""``--keys-file``: the emulator accepts caller-chosen keys and never echoes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airflow_provider_edgeinfer.emulator.__main__ import build_state, main, parse_args


def test_keys_file_sets_keys_and_secret(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"theta": "theta-unique-1", "omnitensor_secret": "omni-secret-1"}))
    state = build_state(parse_args(["--keys-file", str(keys)]))
    try:
        assert state.keys["theta"] == "theta-unique-1"
        assert state.keys["octoai"] == "emulator-octoai-token"  # untouched vendors keep the default
        assert state.omnitensor_secret == "omni-secret-1"
    finally:
        state.close()


@pytest.mark.parametrize("content", ['{"nope": "x"}', '{"theta": ""}', "[1]", "not json"])
def test_bad_keys_file_is_refused(tmp_path: Path, content: str, capsys: pytest.CaptureFixture[str]) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text(content)
    assert main(["--keys-file", str(keys), "--print-connections"]) == 2
    assert "keys file" in capsys.readouterr().err
