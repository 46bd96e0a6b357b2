"""infrai's native batches in the emulator: items finish one after another on the emulator's clock.

A batch's state is derived from the clock whenever it is read, so tests move the clock instead of
waiting; items are judged and answered by the core's own checks and answers.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_edgeinfer.emulator.common import HTTPError
from airflow_provider_edgeinfer.emulator.infrai_common import (
    BATCHES_TABLE,
    CANCEL_SECONDS,
    DAY_SECONDS,
    DEFAULT_BATCH_TIMEOUT,
    MAX_BATCH_ITEMS,
    PAGED_QUERY,
    VENDOR,
    Infrai,
    _duration,
    _invalid,
    _iso,
    _not_found,
    _ok,
    _page,
)
from airflow_provider_edgeinfer.emulator.infrai_core import (
    CHECKS,
    MULTIPART_ONLY,
    chat_completion,
    embedding_list,
    estimate_usd,
    images_response,
    speech_audio,
)
from airflow_provider_edgeinfer.emulator.state import EmulatorState, new_id

# -- batches ----------------------------------------------------------------------------------


@dataclass
class Item:
    index: int
    custom_id: str | None
    capability: str
    body: dict[str, Any]
    ends: float
    fails: bool
    invalid: str | None
    cost_usd: float
    response: Any = None


@dataclass
class Batch:
    id: str
    created: float
    created_wall: float
    starts: float
    #: Seconds spent "finalizing" after the last item (the same draw as "validating").
    finalize: float
    timeout_at: float
    batch_timeout: str
    items: list[Item]
    base: str
    metadata: dict[str, Any] | None
    cancel_at: float | None = None
    retention_days: float | None = None
    purge_at: float | None = None
    outcomes: dict[int, tuple[str, dict[str, str] | None]] = field(default_factory=dict)

    @property
    def last_end(self) -> float:
        return max(item.ends for item in self.items)


_TERMINAL = ("completed", "failed", "cancelled", "expired")


class Batches:
    """Batch bookkeeping: items finish one after another; state is derived from the clock on read."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    @property
    def table(self) -> dict[str, Batch]:
        return self.state.tables[BATCHES_TABLE]

    def get(self, batch_id: str) -> Batch:
        batch = self.table.get(batch_id)
        if batch is None:
            raise _not_found(f"batch {batch_id} not found")
        return batch

    def create(self, requests: list[dict[str, Any]], timeout: str, metadata: Any, base: str) -> Batch:
        state = self.state
        created = state.clock.now()
        items: list[Item] = []
        starts = finalize = 0.0
        cursor = 0.0
        for index, request in enumerate(requests):
            _, item_starts, item_ends, fails = state.schedule(VENDOR)
            if index == 0:
                starts, finalize, cursor = item_starts, item_starts - created, item_starts
            cursor += item_ends - item_starts
            body = request["body"]
            invalid = None
            try:
                CHECKS[request["capability"]](body)
            except HTTPError as exc:
                invalid = exc.message
            items.append(
                Item(
                    index,
                    request.get("custom_id"),
                    request["capability"],
                    body,
                    cursor,
                    fails,
                    invalid,
                    estimate_usd(request["capability"], body),
                )
            )
        batch = Batch(
            new_id("batch_", 24),
            created,
            time.time(),
            starts,
            finalize,
            created + _duration(timeout),
            timeout,
            items,
            base,
            metadata if isinstance(metadata, dict) else None,
        )
        self.table[batch.id] = batch
        return batch

    def view(self, batch: Batch) -> tuple[str, list[tuple[Item, str, dict[str, str] | None]]]:
        """(state, finished items with their outcome) at the current clock."""
        now = self.state.clock.now()
        last_end = batch.last_end
        expired = batch.timeout_at < last_end and now >= batch.timeout_at and batch.cancel_at is None
        horizon = now
        if batch.cancel_at is not None:
            horizon = min(horizon, batch.cancel_at)
        if expired:
            horizon = min(horizon, batch.timeout_at)
        finished: list[tuple[Item, str, dict[str, str] | None]] = []
        for item in batch.items:
            if item.ends <= horizon:
                if item.invalid is not None:
                    finished.append((item, "failed", {"code": "INVALID_REQUEST", "message": item.invalid}))
                elif item.fails:
                    finished.append(
                        (
                            item,
                            "failed",
                            {
                                "code": "UPSTREAM_ERROR",
                                "message": "injected failure: the upstream model failed",
                            },
                        )
                    )
                else:
                    finished.append((item, "succeeded", None))
        if batch.cancel_at is not None:
            state = "cancelling" if now < batch.cancel_at + CANCEL_SECONDS else "cancelled"
        elif expired:
            state = "expired"
        elif now < batch.starts:
            state = "validating"
        elif now < last_end:
            state = "in_progress"
        elif now < last_end + batch.finalize:
            state = "finalizing"
        else:
            state = "failed" if all(outcome == "failed" for _, outcome, _ in finished) else "completed"
        if state in ("cancelled", "expired"):
            # Items that never ran are reported, as failed, so the counts add up to total_count.
            code = "CANCELLED" if state == "cancelled" else "EXPIRED"
            done = {item.index for item, _, _ in finished}
            finished.extend(
                (item, "failed", {"code": code, "message": f"batch {state} before this item ran"})
                for item in batch.items
                if item.index not in done
            )
            finished.sort(key=lambda entry: entry[0].index)
        return state, finished

    def status(self, batch: Batch) -> dict[str, Any]:
        state, finished = self.view(batch)
        succeeded = [item for item, outcome, _ in finished if outcome == "succeeded"]
        total = len(batch.items)
        out: dict[str, Any] = {
            "batch_id": batch.id,
            "state": state,
            "progress": round(len(finished) / total, 6),
            "total_count": total,
            "completed_count": len(succeeded),
            "failed_count": len(finished) - len(succeeded),
            "created_at": _iso(batch.created_wall),
            "total_cost_usd": round(sum(item.cost_usd for item in succeeded), 8),
        }
        return out

    def results(self, batch: Batch) -> list[dict[str, Any]]:
        if batch.purge_at is not None and self.state.clock.now() >= batch.purge_at:
            raise _not_found(
                f"the results of batch {batch.id} were purged after {batch.retention_days} day(s)"
            )
        _, finished = self.view(batch)
        rendered = []
        for item, outcome, error in finished:
            entry: dict[str, Any] = {"index": item.index, "custom_id": item.custom_id, "state": outcome}
            if outcome == "succeeded":
                entry["response"] = self.response(batch, item)
                entry["cost_usd"] = round(item.cost_usd, 8)
            else:
                entry["error"] = error
            rendered.append(entry)
        return rendered

    def response(self, batch: Batch, item: Item) -> Any:
        """An item's answer, made once on first read (images and audio are stored as media)."""
        if item.response is None:
            body = item.body
            if item.capability == "chat.completions":
                item.response = chat_completion(body)
            elif item.capability == "embeddings":
                item.response = embedding_list(body)
            elif item.capability == "images.generations":
                item.response = images_response(self.state, body, batch.base)
            else:
                audio, content_type = speech_audio(body)
                blob = self.state.save_media(audio, ".wav" if content_type == "audio/wav" else ".pcm")
                # Assumed shape: audio in a JSON result travels as a media URL.
                item.response = {"content_type": content_type, "url": f"{batch.base}/_media/{blob}"}
        return item.response


