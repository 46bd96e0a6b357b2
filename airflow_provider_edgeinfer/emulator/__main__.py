"""``python -m airflow_provider_edgeinfer.emulator --host 127.0.0.1 --port 8765``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from airflow_provider_edgeinfer.emulator.state import VENDORS, EmulatorState, Faults, Timing

#: Not 8080 (Airflow's API server), 8793 (its worker log server) or 8794 (its triggerer log server):
#: the emulator runs beside a local Airflow.
DEFAULT_PORT = 8765


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_edgeinfer.emulator",
        description="Serve emulated Theta EdgeCloud, OctoAI, infrai and OmniTensor APIs on loopback.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port to listen on (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--print-connections",
        action="store_true",
        help="print the AIRFLOW_CONN_* lines for this emulator and exit",
    )
    parser.add_argument("--queued-seconds", type=float, default=0.2, help="time a job waits before running")
    parser.add_argument("--running-seconds", type=float, default=1.0, help="time a job runs")
    parser.add_argument(
        "--running-seconds-max",
        type=float,
        default=None,
        help="if set, each job runs a uniform random time between the two",
    )
    parser.add_argument("--octoai-retention-seconds", type=float, default=24 * 3600.0)
    parser.add_argument("--omnitensor-token-ttl", type=float, default=3600.0)
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault and timing dice")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse, in each vendor's error shape, any request the vendor contract does not allow "
        "(unknown body keys or query parameters, wrong types, an LLM request that would stream unasked)",
    )
    parser.add_argument(
        "--keys-file",
        type=Path,
        default=None,
        help='JSON file of the keys to accept, e.g. {"theta": "...", "omnitensor_secret": "..."}; '
        "a file, not flags, so that keys never show in the process list. With it, the startup banner "
        "prints no key (read the connections from GET /_emulator/connections)",
    )
    for name in Faults.__dataclass_fields__:
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=str if name == "mangle_methods" else float,
            default=None,
            help=f"fault setting {name}, for every vendor",
        )
    return parser.parse_args(argv)


def read_keys_file(path: Path) -> tuple[dict[str, str], str | None]:
    """Vendor keys and the OmniTensor secret from ``path``; unknown names are an error."""
    raw: Any = json.loads(path.read_text())
    if not isinstance(raw, dict) or not all(isinstance(v, str) and v for v in raw.values()):
        raise ValueError(f"{path}: expected a JSON object of non-empty strings")
    unknown = set(raw) - set(VENDORS) - {"omnitensor_secret"}
    if unknown:
        raise ValueError(
            f"{path}: unknown names {sorted(unknown)} (known: {', '.join(VENDORS)}, omnitensor_secret)"
        )
    secret = raw.pop("omnitensor_secret", None)
    return raw, secret


def build_state(args: argparse.Namespace) -> EmulatorState:
    state = EmulatorState(
        seed=args.seed,
        octoai_retention_seconds=args.octoai_retention_seconds,
        omnitensor_token_ttl=args.omnitensor_token_ttl,
        strict=args.strict,
    )
    if args.keys_file is not None:
        keys, secret = read_keys_file(args.keys_file)
        state.keys.update(keys)
        if secret is not None:
            state.omnitensor_secret = secret
    for vendor in VENDORS:
        state.timing[vendor] = Timing(args.queued_seconds, args.running_seconds, args.running_seconds_max)
        state.faults[vendor].update(
            {
                name: getattr(args, name)
                for name in Faults.__dataclass_fields__
                if getattr(args, name) is not None
            }
        )
    return state


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print("the emulator only listens on loopback (127.0.0.1, localhost or ::1)", file=sys.stderr)
        return 2
    try:
        state = build_state(args)
    except (OSError, ValueError) as exc:
        print(f"cannot read the keys file: {exc}", file=sys.stderr)
        return 2
    from airflow_provider_edgeinfer.emulator.app import connections, create_app

    base = f"http://{args.host}:{args.port}"
    lines = [f"export {k}='{v}'" for k, v in connections(base, state).items()]
    if args.print_connections:
        print("\n".join(lines))
        return 0
    import uvicorn

    if args.keys_file is None:
        print(
            f"edgeinfer emulator on {base} (vendors: {', '.join(VENDORS)}"
            f"{'; strict' if args.strict else ''}); point Airflow at it with:",
            flush=True,
        )
        print("\n".join(lines), flush=True)
    else:
        # Keys chosen by the caller are real secrets to it: never echo them.
        print(f"edgeinfer emulator on {base}; connections: GET {base}/_emulator/connections", flush=True)
    uvicorn.run(create_app(state), host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
