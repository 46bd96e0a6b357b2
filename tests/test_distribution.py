"""What a user installs besides the code: project URLs, provider metadata, licence, example DAGs."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

from airflow_provider_edgeinfer import get_provider_info

REPO = Path(__file__).resolve().parents[1]
DIST = "airflow-provider-edgeinfer"


def _project_urls() -> dict[str, str]:
    entries = importlib.metadata.metadata(DIST).get_all("Project-URL") or []
    return {name.strip(): url.strip() for name, _, url in (e.partition(",") for e in entries)}


def test_the_package_names_its_documentation_source_changelog_and_issues() -> None:
    urls = _project_urls()
    assert set(urls) >= {"documentation", "source", "changelog", "issues"}
    assert all(url.startswith("https://") for url in urls.values())
    assert urls["changelog"].startswith(urls["documentation"])


def test_the_integration_points_at_the_documentation_its_guides_and_its_logo() -> None:
    [integration] = get_provider_info()["integrations"]
    assert integration["external-doc-url"] == _project_urls()["documentation"]
    for path in [*integration["how-to-guide"], integration["logo"]]:
        assert path.startswith("/docs/")
        assert (REPO / path.lstrip("/")).is_file(), path
    assert (REPO / integration["logo"].lstrip("/")).read_text().lstrip().startswith("<svg")


def test_airflow_shows_the_documentation_url() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "airflow", "providers", "get", DIST, "--full", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        check=True,
    )
    # Log lines may come first: the answer is the JSON list.
    [info] = json.loads(shown.stdout[shown.stdout.index("[{") :])
    assert info["documentation-url"] == _project_urls()["documentation"]


def test_the_licence_is_the_apache_license_2_0_the_package_declares() -> None:
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert importlib.metadata.metadata(DIST)["License-Expression"] == "Apache-2.0"


def test_the_example_dags_ship_in_the_package_as_one_copy() -> None:
    package = importlib.import_module("airflow_provider_edgeinfer.example_dags")
    shipped = Path(package.__file__).parent
    # dags_examples/ (what the README's commands and the tests use) is the shipped folder itself.
    assert shipped.samefile(REPO / "dags_examples")
    dags = sorted(p.name for p in shipped.glob("edgeinfer_*.py"))
    assert len(dags) >= 7
    module = importlib.import_module("airflow_provider_edgeinfer.example_dags.edgeinfer_theta_transcription")
    assert module.dag.dag_id == "edgeinfer_theta_transcription"
