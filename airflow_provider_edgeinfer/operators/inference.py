"""InferenceOperator: one inference on any vendor, submitted on the worker, awaited in the triggerer.

This module is imported when DAG files are parsed, so it imports no vendor client and no pydantic
model at module level; they load when the task runs.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf
from airflow.sdk import BaseOperator

from airflow_provider_edgeinfer.exceptions import (
    ConfigurationError,
    InputValidationError,
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    NotFoundError,
    OutcomeUnknownError,
    ResultExpiredError,
    naming_vendor,
)
from airflow_provider_edgeinfer.lineage import Lineage
from airflow_provider_edgeinfer.progress import VendorRequestLink, push_link, registered

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_provider_edgeinfer.clients.core import Job
    from airflow_provider_edgeinfer.hooks.base import EdgeInferHook
    from airflow_provider_edgeinfer.triggers.inference import InferenceTrigger

#: Task state store key of this operator's submission record (renaming it breaks in-flight retries).
STATE_KEY = "edgeinfer_inference_request"
#: How long the record of a request just paid for is retried while Airflow's API server cannot be
#: reached (a restart, a rollout): without it the next try cannot tell whether the request exists,
#: and a vendor that can neither be searched nor deduplicate would then fail it as an unknown outcome.
RECORD_RETRY_SECONDS = 180.0
#: Longest pause between two of those attempts.
RECORD_RETRY_MAX_WAIT = 10.0
#: Largest answer (JSON) of a call that answered in the call that the submission record keeps.
MAX_KEPT_ANSWER_BYTES = 512 * 1024
#: Largest input a synchronous vendor's deferred call may carry in trigger kwargs.
MAX_TRIGGER_INPUT_BYTES = 256 * 1024


def fingerprint(vendor: str, service: str, prediction: str | None, input: Any) -> str:
    """Identity of *what* is asked: a retry with the same fingerprint may reattach."""
    raw = json.dumps([vendor, service, prediction, input], sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _api_server_unreachable(error: BaseException) -> bool:
    """Whether a Task SDK call failed because Airflow's API server could not be reached."""
    from airflow.sdk.exceptions import AirflowRuntimeError, ErrorType

    return isinstance(error, AirflowRuntimeError) and error.error.error is ErrorType.API_SERVER_ERROR


def _task_identity(context: Context) -> str:
    """Whom a synchronous vendor's answer is sealed for (see ``triggers/base.py``)."""
    from airflow_provider_edgeinfer.triggers.base import task_identity_of

    return task_identity_of(context["ti"])


