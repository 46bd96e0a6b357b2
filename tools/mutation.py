"""Mutation testing of the code that is most expensive to get wrong: ``make mutation``.

Each target module is changed in one small way at a time (a mutant); a mutant the covering tests
still pass with is a *survivor*, i.e. a behaviour nothing checks. A small script rather than
mutmut or cosmic-ray, because this run must:

- name a mutant by module, function and mutation (``_reattach``, ``'!=' -> '=='``), not by line
  number, so that the table of known equivalent mutants below survives edits to the code;
- run each module against only the tests that cover it, and each mutant against only the tests that
  execute its lines (found by one traced baseline run), so that it ends in under 30 minutes on
  2 cores;
- never touch the work tree: every worker mutates its own copy of the last commit (``--worktree``:
  of the work tree), and the copy's directory is put first on ``PYTHONPATH`` (ahead of the editable
  install), which subprocesses that the tests start inherit too.

Mutations (AST-based, each spliced into the original text): comparison swaps, ``and``/``or``,
dropping ``not``, boolean flips, ``n -> n+1``, altered strings, one alternative dropped from a regex
group (also inside an f-string pattern), one element dropped from a tuple/list/set/dict literal
(which covers ``"sep".join([...])``), one keyword argument dropped from a call, a statement replaced
by ``pass``, ``return X -> return None``, ``if c:`` to ``if True:``/``if False:``. Left alone:
docstrings, annotations, imports, logging calls, the message strings (and hints) of ``raise``.

Kept out so that a full run stays near 30 minutes on 2 busy cores (``--every`` keeps the last
kind): altering a constant that is an element of a literal (dropping the element is the same test),
the elements of a tuple nested in a literal (one record of a table: dropping the record covers it),
the middle entries of a literal of more than 8 constants (its first and last stand for them),
deleting the only assignment of a name in a function (it only raises NameError), and on each line
all but the first mutant of a repeating kind: constants, operators, drops of one literal's elements
or one call's keywords, ``if True``/``if False`` (``if False`` is kept: a guard that never fires).
Regex alternatives, deletions, ``return None`` and boolean flips are all kept.

Each mutant runs the tests that execute its lines, the first test file's apart from the rest (one
file mostly kills it, and the others are not even collected); a line that runs only at import (a
constant, a model field) runs the tests of the lines that read its name, else the whole selection.
Usage: ``.venv/bin/python tools/mutation.py [--module clients/redact.py] [--list] [--jobs 2]``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "airflow_provider_edgeinfer"
# README.md: tests/test_readme.py runs its Python blocks.
COPIED = (PACKAGE, "tests", "dags_examples", "pyproject.toml", "setup.cfg", "conftest.py", "README.md")
#: A mutant's tests may take this many times the traced baseline of the whole selection, plus slack.
TIMEOUT_FACTOR = 2.0
TIMEOUT_SLACK = 20.0
#: One stage of a mutant's tests may take this many times its tests' traced time, plus pytest's start.
STAGE_SLACK = 30.0


@dataclass(frozen=True)
class Target:
    module: str  # path inside the package
    tests: tuple[str, ...]  # paths, globs or node ids; the ones that do not exist (yet) are skipped
    names: frozenset[str] = frozenset()  # functions, classes or constants to mutate; empty: all


_NEVER_PAY_TWICE = frozenset(
    {"fingerprint", "idempotency_key", "STATE_KEY", "_record", "_reattach", "_submit", "_fingerprint"}
)
TARGETS = (
    Target(
        "operators/inference.py",
        (
            "tests/operators/test_never_pay_twice.py",
            "tests/operators/test_execute_complete.py",
            "tests/operators/test_inference_bad_input.py",
            "tests/operators/test_upload.py",
            "tests/dags/test_operator_dags.py",
        ),
        _NEVER_PAY_TWICE | {"_upload_input_files"},
    ),
    Target(
        "batch/manifest.py",
        (
            "tests/batch/test_manifest.py",
            "tests/batch/test_units.py",
            "tests/batch/test_crash.py",
            "tests/dags/test_batch_dags.py",
        ),
    ),
    Target(
        "clients/redact.py",
        (
            "tests/clients/test_redact.py",
            "tests/clients/test_presigned.py",
            "tests/triggers/test_event_privacy.py",
            "tests/security/test_secret_scan.py::test_errors_and_reprs_carry_no_credential",
        ),
    ),
    Target(
        "outputs.py",
        (
            "tests/operators/test_outputs.py",
            "tests/operators/test_execute_complete.py",
            "tests/operators/test_inference_bad_input.py",
            "tests/dags/test_operator_dags.py",
        ),
    ),
    Target(
        "clients/retry.py",
        ("tests/clients/test_retry.py", "tests/clients/test_transport.py", "tests/hooks/test_hooks_base.py"),
        # The retry policy (the module's pacing half is tested by tests/clients/test_ratelimit.py).
        frozenset(
            {
                "Safety",
                "RETRYABLE_STATUSES",
                "RetrySettings",
                "parse_retry_after",
                "backoff_delay",
                "is_retryable",
                "is_transient",
                "wait_seconds",
                "retry_kwargs",
            }
        ),
    ),
    Target(
        "clients/core.py",
        (
            "tests/clients/test_job_model.py",
            # The Theta state table; the other clients map states the same way, through map_state.
            "tests/clients/test_theta.py",
            "tests/operators/test_execute_complete.py",
            "tests/triggers/test_inference_trigger.py",
        ),
        # The job model every vendor's states map onto.
        frozenset({"JobState", "Job", "map_state"}),
    ),
)

#: (module, scope, mutation) -> why no test can tell the mutant from the original.
EQUIVALENT: dict[tuple[str, str, str], str] = {
    ("batch/manifest.py", "ItemRecord.transient", "False -> True"): (
        "decode always passes transient; the records built with the default are intent, sub and done "
        "records, whose flag nothing reads (only err records are resent by it)"
    ),
    ("batch/manifest.py", "_wins", "new.round > old.round -> new.round >= old.round"): (
        "only reached when new.round != old.round, where > and >= agree"
    ),
    ("batch/manifest.py", "Header.rounds", "drop keyword default_factory=list of Field(...)"): (
        "the default is never read: BatchOperator builds the one Header with rounds=[...], and every "
        "batch.json written (model_dump_json writes every field) has rounds"
    ),
    (
        "batch/manifest.py",
        "Manifest.write_header",
        "drop keyword indent=1 of header.model_dump_json(...)",
    ): (
        "whitespace of batch.json only: its one reader is Header.model_validate_json, and nothing "
        "(code, README) reads its bytes by position"
    ),
    (
        "batch/manifest.py",
        "encode",
        "drop keyword separators=(',', ':') of json.dumps(...)",
    ): (
        "whitespace inside a journal record only: json.dumps without indent still writes one line, and "
        "decode parses each line with json.loads"
    ),
    ("batch/manifest.py", "Manifest.write_segment", "delete: self._journal_ready = True"): (
        "a cache of the journal directory's existence: without it mkdir(exist_ok=True) runs on every "
        "write, with the same result"
    ),
    ("batch/manifest.py", "Manifest.write_segment", "True -> False"): (
        "a cache of the journal directory's existence: without it mkdir(exist_ok=True) runs on every "
        "write, with the same result"
    ),
    ("outputs.py", "_CHUNK", "1024 -> 1025"): (
        "the size of the pieces a download is read in: the same bytes are written in the same order"
    ),
    ("outputs.py", "prepare_output_dir", "delete: handle.write(b'ok')"): (
        "the probe's content is never read: opening it for writing creates it (or fails), and it is "
        "deleted at once"
    ),
    ("outputs.py", "prepare_output_dir", "b'ok' -> b'XXokXX'"): (
        "the probe's content is never read: it is deleted at once"
    ),
    ("clients/retry.py", "Safety.IDEMPOTENT", "'idempotent' -> 'XXidempotentXX'"): (
        "Safety members are only compared by identity (`is`); no code reads .value or builds Safety(...)"
    ),
    ("clients/retry.py", "Safety.CREATES_WORK", "'creates_work' -> 'XXcreates_workXX'"): (
        "Safety members are only compared by identity (`is`); no code reads .value or builds Safety(...)"
    ),
    ("clients/retry.py", "Safety.NEVER", "'never' -> 'XXneverXX'"): (
        "Safety members are only compared by identity (`is`); no code reads .value or builds Safety(...)"
    ),
    ("clients/retry.py", "RETRYABLE_STATUSES", "drop element 408 of {408, 409, 429, 500, 502, 503, 504}"): (
        "is_retryable answers a 408 earlier (status == 408 for any VendorAPIError, ServerError "
        "included) and the set has no other reader"
    ),
    ("clients/retry.py", "parse_retry_after", "if not value -> if False"): (
        "an empty value fails float() and then parsedate_to_datetime with ValueError: None all the same"
    ),
    (
        "clients/retry.py",
        "parse_retry_after",
        "drop element IndexError of (TypeError, ValueError, IndexError, OverflowError)",
    ): (
        "Python >= 3.11's date parser (requires-python) indexes only non-empty split() tokens: "
        "malformed text raises ValueError; IndexError is kept for older parsers' bugs"
    ),
    ("clients/retry.py", "parse_retry_after", "if when is None -> if False"): (
        "since Python 3.10 parsedate_to_datetime raises ValueError instead of returning None"
    ),
}


@dataclass(frozen=True)
class Mutant:
    module: str
    scope: str
    line: int
    end_line: int
    start: int  # byte offsets of the replaced text
    end: int
    replacement: bytes
    description: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.module, self.scope, self.description)

    def apply(self, source: bytes) -> bytes:
        return source[: self.start] + self.replacement + source[self.end :]

    def mutated_line(self, source: bytes) -> str:
        lines = self.apply(source).decode().splitlines()
        return lines[self.line - 1].strip() if self.line <= len(lines) else ""


# -- mutant generation -------------------------------------------------------------------------

_SWAPS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
_REGEX_CALLS = {
    f"re.{f}" for f in ("compile", "sub", "subn", "search", "match", "fullmatch", "findall", "split")
}
_DELETABLE = (
    ast.Expr,
    ast.Assign,
    ast.AugAssign,
    ast.AnnAssign,
    ast.Raise,
    ast.Delete,
    ast.Assert,
    ast.Continue,
    ast.Break,
)
_GROUP_OPEN = re.compile(r"\((?:\?(?::|=|!|<=|<!|P<\w+>|[aiLmsux-]+:|(?P<flags>[aiLmsux]+\))))?")


def _short(node: ast.AST) -> str:
    text = ast.unparse(node).split("\n")[0]
    return text if len(text) <= 90 else text[:87] + "..."


def _is_logger(node: ast.expr) -> bool:
    """``log``, ``logger``, ``self.log`` or an attribute of one (``self.log.info``)."""
    while isinstance(node, ast.Attribute):
        if node.attr == "log" and isinstance(node.value, ast.Name) and node.value.id == "self":
            return True
        node = node.value
    return isinstance(node, ast.Name) and node.id in ("log", "logger")


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def regex_drops(pattern: str, whole: bool = True) -> Iterator[tuple[str, str]]:
    """(alternative, pattern without it) for each ``|``-alternative of each group of ``pattern``;
    not ``whole``: a piece of an f-string, whose groups closed inside it are all that is known."""
    stack: list[tuple[int, list[int]]] = [(0, [])]  # open groups: where the content starts, its bars
    groups: list[tuple[int, int, list[int]]] = []
    i, in_class = 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            i += 1
            i += pattern.startswith("^", i)
            i += pattern.startswith("]", i)  # a "]" first in a class is a literal
            continue
        elif char == "(":
            opened = _GROUP_OPEN.match(pattern, i)
            assert opened is not None  # it matches any "("
            if opened.group("flags") is None:  # "(?i)" sets flags: no group
                stack.append((opened.end(), []))
            i = opened.end()
            continue
        elif char == "|":
            stack[-1][1].append(i)
        elif char == ")" and len(stack) > 1:
            start, bars = stack.pop()
            groups.append((start, i, bars))
        i += 1
    if whole:
        groups.append((0, len(pattern), stack[0][1]))
    for start, end, bars in groups:
        edges = [start - 1, *bars, end]
        for k in range(len(bars) + 1 if bars else 0):
            alternative = pattern[edges[k] + 1 : edges[k + 1]]
            cut = (edges[k] + 1, edges[k + 1] + 1) if k < len(bars) else (edges[k], edges[k + 1])
            yield alternative, pattern[: cut[0]] + pattern[cut[1] :]


class _Collector:
    """Walks one module's AST and records every mutant inside the selected scopes."""

    def __init__(self, module: str, source: bytes, names: frozenset[str]) -> None:
        self.module, self.source, self.names = module, source, names
        self.starts = [0]
        for line in source.splitlines(keepends=True):
            self.starts.append(self.starts[-1] + len(line))
        self.mutants: dict[tuple[int, int, bytes], Mutant] = {}
        self.regexes: set[int] = set()  # ids of the strings and f-strings that are regex patterns
        self.in_table: set[int] = set()  # ids of constants that are elements of a literal
        self.bound: dict[str, int] = {}  # how often the current function assigns each name

    def add(self, scope: tuple[str, ...], node: ast.expr | ast.stmt, text: str, description: str) -> None:
        if self.names and not self.names & set(scope):
            return
        end_line, end_col = node.end_lineno or node.lineno, node.end_col_offset or 0
        # Offsets are UTF-8 byte offsets, hence the splice on bytes.
        start, end = self.starts[node.lineno - 1] + node.col_offset, self.starts[end_line - 1] + end_col
        scope_name = ".".join(scope) or "<module>"
        mutant = Mutant(
            self.module, scope_name, node.lineno, end_line, start, end, text.encode(), description
        )
        self.mutants.setdefault((start, end, mutant.replacement), mutant)

    def expr(self, scope: tuple[str, ...], node: ast.expr, new: ast.expr, description: str) -> None:
        self.add(scope, node, f"({ast.unparse(new)})", description)

    def body(self, stmts: list[ast.stmt], scope: tuple[str, ...], in_function: bool) -> None:
        for stmt in stmts[1:] if stmts and _is_docstring(stmts[0]) else stmts:
            self.stmt(stmt, scope, in_function)

    def stmt(self, node: ast.stmt, scope: tuple[str, ...], in_function: bool) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom | ast.Global | ast.Nonlocal):
            return
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) and _is_logger(node.value.func):
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            inner, outer_bound = (*scope, node.name), self.bound
            for default in [*node.args.defaults, *node.args.kw_defaults]:
                if default is not None:
                    self.visit(default, inner, in_raise=False)
            stores = [
                n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
            ]
            self.bound = {name: stores.count(name) for name in stores}
            self.body(node.body, inner, in_function=True)
            self.bound = outer_bound
            return
        if isinstance(node, ast.ClassDef):
            self.body(node.body, (*scope, node.name), in_function=False)
            return
        if not in_function:
            target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
            if isinstance(target, ast.Name):  # a constant, or a class attribute / field
                scope = (*scope, target.id)
            if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
                return
        if in_function and isinstance(node, _DELETABLE) and not self._first_binding(node):
            self.add(scope, node, "pass", f"delete: {_short(node)}")
        returned = node.value if isinstance(node, ast.Return) else None
        if returned is not None and not (isinstance(returned, ast.Constant) and returned.value is None):
            self.add(scope, node, "return None", f"return {_short(returned)} -> return None")
        if isinstance(node, ast.If) and not isinstance(node.test, ast.Constant):
            for value in (True, False):
                self.expr(scope, node.test, ast.Constant(value), f"if {_short(node.test)} -> if {value}")
        in_raise = isinstance(node, ast.Raise)
        for name, value in ast.iter_fields(node):
            if name in ("annotation", "returns", "decorator_list", "targets", "target"):
                continue  # types, and the names assigned to
            for child in value if isinstance(value, list) else [value]:
                if isinstance(child, ast.stmt):
                    self.stmt(child, scope, in_function)
                elif isinstance(child, ast.expr):
                    self.visit(child, scope, in_raise)
                elif isinstance(child, ast.excepthandler | ast.withitem | ast.match_case):
                    for sub in ast.iter_child_nodes(child):
                        if isinstance(sub, ast.stmt):
                            self.stmt(sub, scope, in_function)
                        elif isinstance(sub, ast.expr) and sub is not getattr(child, "optional_vars", None):
                            self.visit(sub, scope, in_raise)

    def _first_binding(self, node: ast.stmt) -> bool:
        """An assignment to a name bound nowhere else in the function: deleting it only raises NameError."""
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
        target = node.target if isinstance(node, ast.AnnAssign) else target
        return isinstance(target, ast.Name) and self.bound.get(target.id) == 1

    def visit(self, node: ast.expr, scope: tuple[str, ...], in_raise: bool) -> None:
        if isinstance(getattr(node, "ctx", None), ast.Store | ast.Del):
            return  # the names assigned to are not values
        if isinstance(node, ast.JoinedStr):
            self.fstring(node, scope)
            return
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                ops = [*node.ops[:i], _SWAPS[type(op)](), *node.ops[i + 1 :]]
                new = ast.Compare(node.left, ops, node.comparators)
                self.expr(scope, node, new, f"{_short(node)} -> {_short(new)}")
        elif isinstance(node, ast.BoolOp):
            new_bool = ast.BoolOp(ast.Or() if isinstance(node.op, ast.And) else ast.And(), node.values)
            self.expr(scope, node, new_bool, f"{_short(node)} -> {_short(new_bool)}")
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            self.expr(scope, node, node.operand, f"{_short(node)} -> {_short(node.operand)}")
        elif isinstance(node, ast.Constant):
            self.constant(node, scope, in_raise)
        elif isinstance(node, ast.Tuple | ast.List | ast.Set) and id(node) not in self.in_table:
            # Dropping an element covers altering a constant one; a tuple inside a literal is one
            # record of a table (dropping the record covers it); of a long table of constants,
            # dropping its first or last entry stands for dropping any.
            self.in_table.update(id(e) for e in node.elts if isinstance(e, ast.Constant | ast.Tuple))
            long_table = len(node.elts) > 8 and all(isinstance(e, ast.Constant) for e in node.elts)
            for i, elt in enumerate(node.elts):
                if long_table and 0 < i < len(node.elts) - 1:
                    continue
                rest = [*node.elts[:i], *node.elts[i + 1 :]]
                smaller = ast.Set(rest) if isinstance(node, ast.Set) else type(node)(rest, ast.Load())
                self.expr(scope, node, smaller, f"drop element {_short(elt)} of {_short(node)}")
        elif isinstance(node, ast.Dict):
            self.in_table.update(id(k) for k in node.keys if isinstance(k, ast.Constant))
            for i, key in enumerate(node.keys):
                kept = [k for j, k in enumerate(node.keys) if j != i]
                new_dict = ast.Dict(kept, [v for j, v in enumerate(node.values) if j != i])
                shown = _short(key) if key is not None else f"**{_short(node.values[i])}"
                self.expr(scope, node, new_dict, f"drop entry {shown} of {_short(node)}")
        elif isinstance(node, ast.Call):
            func = node.func
            if node.args and ast.unparse(func) in _REGEX_CALLS:
                self.regexes.add(id(node.args[0]))
            for i, kw in enumerate(node.keywords):
                if _is_logger(kw.value) or (in_raise and kw.arg == "hint"):
                    continue
                call = ast.Call(func, node.args, [k for j, k in enumerate(node.keywords) if j != i])
                shown = f"{kw.arg}={_short(kw.value)}" if kw.arg else f"**{_short(kw.value)}"
                self.expr(scope, node, call, f"drop keyword {shown} of {_short(func)}(...)")
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.visit(child, scope, in_raise)

    def fstring(self, node: ast.JoinedStr, scope: tuple[str, ...]) -> None:
        """Only a regex f-string is mutated (one alternative dropped), as a whole: in Python 3.11
        the positions of an f-string's parts are unreliable."""
        for i, part in enumerate(node.values):
            if (
                isinstance(part, ast.Constant)
                and isinstance(part.value, str)
                and self._is_regex(node, part.value)
            ):
                for alternative, pattern in regex_drops(part.value, whole=False):
                    values = [*node.values[:i], ast.Constant(pattern), *node.values[i + 1 :]]
                    self.expr(scope, node, ast.JoinedStr(values), f"regex: drop alternative {alternative!r}")

    def _is_regex(self, node: ast.expr, value: str) -> bool:
        return id(node) in self.regexes or ("|" in value and "(?" in value)

    def constant(self, node: ast.Constant, scope: tuple[str, ...], in_raise: bool) -> None:
        value = node.value
        if id(node) in self.in_table and not isinstance(value, bool):
            return
        if isinstance(value, bool):
            self.expr(scope, node, ast.Constant(not value), f"{value} -> {not value}")
        elif isinstance(value, int | float):
            self.expr(scope, node, ast.Constant(value + 1), f"{value!r} -> {value + 1!r}")
        elif isinstance(value, str | bytes) and value and not in_raise:
            drops = list(regex_drops(value)) if isinstance(value, str) and self._is_regex(node, value) else []
            for alternative, pattern in drops:
                self.expr(scope, node, ast.Constant(pattern), f"regex: drop alternative {alternative!r}")
            if not drops:
                altered = "XX" + value + "XX" if isinstance(value, str) else b"XX" + value + b"XX"
                self.expr(scope, node, ast.Constant(altered), f"{_short(node)} -> {altered!r}")


