"""A retried InferenceOperator never pays twice for one task instance, and pays again when it should.

Each test runs a first try through the real code path (submit, record, defer or fail), changes what
the vendor (the emulator) reports about that request, then runs the retry against the same task
state store and counts what the emulator was asked to create. The idempotency key tests read the
key off the wire, at the emulated infrai, under real Airflow (``dag.test``).
"""

from __future__ import annotations

import importlib.util
import json
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_edgeinfer.emulator.state import Timing
from airflow_provider_edgeinfer.exceptions import EdgeInferError, OutcomeUnknownError
from airflow_provider_edgeinfer.operators.inference import InferenceOperator
from tests.dags.conftest import task_states

AUDIO = {"audio_filename": "https://example.invalid/talk.wav", "language": "en"}
VENDORS: dict[str, dict[str, Any]] = {
    "theta": {"conn_id": "edgeinfer_theta_default", "service": "whisper", "input": AUDIO},
    "octoai": {
        "conn_id": "edgeinfer_octoai_default",
        "service": "generate/sdxl",
        "input": {"prompt": "a lighthouse at dusk", "steps": 10},
    },
}
#: Emulated job timings that put the first try's request in a given state once the clock moved on
#: by ``LATER`` seconds: the retry reads that state, whatever the speed of the machine.
LATER = 30.0
TIMINGS = {
    "queued": Timing(1000.0, 1000.0),
    "running": Timing(10.0, 1000.0),
    "succeeded": Timing(10.0, 10.0),
}


