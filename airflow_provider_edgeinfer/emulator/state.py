"""What the emulator remembers: a movable clock, job timing, faults, counters, uploads and keys.

Every vendor module receives one :class:`EmulatorState`; the control endpoints (``/_emulator/...``)
read and change it, so a test can inject faults, move time and assert "submitted exactly once".
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import random
import secrets
import string
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

VENDORS = ("theta", "octoai", "infrai", "omnitensor")
#: Key of the scripted faults that hit presigned uploads (``/_uploads/{id}``), served by no vendor.
UPLOADS = "uploads"
#: Kinds of upload fault: cut the connection after some bytes, refuse with a 5xx, or act expired.
UPLOAD_FAULTS = ("drop", "5xx", "expire")

#: Keys the emulator accepts unless told otherwise; printed by ``--print-connections``.
DEFAULT_KEYS: dict[str, str] = {
    "theta": "emulator-theta-key",
    "octoai": "emulator-octoai-token",
    "infrai": "ifr_pk_proj_emulator",
    "omnitensor": "emulator-omnitensor-key",
}
DEFAULT_OMNITENSOR_SECRET = "emulator-omnitensor-secret"  # noqa: S105 - the emulator's public fake


class Clock:
    """Monotonic time that tests can move forward instead of sleeping."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._epoch_at_zero = time.time() - time.monotonic()

    def now(self) -> float:
        return time.monotonic() + self._offset

    def epoch(self, at: float) -> float:
        """Wall-clock time of ``at`` (a :meth:`now` value): fixed, so a timestamp reads the same each time.

        Moving the clock forward moves the emulated world's wall clock with it.
        """
        return at + self._epoch_at_zero

    def advance(self, seconds: float) -> None:
        self._offset += max(0.0, seconds)


@dataclass
class Timing:
    """How long a job waits in the queue and then runs; ``*_max`` > base draws uniformly."""

    queued: float = 0.2
    running: float = 1.0
    running_max: float | None = None

    def draw(self, rng: random.Random) -> tuple[float, float]:
        run = self.running
        if self.running_max is not None and self.running_max > self.running:
            run = rng.uniform(self.running, self.running_max)
        return self.queued, run


@dataclass
class Faults:
    """Rates (0..1) of each injected fault, for one vendor."""

    rate_429: float = 0.0
    retry_after: float = 1.0
    rate_5xx: float = 0.0
    rate_drop: float = 0.0
    rate_slow: float = 0.0
    slow_seconds: float = 2.0
    rate_malformed: float = 0.0
    job_failure_rate: float = 0.0
    #: Methods exposed to the faults that let the handler run ("drop", "malformed"): "*" or e.g.
    #: "GET". A mangled answer to a submission is an unknown outcome by nature; limiting it to
    #: reads models a vendor whose writes are reliable while its reads are not.
    mangle_methods: str = "*"

    def update(self, values: dict[str, Any]) -> None:
        names = {f.name for f in fields(self)}
        for key, value in values.items():
            if key not in names:
                raise ValueError(f"unknown fault setting {key!r} (known: {', '.join(sorted(names))})")
            setattr(self, key, str(value).upper() if key == "mangle_methods" else float(value))

    def mangles(self, method: str) -> bool:
        return self.mangle_methods == "*" or method.upper() in self.mangle_methods.split(",")


@dataclass
class Blob:
    path: Path
    size: int
    sha256: str


def new_id(prefix: str, length: int = 26) -> str:
    alphabet = string.ascii_lowercase + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


