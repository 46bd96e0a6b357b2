"""Theta EdgeCloud, as its vendor contract describes it (example answers: ``tests/contract/theta``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape
from itertools import islice
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from airflow_provider_edgeinfer.emulator import media
from airflow_provider_edgeinfer.emulator.common import HTTPError, bearer, read_json, vendor_app
from airflow_provider_edgeinfer.emulator.state import EmulatorState, new_id
from airflow_provider_edgeinfer.emulator.strict import (
    INTEGER,
    OPEN_OBJECT,
    STRING,
    Problem,
    Shape,
    array,
    enforce,
    obj,
    problems,
    query_problems,
)

VENDOR = "theta"
PROJECT_ID = "prj_emulator"
#: The dashboard's pages for humans: the request list, and ``/<request id>`` for one request. The
#: contract names no dashboard; this is the path its clients link to (assumed), served here on the
#: API host so that a link from a local run opens a page.
DASHBOARD_PATH = "/dashboard/ai/inference/request"
#: Requests shown on the list page, newest first.
DASHBOARD_LIST_MAX = 200
MAX_INPUT_BYTES = 10 * 1024 * 1024


def _var(name: str, type_: str, required: bool = False, default: Any = None) -> dict[str, Any]:
    return {
        "name": name,
        "type": type_,
        "description": name.replace("_", " "),
        "required": required,
        "default": default,
    }


def _prediction(*input_vars: dict[str, Any], cost: float = 0.0001) -> dict[str, Any]:
    return {"input_vars": list(input_vars), "output_vars": [], "cost": {"per_request_usd": cost}}


def _service(
    slug: str, name: str, alias: str, *input_vars: dict[str, Any], prediction: str = "predict"
) -> dict[str, Any]:
    """A running catalogue entry with one prediction (its default)."""
    return {
        "id": f"srvc_{slug}",
        "name": name,
        "alias": alias,
        "state": "running",
        "default_prediction": prediction,
        "predictions": {prediction: _prediction(*input_vars)},
    }


SERVICES: list[dict[str, Any]] = [
    _service("whisper", "Whisper", "whisper", _var("audio_filename", "file", True), _var("language", "str")),
    _service(
        "flux",
        "FLUX.1 schnell",
        "flux",
        _var("prompt", "str", True),
        _var("width", "int", default=1024),
        _var("height", "int", default=1024),
        _var("num_inference_steps", "int", default=4),
    ),
    _service(
        "sdxl_turbo",
        "SDXL Turbo",
        "stable_diffusion_xl_turbo",
        _var("prompt", "str", True),
        _var("steps", "int", default=1),
        _var("guidance", "float", default=0.0),
    ),
    _service(
        "kokoro",
        "Kokoro 82M",
        "kokoro_82m",
        _var("text", "str", True),
        _var("voice", "str", True),
        _var("speed", "float", default=1.0),
    ),
    _service(
        "image_to_image",
        "Image to image",
        "image_to_image",
        _var("image_filename", "file", True),
        prediction="background_removal",
    ),
    _service(
        "llama",
        "Llama 3.1 70B",
        "llama_3_1_70b",
        _var("messages", "list", True),
        _var("max_tokens", "int"),
        _var("temperature", "float"),
        _var("stream", "bool"),
        prediction="completions",
    ),
]
BY_ALIAS = {s["alias"]: s for s in SERVICES}


def _iso(monotonic_at: float, state: EmulatorState) -> str:
    return datetime.fromtimestamp(state.clock.epoch(monotonic_at), UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def error(status: int, message: str, code: str = "") -> Response:
    return JSONResponse({"status": "error", "message": message}, status_code=status)


def ok(body: Any, status: int = 200) -> Response:
    return JSONResponse({"status": "success", "body": body}, status_code=status)


def _authorize(request: Request, state: EmulatorState) -> None:
    key = bearer(request) or request.headers.get("x-theta-api-key")
    if key != state.keys[VENDOR]:
        raise HTTPError(401, "invalid or missing API key")


#: The states a request is in before it ends.
_UNFINISHED = ("pending", "processing")


def _page(title: str, body: str) -> str:
    """A small HTML page; ``title`` is escaped here, ``body`` must be built escaped."""
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{escape(title)}</title></head>'
        f"<body><h1>{escape(title)}</h1>{body}<p>Theta EdgeCloud (emulated)</p></body></html>"
    )


def _jobs(state: EmulatorState) -> dict[str, dict[str, Any]]:
    return state.tables["theta.jobs"]


class ThetaJobs:
    """Job bookkeeping: state is derived from the clock on every read."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def create(self, alias: str, prediction: str, input: dict[str, Any], base: str) -> dict[str, Any]:
        created, starts, ends, fails = self.state.schedule(VENDOR)
        job = {
            "id": new_id("infr_rqst_"),
            "project_id": PROJECT_ID,
            "service_id": BY_ALIAS[alias]["id"],
            "alias": alias,
            "prediction": prediction,
            "variant": None,
            "input": input,
            "created": created,
            "starts": starts,
            "ends": ends,
            "fails": fails,
            "cancelled_at": None,
            "output": None,
            "base": base,
            "webhook": None,
        }
        _jobs(self.state)[job["id"]] = job
        self.state.tables["theta.unfinished"][job["id"]] = None
        return job

    def listing(self, wanted: str | None, start: int, count: int) -> tuple[list[dict[str, Any]], int]:
        """Jobs ``start .. start+count`` of the project's listing, newest first, and its total.

        Jobs are kept in creation order, so newest first is that order reversed: no sort per call. A
        listing of unfinished states reads only the jobs not yet known to have ended (pruned as they
        end), so an emulator holding a million finished jobs still answers it at once.
        """
        table = _jobs(self.state)
        if not wanted:
            return list(islice(reversed(table.values()), start, start + count)), len(table)
        if wanted in _UNFINISHED:
            unfinished: dict[str, None] = self.state.tables["theta.unfinished"]
            for request_id in list(unfinished):
                job = table.get(request_id)  # a test may delete a job
                if job is None or self.status(job) not in _UNFINISHED:
                    del unfinished[request_id]
            candidates: Iterable[dict[str, Any]] = (table[i] for i in reversed(unfinished))
        else:
            candidates = reversed(table.values())
        matching = [j for j in candidates if self.status(j) == wanted]
        return matching[start : start + count], len(matching)

    def status(self, job: dict[str, Any]) -> str:
        if job["cancelled_at"] is not None:
            return "cancelled"
        return self.state.job_status(job, ("pending", "processing", "success", "error"))

    def render(self, job: dict[str, Any]) -> dict[str, Any]:
        status = self.status(job)
        if status == "success" and job["output"] is None:
            job["output"] = _output(self.state, job)
        done = status in ("success", "error")
        usage = {"input": len(json.dumps(job["input"])), "output": 1} if done else {"input": 0, "output": 0}
        return {
            "id": job["id"],
            "project_id": job["project_id"],
            "service_id": job["service_id"],
            "prediction": job["prediction"],
            "variant": job["variant"],
            "state": status,
            "input": job["input"],
            "output": job["output"] if status == "success" else None,
            "error_message": "injected failure: the model crashed" if status == "error" else None,
            "usage": usage,
            "cost_usd": {"input": 0.0001 if done else 0.0, "output": 0.0002 if done else 0.0},
            "create_time": _iso(job["created"], self.state),
            "update_time": _iso(self.state.clock.now(), self.state),
            "process_time": _iso(job["starts"], self.state) if status != "pending" else None,
            "success_time": _iso(job["ends"], self.state) if status == "success" else None,
            "error_time": _iso(job["ends"], self.state) if status == "error" else None,
            "webhook": job["webhook"],
        }