def _export(rows: list[dict[str, Any]], format: str) -> bytes:
    if format == "jsonl":
        return b"".join(json.dumps(row, sort_keys=True).encode() + b"\n" for row in rows)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["index", "custom_id", "state", "cost_usd", "error_code", "error_message", "response"])
    for row in rows:
        error = row.get("error") or {}
        response = json.dumps(row["response"], sort_keys=True) if "response" in row else ""
        writer.writerow(
            [
                row["index"],
                row["custom_id"] or "",
                row["state"],
                row.get("cost_usd", ""),
                error.get("code", ""),
                error.get("message", ""),
                response,
            ]
        )
    return out.getvalue().encode()


# -- routes ----------------------------------------------------------------------------------


async def batch_submit(api: Infrai, request: Request) -> Response:
    body = await api.admit(request, "batch.submit")

    def produce() -> Response:
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            raise _invalid("'requests' must be a non-empty array")
        if len(requests) > MAX_BATCH_ITEMS:
            raise _invalid(f"a batch holds at most {MAX_BATCH_ITEMS} requests")
        for i, entry in enumerate(requests):
            if not isinstance(entry, dict) or not isinstance(entry.get("body"), dict):
                raise _invalid(f"requests[{i}] must be an object with a 'body' object")
            route = MULTIPART_ONLY.get(str(entry.get("capability")))
            if route is not None:
                raise _invalid(
                    f"requests[{i}].capability {entry['capability']!r} takes a multipart file upload, "
                    f"which a batch body cannot carry; POST each file to {route}"
                )
            if entry.get("capability") not in CHECKS:
                raise _invalid(
                    f"requests[{i}].capability {entry.get('capability')!r} is not one of {', '.join(CHECKS)}"
                )
            if entry.get("custom_id") is not None and not isinstance(entry["custom_id"], str):
                raise _invalid(f"requests[{i}].custom_id must be a string")
        timeout = str(body.get("batch_timeout") or DEFAULT_BATCH_TIMEOUT)
        _duration(timeout)
        estimate = sum(estimate_usd(r["capability"], r["body"]) for r in requests)
        api.charge(estimate)
        batch = api.batches.create(requests, timeout, body.get("metadata"), api.base(request))
        status = api.batches.status(batch)
        eta = batch.created_wall + (batch.last_end + batch.finalize - batch.created)
        return _ok(
            {
                "batch_id": batch.id,
                "state": status["state"],
                "total_count": status["total_count"],
                "estimated_eta": _iso(eta),
                "estimated_cost_usd": round(estimate, 8),
            }
        )

    return api.once(request, "batch.submit", body, produce)