def _kind(mutant: Mutant) -> str:
    """Mutants of one kind on one line mostly test the same thing (a line's third altered string
    tells little more than its first): see :func:`collect`."""
    text = mutant.description
    if text.startswith(("regex", "delete", "return", "True ->", "False ->")):
        return text  # each its own kind: all are kept
    if text.startswith(("drop", "if ")):
        return text.split(" ")[0] + text.split(" ")[1]
    return "constant" if re.match(r"(-?[\d.]+|b?'.*'|b?\".*\") -> ", text) else "operator"


def collect(target: Target, root: Path, every: bool = False) -> list[Mutant]:
    """The target's mutants; unless ``every``, one per line and kind for the kinds that repeat."""
    source = (root / PACKAGE / target.module).read_bytes()
    collector = _Collector(target.module, source, target.names)
    collector.body(ast.parse(source).body, (), in_function=False)
    mutants = sorted(collector.mutants.values(), key=lambda m: (m.start, m.end, m.description))
    first = {(m.line, _kind(m)): m for m in reversed(mutants)}
    return [m for m in mutants if every or first[(m.line, _kind(m))] is m]


# -- running -----------------------------------------------------------------------------------

TRACE_PLUGIN = '''"""tools/mutation.py: which test executes which line of the module MUTATION_TRACE_FILE."""
import json, os, sys, threading

import pytest

_FILE = os.environ["MUTATION_TRACE_FILE"]
_hits: dict = {}
_order: list = []
_failed: list = []
_seconds: dict = {}
_test = ["<import>"]


def _line(frame, event, arg):
    if event == "line":
        _hits.setdefault(_test[0], set()).add(frame.f_lineno)
    return _line


def _call(frame, event, arg):
    if frame.f_code.co_filename != _FILE:
        return None
    _hits.setdefault(_test[0], set()).add(frame.f_lineno)
    return _line


sys.settrace(_call)
threading.settrace(_call)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    _test[0] = item.nodeid
    _order.append(item.nodeid)


def pytest_runtest_logreport(report):
    _seconds[report.nodeid] = _seconds.get(report.nodeid, 0.0) + report.duration
    if report.failed:
        _failed.append(report.nodeid)


def pytest_sessionfinish(session):
    hits = {k: sorted(v) for k, v in _hits.items()}
    with open(os.environ["MUTATION_TRACE_OUT"], "w") as out:
        json.dump({"order": _order, "hits": hits, "failed": _failed, "seconds": _seconds}, out)
'''