@dataclass
class EmulatorState:
    keys: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_KEYS))
    omnitensor_secret: str = DEFAULT_OMNITENSOR_SECRET
    timing: dict[str, Timing] = field(default_factory=lambda: {v: Timing() for v in VENDORS})
    faults: dict[str, Faults] = field(default_factory=lambda: {v: Faults() for v in VENDORS})
    #: Scripted faults consumed in order before random ones: ``{"kind": "429", "path": "/infer"}``.
    scripted: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    #: OctoAI keeps asynchronous results this long (the real API: 24 h).
    octoai_retention_seconds: float = 24 * 3600.0
    #: OmniTensor tokens expire after this long (the real API: 3600 s).
    omnitensor_token_ttl: float = 3600.0
    #: Presigned upload URLs expire after this long.
    presign_ttl: float = 900.0
    #: Largest page of a Theta listing served, whatever ``number`` asks (the real cap is unknown).
    theta_page_cap: int = 1000
    #: Refuse what the vendor contracts do not allow (see :mod:`.strict`).
    strict: bool = False
    seed: int | None = None

    def __post_init__(self) -> None:
        self.clock = Clock()
        self.rng = random.Random(self.seed)
        self.lock = threading.Lock()
        #: Vendor requests being handled now (a slowed one counts itself only once its delay is over).
        self.in_flight = 0
        self.requests: Counter[str] = Counter()
        self.submissions: dict[str, Counter[str]] = {v: Counter() for v in VENDORS}
        self.faults_injected: Counter[str] = Counter()
        self.cancellations: Counter[str] = Counter()
        #: Wall-clock time (``time.time()``, not the movable clock) of each vendor's latest cancellation:
        #: a harness measures cancel latency from it instead of from how often it can poll.
        self.last_cancelled_at: dict[str, float] = {}
        #: Submissions of an identity already seen, per vendor (the duplicates, counted as they happen).
        self.resent: Counter[str] = Counter()
        #: The same for submissions that name uploaded files, by the files' bytes instead of their
        #: names: a file uploaded again under a new name and submitted again is the same work paid
        #: twice, which ``resent`` cannot see (each upload has a fresh name). Harnesses whose files
        #: are all different read it; two different files with the same bytes count here too.
        self.content_seen: dict[str, Counter[str]] = {v: Counter() for v in VENDORS}
        self.resent_content: Counter[str] = Counter()
        self.blobs: dict[str, Blob] = {}
        self._blob_dir = Path(tempfile.mkdtemp(prefix="edgeinfer-emulator-"))
        self._signing_key = secrets.token_bytes(32)
        #: Vendor modules keep their own tables here (jobs, batches, models ...).
        self.tables: dict[str, dict[str, Any]] = defaultdict(dict)

    # -- counting --------------------------------------------------------------------------

    def count(self, vendor: str, operation: str) -> None:
        with self.lock:
            self.requests[f"{vendor}.{operation}"] += 1

    def record_cancellation(self, vendor: str) -> None:
        """Count one remote request or batch cancelled while it was still running."""
        with self.lock:
            self.cancellations[vendor] += 1
            self.last_cancelled_at[vendor] = time.time()

    def record_submission(self, vendor: str, identity: str, content: str | None = None) -> int:
        """Count one submission of ``identity``; returns how many times it has now been seen.

        ``content``: its identity by the bytes of the uploaded files it names (:meth:`by_content`).
        """
        with self.lock:
            self.submissions[vendor][identity] += 1
            seen = self.submissions[vendor][identity]
            if seen > 1:
                self.resent[vendor] += 1
            if content is not None:
                self.content_seen[vendor][content] += 1
                if self.content_seen[vendor][content] > 1:
                    self.resent_content[vendor] += 1
            return seen

    def by_content(self, *parts: Any, input_: dict[str, Any]) -> str | None:
        """:meth:`identity` of a submission with each uploaded file it names replaced by its bytes'
        digest; None if it names none."""
        named = {k: self.blobs[v].sha256 for k, v in input_.items() if isinstance(v, str) and v in self.blobs}
        return self.identity(*parts, {**input_, **named}) if named else None

    @staticmethod
    def identity(*parts: Any) -> str:
        """A content identity for submissions that carry no idempotency key."""
        raw = json.dumps(parts, sort_keys=True, default=str).encode()
        return hashlib.sha256(raw).hexdigest()[:24]

    def snapshot(self, *, brief: bool = False) -> dict[str, Any]:
        """Counters. ``brief``: per vendor, the number of distinct identities submitted and of
        submissions beyond an identity's first (``resent``), instead of one entry per identity, which
        would make every read of the counters of a million-item batch tens of MB."""
        with self.lock:
            if brief:
                return {
                    "requests": dict(self.requests),
                    "identities": {v: len(c) for v, c in self.submissions.items()},
                    "resent": dict(self.resent),
                    "resent_content": dict(self.resent_content),
                    "cancellations": dict(self.cancellations),
                    "last_cancelled_at": dict(self.last_cancelled_at),
                    "clock": self.clock.now(),
                }
            return {
                "requests": dict(self.requests),
                "submissions": {v: dict(c) for v, c in self.submissions.items()},
                "duplicates": {v: {k: n for k, n in c.items() if n > 1} for v, c in self.submissions.items()},
                "resent_content": dict(self.resent_content),
                "faults_injected": dict(self.faults_injected),
                "cancellations": dict(self.cancellations),
                "last_cancelled_at": dict(self.last_cancelled_at),
                "clock": self.clock.now(),
            }

    def wait_idle(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for every vendor request in flight to be handled; whether it was.

        A request a client gave up on (a slowed answer, a timeout) is still handled, and counted, after
        its delay: a reset that comes first would count it in the next test.
        """
        ends = time.monotonic() + seconds
        while self.in_flight and time.monotonic() < ends:
            time.sleep(0.01)
        return not self.in_flight

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            for c in self.submissions.values():
                c.clear()
            self.resent.clear()
            self.resent_content.clear()
            for c in self.content_seen.values():
                c.clear()
            self.faults_injected.clear()
            self.cancellations.clear()
            self.last_cancelled_at.clear()
            self.scripted.clear()
            self.tables.clear()
            self.faults = {v: Faults() for v in VENDORS}

    def settings(self) -> dict[str, Any]:
        return {
            "timing": {v: asdict(t) for v, t in self.timing.items()},
            "faults": {v: asdict(f) for v, f in self.faults.items()},
            "octoai_retention_seconds": self.octoai_retention_seconds,
            "omnitensor_token_ttl": self.omnitensor_token_ttl,
            "presign_ttl": self.presign_ttl,
        }

    # -- jobs -------------------------------------------------------------------------------

    def schedule(self, vendor: str) -> tuple[float, float, float, bool]:
        """(created, starts, ends, will_fail) for a new job of ``vendor``."""
        now = self.clock.now()
        queued, running = self.timing[vendor].draw(self.rng)
        fails = self.rng.random() < self.faults[vendor].job_failure_rate
        return now, now + queued, now + queued + running, fails

    def phase(self, starts: float, ends: float) -> str:
        """ "queued", "running" or "done" at the current clock."""
        now = self.clock.now()
        if now < starts:
            return "queued"
        if now < ends:
            return "running"
        return "done"

    def job_status(self, job: Mapping[str, Any], words: tuple[str, str, str, str]) -> str:
        """A job's status in a vendor's ``words`` for (queued, running, succeeded, failed): its phase
        at the current clock, and whether it was drawn to fail (``job["fails"]``)."""
        queued, running, succeeded, failed = words
        phase = self.phase(job["starts"], job["ends"])
        if phase == "done":
            return failed if job["fails"] else succeeded
        return queued if phase == "queued" else running

    # -- presigned uploads ------------------------------------------------------------------

    def sign(self, upload_id: str, expires: int) -> str:
        msg = f"{upload_id}:{expires}".encode()
        return hmac.new(self._signing_key, msg, hashlib.sha256).hexdigest()

    def presign_query(self, upload_id: str) -> str:
        expires = int(time.time() + self.presign_ttl)
        return f"expires={expires}&signature={self.sign(upload_id, expires)}"

    def next_upload_fault(self) -> dict[str, Any] | None:
        """The next scripted upload fault, consumed (``{"kind": "drop", "after_bytes": 65536}``)."""
        with self.lock:
            queue = self.scripted.get(UPLOADS) or []
            fault = queue.pop(0) if queue else None
            if fault is not None:
                self.faults_injected[f"{UPLOADS}.{fault.get('kind')}"] += 1
            return fault

    def check_signature(self, upload_id: str, expires: str | None, signature: str | None) -> str | None:
        """None if the signature is valid and unexpired, else why not."""
        if not expires or not signature:
            return "missing signature"
        try:
            when = int(expires)
        except ValueError:
            return "bad expiry"
        if not hmac.compare_digest(self.sign(upload_id, when), signature):
            return "bad signature"
        if when < time.time():
            return "expired"
        return None

    def blob_path(self, blob_id: str) -> Path:
        safe = "".join(c for c in blob_id if c.isalnum() or c in "-_.")
        return self._blob_dir / safe

    def store_blob(self, blob_id: str, size: int, sha256: str) -> Blob:
        blob = Blob(self.blob_path(blob_id), size, sha256)
        with self.lock:
            self.blobs[blob_id] = blob
        return blob

    def drop_uploads(self) -> int:
        """Delete every stored presigned upload (benchmarks: gigabytes left on disk slow the next
        upload's writes); returns how many went."""
        with self.lock:
            gone = [b for b in self.blobs if b.startswith("upl_")]
            blobs = [self.blobs.pop(b) for b in gone]
        for blob in blobs:
            with contextlib.suppress(OSError):
                os.unlink(blob.path)
        return len(blobs)

    def save_media(self, data: bytes, suffix: str) -> str:
        """Keep generated output so ``/_media/{id}`` serves it; returns the id."""
        blob_id = new_id("media_", 20) + suffix
        path = self.blob_path(blob_id)
        path.write_bytes(data)
        self.store_blob(blob_id, len(data), hashlib.sha256(data).hexdigest())
        return blob_id

    def read_blob(self, blob_id: str) -> bytes | None:
        blob = self.blobs.get(blob_id)
        return blob.path.read_bytes() if blob is not None else None

    def close(self) -> None:
        for blob in list(self.blobs.values()):
            with contextlib.suppress(OSError):
                os.unlink(blob.path)
        with contextlib.suppress(OSError):
            self._blob_dir.rmdir()
