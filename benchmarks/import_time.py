"""What importing the public operators and sensors adds to DAG parsing, over ``import airflow.sdk``.

Side by side with two anchors a DAG author might import instead:
``airflow.providers.openai.operators.openai`` and ``airflow.providers.common.ai.operators.llm_batch``.

Each measurement is a fresh interpreter that imports ``airflow.sdk`` first (the part every DAG file
pays), then times importing the target modules. Targets are interleaved round by round and the
median is reported. An anchor that is not installed is reported as missing.

    python benchmarks/import_time.py [--quick]

The last line is ``RESULT key=value ...`` (milliseconds and ours / anchor ratios). Goal: ours under
20 ms and below both anchors.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys

PACKAGE = "airflow_provider_edgeinfer"
#: Public operator and sensor modules; those not (yet) present in this checkout are skipped.
PUBLIC = [
    f"{PACKAGE}.operators.inference",
    f"{PACKAGE}.operators.batch",
    f"{PACKAGE}.operators.upload",
    f"{PACKAGE}.sensors.request",
    f"{PACKAGE}.sensors.batch",
]
ANCHORS = {
    "openai": ["airflow.providers.openai.operators.openai"],
    "common_ai": ["airflow.providers.common.ai.operators.llm_batch"],
}
GOAL_MS = 20.0

_PROBE = """
import json, sys, time
import airflow.sdk
start = time.perf_counter()
for name in json.loads(sys.argv[1]):
    __import__(name)
print(json.dumps({"ms": (time.perf_counter() - start) * 1000, "modules": len(sys.modules)}))
"""


def ours() -> list[str]:
    from airflow_provider_edgeinfer import get_provider_info

    info = get_provider_info()
    listed = [
        m for group in ("operators", "sensors") for e in info.get(group, []) for m in e["python-modules"]
    ]
    candidates = dict.fromkeys([*listed, *PUBLIC])
    return [m for m in candidates if importlib.util.find_spec(m) is not None]


def installed(modules: list[str]) -> bool:
    try:
        return all(importlib.util.find_spec(m) is not None for m in modules)
    except ModuleNotFoundError:
        return False


def measure(modules: list[str]) -> float:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(modules)], capture_output=True, text=True, check=True
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["ms"])


def compile_ours() -> None:
    """Write our modules' bytecode, as installing a wheel does (pip compiles on install).

    An editable checkout with ``PYTHONDONTWRITEBYTECODE`` set would otherwise compile every module
    on every import, a cost no installed provider (ours or an anchor) pays at DAG parsing.
    """
    import compileall
    from pathlib import Path

    spec = importlib.util.find_spec(PACKAGE)
    if spec is not None and spec.origin is not None:
        compileall.compile_dir(Path(spec.origin).parent, quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 9")
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 9)

    compile_ours()
    targets = {"edgeinfer": ours()}
    missing = [name for name, mods in ANCHORS.items() if not installed(mods)]
    targets |= {name: mods for name, mods in ANCHORS.items() if name not in missing}
    samples: dict[str, list[float]] = {name: [] for name in targets}
    measure(["json"])  # warm the file system cache for the interpreter itself
    for _ in range(rounds):
        for name, modules in targets.items():
            samples[name].append(measure(modules))

    # Each of our modules alone, so a regression can be traced to its module.
    alone = {m: statistics.median(measure([m]) for _ in range(rounds)) for m in targets["edgeinfer"]}
    median = {name: statistics.median(values) for name, values in samples.items()}
    print(f"import time over `import airflow.sdk` (median of {rounds} fresh interpreters)")
    print(f"{'target':12s} {'median ms':>10s} {'min ms':>8s}  modules")
    for name, values in samples.items():
        print(f"{name:12s} {median[name]:>10.1f} {min(values):>8.1f}  {', '.join(targets[name])}")
    for module, ms in alone.items():
        print(f"  {module.removeprefix(PACKAGE + '.'):24s} {ms:>6.1f} ms alone")
    for name in missing:
        print(f"{name:12s} {'missing':>10s}           {', '.join(ANCHORS[name])} is not installed")
    result: dict[str, object] = {"ours_ms": round(median["edgeinfer"], 1)}
    for name in ANCHORS:
        if name in median:
            result[f"{name}_ms"] = round(median[name], 1)
            result[f"ratio_{name}"] = round(median["edgeinfer"] / median[name], 3)
    result["goal_under_20ms"] = median["edgeinfer"] < GOAL_MS
    result["goal_below_anchors"] = all(median["edgeinfer"] < median[n] for n in ANCHORS if n in median)
    print("RESULT " + " ".join(f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