@dataclass
class Worker:
    """One private copy of the repository; only one mutant at a time runs in it."""

    home: Path
    root: Path  # what is copied: the snapshot of HEAD, or the work tree
    repo: Path = field(init=False)
    tmp: Path = field(init=False)

    def __post_init__(self) -> None:
        self.repo, self.tmp = self.home / "repo", self.home / "tmp"
        self.repo.mkdir(parents=True)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
        for name in COPIED:
            if (self.root / name).is_dir():
                shutil.copytree(self.root / name, self.repo / name, ignore=ignore)
            elif (self.root / name).exists():
                shutil.copy2(self.root / name, self.repo / name)
        (self.repo / "_mutation_trace.py").write_text(TRACE_PLUGIN)

    def module(self, module: str) -> Path:
        return self.repo / PACKAGE / module

    def set_source(self, module: str, source: bytes) -> None:
        # Same size and mtime second as a cached mutant: Python would run the stale bytecode.
        path = self.module(module)
        for cached in (path.parent / "__pycache__").glob(f"{path.stem}.*.pyc"):
            cached.unlink()
        path.write_bytes(source)

    def pytest(self, tests: list[str], timeout: float, env: dict[str, str] | None = None) -> tuple[str, str]:
        """('passed' | 'failed' | 'timeout' | 'error', output tail) of one pytest run in this copy."""
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir()
        # Each run gets its own AIRFLOW_HOME (tests/conftest.py makes one under TMPDIR).
        child = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        path = os.pathsep.join(p for p in (str(self.repo), os.environ.get("PYTHONPATH", "")) if p)
        child.update(env or {}, PYTHONPATH=path, TMPDIR=str(self.tmp))
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests]
        # This interpreter running pytest on a fixed argv; its own session, to kill what the tests start.
        with subprocess.Popen(  # noqa: S603
            argv,
            cwd=self.repo,
            env=child,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        ) as proc:
            timed_out = False
            try:
                out, _ = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                # Whatever is left of the run, the tests' own subprocesses included.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            if timed_out:
                proc.communicate()
                return "timeout", ""
        tail = "\n".join(out.decode(errors="replace").splitlines()[-25:])
        # 1: a test failed; 2: a collection error; 3 or 4: a plugin or conftest (which import the
        # package) failed to load: all of them the mutant's doing, since the baseline passed.
        codes = {0: "passed", 1: "failed", 2: "failed", 3: "failed", 4: "failed"}
        return codes.get(proc.returncode, "error"), tail


