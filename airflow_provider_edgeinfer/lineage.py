"""OpenLineage facets of the operators: what a task read, what it wrote, whom it asked and what it cost.

The operators record a :class:`Lineage` as they finish; ``get_openlineage_facets_on_complete`` turns
it into the OpenLineage provider's ``OperatorLineage``. The provider is optional (the
``openlineage`` extra): this module imports it only when Airflow asks for facets, which it does
only when the provider is installed.

Datasets follow OpenLineage's naming: an object store file is ``s3://bucket`` + key, a local file
is ``file`` + its absolute path. A glob's dataset is the folder before its first wildcard (its
files are one dataset); a batch given as a list of inputs in the DAG reads no dataset.

Tables (and anything else the operator cannot see) are known where the DAG declares them, as
Airflow users declare lineage on any operator: the task's ``inlets`` and ``outlets``, as Airflow
assets (``Asset("postgres://host:5432/db/schema/table")``, named by the provider that owns the
scheme: namespace ``postgres://host:5432``, name ``db.schema.table``) or OpenLineage datasets.
The OpenLineage provider reads a task's inlets and outlets only when its operator reports no
dataset of its own; these operators always report some, so they add the declared ones themselves.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import urlsplit

#: Name of the run facet in OpenLineage events.
FACET_NAME = "edgeinfer"
_GLOB_CHARS = ("*", "?", "[")


@dataclass
class Lineage:
    """What one task did, recorded by the operator as it finishes (plain data: no OpenLineage import)."""

    vendor: str
    service: str
    prediction: str | None = None
    #: Files, folders, globs (paths, URIs, ``ObjectStoragePath``), or (namespace, name) pairs.
    inputs: list[Any] = field(default_factory=list)
    outputs: list[Any] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    total: int | None = None
    succeeded: int | None = None
    failed: int | None = None
    cost_usd: float | None = None


def location(path: Any) -> tuple[str, str]:
    """(namespace, name) of a file or folder: a path, a URI or an ``ObjectStoragePath``."""
    if isinstance(path, tuple):
        return str(path[0]), str(path[1])
    text = str(path)
    wildcards = [text.find(c) for c in _GLOB_CHARS if c in text]
    if wildcards:
        text = text[: min(wildcards)].rpartition("/")[0] or "/"
    parts = urlsplit(text)
    if parts.scheme and parts.scheme != "file" and parts.netloc:
        bucket = parts.netloc.rpartition("@")[2]  # an ObjectStoragePath may carry its connection id
        return f"{parts.scheme}://{bucket}", parts.path.lstrip("/") or "/"
    local = parts.path if parts.scheme == "file" else text
    return "file", os.path.abspath(local)


@cache
def _facet_class() -> type:
    from airflow.providers.common.compat.openlineage.facet import RunFacet
    from attr import define

    @define
    class EdgeInferRunFacet(RunFacet):  # type: ignore[misc]
        """Whom the task asked (vendor, service or model) and what it got: item counts and cost."""

        vendor: str
        service: str
        prediction: str | None = None
        requestIds: list[str] | None = None
        totalItems: int | None = None
        succeededItems: int | None = None
        failedItems: int | None = None
        costUsd: float | None = None

    return EdgeInferRunFacet


def run_facet(record: Lineage) -> Any:
    """The ``edgeinfer`` run facet of ``record``."""
    return _facet_class()(
        vendor=record.vendor,
        service=record.service,
        prediction=record.prediction,
        requestIds=record.request_ids or None,
        totalItems=record.total,
        succeededItems=record.succeeded,
        failedItems=record.failed,
        costUsd=record.cost_usd,
    )


def declared(objects: Iterable[Any] | None) -> list[Any]:
    """OpenLineage datasets of a task's ``inlets`` or ``outlets``, converted as the OpenLineage
    provider converts them (assets through their scheme's provider; OpenLineage datasets as they
    are); an asset whose scheme has no converter, or an asset alias, names no dataset."""
    from airflow.providers.openlineage.extractors.manager import ExtractorManager

    converted = (ExtractorManager.convert_to_ol_dataset(o) for o in objects or ())
    return [dataset for dataset in converted if dataset is not None]


def operator_lineage(record: Lineage | None, task: Any = None) -> Any:
    """``OperatorLineage`` of a finished task (empty when it recorded nothing): what it read and
    wrote, then what ``task`` declares in its ``inlets`` and ``outlets``."""
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage

    if record is None:
        return OperatorLineage()

    def datasets(paths: list[Any], extra: list[Any]) -> list[Any]:
        found = [Dataset(namespace=namespace, name=name) for namespace, name in map(location, paths)]
        unique: dict[tuple[str, str], Any] = {}
        for dataset in found + extra:  # one dataset per place, in order
            unique.setdefault((dataset.namespace, dataset.name), dataset)
        return list(unique.values())

    return OperatorLineage(
        inputs=datasets(record.inputs, declared(getattr(task, "inlets", None))),
        outputs=datasets(record.outputs, declared(getattr(task, "outlets", None))),
        run_facets={FACET_NAME: run_facet(record)},
    )