class InferenceOperator(BaseOperator):
    """Run one inference on the vendor behind ``conn_id``, without holding a worker slot while it runs.

    :param conn_id: an ``edgeinfer_*`` connection; its type picks the vendor.
    :param service: what the vendor runs: a service alias, endpoint, route or model id, in the vendor's
        own naming (the README's vendor table lists them). A service that answers in the submitting
        call (the client's ``answers_in_call``: e.g. an OpenAI-compatible text API's
        ``chat/completions``, with ``input={"model": ..., "messages": [...]}``) is called in the
        triggerer when deferred, and its answer travels back sealed, if the vendor recognises a
        repeated call by its idempotency key (the client's ``honours_idempotency``); otherwise on
        the worker, since a triggerer that adopts a dead one's triggers makes their calls again.
        Templated.
    :param input: the inference input (dict, or a ``.json`` template file). Templated.
    :param input_files: input field -> one file (local path, URI such as ``s3://bucket/key``,
        or ``ObjectStoragePath``) uploaded to the vendor before submitting; the field then names the
        uploaded file. Only for vendors that take uploaded input files (``"input"`` in the client's
        ``upload_kinds``), or for a service whose client takes files inline
        (the client's ``takes_files_inline``: e.g. ``audio.transcriptions`` with ``{"file": path}``):
        the file, at most the client's ``max_inline_file_bytes``, is read and sent inside the call,
        which is then made on the worker even when deferrable (the file does not travel to the
        triggerer). A retry that reattaches uploads nothing. Templated.
    :param prediction: the prediction name, for services that have several (default: the service's
        default). Templated.
    :param output_path: a directory (local path, URI or ``ObjectStoragePath``) receiving the result
        JSON and decoded/downloaded media. Templated.
    :param source_conn_id: the storage connection ``input_files`` URIs that name none are read with
        (default: the scheme's default connection, ``aws_default`` for ``s3://``). Templated.
    :param output_conn_id: the storage connection an ``output_path`` URI that names none is written
        with (default: the scheme's default connection, ``aws_default`` for ``s3://``). Templated.
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :param poll_interval: seconds between status checks (default 10); below 1 s
        (``arguments.MIN_POLL_INTERVAL``) it is raised to 1 s, with a warning.
    :param timeout: seconds (or timedelta) from submission before the request is cancelled and the
        task fails. Every numeric argument must be a finite number (``nan``, ``inf`` are refused).
    :param cancel_on_kill: cancel the remote request when the task is killed or times out.
    :param max_transient_failures: consecutive transient failures of the status checks (network
        errors, 5xx, malformed answers) tolerated before the task fails; a 429 is not one (it pauses
        the connection until its ``Retry-After``). ``0`` fails on the first.
    :param resubmit_on_unknown_outcome: when a previous try's submission has an unknown outcome and
        the vendor offers no way to find it, resubmit (may pay twice) instead of failing.
    :param vendor_options: extra keyword arguments for the vendor's submit (e.g. ``wait``).
    :param xcom_output_max_bytes: largest output returned inline through XCom.
    :param end_from_trigger: when deferred and the request succeeds, end the task in the triggerer:
        it reads the output and pushes the result as the task's XCom (Airflow's ``TaskSuccessEvent``),
        so the task does not go back to a worker to finish (one task run instead of two). Not with
        ``output_path`` (the triggerer writes no files). What changes: ``on_success_callback`` runs
        in the DAG processor, no OpenLineage event is sent for the task's end, the XCom goes straight
        into the metadata database (not through a custom XCom backend), and the submission
        record stays in the task state store, so clearing a task that succeeded this way reattaches
        to the same request and returns its result again (nothing is paid). Failures, timeouts and
        outputs above ``xcom_output_max_bytes`` still resume on a worker, as without it.
    """

    template_fields: Sequence[str] = (
        "conn_id",
        "service",
        "prediction",
        "input",
        "input_files",
        "output_path",
        "source_conn_id",
        "output_conn_id",
    )
    template_ext: Sequence[str] = (".json",)
    template_fields_renderers = {"input": "json"}
    operator_extra_links = registered(VendorRequestLink(), "request_pages")  # type: ignore[assignment]
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        service: str,
        input: dict[str, Any] | str | None = None,
        input_files: dict[str, str | ObjectStoragePath] | None = None,
        conn_id: str,
        prediction: str | None = None,
        output_path: Any = None,
        source_conn_id: str | None = None,
        output_conn_id: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 10.0,
        timeout: float | timedelta = 3600.0,
        cancel_on_kill: bool = True,
        max_transient_failures: int = 5,
        resubmit_on_unknown_outcome: bool = False,
        vendor_options: dict[str, Any] | None = None,
        xcom_output_max_bytes: int = 48 * 1024,
        end_from_trigger: bool = False,
        **kwargs: Any,
    ) -> None:
        from airflow_provider_edgeinfer import arguments

        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.service = service
        self.input = input if input is not None else {}
        self.input_files = input_files
        self.prediction = prediction
        self.output_path = output_path
        self.source_conn_id = source_conn_id
        self.output_conn_id = output_conn_id
        self.deferrable = deferrable
        self.poll_interval = arguments.poll_interval("poll_interval", poll_interval, owner=self.task_id)
        self.timeout = arguments.seconds("timeout", timeout)
        self.cancel_on_kill = cancel_on_kill
        self.max_transient_failures = arguments.whole(
            "max_transient_failures", max_transient_failures, minimum=0
        )
        self.resubmit_on_unknown_outcome = resubmit_on_unknown_outcome
        self.vendor_options = vendor_options or {}
        self._lineage: Lineage | None = None
        self.xcom_output_max_bytes = arguments.whole(
            "xcom_output_max_bytes", xcom_output_max_bytes, minimum=0
        )
        if end_from_trigger and output_path is not None:
            raise ValueError(
                f"{self.task_id}: end_from_trigger cannot be used with output_path (the triggerer writes "
                "no files); drop one of them"
            )
        self.end_from_trigger = end_from_trigger
        self._live_request: tuple[EdgeInferHook, str] | None = None

    # -- inputs ------------------------------------------------------------------------------

    def _input_dict(self, vendor: str) -> dict[str, Any]:
        value = self.input
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise InputValidationError(f"input is not valid JSON: {exc}", vendor=vendor) from None
        if not isinstance(value, dict):
            raise InputValidationError(
                f"input must be a JSON object, got {type(value).__name__}", vendor=vendor
            )
        from airflow_provider_edgeinfer.outputs import INPUT_REF_KEY

        return {k: v for k, v in value.items() if k != INPUT_REF_KEY}

    def _input_ref(self) -> str | None:
        """Where the input came from: the upload's source it carries, or the one ``input_files`` file."""
        from airflow_provider_edgeinfer.outputs import INPUT_REF_KEY

        value = self.input
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return None
        ref = value.get(INPUT_REF_KEY) if isinstance(value, dict) else None
        if isinstance(ref, str) and ref:
            return ref
        if isinstance(self.input_files, dict) and len(self.input_files) == 1:
            from airflow_provider_edgeinfer.sources import is_many, label, to_path

            [spec] = self.input_files.values()
            if not is_many(spec):
                return label(to_path(spec))
        return None

    # -- main path ---------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        from airflow_provider_edgeinfer.hooks.base import hook_for_connection

        hook = hook_for_connection(self.conn_id)
        try:
            return self._execute(context, hook)
        finally:
            hook.close()

    def _execute(self, context: Context, hook: EdgeInferHook) -> Any:
        from airflow_provider_edgeinfer.clients.core import idempotency_key

        vendor = hook.vendor
        input_ = self._input_dict(vendor)
        if not self.service:
            raise InputValidationError("service is empty", vendor=vendor)
        files: dict[str, ObjectStoragePath] = {}
        if self.input_files:
            # The file helpers are vendor-neutral: their errors are told with the vendor's name here.
            with naming_vendor(hook.vendor):
                files = self._input_file_paths(hook, input_)
        inline = bool(files) and hook.api.takes_files_inline(self.service)
        # A file field is checked with a stand-in: an upload's name exists only after the upload, and
        # an inline file is read only when the call is about to be made.
        checked = {**input_, **{f: self._stand_in(f, path, inline) for f, path in files.items()}}
        hook.validate_submission(self.service, self.prediction, checked, **self.vendor_options)
        if self.output_path is not None:
            from airflow_provider_edgeinfer.outputs import prepare_output_dir

            prepare_output_dir(self.output_path, vendor, self.output_conn_id)

        api = hook.api
        fp = self._fingerprint(vendor, input_, files)
        key = idempotency_key(context, fp)
        store = context.get("task_state_store")
        if store is not None:
            job, submitted_at = self._reattach(hook, store, fp)
        else:
            job, submitted_at = self._find_previous_try(hook, context, input_, files)
        uploaded: dict[str, str] = {}
        if job is None and files:
            if inline:
                input_ = {**input_, **self._read_inline_files(hook, files)}
            else:
                uploaded = self._upload_input_files(hook, files)
                input_ = {**input_, **uploaded}

        in_call = job is None and self.deferrable and api.answers_in_call(self.service)
        if job is None and inline and self.deferrable:
            self.log.info("the input file travels inside the call itself, so the call is made on the worker")
        elif in_call and not api.honours_idempotency:
            # A triggerer that dies mid-call has its triggers adopted, and the adopter would make the
            # call again: a vendor that cannot tell a repeat from a new request would bill it twice. On
            # the worker, a death mid-call leaves the retry an unknown outcome instead (never a charge).
            self.log.info(
                "%s cannot recognise a repeated call, so the call is made on the worker, not in the "
                "triggerer (whose successor would make it again)",
                hook.vendor,
            )
        elif in_call:
            # No status endpoint: the one (long) call itself runs in the triggerer.
            self._record(store, fp, None, time.time(), uploaded)
            self._defer(
                hook,
                None,
                time.time(),
                submit={
                    "service": self.service,
                    "prediction": self.prediction,
                    "input": input_,
                    "idempotency_key": key,
                    # Whom the trigger seals the answer for: it never travels in clear.
                    "task": _task_identity(context),
                },
            )
        if job is None:
            job, submitted_at = self._submit(hook, store, fp, key, input_, uploaded)
        self._announce(context, hook, job)

        if job.terminal:
            return self._complete(context, hook, job, output_known=True, submitted_at=submitted_at)
        if self.deferrable:
            self._defer(hook, job.request_id, submitted_at)
        self._live_request = (hook, job.request_id)
        event = self._trigger(hook, job.request_id, submitted_at).run_on_worker()
        return self._execute_complete(context, hook, event)

    def _trigger(
        self,
        hook: EdgeInferHook,
        request_id: str | None,
        submitted_at: float,
        submit: dict[str, Any] | None = None,
        end_task: dict[str, Any] | None = None,
    ) -> InferenceTrigger:
        from airflow_provider_edgeinfer.triggers.inference import InferenceTrigger

        return InferenceTrigger(
            conn_id=self.conn_id,
            request_id=request_id,
            deadline=submitted_at + self.timeout,
            poll_interval=self.poll_interval,
            cancel_on_kill=self.cancel_on_kill,
            max_transient_failures=self.max_transient_failures,
            submit=submit,
            submitted_at=submitted_at,
            end_task=end_task,
        )

    def _defer(
        self,
        hook: EdgeInferHook,
        request_id: str | None,
        submitted_at: float,
        submit: dict[str, Any] | None = None,
    ) -> None:
        if submit is not None and len(json.dumps(submit, default=str)) > MAX_TRIGGER_INPUT_BYTES:
            raise InputValidationError(
                f"input is larger than {MAX_TRIGGER_INPUT_BYTES} bytes, too large to hand to the triggerer",
                vendor=hook.vendor,
                hint="Run this task with deferrable=False.",
            )
        from airflow_provider_edgeinfer.triggers.base import deferral_timeout

        end_task = None
        if self.end_from_trigger and self.output_path is None:
            end_task = {
                "service": self.service,
                "xcom_max_bytes": self.xcom_output_max_bytes,
                "input_ref": self._input_ref(),
                "xcom": self.do_xcom_push,
            }
        self.defer(
            trigger=self._trigger(hook, request_id, submitted_at, submit, end_task),
            method_name="execute_complete",
            timeout=deferral_timeout(submitted_at + self.timeout - time.time()),
        )

    # -- input files -------------------------------------------------------------------------

    def _input_file_paths(self, hook: EdgeInferHook, input_: dict[str, Any]) -> dict[str, ObjectStoragePath]:
        """Each ``input_files`` source as one checked file, before anything is sent."""
        if not self.input_files:
            return {}
        from airflow_provider_edgeinfer.sources import (
            expand_sources,
            is_many,
            require_file_inputs,
            require_uploads,
        )

        if not isinstance(self.input_files, dict):
            raise InputValidationError(
                "input_files must map input field names to file sources", vendor=hook.vendor
            )
        both = sorted(set(self.input_files) & set(input_))
        if both:
            raise InputValidationError(
                f"field(s) {', '.join(both)} given both in input and in input_files", vendor=hook.vendor
            )
        require_file_inputs(hook, self.service, self.input_files)
        inline = hook.api.takes_files_inline(self.service)
        paths: dict[str, ObjectStoragePath] = {}
        for field, spec in self.input_files.items():
            if not inline:
                require_uploads(hook, field)
            if is_many(spec):
                raise InputValidationError(
                    f"input_files[{field!r}] names several files; one inference takes one file per field",
                    vendor=hook.vendor,
                    hint="Upload them with PresignedUploadOperator and map InferenceOperator over its "
                    "result with .expand(input=...).",
                )
            paths[field] = expand_sources(spec, conn_id=self.source_conn_id)[0]
        return paths

    def _fingerprint(self, vendor: str, input_: dict[str, Any], files: dict[str, ObjectStoragePath]) -> str:
        """The submission's identity: with files, their sources (where, size, version), never the
        names a fresh upload gets, so a retry of an unchanged task reattaches instead of paying again."""
        if not files:
            return fingerprint(vendor, self.service, self.prediction, input_)
        from airflow_provider_edgeinfer.sources import identity

        sources = {field: identity(path) for field, path in sorted(files.items())}
        return fingerprint(vendor, self.service, self.prediction, {"input": input_, "input_files": sources})

    @staticmethod
    def _stand_in(field: str, path: ObjectStoragePath, inline: bool) -> Any:
        from airflow_provider_edgeinfer.clients.core import InlineFile

        return InlineFile(path.name, b"") if inline else f"upload-of-{field}"

    def _read_inline_files(self, hook: EdgeInferHook, files: dict[str, ObjectStoragePath]) -> dict[str, Any]:
        from airflow_provider_edgeinfer.sources import read_inline

        return {
            field: read_inline(hook, self.service, field, path, logger=self.log)
            for field, path in files.items()
        }

    def _upload_input_files(self, hook: EdgeInferHook, files: dict[str, ObjectStoragePath]) -> dict[str, str]:
        from airflow_provider_edgeinfer.sources import upload_files

        uploaded = {}
        for field, path in files.items():
            [uploaded[field]] = upload_files(
                hook, self.service, self.prediction, field, [path], logger=self.log
            )
        return uploaded

    # -- never pay twice ---------------------------------------------------------------------

    def _record(
        self,
        store: Any,
        fp: str,
        request_id: str | None,
        submitted_at: float,
        uploaded: dict[str, str] | None = None,
        *,
        keep: bool = False,
        answered: Job | None = None,
    ) -> None:
        """Write the submission record; ``keep``: it names a request already paid for, so an API server
        that cannot be reached is waited for (:data:`RECORD_RETRY_SECONDS`) rather than fail the try.

        ``answered``: a request that ended in its call. Its answer cannot be read back from the vendor,
        so the record keeps it (up to :data:`MAX_KEPT_ANSWER_BYTES`): a try that fails after the call
        (the API server down while it pushes its XComs) leaves its retry the answer, not a second bill.
        """
        if store is None:
            return
        record: dict[str, Any] = {"fingerprint": fp, "request_id": request_id, "submitted_at": submitted_at}
        if uploaded:
            # The names the submitted input carried: a lost submission is searched for with them.
            record["uploaded"] = uploaded
        if answered is not None and answered.terminal:
            kept = answered.model_dump(mode="json")
            if len(json.dumps(kept, default=str)) <= MAX_KEPT_ANSWER_BYTES:
                record["answered"] = kept
        if not keep:
            store.set(STATE_KEY, record)
            return
        from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

        def waiting(state: Any) -> None:
            self.log.warning(
                "could not record request %s (Airflow's API server is unreachable); trying again for up "
                "to %.0f s",
                request_id,
                RECORD_RETRY_SECONDS,
            )

        for attempt in Retrying(
            stop=stop_after_delay(RECORD_RETRY_SECONDS),
            wait=wait_exponential(multiplier=0.5, max=RECORD_RETRY_MAX_WAIT),
            retry=retry_if_exception(_api_server_unreachable),
            before_sleep=waiting,
            reraise=True,
        ):
            with attempt:
                store.set(STATE_KEY, record)

    def _find_previous_try(
        self, hook: EdgeInferHook, context: Context, input_: dict[str, Any], files: Mapping[str, Any]
    ) -> tuple[Job | None, float]:
        """Airflow before 3.3 has no task state store: a retry looks for its previous try's request.

        It searches the vendor's listing (where the vendor has one) for this input, sent since the
        DAG run started. Without a listing, a vendor that honours the idempotency key dedupes the
        retry's submission; any other is submitted again. Input files are uploaded under new names on
        each try, so a request that carried them cannot be recognised and is submitted again.
        """
        from airflow_provider_edgeinfer.clients.core import JobState

        now = time.time()
        ti = context["ti"]
        if getattr(ti, "try_number", 1) <= 1 or files or not hook.finds_lost_submissions:
            return None, now
        run = context.get("dag_run")
        started = getattr(run, "start_date", None)
        since = started.timestamp() if started is not None else now - self.timeout
        found = hook.find_submission(self.service, self.prediction, input_, since)
        if found is None or found.state not in (JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED):
            return None, now
        self.log.info("found the request %s that a previous try submitted; reattaching", found.request_id)
        # When it was sent is not known here: its deadline counts from this try.
        return found, now

    def _reattach(self, hook: EdgeInferHook, store: Any, fp: str) -> tuple[Job | None, float]:
        from airflow_provider_edgeinfer.clients.core import Job, JobState

        now = time.time()
        record = store.get(STATE_KEY) if store is not None else None
        if not isinstance(record, dict) or record.get("fingerprint") != fp:
            return None, now
        request_id = record.get("request_id")
        submitted_at = float(record.get("submitted_at") or now)
        api = hook.api
        if not request_id:
            sent = {**self._input_dict(hook.vendor), **(record.get("uploaded") or {})}
            found = hook.find_submission(self.service, self.prediction, sent, submitted_at)
            if found is not None:
                if found.state in (JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED):
                    self.log.info(
                        "found the request %s that a previous try submitted; reattaching", found.request_id
                    )
                    return found, submitted_at
                # As for a recorded request: one that ended without a result is paid for again.
                self.log.info(
                    "found the request %s of a previous try, which ended %s; submitting again",
                    found.request_id,
                    found.state.value,
                )
                return None, now
            if api.honours_idempotency:
                self.log.info(
                    "a previous try's submission has an unknown outcome; resubmitting with the same "
                    "idempotency key, which %s deduplicates",
                    hook.vendor,
                )
                return None, now
            if self.resubmit_on_unknown_outcome:
                self.log.warning(
                    "a previous try's submission has an unknown outcome; resubmitting as "
                    "resubmit_on_unknown_outcome=True asks (this may bill twice)"
                )
                return None, now
            raise OutcomeUnknownError(
                "a previous try sent this request but never learned its id, "
                "so it may be running (and billed)",
                vendor=hook.vendor,
                hint="Check the vendor's console; to resubmit anyway set resubmit_on_unknown_outcome=True.",
            )
        kept = record.get("answered")
        if api.answers_in_call(self.service) and isinstance(kept, dict):
            self.log.info("a previous try was answered (request %s); using that answer", request_id)
            return Job.model_validate(kept), submitted_at
        # Otherwise a service that answered in the call has nothing to read back: it is asked anew.
        status = None if api.answers_in_call(self.service) else api.status(request_id)
        if status is None:
            return None, now
        try:
            job = hook.run(status)
        except NotFoundError:
            self.log.info("request %s of a previous try no longer exists; submitting again", request_id)
            return None, now
        if job.state in (JobState.QUEUED, JobState.RUNNING, JobState.SUCCEEDED):
            self.log.info(
                "reattaching to %s request %s (%s) from a previous try",
                hook.vendor,
                request_id,
                job.state.value,
            )
            return job, submitted_at
        self.log.info("request %s of a previous try ended %s; submitting again", request_id, job.state.value)
        return None, now

    def _submit(
        self,
        hook: EdgeInferHook,
        store: Any,
        fp: str,
        key: str,
        input_: dict[str, Any],
        uploaded: dict[str, str] | None = None,
    ) -> tuple[Job, float]:
        submitted_at = time.time()
        # Intent first: if this process dies mid-call, the next try knows a submission may exist.
        self._record(store, fp, None, submitted_at, uploaded)
        call = hook.api.submit(
            self.service, input_, prediction=self.prediction, idempotency_key=key, **self.vendor_options
        )
        job = hook.run(call)
        # Logged before it is recorded: whatever happens next, the id of what was paid for is in the log.
        self.log.info("submitted %s request %s to %s", self.service, job.request_id, hook.vendor)
        self._record(store, fp, job.request_id, submitted_at, uploaded, keep=True, answered=job)
        return job, submitted_at

    def _announce(self, context: Context, hook: EdgeInferHook, job: Job) -> None:
        context["ti"].xcom_push(key="request_id", value=job.request_id)
        push_link(context, VendorRequestLink(), hook.api.console_url(job.request_id))

    # -- completion --------------------------------------------------------------------------

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        from airflow_provider_edgeinfer.hooks.base import hook_for_connection

        hook = hook_for_connection(self.conn_id)
        try:
            return self._execute_complete(context, hook, event)
        finally:
            hook.close()

    def _execute_complete(self, context: Context, hook: EdgeInferHook, event: dict[str, Any] | None) -> Any:
        from airflow_provider_edgeinfer.clients.core import Job
        from airflow_provider_edgeinfer.exceptions import rebuild_error
        from airflow_provider_edgeinfer.triggers.base import open_output, parse_event

        payload = parse_event(event, hook.vendor)
        request_id = payload.request_id
        if payload.status == "error" and payload.error is not None:
            raise rebuild_error(payload.error)
        if payload.status == "timeout":
            self._cancel(hook, request_id, reason="timeout")
            raise JobTimeoutError(
                f"the request did not finish within {self.timeout:.0f} s",
                vendor=hook.vendor,
                request_id=request_id,
            )
        job = Job.model_validate(payload.job) if payload.job else None
        if payload.status == "cancelled":
            raise JobCancelledError(
                "the vendor reports the request cancelled", vendor=hook.vendor, request_id=request_id
            )
        if payload.status == "failed" or job is None:
            message = (job.error if job else None) or "the vendor reports the request failed"
            raise JobFailedError(message, vendor=hook.vendor, request_id=request_id)
        store = context.get("task_state_store")
        record = store.get(STATE_KEY) if store is not None else None
        submitted_at = float(str(record["submitted_at"])) if isinstance(record, dict) else None
        if not hook.api.answers_in_call(self.service):
            # The event never carries the output: it is read once, here, through the client.
            return self._complete(context, hook, job, output_known=False, submitted_at=submitted_at)
        # A synchronous vendor's answer exists only in the event, sealed for this task instance.
        if payload.sealed_output is not None:
            output = open_output(
                payload.sealed_output,
                secrets=hook.credentials(hook.connection).values(),
                identity=_task_identity(context),
                vendor=hook.vendor,
            )
            job = job.model_copy(update={"output": output})
        elif job.output is None:
            size = payload.withheld_output_bytes
            raise ConfigurationError(
                "the output is too large to travel back from the triggerer"
                + (f" ({size:,} bytes)" if size else ""),
                vendor=hook.vendor,
                request_id=request_id,
                hint="Run this task with deferrable=False.",
            )
        # else: an event fired by an earlier version of this provider, which carried the output in clear.
        if request_id:
            self._announce(context, hook, job)
        return self._complete(context, hook, job, output_known=True, submitted_at=submitted_at)

    def _complete(
        self,
        context: Context,
        hook: EdgeInferHook,
        job: Job,
        *,
        output_known: bool,
        submitted_at: float | None,
    ) -> dict[str, Any]:
        """Write the result of an ended request; ``output_known`` says whether ``job.output`` holds it.

        The output is read as ``VendorAPI.output_read`` says: once, if it is not in hand.
        """
        from airflow_provider_edgeinfer.clients.core import JobState
        from airflow_provider_edgeinfer.progress import format_cost
        from airflow_provider_edgeinfer.storage import as_storage_path
        from airflow_provider_edgeinfer.triggers.base import build_result

        self._live_request = None
        if job.state is JobState.FAILED or job.state is JobState.EXPIRED:
            raise JobFailedError(
                job.error or f"the request ended {job.state.value}",
                vendor=hook.vendor,
                request_id=job.request_id,
            )
        if job.state is JobState.CANCELLED:
            raise JobCancelledError(
                "the vendor reports the request cancelled", vendor=hook.vendor, request_id=job.request_id
            )
        # Vendors report their internal service id; the result names what the DAG asked for (and
        # the output read may depend on it: OctoAI's result schema is the asked endpoint's).
        job = job.model_copy(update={"service": self.service})
        read = hook.api.output_read(job, output_known=output_known)
        if read is not None:
            try:
                job = hook.run(read)
            except ResultExpiredError:
                # Nothing left to reattach to: forget the request so that a retry submits afresh.
                store = context.get("task_state_store")
                if store is not None:
                    store.delete(STATE_KEY)
                raise
        job = job.model_copy(update={"service": self.service})
        result = build_result(
            job,
            job.output,
            output_path=None
            if self.output_path is None
            else as_storage_path(self.output_path, conn_id=self.output_conn_id),
            submitted_at=submitted_at,
            xcom_max_bytes=self.xcom_output_max_bytes,
            input_ref=self._input_ref(),
        )
        store = context.get("task_state_store")
        if store is not None:
            # Done and written: a later, deliberate re-run of this task asks for a new inference.
            store.delete(STATE_KEY)
        where = result.get("output_path") or "XCom (no output_path)"
        self.log.info(
            "%s request %s succeeded, %s; result in %s",
            hook.vendor,
            job.request_id,
            format_cost(job.cost_usd),
            where,
        )
        self._lineage = Lineage(
            vendor=hook.vendor,
            service=self.service,
            prediction=self.prediction,
            inputs=list((self.input_files or {}).values()),
            outputs=[self.output_path] if self.output_path is not None else [],
            request_ids=[job.request_id] if job.request_id else [],
            total=1,
            succeeded=1,
            failed=0,
            cost_usd=job.cost_usd,
        )
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the input files read, the output folder written, the vendor, service and cost."""
        from airflow_provider_edgeinfer.lineage import operator_lineage

        return operator_lineage(self._lineage, self)

    # -- cancellation ------------------------------------------------------------------------

    def _cancel(self, hook: EdgeInferHook, request_id: str | None, reason: str) -> None:
        if not self.cancel_on_kill or not request_id:
            return
        call = hook.api.cancel(request_id)
        if call is None:
            self.log.warning("%s cannot cancel requests; %s may keep running", hook.vendor, request_id)
            return
        try:
            hook.run(call)
            self.log.info("cancelled %s request %s (%s)", hook.vendor, request_id, reason)
        except Exception as exc:
            self.log.warning("could not cancel %s request %s: %s", hook.vendor, request_id, exc)

    def on_kill(self) -> None:
        """Worker-side kill (non-deferrable mode): cancel the request this process is watching."""
        if self._live_request is not None:
            hook, request_id = self._live_request
            self._cancel(hook, request_id, reason="task killed")
