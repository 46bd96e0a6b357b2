"""Progress lines: one cadence rule, recent throughput, honest "not known yet" (a fake clock, no waits)."""

from __future__ import annotations

import pytest

from airflow_provider_edgeinfer.progress import (
    HEARTBEAT_SECONDS,
    BatchProgress,
    Cadence,
    StateProgress,
    Throughput,
    elapsed,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += seconds


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)


def test_a_line_is_due_on_each_change_and_otherwise_once_a_minute() -> None:
    clock = Clock()
    cadence = Cadence(clock=clock)
    assert cadence.due("queued")
    clock.tick(2)
    assert not cadence.due("queued")
    assert cadence.due("running")
    said = []
    for _ in range(59):
        clock.tick(2)
        said.append(cadence.due("running"))
    # 118 s of polls every 2 s that say nothing new: one heartbeat a minute, not 59 lines.
    assert said.count(True) == 1 and said.index(True) == 29


def test_changes_closer_than_the_minimum_gap_wait_for_it() -> None:
    clock = Clock()
    cadence = Cadence(min_gap=10, clock=clock)
    assert cadence.due(1)
    clock.tick(3)
    assert not cadence.due(2)
    clock.tick(7)
    assert cadence.due(3)


def test_a_state_line_carries_the_elapsed_time() -> None:
    clock, log = Clock(), Log()
    progress = StateProgress(log, "theta request r1", clock=clock, since=clock.now - 5)
    progress.report("queued (pending)")
    clock.tick(40)
    progress.report("queued (pending)")
    clock.tick(30)
    progress.report("queued (pending)")
    progress.report("running (processing)")
    assert log.lines == [
        "theta request r1: queued (pending) after 5s",
        "theta request r1: queued (pending) after 1m15s",
        "theta request r1: running (processing) after 1m15s",
    ]


def test_throughput_is_not_known_until_items_finish_and_then_is_recent() -> None:
    clock = Clock()
    throughput = Throughput(clock=clock)
    throughput.add(0)
    assert throughput.describe(0, 24) == "rate not known yet (too few items finished recently)"
    # Queued for five minutes: nothing finishes, and no rate is made up.
    for _ in range(30):
        clock.tick(10)
        throughput.add(0)
        assert throughput.rate() is None
    # Then it runs at 1 item every 2 s: the estimate follows the recent rate, not the 5-minute average.
    for done in range(1, 11):
        clock.tick(2)
        throughput.add(done)
    assert throughput.rate() == pytest.approx(10 / 20)
    assert throughput.describe(10, 24) == "0.5 items/s, about 28s left"
    assert throughput.describe(24, 24) == "all done"


def test_old_samples_leave_the_window() -> None:
    clock = Clock()
    throughput = Throughput(window=60, clock=clock)
    for done in range(0, 100, 10):  # fast at first: 10 items every 5 s
        throughput.add(done)
        clock.tick(5)
    for _ in range(24):  # then 2 minutes with nothing finished
        throughput.add(90)
        clock.tick(5)
    throughput.add(90)
    assert throughput.rate() is None


def test_a_batch_logs_on_change_not_on_every_poll() -> None:
    clock, log = Clock(), Log()
    progress = BatchProgress(log, clock=clock)
    for _ in range(20):  # 40 s of polls every 2 s while nothing finished
        progress.report(0, 0, 24)
        clock.tick(2)
    assert log.lines == ["batch progress after 0s: 0 of 24 done (0 failed), rate not known yet "
                         "(too few items finished recently)"]  # fmt: skip
    for done in range(1, 25):
        progress.report(done, 0, 24, cost_usd=0.000038 * done)
        clock.tick(2)
    assert len(log.lines) <= 1 + 48 // BatchProgress.MIN_GAP_SECONDS + 1
    assert all("0.0 items/s" not in line for line in log.lines)
    assert log.lines[-1].startswith("batch progress after") and "cost $0.000" in log.lines[-1]
    progress.report(24, 0, 24)
    clock.tick(HEARTBEAT_SECONDS)
    assert progress.report(24, 0, 24) is not None


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (59.9, "59s"), (61, "1m01s"), (7260, "2h01m")])
def test_elapsed(seconds: float, text: str) -> None:
    assert elapsed(seconds) == text
