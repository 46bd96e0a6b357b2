"""The batch's sends and reads on the connection's one rate limiter.

A 429 is never an item's failure nor a failed poll, and its Retry-After holds back every sender:
the fan-out's other senders, the batch watch's reads and the poller of the same client. The
limiter runs on a fake clock: no test waits for a real pause.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from airflow_provider_edgeinfer.batch.fanout import FanOut
from airflow_provider_edgeinfer.batch.inputs import BatchItem
from airflow_provider_edgeinfer.batch.manifest import JournalWriter, Manifest
from airflow_provider_edgeinfer.batch.watch import Progress, Watch, follow
from airflow_provider_edgeinfer.clients.core import Job, JobState
from airflow_provider_edgeinfer.clients.retry import PacedSender, RetrySettings, Safety
from airflow_provider_edgeinfer.clients.transport import RateLimiter, limiter_for
from airflow_provider_edgeinfer.exceptions import RateLimitError
from airflow_provider_edgeinfer.storage import as_storage_path
from airflow_provider_edgeinfer.triggers.inference import Poller


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


def _429(retry_after: float | None) -> RateLimitError:
    return RateLimitError("slow down", http_status=429, retry_after=retry_after)


class FakeAPI:
    vendor = "fake"
    lists_request_states = False

    def submit(self, service: str, value: dict[str, Any], *, prediction: str | None = None) -> Any:
        return SimpleNamespace(safety=Safety.CREATES_WORK, operation="submit", item=value["n"])


class Vendor:
    """Accepts every submission, except that the ones in ``refuse`` get 429s first (one per entry)."""

    def __init__(self, clock: FakeTime, refuse: dict[int, list[float | None]]) -> None:
        self.clock = clock
        self.refuse = refuse
        #: ("send", item, fake time) and ("429", item, fake time), in the order they happened.
        self.log: list[tuple[str, int, float]] = []

    async def send(self, call: Any) -> Job:
        self.log.append(("send", call.item, self.clock.now))
        pending = self.refuse.get(call.item)
        if pending:
            self.log.append(("429", call.item, self.clock.now))
            raise _429(pending.pop(0))
        return Job(vendor="fake", request_id=f"r{call.item}", state=JobState.QUEUED, vendor_state="queued")


async def _fan_out(tmp_path: Path, vendor: Vendor, clock: FakeTime, *, items: int, attempts: int) -> Any:
    manifest = Manifest(as_storage_path(str(tmp_path)))
    batch = [BatchItem(i, str(i), {"n": i}, f"inputs[{i}]") for i in range(items)]
    async with JournalWriter(manifest) as writer:
        fan_out = FanOut(
            api=FakeAPI(),  # type: ignore[arg-type]
            client=vendor,
            writer=writer,
            service="svc",
            prediction=None,
            round=0,
            concurrency=4,
            deadline=time.time() + 600,
            settings=SimpleNamespace(retry=RetrySettings(max_attempts=attempts)),  # type: ignore[arg-type]
            limiter=RateLimiter(clock=clock.clock, sleep=clock.sleep),
        )
        stats = await fan_out.run(iter(batch), len(batch))
    return stats, manifest.items(), fan_out.limiter


async def test_a_fanout_item_refused_with_429s_is_sent_not_failed(tmp_path: Path) -> None:
    clock = FakeTime()
    # One attempt allowed per item, and item 2 is refused three times: a 429 is no attempt.
    vendor = Vendor(clock, {2: [1.0, None, 3.0]})
    stats, records, limiter = await _fan_out(tmp_path, vendor, clock, items=6, attempts=1)
    assert (stats.sent, stats.failed) == (6, 0)
    assert {i: r.kind for i, r in records.items()} == dict.fromkeys(range(6), "sub")
    assert limiter.throttled_count == 3


async def test_a_retry_after_holds_back_every_fanout_sender(tmp_path: Path) -> None:
    clock = FakeTime()
    vendor = Vendor(clock, {0: [30.0]})
    stats, _, _ = await _fan_out(tmp_path, vendor, clock, items=12, attempts=1)
    assert stats.sent == 12 and not stats.failed
    refused_at = next(n for n, entry in enumerate(vendor.log) if entry[0] == "429")
    after = [entry for entry in vendor.log[refused_at + 1 :] if entry[0] == "send"]
    assert after, "items remained to send after the refusal"
    # Whatever was sent after the 429 (by any sender, not only the refused one) waited its pause.
    assert all(at >= 130.0 for _, _, at in after), after


class OneRead(Watch):
    """A watch whose poll is one read; the batch is over once a read gets through."""

    total = 1

    async def poll(self, client: Any) -> Progress:
        await client.send(SimpleNamespace(safety=Safety.IDEMPOTENT, operation="batch.status"))
        return Progress(1, succeeded=1, finished=True)


class ReadClient:
    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.api = FakeAPI()
        self.settings = SimpleNamespace(retry=RetrySettings(max_attempts=1), max_connections=4)

    async def send_once(self, call: Any) -> Any:
        answer = self.script.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


async def test_429s_are_not_failed_polls_of_a_batch() -> None:
    client = ReadClient(_429(0.0), _429(0.0), _429(0.0), "status")
    ended = await follow(
        client, OneRead(), deadline=time.time() + 600, poll_interval=1.0, max_transient_failures=0, log=_Log()
    )
    assert (ended.status, ended.error) == ("success", None)
    assert limiter_for(client).throttled_count == 3


async def test_a_batch_paused_past_its_deadline_times_out_instead_of_failing() -> None:
    client = ReadClient(_429(999_999_999.0), "never read")
    ended = await follow(
        client,
        OneRead(),
        deadline=time.time() + 0.05,
        poll_interval=1.0,
        max_transient_failures=0,
        log=_Log(),
    )
    assert (ended.status, ended.error) == ("timeout", None)


async def test_the_batch_watch_and_the_poller_of_one_client_share_one_pause() -> None:
    client = ReadClient()
    lease = SimpleNamespace(client=client, release_nowait=lambda: None)
    poller = Poller("conn", lease)  # type: ignore[arg-type]
    try:
        assert poller.limiter is PacedSender.of(client).limiter
        PacedSender.of(client).limiter.throttled(30.0)  # a 429 seen by the batch watch
        assert poller.limiter.paused_for > 29, "the poller's triggers wait it out too"
    finally:
        await poller.stop()


class _Log:
    def info(self, *args: Any) -> None:
        pass

    def warning(self, *args: Any) -> None:
        pass