def selection(target: Target, root: Path) -> list[str]:
    """The target's test entries that exist under ``root``, in the order given."""
    found: list[str] = []
    for entry in target.tests:
        path, sep, node = entry.partition("::")
        matches = sorted(root.glob(path)) if any(c in path for c in "*?[") else [root / path]
        found += [f"{m.relative_to(root)}{sep}{node}" for m in matches if m.exists()]
    return found


@dataclass
class Plan:
    """A target after its traced baseline: the tests to run for each line of the module."""

    target: Target
    tests: list[str]
    root: Path
    timeout: float = 0.0
    order: list[str] = field(default_factory=list)
    hits: dict[str, set[int]] = field(default_factory=dict)
    uses: dict[str, set[int]] = field(default_factory=dict)  # name -> lines that read it
    seconds: dict[str, float] = field(default_factory=dict)  # test -> its traced duration

    def __post_init__(self) -> None:
        for node in ast.walk(ast.parse((self.root / PACKAGE / self.target.module).read_bytes())):
            name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)
            if isinstance(name, str) and isinstance(getattr(node, "ctx", None), ast.Load):
                self.uses.setdefault(name, set()).add(getattr(node, "lineno", 0))

    def _covering(self, lines: set[int]) -> list[str]:
        return [test for test in self.order if self.hits.get(test, set()) & lines]

    def stages(self, mutant: Mutant) -> list[list[str]]:
        """The tests that execute the mutant's lines: those of the first file, then the rest (a
        mutant is mostly killed by the first file; not collecting the others saves seconds)."""
        own = set(range(mutant.line, mutant.end_line + 1))
        # A line that only runs at import (a constant, a field): the tests of the lines that read it.
        uses = self.uses.get(mutant.scope.rsplit(".", 1)[-1], set()) - own
        covering = self._covering(own) or self._covering(uses) or self.tests
        first = covering[0].partition("::")[0]
        rest = [test for test in covering if test.partition("::")[0] != first]
        return [covering[: len(covering) - len(rest)], rest] if rest else [covering]


