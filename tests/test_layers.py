"""The neutral layers choose by what a vendor can do, never by its name.

Vendor knowledge lives in ``clients/`` and ``hooks/``: operators, sensors, triggers and ``batch/``
ask the client and hook what the vendor can do (``VendorAPI`` and ``EdgeInferHook`` capability
declarations). These tests read the source: a vendor's name in a neutral layer's code (comments
aside) fails them. ``tests/fifth_vendor`` proves the other half: a vendor defined outside the
package runs through the operators and sensors.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "airflow_provider_edgeinfer"
VENDOR_NAMES = re.compile(r"theta|octoai|infrai|omnitensor", re.IGNORECASE)


def vendor_names_in_code(source: str) -> list[tuple[int, str]]:
    """(line, text) of every token other than a comment that names a vendor (strings count)."""
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            continue
        if VENDOR_NAMES.search(token.string):
            found.append((token.start[0], token.string.strip().splitlines()[0][:80]))
    return found


def _offenders(layer: str) -> list[str]:
    root = PACKAGE / layer
    out = []
    for path in sorted(root.rglob("*.py")):
        for line, text in vendor_names_in_code(path.read_text()):
            out.append(f"{path.relative_to(PACKAGE)}:{line}: {text}")
    return out


def test_the_scanner_sees_code_and_strings_but_not_comments() -> None:
    source = 'x = 1  # Theta is fine here\nif hook.vendor == "infrai":\n    api: OmniTensorHook\n'
    assert [line for line, _ in vendor_names_in_code(source)] == [2, 3]
    assert vendor_names_in_code('"""Docstrings describe behaviour: OctoAI counts."""\n') != []


@pytest.mark.parametrize("layer", ["operators", "sensors", "triggers", "decorators"])
def test_neutral_layer_names_no_vendor(layer: str) -> None:
    assert (PACKAGE / layer).is_dir()
    assert _offenders(layer) == []


def test_batch_layer_names_no_vendor() -> None:
    assert (PACKAGE / "batch").is_dir()
    assert _offenders("batch") == []


@pytest.mark.parametrize("module", ["check.py", "progress.py", "outputs.py"])
def test_shared_modules_name_no_vendor(module: str) -> None:
    # The connection check asks each vendor's hook (EdgeInferHook.read_only_checks, paid_check); the
    # links, log lines and output files serve every vendor's tasks alike.
    assert vendor_names_in_code((PACKAGE / module).read_text()) == []


def _package_imports(path: Path) -> set[str]:
    """Every package module ``path`` imports, at module level or inside a function."""
    import ast

    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE.name):
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith(PACKAGE.name))
    return names


def _module_path(name: str) -> Path | None:
    parts = name.split(".")[1:]
    if not parts:
        return PACKAGE / "__init__.py"
    relative = Path(*parts)
    for candidate in (PACKAGE / relative.with_suffix(".py"), PACKAGE / relative / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _reachable(start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        path = _module_path(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        todo.extend(_package_imports(path))
    return seen


def test_the_reachability_walk_follows_function_level_imports() -> None:
    # operators/batch.py imports the batch package only inside its methods.
    assert f"{PACKAGE.name}.batch.run" in _reachable(f"{PACKAGE.name}.operators.batch")


@pytest.mark.parametrize(
    "module",
    sorted(f"{layer}.{p.stem}" for layer in ("triggers", "batch") for p in (PACKAGE / layer).glob("*.py")),
)
def test_triggers_and_batch_import_no_operator_module(module: str) -> None:
    """A trigger runs in the triggerer, and ``batch/`` is the machine operators drive: nothing either
    reaches, even lazily, is an operator module (what they share lives in neutral modules)."""
    reached = _reachable(f"{PACKAGE.name}.{module}")
    assert sorted(n for n in reached if n.startswith(f"{PACKAGE.name}.operators")) == []
