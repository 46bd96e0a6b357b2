"""PresignedUploadOperator: stream large inputs from disk or object storage to the vendor, in constant memory.

What a vendor takes is its client's ``upload_kinds``:

- ``kind="input"``: one presigned URL per file, streamed ``PUT`` s with bounded concurrency;
  XCom gets ``{field: uploaded_filename}`` (a list of them, in input order, for a list or a glob),
  ready to template into, or ``.expand()`` over, an :class:`InferenceOperator`'s ``input``.
- ``kind="dataset"`` / ``kind="model"``: streamed multipart dataset upload whose size and sha256
  are checked against the vendor's metadata; streamed model upload, size limit checked before sending.
- a vendor that takes none: the error names the alternative its hook gives (e.g. inline base64).

The pieces BatchOperator and ``InferenceOperator(input_files=...)`` share with it
(:func:`~airflow_provider_edgeinfer.sources.expand_sources`,
:func:`~airflow_provider_edgeinfer.sources.upload_files`) are in :mod:`airflow_provider_edgeinfer.sources`.
This module is imported when DAG files are parsed: vendor clients and pydantic models load when a
task runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any, cast

from airflow.sdk import BaseOperator

from airflow_provider_edgeinfer.exceptions import (
    InputValidationError,
    UnexpectedResponseError,
    naming_vendor,
)
from airflow_provider_edgeinfer.lineage import Lineage
from airflow_provider_edgeinfer.sources import (
    DEFAULT_MAX_CONCURRENCY,
    expand_sources,
    is_many,
    require_upload_kind,
    upload_files,
    upload_source,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_edgeinfer.clients.presigned import UploadSource
    from airflow_provider_edgeinfer.hooks.base import EdgeInferHook

#: What ``kind`` may be (a vendor takes those in its client's ``upload_kinds``).
KINDS: tuple[str, ...] = ("input", "dataset", "model")


def upload_dataset(
    hook: EdgeInferHook,
    source: UploadSource,
    *,
    name: str | None = None,
    description: str | None = None,
    format: str | None = None,
) -> dict[str, Any]:
    """Stream one file to the vendor as a dataset, then prove it holds exactly what was sent."""
    from airflow_provider_edgeinfer.clients.presigned import HashingReader

    vendor = hook.vendor
    with HashingReader(source, vendor=vendor) as reader:
        uploaded = hook.run(
            hook.api.upload_dataset(
                cast("IO[bytes]", reader),
                name or source.basename,
                description=description,
                format=format,
                filename=source.basename,
            )
        )
        sent = (reader.tell(), reader.sha256) if reader.complete else None
    if sent is None:
        raise UnexpectedResponseError(
            f"dataset {uploaded.dataset_id} from {source.label} was accepted before the whole file was sent",
            vendor=vendor,
            request_id=uploaded.dataset_id,
        )
    metadata = hook.run(hook.api.dataset_metadata(uploaded.dataset_id))
    for what, reported in (
        ("the upload answer", (uploaded.size_bytes, uploaded.checksum_sha256)),
        ("its metadata", (metadata.size_bytes, metadata.checksum_sha256)),
    ):
        if reported != sent:
            raise UnexpectedResponseError(
                f"dataset {uploaded.dataset_id} from {source.label}: {what} reports {reported[0]} bytes, "
                f"sha256 {reported[1]}, but {sent[0]} bytes with sha256 {sent[1]} were sent",
                vendor=vendor,
                request_id=uploaded.dataset_id,
                hint="The upload was corrupted or truncated; delete the dataset and upload it again.",
            )
    return {
        "dataset_id": uploaded.dataset_id,
        "name": metadata.name or name or source.basename,
        "size_bytes": sent[0],
        "checksum_sha256": sent[1],
        "source": source.label,
    }


class PresignedUploadOperator(BaseOperator):
    """Upload files from local disk or object storage to the vendor behind ``conn_id``, streamed.

    :param conn_id: an ``edgeinfer_*`` connection; its type picks the vendor. Templated.
    :param source: a path, a URI (``file://``, ``s3://conn_id@bucket/key``), a glob
        (``s3://bucket/audio/*.wav``) or a list of them. Templated.
    :param service: the service whose input takes the file (``kind="input"``). Templated.
    :param field: the input field the file fills (``audio_filename``). Templated.
    :param prediction: the service's prediction (default: the service's default). Templated.
    :param kind: ``"input"`` (presigned input files), ``"dataset"`` or ``"model"``: which ones a
        vendor takes is its client's ``upload_kinds`` (the error on any other names the alternative).
    :param source_conn_id: Airflow connection for reading URIs that name none (e.g. ``aws_default``).
    :param max_concurrency: files uploaded at once.
    :param options: upload metadata: for a dataset ``name``, ``description``, ``format``; for a
        model ``model_name``, ``framework``, ``version`` (both required), ``description``. Templated.

    Returns (XCom) one result for a single source and a list in input order for a list or a glob:
    ``{field: filename, "edgeinfer_input_ref": source}`` (input: the source file travels with its
    upload, and InferenceOperator and BatchOperator take it out of the input and report it as
    ``input_ref``), ``{dataset_id, name, size_bytes, checksum_sha256, source}``
    (dataset) or ``{model_id, model_name, size_bytes, source}`` (model). Presigned URLs never appear
    in it.
    """

    template_fields: Sequence[str] = (
        "conn_id",
        "source",
        "service",
        "field",
        "prediction",
        "source_conn_id",
        "options",
    )
    template_fields_renderers = {"options": "json"}
    ui_color = "#fdf0e2"

    def __init__(
        self,
        *,
        conn_id: str,
        source: Any,
        service: str | None = None,
        field: str | None = None,
        prediction: str | None = None,
        kind: str = "input",
        source_conn_id: str | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        from airflow_provider_edgeinfer.arguments import whole

        max_concurrency = whole("max_concurrency", max_concurrency, minimum=1)
        if kind == "input" and (not service or not field):
            raise ValueError("kind='input' needs service and field")
        self.conn_id = conn_id
        self.source = source
        self.service = service
        self.field = field
        self.prediction = prediction
        self.kind = kind
        self.source_conn_id = source_conn_id
        self.max_concurrency = max_concurrency
        self.options = options or {}
        self._lineage: Lineage | None = None

    def execute(self, context: Context) -> Any:
        from airflow_provider_edgeinfer.hooks.base import hook_for_connection
        from airflow_provider_edgeinfer.progress import format_cost

        hook = hook_for_connection(self.conn_id)
        try:
            with naming_vendor(hook.vendor):
                results = self._upload(hook)
            # What the vendor now holds: its uploaded names, dataset or model ids, at its API.
            held = [r.get("dataset_id") or r.get("model_id") or r.get(self.field or "") for r in results]
            where = hook.api.base_urls()[0]
        finally:
            hook.close()
        self._lineage = Lineage(
            vendor=hook.vendor,
            service=self.service or self.kind,
            prediction=self.prediction,
            inputs=list(self.source) if isinstance(self.source, list | tuple) else [self.source],
            outputs=[(where, str(name)) for name in held if name],
            total=len(results),
            succeeded=len(results),
            failed=0,
        )
        # Vendors state no price for an upload: what it cost is unknown, not free.
        self.log.info(
            "uploaded %d file(s) to %s, %s; their names in XCom (return_value)",
            len(results),
            hook.vendor,
            format_cost(None),
        )
        return results if is_many(self.source) else results[0]

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the files read, and what the vendor holds of them (named at its API URL)."""
        from airflow_provider_edgeinfer.lineage import operator_lineage

        return operator_lineage(self._lineage, self)

    def _upload(self, hook: EdgeInferHook) -> list[Any]:
        require_upload_kind(hook, self.kind, self.field)
        if self.kind == "input":
            from airflow_provider_edgeinfer.outputs import INPUT_REF_KEY
            from airflow_provider_edgeinfer.sources import label

            assert self.service and self.field  # checked in __init__
            # Expanded once: the names come back in the order of these files.
            paths = expand_sources(self.source, conn_id=self.source_conn_id)
            names = upload_files(
                hook,
                self.service,
                self.prediction,
                self.field,
                paths,
                max_concurrency=self.max_concurrency,
                logger=self.log,
            )
            return [{self.field: name, INPUT_REF_KEY: label(p)} for p, name in zip(paths, names, strict=True)]
        from airflow_provider_edgeinfer.clients.presigned import map_bounded

        files = [upload_source(p) for p in expand_sources(self.source, conn_id=self.source_conn_id)]
        options = dict(self.options)
        if self.kind == "dataset":
            unknown = set(options) - {"name", "description", "format"}
            if unknown:
                raise InputValidationError(
                    f"unknown dataset option(s) {', '.join(sorted(unknown))} "
                    "(known: name, description, format)",
                    vendor=hook.vendor,
                )
            results = map_bounded(
                files,
                lambda f, _abort: upload_dataset(hook, f, **options),
                max_concurrency=self.max_concurrency,
            )
        else:
            results = self._upload_models(hook, files, options)
        for result in results:
            self.log.info(
                "uploaded %s to %s as %s",
                result["source"],
                hook.vendor,
                result.get("dataset_id") or result.get("model_id"),
            )
        return results

    def _upload_models(
        self, hook: EdgeInferHook, files: list[UploadSource], options: dict[str, Any]
    ) -> list[dict[str, Any]]:
        from airflow_provider_edgeinfer.clients.presigned import map_bounded

        unknown = set(options) - {"model_name", "framework", "version", "description"}
        if unknown:
            raise InputValidationError(
                f"unknown model option(s) {', '.join(sorted(unknown))} "
                "(known: model_name, framework, version, description)",
                vendor=hook.vendor,
            )
        # Every call is built (limit and fields checked) before the first byte of any file is sent.
        calls = [
            (
                f,
                hook.api.upload_model_from(
                    f.open,
                    f.size,
                    f.label,
                    str(options.get("model_name") or f.basename.rsplit(".", 1)[0]),
                    framework=str(options.get("framework") or ""),
                    version=str(options.get("version") or ""),
                    description=str(options.get("description") or ""),
                ),
            )
            for f in files
        ]

        def send(item: tuple[UploadSource, Any], _abort: Any) -> dict[str, Any]:
            source, call = item
            uploaded = hook.run(call)
            return {
                "model_id": uploaded.model_id,
                "model_name": options.get("model_name") or source.basename.rsplit(".", 1)[0],
                "size_bytes": source.size,
                "source": source.label,
            }

        return map_bounded(calls, send, max_concurrency=self.max_concurrency)


__all__ = ["KINDS", "PresignedUploadOperator", "upload_dataset"]