def _output(state: EmulatorState, job: dict[str, Any]) -> dict[str, Any]:
    alias, data, base = job["alias"], job["input"], job["base"]
    if alias == "whisper":
        name = str(data.get("audio_filename", ""))
        language = data.get("language", "")
        audio = state.blobs.get(name)
        if audio is None:
            return {"text": media.transcript(name.encode(), language)}
        return {"text": media.transcript_of(bytes.fromhex(audio.sha256), audio.size, language)}
    if alias in ("flux", "stable_diffusion_xl_turbo", "image_to_image"):
        width = int(data.get("width", 64)) if alias == "flux" else 64
        height = int(data.get("height", 64)) if alias == "flux" else 64
        blob = state.save_media(
            media.png(min(width, 256), min(height, 256), json.dumps(data, sort_keys=True)), ".png"
        )
        out: dict[str, Any] = {"image_url": f"{base}/_media/{blob}"}
        if alias == "flux":
            out["used_seed"] = str(abs(hash(blob)) % 10**9)
        return out
    if alias == "kokoro_82m":
        blob = state.save_media(media.wav(1.0 + len(str(data.get("text", ""))) / 40), ".wav")
        return {"audio_url": f"{base}/_media/{blob}"}
    # LLM completions: OpenAI chat-completion JSON.
    reply = media.chat_reply(list(data.get("messages", [])))
    return {
        "id": "chatcmpl-" + job["id"][-12:],
        "object": "chat.completion",
        "created": int(state.clock.epoch(job["ends"])),
        "model": alias,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": len(reply.split()),
            "total_tokens": 12 + len(reply.split()),
        },
    }


