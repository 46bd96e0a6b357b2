"""Reading the contract fixtures, building the calls they name, and comparing JSON shapes.

Each ``tests/contract/<vendor>/answers.json`` holds example answers of the vendor (with the
provenance of each: documented, observed in public clients, or assumed) and example requests that
public clients send. The tests feed every answer to the client's own ``Call.parse`` and compare the
emulator's real answer for the same endpoint with it, shape for shape.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from airflow_provider_edgeinfer.clients.core import Call, Credentials, HttpResult, VendorAPI

HERE = Path(__file__).parent
VENDORS = ("theta", "octoai", "infrai", "omnitensor")
PROVENANCE_WORDS = ("documented", "observed", "assumed")


def load(vendor: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HERE / vendor / "answers.json").read_text("utf-8"))
    return data


def answers() -> Iterator[tuple[str, dict[str, Any]]]:
    for vendor in VENDORS:
        for answer in load(vendor)["answers"]:
            yield vendor, answer


def requests() -> Iterator[tuple[str, dict[str, Any]]]:
    for vendor in VENDORS:
        for request in load(vendor).get("requests", []):
            yield vendor, request


# -- the client side ---------------------------------------------------------------------------


def build_api(vendor: str, base: str | None = None) -> VendorAPI:
    """The vendor's API class on its real hosts, or on an emulator served at ``base``."""
    from airflow_provider_edgeinfer.clients.infrai import InfraiAPI
    from airflow_provider_edgeinfer.clients.octoai import OctoAIAPI
    from airflow_provider_edgeinfer.clients.omnitensor import OmniTensorAPI
    from airflow_provider_edgeinfer.clients.theta import ThetaAPI

    if base is None:
        defaults: dict[str, VendorAPI] = {
            "theta": ThetaAPI(project_id="prj_2f8k3m9q"),
            "octoai": OctoAIAPI(),
            "infrai": InfraiAPI(),
            "omnitensor": OmniTensorAPI(),
        }
        return defaults[vendor]
    root = f"{base}/{vendor}"
    if vendor == "theta":
        return ThetaAPI(root, project_id="prj_2f8k3m9q")
    if vendor == "octoai":
        return OctoAIAPI(root, root, f"{root}/text", f"{root}/deployments/{{name}}")
    if vendor == "infrai":
        return InfraiAPI(root)
    return OmniTensorAPI(root)


def argument(value: Any, tmp: Path) -> Any:
    """JSON stands for what it cannot hold: ``{"$bytes": b64}`` (bytes), ``{"$file": b64}`` (an open
    file), ``{"$path": b64}`` (a file on disk), ``{"$opener": b64}`` (a function opening one) and
    ``{"$job": {...}}`` (a normalized Job)."""
    if isinstance(value, dict) and set(value) == {"$bytes"}:
        return base64.b64decode(value["$bytes"])
    if isinstance(value, dict) and set(value) == {"$file"}:
        return io.BytesIO(base64.b64decode(value["$file"]))
    if isinstance(value, dict) and set(value) == {"$opener"}:
        data = base64.b64decode(value["$opener"])
        return lambda: io.BytesIO(data)
    if isinstance(value, dict) and set(value) == {"$job"}:
        from airflow_provider_edgeinfer.clients.core import Job

        return Job.model_validate(value["$job"])
    if isinstance(value, dict) and set(value) == {"$path"}:
        path = tmp / "upload.bin"
        path.write_bytes(base64.b64decode(value["$path"]))
        return str(path)
    return value


def build_call(api: VendorAPI, spec: list[Any], tmp: Path) -> Call[Any]:
    method, args, kwargs = spec
    built = [argument(a, tmp) for a in args]
    return getattr(api, method)(*built, **{k: argument(v, tmp) for k, v in kwargs.items()})  # type: ignore[no-any-return]


def content_of(answer: dict[str, Any]) -> bytes:
    if "base64" in answer:
        return base64.b64decode(answer["base64"])
    if "text" in answer:
        return str(answer["text"]).encode()
    return json.dumps(answer["body"]).encode()


def result_for(answer: dict[str, Any], url: str) -> HttpResult:
    headers = {"content-type": "application/json", **answer.get("headers", {})}
    return HttpResult(answer["status"], httpx.Headers(headers), content_of(answer), url)


def lookup(value: Any, path: str) -> Any:
    """``"items.0.id"``: attributes, keys and list indexes, one dotted step at a time."""
    for step in path.split("."):
        if isinstance(value, list | tuple):
            value = value[int(step)]
        elif isinstance(value, dict):
            value = value[step]
        else:
            value = getattr(value, step)
    return value


# -- shapes ------------------------------------------------------------------------------------


def kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"  # JSON has one number type
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def shape_diff(contract: Any, actual: Any, path: str = "$") -> list[str]:
    """How ``actual`` departs from ``contract``'s shape: same keys and value kinds at every level,
    lists compared by their first element; keys extra on either side are reported."""
    if kind(contract) != kind(actual):
        return [f"{path}: the contract has {kind(contract)}, the answer {kind(actual)}"]
    out: list[str] = []
    if isinstance(contract, dict):
        for key in sorted(set(contract) - set(actual)):
            out.append(f"{path}.{key}: in the contract, missing from the answer")
        for key in sorted(set(actual) - set(contract)):
            out.append(f"{path}.{key}: in the answer, not in the contract")
        for key in sorted(set(contract) & set(actual)):
            out += shape_diff(contract[key], actual[key], f"{path}.{key}")
    elif isinstance(contract, list) and contract and actual:
        out += shape_diff(contract[0], actual[0], f"{path}[0]")
    return out


# -- the emulator side ---------------------------------------------------------------------------


@dataclass
class Emulated:
    """Sends calls built by a client's API class to the emulator and returns the raw answer."""

    vendor: str
    server: Any
    http: httpx.Client

    @property
    def state(self) -> Any:
        return self.server.state

    @property
    def api(self) -> Any:
        return build_api(self.vendor, self.server.url)

    def credentials(self) -> Credentials:
        secret = self.state.omnitensor_secret if self.vendor == "omnitensor" else None
        return Credentials.of(self.state.keys[self.vendor], secret)

    def send(self, call: Call[Any], *, key: str | None = None) -> httpx.Response:
        """The call as a client would send it; ``key`` replaces the right credential with another."""
        credentials = self.credentials() if key is None else Credentials.of(key, "wrong-secret")
        auth = call_auth(self.api, credentials) if call.authenticated else None
        kwargs: dict[str, Any] = {}
        if call.json is not None:
            kwargs["json"] = call.json
        if call.params:
            kwargs["params"] = {k: v for k, v in call.params.items() if v is not None}
        for name in ("headers", "content", "files", "data"):
            if getattr(call, name) is not None:
                kwargs[name] = getattr(call, name)
        if call.stream is not None:
            kwargs["content"] = b"".join(call.stream())
        request = self.http.build_request(call.method, call.url, **kwargs)
        return self.http.send(request, auth=auth)

    def raw(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, f"{self.server.url}/{self.vendor}{path}", **kwargs)


def call_auth(api: VendorAPI, credentials: Credentials) -> httpx.Auth:
    return api.build_auth(credentials)
