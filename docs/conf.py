"""Sphinx configuration of the documentation site: ``make docs`` builds it, warnings are errors.

Pages are Markdown (MyST), so the README's sections, the architecture notes and the changelog are
included as they are rather than copied; the API reference is autodoc over the package's docstrings.
Nothing is fetched while building (no intersphinx), so it builds offline.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))
# Importing the package's modules imports Airflow: keep it from touching a real installation.
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

from airflow_provider_edgeinfer import __version__

project = "airflow-provider-edgeinfer"
author = "airflow-provider-edgeinfer contributors"
copyright = "the airflow-provider-edgeinfer contributors, Apache License 2.0"
release = version = __version__

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

autodoc_default_options = {"members": True, "show-inheritance": True}
autoclass_content = "both"
autodoc_member_order = "bysource"
autodoc_typehints = "signature"

html_theme = "alabaster"
html_title = f"EdgeInfer provider {release}"
html_logo = "integration-logos/edgeinfer.svg"
html_static_path: list[str] = []