async def batch_status(api: Infrai, request: Request) -> Response:
    await api.admit(request, "batch.status", body=False)
    return _ok(api.batches.status(api.batches.get(request.path_params["batch_id"])))


async def batch_results(api: Infrai, request: Request) -> Response:
    await api.admit(request, "batch.results", body=False, query=PAGED_QUERY)
    batch = api.batches.get(request.path_params["batch_id"])
    rows = api.batches.results(batch)
    chunk, next_cursor = _page(request, rows)
    data: dict[str, Any] = {"items": chunk, "total_count": len(batch.items)}
    if next_cursor is not None:
        data["next_cursor"] = next_cursor
    return _ok(data)


async def batch_list(api: Infrai, request: Request) -> Response:
    await api.admit(request, "batch.list", body=False, query=PAGED_QUERY)
    newest_first = sorted(api.batches.table.values(), key=lambda b: b.created, reverse=True)
    chunk, next_cursor = _page(request, newest_first)
    data: dict[str, Any] = {
        "batches": [api.batches.status(b) for b in chunk],
        "total_count": len(newest_first),
    }
    if next_cursor is not None:
        data["next_cursor"] = next_cursor
    return _ok(data)


async def batch_cancel(api: Infrai, request: Request) -> Response:
    body = await api.admit(request, "batch.cancel")

    def produce() -> Response:
        batch = api.batches.get(request.path_params["batch_id"])
        current, _ = api.batches.view(batch)
        if current in ("validating", "in_progress", "finalizing"):
            batch.cancel_at = api.state.clock.now()
            api.state.record_cancellation(VENDOR)
        return _ok(api.batches.status(batch))

    return api.once(request, "batch.cancel", body, produce, creates=False)


async def batch_export(api: Infrai, request: Request) -> Response:
    body = await api.admit(request, "batch.export")

    def produce() -> Response:
        batch = api.batches.get(request.path_params["batch_id"])
        format = body.get("format") or "jsonl"
        if format not in ("jsonl", "csv"):
            raise _invalid("format must be jsonl or csv")
        current, _ = api.batches.view(batch)
        if current not in _TERMINAL:
            raise HTTPError(409, f"batch {batch.id} is {current}; export it once it has finished", "CONFLICT")
        rows = api.batches.results(batch)
        blob = api.state.save_media(_export(rows, format), f".{format}")
        now = time.time()
        return _ok(
            {
                "export_id": new_id("exp_", 20),
                "state": "completed",
                "format": format,
                "download_url": f"{api.base(request)}/_media/{blob}",
                "expires_at": _iso(now + 7 * DAY_SECONDS),
                "created_at": _iso(now),
            }
        )

    return api.once(request, "batch.export", body, produce)


async def batch_set_retention(api: Infrai, request: Request) -> Response:
    body = await api.admit(request, "batch.set_retention")

    def produce() -> Response:
        batch = api.batches.get(request.path_params["batch_id"])
        days = body.get("retention_days")
        if isinstance(days, bool) or not isinstance(days, int | float) or not 0 < days <= 3650:
            raise _invalid("retention_days must be a number in (0, 3650]")
        batch.retention_days = float(days)
        batch.purge_at = api.state.clock.now() + float(days) * DAY_SECONDS
        return _ok(api.batches.status(batch))

    return api.once(request, "batch.set_retention", body, produce, creates=False)