def baseline(plan: Plan, worker: Worker) -> str | None:
    """Run the selection once, unmutated and traced; an error message if it does not pass."""
    module = plan.target.module
    if not plan.tests:
        return f"{module}: none of its test paths exists"
    out_file = worker.home / "trace.json"
    env = {"MUTATION_TRACE_FILE": str(worker.module(module)), "MUTATION_TRACE_OUT": str(out_file)}
    started = time.monotonic()
    outcome, tail = worker.pytest(["-p", "_mutation_trace", *plan.tests], timeout=3600, env=env)
    elapsed = time.monotonic() - started
    trace = json.loads(out_file.read_text()) if out_file.exists() else {}
    if outcome == "failed" and trace:
        # Tracing slows every thread (the emulator's too): a test with a deadline may fail only then.
        outcome, tail = worker.pytest(["-x", *plan.tests], timeout=3600)
        if outcome == "passed":
            slow = ", ".join(trace["failed"])
            print(f"baseline {module}: passed, but failed when traced: {slow}", file=sys.stderr, flush=True)
    if outcome != "passed":
        return f"{module}: the baseline run of its tests did not pass ({outcome}):\n{tail}"
    plan.order, plan.hits = trace["order"], {k: set(v) for k, v in trace["hits"].items()}
    plan.seconds = trace.get("seconds", {})
    if not plan.hits:
        return f"{module}: the tests never ran {worker.module(module)}; the copy is not what they import"
    plan.timeout = TIMEOUT_FACTOR * elapsed + TIMEOUT_SLACK
    print(f"baseline {module}: {len(plan.order)} tests, {elapsed:.0f} s", file=sys.stderr, flush=True)
    return None


