"""The pytest plugin's strict switch (no override here: the plugin's own default is under test)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(("value", "strict"), [("1", True), ("yes", True), ("", False), ("0", False)])
def test_the_environment_turns_strict_mode_on(
    value: str, strict: bool, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.setenv("EDGEINFER_EMULATOR_STRICT", value)
    assert request.getfixturevalue("edgeinfer_emulator").state.strict is strict