#: Strict mode (contract, "Create", "Presigned uploads"): what a create or presign body may hold.
CREATE_BODY = obj(
    ["input"], input=OPEN_OBJECT, wait=INTEGER, variant=STRING.nullable(), webhook=STRING.nullable()
)
PRESIGN_BODY = obj(input_fields=array(STRING))
#: The query parameters each endpoint takes (contract: ``?expand=``, ``?page=&number=``, ``?wait=``...).
SERVICE_LIST_QUERY = ("expand", "page", "number")
CREATE_QUERY = ("wait", "prediction")
LIST_QUERY = ("page", "number", "state")
#: ``input_vars`` type names -> the JSON value they take.
VAR_SHAPES: dict[str, Shape] = {
    "file": STRING,
    "str": STRING,
    "int": INTEGER,
    "float": Shape(("number",)),
    "bool": Shape(("boolean",)),
    "list": array(),
}


def input_problems(service: dict[str, Any], prediction: str, input_: dict[str, Any]) -> list[Problem]:
    """Input fields the prediction does not declare, and values of the wrong type."""
    declared = {v["name"]: v for v in service["predictions"][prediction]["input_vars"]}
    fields = {name: VAR_SHAPES.get(var["type"], Shape(("any",))) for name, var in declared.items()}
    found = problems(input_, obj(**fields), ["body", "input"])
    if _streams(service, prediction, input_) and "stream" not in input_:
        # The client did not ask: an LLM prediction would answer with an event stream it may not read.
        found.append(
            (["body", "input", "stream"], "must be false unless the client reads server-sent events")
        )
    return found


def _streams(service: dict[str, Any], prediction: str, input_: dict[str, Any]) -> bool:
    """LLM predictions stream unless the input says ``"stream": false`` (contract, "Outputs by service")."""
    takes_stream = any(v["name"] == "stream" for v in service["predictions"][prediction]["input_vars"])
    return takes_stream and input_.get("stream") is not False


def _event_stream(alias: str, input_: dict[str, Any]) -> Response:
    """The answer of a streamed LLM prediction: chat-completion chunks as server-sent events."""
    words = media.chat_reply(list(input_.get("messages", []))).split()
    chunks = [
        {
            "object": "chat.completion.chunk",
            "model": alias,
            "choices": [{"index": 0, "delta": {"content": w + " "}}],
        }
        for w in words
    ]
    text = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    return Response(text, media_type="text/event-stream")