def run_mutant(mutant: Mutant, plan: Plan, worker: Worker, original: bytes) -> str:
    worker.set_source(mutant.module, mutant.apply(original))
    try:
        deadline = time.monotonic() + plan.timeout
        for tests in plan.stages(mutant):
            # A mutant that hangs a stage is stopped once the stage's own tests overran their traced
            # time (tracing only slows them), not after the whole selection's: hangs end sooner.
            own = STAGE_SLACK + TIMEOUT_FACTOR * sum(plan.seconds.get(test, 0.0) for test in tests)
            left = deadline - time.monotonic()
            outcome, _ = worker.pytest(["-x", *tests], max(1.0, min(left, own) if plan.seconds else left))
            if outcome != "passed":
                break
    finally:
        worker.set_source(mutant.module, original)
    return {"passed": "survived", "failed": "killed"}.get(outcome, outcome)


# -- reporting ---------------------------------------------------------------------------------


def report(results: list[tuple[Mutant, str]], sources: dict[str, bytes], fail_under: float | None) -> int:
    for mutant, outcome in results:
        if outcome in ("survived", "error"):
            label = "SURVIVED" if outcome == "survived" else "ERROR"  # error: pytest could not run
            print(
                f"{label} {mutant.module} {mutant.scope} line {mutant.line}: {mutant.description}"
                f" | {mutant.mutated_line(sources[mutant.module])}"
            )
    used = {m.key for m, _ in results}
    for key in sorted(k for k in EQUIVALENT.keys() - used if k[0] in sources):
        print(f"note: the equivalent-mutant entry {key} matches no mutant any more")
    columns = ("mutants", "killed", "survived", "equivalent", "timeout")
    print(f"\n{'module':30} " + " ".join(f"{c:>10}" for c in columns) + f" {'score':>6}")
    totals = dict.fromkeys(columns, 0)
    for module in dict.fromkeys(m.module for m, _ in results):
        outcomes = [o for m, o in results if m.module == module]
        counts = {"mutants": len(outcomes), "survived": outcomes.count("survived") + outcomes.count("error")}
        counts |= {c: outcomes.count(c) for c in ("killed", "equivalent", "timeout")}
        totals = {c: totals[c] + counts[c] for c in columns}
        print(f"{module:30} " + " ".join(f"{counts[c]:>10}" for c in columns) + f" {_score(counts):>6.2f}")
    n, caught = totals["mutants"], totals["killed"] + totals["timeout"]
    print(f"raw score {caught / n if n else 1.0:.2f} (equivalent mutants counted as survivors)")
    score = _score(totals)
    print("RESULT " + " ".join(f"{c}={totals[c]}" for c in columns) + f" score={score:.2f}")
    return 1 if fail_under is not None and score < fail_under else 0


