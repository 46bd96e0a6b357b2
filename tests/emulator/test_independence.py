"""The emulator is a witness: it judges requests from the contracts, never with the client's code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

import airflow_provider_edgeinfer.emulator as emulator_package
from airflow_provider_edgeinfer.clients.octoai_schema import schema_errors
from airflow_provider_edgeinfer.emulator.server import EmulatorServer

EMULATOR = Path(emulator_package.__file__).parent
FORBIDDEN = ("airflow_provider_edgeinfer.clients", "airflow_provider_edgeinfer.hooks")


def _imported_modules(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def test_no_emulator_module_imports_the_client_or_the_hooks() -> None:
    offending = {
        f"{path.name}: {name}"
        for path in EMULATOR.rglob("*.py")
        for name in _imported_modules(path)
        if name.startswith(FORBIDDEN)
    }
    assert not offending


def test_serving_the_emulator_loads_no_client_module() -> None:
    script = (
        "import sys\n"
        "from airflow_provider_edgeinfer.emulator.app import create_app\n"
        "create_app()\n"
        f"print(sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r})))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


BODIES: list[dict[str, Any]] = [
    {"prompt": "a cat"},
    {"prompt": "a cat", "steps": 200, "num_images": 16, "width": 1024, "height": 1024},
    {"prompt": "a cat", "sampler": "K_EULER_ANCESTRAL", "cfg_scale": 50},
    {"prompt": "a cat", "width": None, "clip_skip": None},
    {"steps": 10},
    {"prompt": "a cat", "steps": 0},
    {"prompt": "a cat", "steps": 201},
    {"prompt": "a cat", "steps": "ten"},
    {"prompt": "a cat", "num_images": 17},
    {"prompt": "a cat", "colour": "red"},
    {"prompt": "a cat", "sampler": "FAST"},
    {"prompt": "a cat", "cfg_scale": 0},
    {"prompt": "a cat", "clip_skip": 13},
    {"prompt": "a cat", "width": "wide"},
]


@pytest.mark.parametrize("body", BODIES, ids=lambda b: ",".join(f"{k}={b[k]!r}" for k in sorted(b))[:60])
def test_client_refuses_locally_exactly_what_the_server_refuses(
    edgeinfer_emulator: EmulatorServer, body: dict[str, Any]
) -> None:
    """The client's pre-flight check and the independent server agree on each field they name."""
    key = edgeinfer_emulator.state.keys["octoai"]
    with httpx.Client(
        base_url=edgeinfer_emulator.vendor_url("octoai"), headers={"Authorization": f"Bearer {key}"}
    ) as http:
        answer = http.post("/generate/sdxl", json=body)
    server_locs = sorted(d["loc"] for d in answer.json()["detail"]) if answer.status_code == 422 else []
    client_locs = sorted(d["loc"] for d in schema_errors("sdxl", body))
    assert answer.status_code in (200, 422)
    assert client_locs == server_locs