class _Store:
    """Airflow's task state store as the operator uses it: JSON values under a key."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = json.loads(json.dumps(value))

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


class _TI:
    def __init__(self, try_number: int) -> None:
        self.dag_id, self.task_id, self.run_id, self.map_index = "nptw", "infer", "manual__1", -1
        self.try_number = try_number
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def _op(vendor: str = "theta", **kwargs: Any) -> InferenceOperator:
    args: dict[str, Any] = {"task_id": "infer", "deferrable": True, "poll_interval": 0.0, **VENDORS[vendor]}
    return InferenceOperator(**{**args, **kwargs})


def _run_try(op: InferenceOperator, store: _Store, try_number: int) -> str:
    """One try of the task: the id of the request it defers on or finished with."""
    context = {"ti": _TI(try_number), "task_state_store": store}
    try:
        result = op.execute(context)  # type: ignore[arg-type]
    except TaskDeferred as deferred:
        request_id = deferred.trigger.request_id  # type: ignore[attr-defined]
        assert request_id, "a deferral waits on a known request"
        return str(request_id)
    return str(result["request_id"])


def _created(emulator: Any, vendor: str = "theta") -> int:
    return sum(emulator.state.snapshot()["submissions"][vendor].values())


def _state_of(vendor: str, request_id: str) -> str:
    from airflow_provider_edgeinfer.hooks.base import hook_for_connection

    hook = hook_for_connection(VENDORS[vendor]["conn_id"])
    try:
        call = hook.api.status(request_id)
        assert call is not None
        return hook.run(call).state.value
    finally:
        hook.close()


def _lose_the_submission_answer(emulator: Any) -> None:
    """The vendor creates the request, then the connection drops before its answer arrives."""
    emulator.state.scripted["theta"].append(
        {"kind": "drop", "path": "/infer_request/whisper", "method": "POST"}
    )


# -- the previous try's request is still good: the retry waits on it -----------------------------


@pytest.mark.parametrize("state", list(TIMINGS))
@pytest.mark.parametrize("vendor", list(VENDORS))
def test_a_retry_waits_on_the_request_its_previous_try_submitted(
    emulated: Any, vendor: str, state: str
) -> None:
    # OctoAI offers no way to search for a request: only the recorded request id finds it again.
    emulated.state.timing[vendor] = TIMINGS[state]
    store = _Store()
    first = _run_try(_op(vendor), store, 1)  # submits, records, defers; then the try is lost
    emulated.state.clock.advance(LATER)
    assert _state_of(vendor, first) == state

    assert _run_try(_op(vendor), store, 2) == first
    assert _created(emulated, vendor) == 1, "the retry must not pay for a second request"


@pytest.mark.parametrize("state", list(TIMINGS))
def test_a_retry_after_a_lost_submission_answer_finds_the_request(emulated: Any, state: str) -> None:
    emulated.state.timing["theta"] = TIMINGS[state]
    _lose_the_submission_answer(emulated)
    store = _Store()
    with pytest.raises(EdgeInferError):
        _run_try(_op(), store, 1)
    [first] = emulated.state.tables["theta.jobs"]
    emulated.state.clock.advance(LATER)
    assert _state_of("theta", first) == state

    assert _run_try(_op(), store, 2) == first
    assert _created(emulated) == 1, "the lost submission must be found, not repeated"


def test_a_lost_submission_answer_on_a_vendor_that_cannot_find_it_fails_without_paying(
    emulated: Any,
) -> None:
    emulated.state.scripted["octoai"].append({"kind": "drop", "path": "/generate/sdxl", "method": "POST"})
    store = _Store()
    with pytest.raises(EdgeInferError):
        _run_try(_op("octoai"), store, 1)
    with pytest.raises(OutcomeUnknownError, match="never learned its id") as unknown:
        _run_try(_op("octoai"), store, 2)
    assert unknown.value.vendor == "octoai", "the error names the vendor whose console to check"
    assert _created(emulated, "octoai") == 1
    # Asked to, the next try pays again, knowingly.
    _run_try(_op("octoai", resubmit_on_unknown_outcome=True), store, 3)
    assert _created(emulated, "octoai") == 2


# -- the previous try's request is no good: the retry pays again ---------------------------------


def _fail(emulator: Any, request_id: str) -> None:
    emulator.state.faults["theta"].job_failure_rate = 0.0  # only the first request fails


def _cancel(emulator: Any, request_id: str) -> None:
    from airflow_provider_edgeinfer.hooks.theta import ThetaHook

    with ThetaHook() as hook:
        hook.run(hook.api.cancel(request_id))


def _forget(emulator: Any, request_id: str) -> None:
    del emulator.state.tables["theta.jobs"][request_id]


@pytest.mark.parametrize(
    ("ending", "state"),
    [(_fail, "failed"), (_cancel, "cancelled"), (_forget, None)],
    ids=["failed", "cancelled", "vanished"],
)
def test_a_retry_submits_again_when_the_previous_request_ended_without_a_result(
    emulated: Any, ending: Any, state: str | None
) -> None:
    emulated.state.timing["theta"] = Timing(10.0, 20.0)
    if state == "failed":
        emulated.state.faults["theta"].job_failure_rate = 1.0
    store = _Store()
    first = _run_try(_op(), store, 1)
    ending(emulated, first)
    emulated.state.clock.advance(LATER)
    if state is not None:
        assert _state_of("theta", first) == state

    second = _run_try(_op(), store, 2)
    assert second != first
    assert _created(emulated) == 2


@pytest.mark.parametrize(
    ("ending", "state"), [(_fail, "failed"), (_cancel, "cancelled")], ids=["failed", "cancelled"]
)
def test_a_lost_submission_found_ended_without_a_result_is_submitted_again(
    emulated: Any, ending: Any, state: str
) -> None:
    emulated.state.timing["theta"] = Timing(10.0, 20.0)
    emulated.state.faults["theta"].job_failure_rate = 1.0 if state == "failed" else 0.0
    _lose_the_submission_answer(emulated)
    store = _Store()
    with pytest.raises(EdgeInferError):
        _run_try(_op(), store, 1)
    [first] = emulated.state.tables["theta.jobs"]
    ending(emulated, first)
    emulated.state.clock.advance(LATER)
    assert _state_of("theta", first) == state

    second = _run_try(_op(), store, 2)
    assert second != first
    assert _created(emulated) == 2


def test_a_retry_with_a_different_input_submits_anew(emulated: Any) -> None:
    emulated.state.timing["theta"] = TIMINGS["running"]
    store = _Store()
    first = _run_try(_op(), store, 1)
    emulated.state.clock.advance(LATER)
    changed = _run_try(_op(input={**AUDIO, "language": "de"}), store, 2)
    assert changed != first and _created(emulated) == 2
    # The record now names the new request: a further retry with that input waits on it.
    assert _run_try(_op(input={**AUDIO, "language": "de"}), store, 3) == changed
    assert _created(emulated) == 2


def test_a_finished_task_leaves_nothing_to_reattach_to(emulated: Any) -> None:
    """A deliberate re-run (cleared task) asks for a new inference."""
    emulated.state.timing["theta"] = TIMINGS["succeeded"]
    store = _Store()
    first = _run_try(_op(), store, 1)
    emulated.state.clock.advance(LATER)
    assert _run_try(_op(), store, 2) == first
    assert store.data == {}
    assert _run_try(_op(), store, 3) != first
    assert _created(emulated) == 2


def test_a_retry_after_an_expired_result_submits_anew(emulated: Any) -> None:
    """Nothing is left to reattach to: waiting on the old request would fail on every retry."""

    from airflow_provider_edgeinfer.exceptions import ResultExpiredError

    emulated.state.octoai_retention_seconds = 30
    emulated.state.timing["octoai"] = TIMINGS["succeeded"]
    store = _Store()
    op = _op("octoai")
    context = {"ti": _TI(1), "task_state_store": store}
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)  # type: ignore[arg-type]
    first = deferred.value.trigger.request_id  # type: ignore[attr-defined]
    emulated.state.clock.advance(LATER)
    event = deferred.value.trigger.run_on_worker()  # type: ignore[attr-defined]
    emulated.state.clock.advance(LATER)  # the result expires before the task reads it
    with pytest.raises(ResultExpiredError):
        op.execute_complete(context, event)  # type: ignore[arg-type]

    second = _run_try(_op("octoai"), store, 2)
    assert second != first
    assert _created(emulated, "octoai") == 2


def test_a_reattaching_retry_uploads_nothing(emulated: Any, tmp_path: Path) -> None:
    audio = tmp_path / "call.wav"
    audio.write_bytes(b"RIFF" + bytes(4000))
    emulated.state.timing["theta"] = TIMINGS["running"]
    store = _Store()
    op = _op(input={"language": "en"}, input_files={"audio_filename": str(audio)})
    first = _run_try(op, store, 1)
    uploads = emulated.state.snapshot()["requests"]["storage.put"]
    assert uploads == 1
    emulated.state.clock.advance(LATER)
    assert _run_try(op, store, 2) == first
    requests = emulated.state.snapshot()["requests"]
    assert requests["storage.put"] == uploads, "a reattaching retry must not upload again"
    assert _created(emulated) == 1


# -- what a retry keeps from its first try ----------------------------------------------------------


def _deferral(op: InferenceOperator, store: _Store | None, try_number: int) -> TaskDeferred:
    context: dict[str, Any] = {"ti": _TI(try_number)}
    if store is not None:
        context["task_state_store"] = store
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)  # type: ignore[arg-type]
    return deferred.value


def test_a_retry_does_not_extend_the_deadline_of_the_first_submission(emulated: Any) -> None:
    """``timeout`` counts from the first try's submission: a reattaching retry keeps its deadline."""
    emulated.state.timing["theta"] = TIMINGS["running"]
    store = _Store()
    first = _deferral(_op(timeout=600), store, 1).trigger
    submitted_at = store.data["edgeinfer_inference_request"]["submitted_at"]
    assert first.deadline == submitted_at + 600  # type: ignore[attr-defined]
    emulated.state.clock.advance(LATER)
    retry = _deferral(_op(timeout=600), store, 2).trigger
    assert retry.request_id == first.request_id  # type: ignore[attr-defined]
    assert retry.deadline == first.deadline  # type: ignore[attr-defined]


