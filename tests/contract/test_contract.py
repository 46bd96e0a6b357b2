"""The clients and the emulator against the vendor contracts' example answers and requests.

- every example answer parses with the client's own ``Call.parse`` (error answers map to the right
  exception), for every call of the client that reads that endpoint;
- the emulator's real answer for the same endpoint has the example's shape (keys and value kinds at
  every level, extra keys either way reported), in strict mode;
- every request variant public clients send is accepted by the strict emulator.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_edgeinfer.check import unknown_fields
from tests.contract.harness import (
    PROVENANCE_WORDS,
    Emulated,
    answers,
    build_api,
    build_call,
    load,
    lookup,
    requests,
    result_for,
    shape_diff,
)
from tests.contract.scenarios import SCENARIOS, theta_create

ANSWERS = list(answers())
REQUESTS = list(requests())
COMPARED = [(vendor, a) for vendor, a in ANSWERS if a.get("emulator")]


def _id(case: tuple[str, dict[str, Any]]) -> str:
    return f"{case[0]}-{case[1]['name']}"


@pytest.fixture
def edgeinfer_emulator_strict() -> bool:
    return True


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as client:
        yield client


# -- the fixtures themselves -----------------------------------------------------------------------


@pytest.mark.parametrize("vendor", ["theta", "octoai", "infrai", "omnitensor"])
def test_every_fixture_says_where_it_comes_from(vendor: str) -> None:
    data = load(vendor)
    names = [a["name"] for a in data["answers"]] + [r["name"] for r in data.get("requests", [])]
    assert len(names) == len(set(names)), "fixture names are unique"
    for entry in data["answers"] + data.get("requests", []):
        assert any(word in entry["provenance"] for word in PROVENANCE_WORDS), entry["name"]
    for entry in data["answers"]:
        assert entry.get("calls"), entry["name"]
        assert (entry["status"] >= 400) == ("error" in entry), entry["name"]
        if entry.get("emulator"):
            assert entry["emulator"] in SCENARIOS[vendor], f"{entry['name']}: no scenario"


@pytest.mark.parametrize("vendor", ["theta", "octoai", "infrai", "omnitensor"])
def test_every_call_of_the_client_has_an_example(vendor: str) -> None:
    """Each method of the vendor's API class that builds a call is exercised by some fixture."""
    api_class = type(build_api(vendor))
    exercised = {spec[0] for answer in load(vendor)["answers"] for spec in answer["calls"]}
    builders = {
        name
        for name, member in vars(api_class).items()
        if inspect.isfunction(member)
        and not name.startswith("_")
        and str(inspect.signature(member).return_annotation).startswith("Call[")
    }
    if "build_auth" in vars(api_class):
        builders.add("build_auth")
    assert builders, "the API class builds calls"
    assert sorted(builders - exercised) == []


def test_shape_diff_reports_every_kind_of_difference() -> None:
    contract = {"a": 1, "b": [{"c": "x"}], "d": None, "e": {"f": True}}
    assert shape_diff(contract, {"a": 2.5, "b": [{"c": "y"}, {}], "d": None, "e": {"f": False}}) == []
    assert shape_diff(contract, {"a": "1", "b": [], "e": {"f": True, "g": 1}, "h": 0}) == [
        "$.d: in the contract, missing from the answer",
        "$.h: in the answer, not in the contract",
        "$.a: the contract has number, the answer string",
        "$.e.g: in the answer, not in the contract",
    ]
    assert shape_diff({"b": [{"c": "x"}]}, {"b": [{"c": None}]}) == [
        "$.b[0].c: the contract has string, the answer null"
    ]


# -- the client parses every example --------------------------------------------------------------


@pytest.mark.parametrize("case", ANSWERS, ids=_id)
def test_client_parses_the_example(case: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    vendor, answer = case
    api = build_api(vendor)
    for spec in answer["calls"]:
        if spec[0] == "build_auth":
            _check_token_exchange(api, answer)
            continue
        call = build_call(api, spec, tmp_path)
        result = result_for(answer, call.url)
        if answer["status"] >= 400:
            error = api.map_error(call, result)
            assert type(error).__name__ == answer["error"], (spec[0], error)
            continue
        value = call.parse(result)
        if spec[0] in _JOB_CALLS:
            continue  # a normalized Job: the expectations speak of the vendor's own object
        for path, expected in answer.get("expect", {}).items():
            assert lookup(value, path) == expected, (spec[0], path)
        # The client's models declare every field of the contract's examples; only a tolerated
        # alternative spelling is kept as an unknown extra (and reported by the connection check).
        assert unknown_fields(value) == answer.get("unknown", []), spec[0]


#: Calls answered as a normalized Job; parsing them proves the shape reads, the rest is elsewhere.
_JOB_CALLS = {"submit", "status", "batch_status_job"}


def _check_token_exchange(api: Any, answer: dict[str, Any]) -> None:
    from airflow_provider_edgeinfer.clients.core import Credentials

    auth = api.build_auth(Credentials.of("key", "secret"))
    response = httpx.Response(
        answer["status"],
        json=answer["body"],
        request=httpx.Request("POST", api.base_url + "/auth/token"),
    )
    if answer["status"] >= 400:
        with pytest.raises(Exception) as raised:
            auth._store(response)
        assert type(raised.value).__name__ == answer["error"]
        return
    auth._store(response)
    assert auth._token == answer["expect"]["token"]


# -- the emulator answers in the same shape --------------------------------------------------------


@pytest.mark.parametrize("case", COMPARED, ids=_id)
def test_emulator_answers_in_the_contract_shape(
    case: tuple[str, dict[str, Any]], edgeinfer_emulator: Any, http: httpx.Client
) -> None:
    vendor, answer = case
    response = SCENARIOS[vendor][answer["emulator"]](Emulated(vendor, edgeinfer_emulator, http))
    assert response.status_code == answer["status"], response.text[:500]
    media_type = response.headers.get("content-type", "").split(";")[0]
    expected_type = answer.get("headers", {}).get("content-type", "application/json").split(";")[0]
    assert media_type == expected_type
    if "body" in answer:
        assert shape_diff(answer["body"], response.json()) == []
    for name in answer.get("headers", {}):
        assert name in response.headers, f"the emulator sends no {name} header"
    assert edgeinfer_emulator.state.snapshot()["requests"].get(f"{vendor}.strict_violation", 0) == 0


# -- the emulator accepts what public clients send -------------------------------------------------


@pytest.mark.parametrize("case", REQUESTS, ids=_id)
def test_strict_emulator_accepts_request_variants(
    case: tuple[str, dict[str, Any]], edgeinfer_emulator: Any, http: httpx.Client
) -> None:
    vendor, spec = case
    emu = Emulated(vendor, edgeinfer_emulator, http)
    values = {
        "key": edgeinfer_emulator.state.keys[vendor],
        "secret": edgeinfer_emulator.state.omnitensor_secret,
    }
    if "{request_id}" in spec["path"]:
        values["request_id"] = theta_create(emu)
    headers = {k: v.format(**values) for k, v in spec.get("headers", {}).items()}
    kwargs: dict[str, Any] = {"headers": headers}
    if "json" in spec:
        kwargs["json"] = _filled(spec["json"], values)
    response = emu.raw(spec["method"], spec["path"].format(**values), **kwargs)
    assert response.status_code == spec["status"], response.text[:500]


def _filled(value: Any, values: dict[str, str]) -> Any:
    """``"{key}"`` placeholders filled in every string of a JSON value."""
    if isinstance(value, str):
        return value.format(**values)
    if isinstance(value, dict):
        return {k: _filled(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_filled(v, values) for v in value]
    return value