def create_app(state: EmulatorState) -> ASGIApp:
    jobs = ThetaJobs(state)

    async def list_services(request: Request) -> Response:
        state.count(VENDOR, "list_services")
        enforce(state, VENDOR, query_problems(request, SERVICE_LIST_QUERY))
        page = request.query_params.get("page")
        number = request.query_params.get("number")
        items = SERVICES
        if page is not None and number is not None:
            p, n = int(page), max(1, int(number))
            items = SERVICES[p * n : (p + 1) * n]
        return ok(
            {
                "services": items,
                "pagination": {
                    "page": int(page or 0),
                    "number": int(number or len(SERVICES)),
                    "total": len(SERVICES),
                },
            }
        )

    def _service(alias: str, prediction: str | None) -> tuple[dict[str, Any], str]:
        service = BY_ALIAS.get(alias)
        if service is None:
            raise HTTPError(404, f"service {alias} not found")
        name = prediction or service["default_prediction"]
        if name not in service["predictions"]:
            raise HTTPError(404, f"prediction {name} not found for service {alias}")
        return service, name

    async def create(request: Request, alias: str, prediction: str | None) -> Response:
        _authorize(request, state)
        raw = await request.body()
        if len(raw) > MAX_INPUT_BYTES:
            raise HTTPError(413, "input too large")
        body = await read_json(request)
        enforce(state, VENDOR, query_problems(request, CREATE_QUERY) + problems(body, CREATE_BODY))
        prediction = prediction or request.query_params.get("prediction")
        service, name = _service(alias, prediction)
        input_ = body.get("input")
        if not isinstance(input_, dict):
            raise HTTPError(400, "input must be an object")
        enforce(state, VENDOR, input_problems(service, name, input_))
        for var in service["predictions"][name]["input_vars"]:
            if var["required"] and var["name"] not in input_:
                raise HTTPError(400, f"missing required input {var['name']}")
        wait = int(body.get("wait") or request.query_params.get("wait") or 0)
        content = state.by_content(alias, name, input_=input_)
        state.record_submission(VENDOR, state.identity(alias, name, input_), content)
        if _streams(service, name, input_):
            return _event_stream(alias, input_)
        base = f"{request.url.scheme}://{request.url.netloc}"
        job = jobs.create(alias, name, input_, base)
        job["webhook"] = body.get("webhook")
        if wait > 0 and jobs.status(job) in ("pending", "processing"):
            # Hold the call until the job ends or ``wait`` runs out, as Theta does.
            # A hair past the end, so the job is done when rendered (sleeps may wake a tick early).
            await asyncio.sleep(max(0.0, min(float(min(wait, 60)), job["ends"] - state.clock.now() + 0.005)))
        return ok({"infer_requests": [jobs.render(job)], "model_quotas": []})

    async def create_default(request: Request) -> Response:
        state.count(VENDOR, "create_request")
        return await create(request, request.path_params["alias"], None)

    async def create_named_or_cancel(request: Request) -> Response:
        first, second = request.path_params["alias"], request.path_params["prediction"]
        if first.startswith("infr_rqst_") and second == "cancel":
            return await cancel(request, first)
        state.count(VENDOR, "create_request")
        return await create(request, first, second)

    async def cancel(request: Request, request_id: str) -> Response:
        state.count(VENDOR, "cancel_request")
        _authorize(request, state)
        enforce(state, VENDOR, query_problems(request) + problems(await read_json(request), obj()))
        job = _jobs(state).get(request_id)
        if job is None:
            raise HTTPError(404, f"inference request {request_id} not found")
        previous = jobs.status(job)
        if previous in ("pending", "processing"):
            job["cancelled_at"] = state.clock.now()
            state.record_cancellation(VENDOR)
        return ok({"changes": {"state": {"previous": previous, "current": jobs.status(job)}}})

    async def get_request(request: Request) -> Response:
        state.count(VENDOR, "get_request")
        _authorize(request, state)
        enforce(state, VENDOR, query_problems(request))
        request_id = request.path_params["request_id"]
        job = _jobs(state).get(request_id)
        if job is None:
            raise HTTPError(404, f"inference request {request_id} not found")
        # The live API answers one request in the create call's list envelope (contract, "Get one request").
        return ok({"infer_requests": [jobs.render(job)]})

    async def list_requests(request: Request) -> Response:
        state.count(VENDOR, "list_requests")
        _authorize(request, state)
        enforce(state, VENDOR, query_problems(request, LIST_QUERY))
        project = request.path_params["project_id"]
        if project != PROJECT_ID:
            raise HTTPError(404, f"project {project} not found")
        page = int(request.query_params.get("page", 0))
        number = max(1, min(int(request.query_params.get("number", 50)), state.theta_page_cap))
        wanted = request.query_params.get("state")
        chunk, total = jobs.listing(wanted, page * number, number)
        return ok(
            {
                "infer_requests": [jobs.render(j) for j in chunk],
                "pagination": {"page": page, "number": number, "total": total},
            }
        )

    async def presign(request: Request, alias: str, prediction: str | None) -> Response:
        state.count(VENDOR, "presigned_urls")
        _authorize(request, state)
        service, name = _service(alias, prediction)
        file_vars = [v["name"] for v in service["predictions"][name]["input_vars"] if v["type"] == "file"]
        body = await read_json(request)
        enforce(state, VENDOR, query_problems(request) + problems(body, PRESIGN_BODY))
        fields_ = body.get("input_fields") or file_vars
        unknown = [f for f in fields_ if f not in file_vars]
        if unknown:
            raise HTTPError(400, f"not a file input of {alias}/{name}: {', '.join(unknown)}")
        base = f"{request.url.scheme}://{request.url.netloc}"
        out = {}
        for field_name in fields_:
            blob_id = new_id("upl_", 20)
            out[field_name] = {
                "presigned_url": f"{base}/_uploads/{blob_id}?{state.presign_query(blob_id)}",
                "filename": blob_id,
            }
        return ok(out)

    async def presign_default(request: Request) -> Response:
        return await presign(request, request.path_params["alias"], None)

    async def presign_named(request: Request) -> Response:
        return await presign(request, request.path_params["alias"], request.path_params["prediction"])

    async def dashboard_request(request: Request) -> Response:
        state.count(VENDOR, "dashboard_request")
        job = _jobs(state).get(request.path_params["request_id"])
        if job is None:
            return HTMLResponse(_page("Inference request", "<p>No such request.</p>"), status_code=404)
        shown = jobs.render(job)
        rows = "".join(
            f"<tr><th>{escape(k)}</th><td>{escape(str(shown[k]))}</td></tr>"
            for k in (
                "id",
                "state",
                "service_id",
                "prediction",
                "create_time",
                "update_time",
                "error_message",
            )
        )
        return HTMLResponse(_page(f"Inference request {shown['id']}", f"<table>{rows}</table>"))

    async def dashboard_list(request: Request) -> Response:
        state.count(VENDOR, "dashboard_list")
        newest = sorted(_jobs(state).values(), key=lambda j: j["created"], reverse=True)[:DASHBOARD_LIST_MAX]
        # Relative to the list's own URL (".../request"), wherever the emulator is mounted.
        items = "".join(
            f'<li><a href="request/{quote(j["id"], safe="")}">{escape(j["id"])}</a> '
            f"{escape(jobs.status(j))}</li>"
            for j in newest
        )
        return HTMLResponse(_page("Inference requests", f"<ul>{items}</ul>"))

    routes = [
        Route(DASHBOARD_PATH, dashboard_list, methods=["GET"]),
        Route(DASHBOARD_PATH + "/{request_id}", dashboard_request, methods=["GET"]),
        Route("/service/list", list_services, methods=["GET"]),
        Route("/infer_request/{project_id}/list", list_requests, methods=["GET"]),
        Route("/infer_request/{alias}/input_presigned_urls", presign_default, methods=["POST"]),
        Route("/infer_request/{alias}/{prediction}/input_presigned_urls", presign_named, methods=["POST"]),
        Route("/infer_request/{request_id}", get_request, methods=["GET"]),
        Route("/infer_request/{alias}/{prediction}", create_named_or_cancel, methods=["POST"]),
        Route("/infer_request/{alias}", create_default, methods=["POST"]),
    ]
    return vendor_app(state, VENDOR, error, routes)