def test_without_a_task_state_store_a_task_still_submits_and_defers(emulated: Any) -> None:
    """Reattaching needs the store; running does not (a context without one records nothing)."""
    emulated.state.timing["theta"] = TIMINGS["running"]
    trigger = _deferral(_op(), None, 1).trigger
    assert trigger.request_id  # type: ignore[attr-defined]
    assert _created(emulated) == 1


@pytest.mark.parametrize("state", ["queued", "running", "succeeded"])
def test_without_a_task_state_store_a_retry_finds_its_previous_request_in_the_listing(
    emulated: Any, state: str
) -> None:
    """Airflow before 3.3 has no task state store: the vendor's listing stands in for it."""
    emulated.state.timing["theta"] = TIMINGS[state]
    first = _run_try(_op(), None, 1)  # type: ignore[arg-type]
    emulated.state.clock.advance(LATER)
    assert _run_try(_op(), None, 2) == first  # type: ignore[arg-type]
    assert _created(emulated) == 1, "the retry must not pay for a second request"


def test_without_a_task_state_store_a_vendor_without_a_listing_is_submitted_again(emulated: Any) -> None:
    """OctoAI cannot be searched: with no store, the retry's request is a new one (documented)."""
    emulated.state.timing["octoai"] = TIMINGS["running"]
    first = _run_try(_op("octoai"), None, 1)  # type: ignore[arg-type]
    assert _run_try(_op("octoai"), None, 2) != first  # type: ignore[arg-type]
    assert _created(emulated, "octoai") == 2