def _score(counts: dict[str, int]) -> float:
    relevant = counts["mutants"] - counts["equivalent"]
    return (counts["killed"] + counts["timeout"]) / relevant if relevant else 1.0


def snapshot(home: Path) -> Path:
    """The committed tree (HEAD) of the copied paths: edits in progress in the work tree, a test
    being written or a file another tool mutates in place never reach a run."""
    root, git = home / "snapshot", shutil.which("git") or "git"
    ls_tree = [git, "ls-tree", "--name-only", "HEAD"]
    listed = subprocess.run(ls_tree, cwd=REPO, capture_output=True, check=True)  # noqa: S603
    paths = [name for name in COPIED if name in listed.stdout.decode().split()]
    tar = subprocess.run([git, "archive", "HEAD", *paths], cwd=REPO, capture_output=True, check=True)  # noqa: S603
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as archive:
        archive.extractall(root, filter="data")
    return root


def run(
    targets: list[Target], mutants: list[Mutant], root: Path, home: Path, jobs: int
) -> tuple[list[tuple[Mutant, str]], list[str]]:
    """Baselines first, then every mutant not known to be equivalent, ``jobs`` at a time."""
    started = time.monotonic()
    sources = {t.module: (root / PACKAGE / t.module).read_bytes() for t in targets}
    workers: queue.Queue[Worker] = queue.Queue()
    for i in range(jobs):
        workers.put(Worker(home / f"w{i}", root))

    def on_baseline(plan: Plan) -> str | None:
        worker = workers.get()
        try:
            return baseline(plan, worker)
        finally:
            workers.put(worker)

    def on_mutant(mutant: Mutant) -> str:
        worker = workers.get()
        try:
            return run_mutant(mutant, plans[mutant.module], worker, sources[mutant.module])
        finally:
            workers.put(worker)

    plans = {t.module: Plan(t, selection(t, root), root) for t in targets}
    with ThreadPoolExecutor(jobs) as pool:
        verdicts = dict(zip(plans, pool.map(on_baseline, plans.values()), strict=True))
        errors = [error for error in verdicts.values() if error]
        for error in errors:
            print(f"ABORTED {error}", flush=True)
        todo = [m for m in mutants if not verdicts[m.module]]
        results = [(m, "equivalent") for m in todo if m.key in EQUIVALENT]
        running = [(m, pool.submit(on_mutant, m)) for m in todo if m.key not in EQUIVALENT]
        for done, (mutant, future) in enumerate(running, 1):
            results.append((mutant, future.result()))
            print(
                f"[{done}/{len(running)} {time.monotonic() - started:.0f}s] {results[-1][1]:8} "
                f"{mutant.module}:{mutant.line} {mutant.scope}: {mutant.description}",
                file=sys.stderr,
                flush=True,
            )
    return results, errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--module", action="append", default=[], help="e.g. clients/redact.py (repeatable)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel pytest runs")
    parser.add_argument("--list", action="store_true", help="list the mutants without running them")
    parser.add_argument("--max-mutants", type=int, default=None, help="at most this many per module")
    parser.add_argument("--every", action="store_true", help="all mutants of a kind on a line, not one")
    parser.add_argument("--fail-under", type=float, default=None, help="exit 1 below this score")
    parser.add_argument("--worktree", action="store_true", help="test the work tree, not the last commit")
    args = parser.parse_args(argv)
    unknown = set(args.module) - {t.module for t in TARGETS}
    if unknown:
        parser.error(f"unknown module(s) {sorted(unknown)}; known: {[t.module for t in TARGETS]}")
    targets = [t for t in TARGETS if not args.module or t.module in args.module]
    started, home = time.monotonic(), Path(tempfile.mkdtemp(prefix="edgeinfer-mutation-"))
    try:
        root = REPO if args.worktree else snapshot(home)
        sources = {t.module: (root / PACKAGE / t.module).read_bytes() for t in targets}
        mutants = [m for t in targets for m in collect(t, root, args.every)[: args.max_mutants]]
        if args.list:
            for m in mutants:
                flag = " [equivalent]" if m.key in EQUIVALENT else ""
                print(f"{m.module} {m.scope} line {m.line}: {m.description}{flag}")
            print(f"{len(mutants)} mutants")
            return 0
        results, errors = run(targets, mutants, root, home, max(1, args.jobs))
    finally:
        shutil.rmtree(home, ignore_errors=True)
    order = [t.module for t in targets]
    results.sort(key=lambda r: (order.index(r[0].module), r[0].start))
    print(f"ran in {time.monotonic() - started:.0f} s with {args.jobs} jobs", flush=True)
    status = report(results, sources, args.fail_under)
    return 1 if errors else status


if __name__ == "__main__":
    sys.exit(main())