def test_vendor_options_reach_the_vendors_submit(emulated: Any) -> None:
    """Theta's ``wait`` holds the submitting call until the request ends: the task then finishes
    on the worker instead of deferring."""
    emulated.state.timing["theta"] = Timing(0.05, 0.05)
    context: Any = {"ti": _TI(1)}
    with pytest.raises(TaskDeferred):
        _op().execute(context)
    result = _op(vendor_options={"wait": 30}).execute(context)
    assert result["request_id"] and _created(emulated) == 2


def test_a_retry_of_a_service_that_answers_in_the_call_asks_again(emulated: Any) -> None:
    """A text API has no status endpoint: a recorded completion id cannot be read back, so a retry
    (of a task that failed after the answer, e.g. on its output) asks for the answer anew."""
    from airflow_provider_edgeinfer.emulator.octoai import TEXT_MODELS
    from airflow_provider_edgeinfer.operators.inference import fingerprint

    chat = {"model": TEXT_MODELS[0], "messages": [{"role": "user", "content": "Name a colour."}]}
    store = _Store()
    store.set(
        "edgeinfer_inference_request",
        {
            "fingerprint": fingerprint("octoai", "chat/completions", None, chat),
            "request_id": "chatcmpl-of-the-first-try",
            "submitted_at": time.time(),
        },
    )
    op = _op("octoai", service="chat/completions", input=chat, deferrable=False)
    context: Any = {"ti": _TI(2), "task_state_store": store}
    result = op.execute(context)
    assert result["request_id"].startswith("chatcmpl-")
    assert result["request_id"] != "chatcmpl-of-the-first-try"
    assert emulated.state.snapshot()["requests"]["octoai.chat_completions"] == 1


def test_an_input_that_json_cannot_encode_still_has_a_fingerprint() -> None:
    """A rendered template may hold a datetime: it is fingerprinted by its text, not refused."""
    from airflow_provider_edgeinfer.operators.inference import fingerprint

    day = {"prompt": "x", "when": datetime(2026, 1, 1, tzinfo=UTC)}
    other = {"prompt": "x", "when": datetime(2026, 1, 2, tzinfo=UTC)}
    assert fingerprint("theta", "whisper", None, day) == fingerprint("theta", "whisper", None, dict(day))
    assert fingerprint("theta", "whisper", None, day) != fingerprint("theta", "whisper", None, other)


# -- records and keys stay readable across releases ----------------------------------------------


def test_a_record_written_by_an_earlier_release_is_still_recognised(emulated: Any) -> None:
    """A retry may run a newer release than the try that submitted: the record's format is frozen.

    The literal values are what releases so far write for this input and task instance; if they
    change, a retry across the upgrade no longer recognises its own request (and infrai no longer
    deduplicates its key) and pays twice.
    """
    from airflow_provider_edgeinfer.clients.core import idempotency_key
    from airflow_provider_edgeinfer.hooks.theta import ThetaHook
    from airflow_provider_edgeinfer.operators.inference import fingerprint

    emulated.state.timing["theta"] = TIMINGS["running"]
    with ThetaHook() as hook:
        request_id = hook.run(hook.api.create_request("whisper", AUDIO)).request.id
    store = _Store()
    store.set(
        "edgeinfer_inference_request",
        {
            "fingerprint": "821780f257b8988abae1e3baceda66d1",
            "request_id": request_id,
            "submitted_at": time.time(),
        },
    )
    assert _run_try(_op(), store, 2) == request_id
    assert _created(emulated) == 1
    assert fingerprint("theta", "whisper", None, AUDIO) == "821780f257b8988abae1e3baceda66d1"
    key = idempotency_key({"ti": _TI(1)}, "content")  # type: ignore[typeddict-item]
    assert key == "edgeinfer-a9023977d839f1214d8e48f8db3888277edbf063"


# -- the idempotency key on the wire ---------------------------------------------------------------

FIXTURES = Path(__file__).resolve().parents[1] / "dags" / "fixtures" / "edgeinfer_never_pay_twice_dags.py"


def _dag(dag_id: str) -> Any:
    spec = importlib.util.spec_from_file_location("edgeinfer_never_pay_twice_dags", FIXTURES)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return next(d for d in vars(module).values() if getattr(d, "dag_id", None) == dag_id)


def _sent_keys(emulator: Any) -> dict[str, str]:
    """Request id -> the idempotency key infrai received with the chat request that created it."""
    from airflow_provider_edgeinfer.emulator.infrai import REPLAYS_TABLE

    keys = {}
    for name, replay in emulator.state.tables[REPLAYS_TABLE].items():
        op, key = name.split(":", 1)
        if op == "chat.completions":
            keys[json.loads(replay["body"])["id"]] = key
    return keys


def _results(dag_run: Any) -> dict[str, dict[str, Any]]:
    """The XCom result of every task instance, by ``task`` or ``task[map_index]``."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    out = {}
    with create_session() as session:
        rows: Sequence[Any] = session.scalars(
            XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, key="return_value")
        ).all()
        for row in rows:
            name = row.task_id if row.map_index < 0 else f"{row.task_id}[{row.map_index}]"
            out[name] = XComModel.deserialize_value(row)
    return out


def _try_numbers(dag_run: Any) -> dict[str, int]:
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: ti.try_number for ti in dag_run.get_task_instances(session=session)}


def _keys_of(dag_run: Any, emulator: Any) -> dict[str, str]:
    sent = _sent_keys(emulator)
    results = _results(dag_run)
    missing = [name for name, result in results.items() if result["request_id"] not in sent]
    assert not missing, f"{missing} sent no idempotency key"
    return {name: sent[result["request_id"]] for name, result in results.items()}


def test_the_key_sent_differs_for_every_task_instance(airflow_db: None, emulated: Any) -> None:
    # The twin DAG runs under the same run id as the first run, so only the DAG id tells them apart.
    when = datetime(2026, 1, 2, tzinfo=UTC)
    first = _dag("edgeinfer_test_keys").test(logical_date=when, run_after=when)
    again = _dag("edgeinfer_test_keys").test()
    twin = _dag("edgeinfer_test_keys_twin").test(logical_date=when, run_after=when)
    for run in (first, again, twin):
        assert set(task_states(run).values()) == {"success"}
    a, b, t = (_keys_of(run, emulated) for run in (first, again, twin))
    assert first.run_id != again.run_id and first.run_id == twin.run_id
    assert a["one"] != a["two"], "task ids must tell keys apart"
    assert a["mapped[0]"] != a["mapped[1]"], "map indexes must tell keys apart"
    assert a["one"] != b["one"], "runs must tell keys apart"
    assert a["one"] != t["one"], "DAG ids must tell keys apart"
    every = [k for run_keys in (a, b, t) for k in run_keys.values()]
    assert len(set(every)) == len(every) == 9
    # Every task instance was billed once, under its own key.
    assert emulated.state.snapshot()["submissions"]["infrai"] == dict.fromkeys(every, 1)


def test_the_key_sent_is_the_same_on_every_try(
    airflow_db: None, emulated: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "AIRFLOW_CONN_EDGEINFER_INFRAI_DEFAULT"
    conn = json.loads(emulated.connections()[name])
    conn["extra"]["max_retries"] = 0  # the dropped answer fails try 1 instead of a client retry
    monkeypatch.setenv(name, json.dumps(conn))
    emulated.state.scripted["infrai"].append(
        {"kind": "drop", "path": "/v1/chat/completions", "method": "POST"}
    )
    run = _dag("edgeinfer_test_key_retry").test()
    assert task_states(run) == {"one": "success"}
    assert _try_numbers(run) == {"one": 2}
    snapshot = emulated.state.snapshot()
    assert snapshot["faults_injected"] == {"infrai.drop": 1}
    assert snapshot["requests"]["infrai.chat.completions"] == 2, "both tries sent the request"
    [key] = _keys_of(run, emulated).values()
    # infrai saw one key and created one completion: try 2 got try 1's answer replayed.
    assert snapshot["submissions"]["infrai"] == {key: 1}


# -- Airflow's API server unreachable right after a submission ------------------------------------


def _api_server_down() -> Exception:
    from airflow.sdk.exceptions import AirflowRuntimeError, ErrorType
    from airflow.sdk.execution_time.comms import ErrorResponse

    return AirflowRuntimeError(ErrorResponse(error=ErrorType.API_SERVER_ERROR, detail={"message": "refused"}))


class _FlakyStore(_Store):
    """Fails the first ``failures`` writes of a record that names a request with ``error``."""

    def __init__(self, failures: int, error: Exception) -> None:
        super().__init__()
        self.failures, self.error, self.refused = failures, error, 0

    def set(self, key: str, value: Any) -> None:
        if value.get("request_id") and self.refused < self.failures:
            self.refused += 1
            raise self.error
        super().set(key, value)


@pytest.mark.parametrize("vendor", ["theta", "octoai"])
def test_the_record_of_a_paid_request_waits_out_an_api_server_restart(emulated: Any, vendor: str) -> None:
    """A vendor that can neither be searched nor deduplicate (OctoAI) would fail every retry with an
    unknown outcome if the request id were lost: the record is written once the API server is back."""
    emulated.state.timing[vendor] = TIMINGS["queued"]
    store = _FlakyStore(2, _api_server_down())
    request_id = _run_try(_op(vendor), store, 1)
    assert store.refused == 2
    assert store.data["edgeinfer_inference_request"]["request_id"] == request_id
    assert _run_try(_op(vendor), store, 2) == request_id, "the retry reattaches"
    assert _created(emulated, vendor) == 1


def test_an_api_server_down_for_good_fails_the_try_with_the_request_in_the_log(
    emulated: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from structlog.testing import capture_logs

    from airflow_provider_edgeinfer.operators import inference

    emulated.state.timing["theta"] = TIMINGS["queued"]
    monkeypatch.setattr(inference, "RECORD_RETRY_SECONDS", 1.0)
    store = _FlakyStore(10**6, _api_server_down())
    with capture_logs() as logs, pytest.raises(Exception, match="API_SERVER_ERROR"):
        _run_try(_op(), store, 1)
    assert store.refused >= 2, "retried before giving up"
    said = " ".join(str(entry["event"]) % tuple(entry.get("positional_args", ())) for entry in logs)
    assert re.search(r"submitted whisper request infr_rqst_\w+ to theta", said), said
    assert _created(emulated) == 1


def test_other_record_failures_are_not_retried(emulated: Any) -> None:
    store = _FlakyStore(1, RuntimeError("store refused the value"))
    with pytest.raises(RuntimeError, match="store refused"):
        _run_try(_op(), store, 1)
    assert store.refused == 1


def test_a_retry_after_an_answer_in_the_call_uses_the_kept_answer(emulated: Any) -> None:
    """OmniTensor answers in the call and cannot recognise a repeat: a try that paid and then failed
    (the API server down while it pushed its XComs) leaves its retry the answer, not a second bill."""

    class _DownTI(_TI):
        def xcom_push(self, key: str, value: Any) -> None:
            raise _api_server_down()

    args: dict[str, Any] = {
        "conn_id": "edgeinfer_omnitensor_default",
        "service": "sentiment-v1",
        "input": {"text": "works well"},
    }
    store = _Store()
    first: Any = {"ti": _DownTI(1), "task_state_store": store}
    with pytest.raises(Exception, match="API_SERVER_ERROR"):
        _op(**args).execute(first)
    kept = store.data["edgeinfer_inference_request"]["answered"]
    second: Any = {"ti": _TI(2), "task_state_store": store}
    result = _op(**args).execute(second)
    assert result["request_id"] == kept["request_id"] and result["output"] == kept["output"]
    assert _created(emulated, "omnitensor") == 1
    assert "edgeinfer_inference_request" not in store.data, "done: a deliberate re-run asks anew"
