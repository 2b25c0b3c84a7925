"""Editing-trace files (shared/data/editing-traces, beside the project root; see its README):
where they are and how they read, for the simulator and the benchmarks alike.

A trace is ``KIND/NAME.json.gz``: ``sequential`` traces are one author's patches in order,
``concurrent`` ones a causal graph of transactions by several agents (simulations/traces.py
turns both into one shape). DISTSPACE_TRACES overrides the folder, for a checkout that keeps
the traces elsewhere.
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulations.errors import TraceError, TraceNotFound

TRACES_ENV = "DISTSPACE_TRACES"

Patch = tuple[int, int, str]  # (position in code points, code points deleted, text inserted)


def traces_dir() -> Path:
    override = os.environ.get(TRACES_ENV)
    return Path(override) if override else Path(__file__).resolve().parents[2] / "shared/data/editing-traces"


def trace_path(kind: str, name: str) -> Path:
    """The file of trace ``kind/name``.

    Raises:
        TraceNotFound: there is no such file.
    """
    path = traces_dir() / kind / f"{name}.json.gz"
    if not path.is_file():
        raise TraceNotFound(f"no editing trace at {path} (set {TRACES_ENV} to the editing-traces folder)")
    return path


def read_trace(kind: str, name: str) -> dict[str, Any]:
    """Trace ``kind/name``, parsed.

    Raises:
        TraceNotFound: there is no such file.
        TraceError: it cannot be read.
    """
    path = trace_path(kind, name)
    try:
        with gzip.open(path, "rt", encoding="utf-8") as file:
            data: dict[str, Any] = json.load(file)
    except OSError as error:
        raise TraceError(f"cannot read editing trace {path}: {error}") from error
    return data


@dataclass(frozen=True)
class SequentialTrace:
    start: str
    patches: list[Patch]
    expected: str  # the text after `patches`


def replay_str(start: str, patches: list[Patch]) -> str:
    """The text the patches produce by plain string editing: the reference for a prefix."""
    text = start
    for pos, delete, insert in patches:
        text = text[:pos] + insert + text[pos + delete :]
    return text


def load_sequential(name: str, limit: int | None = None) -> SequentialTrace:
    """The first ``limit`` patches of ``sequential/NAME`` (all for None), flattened across
    transactions.

    Raises:
        TraceNotFound: there is no such trace.
    """
    data = read_trace("sequential", name)
    patches = [(pos, delete, insert) for txn in data["txns"] for pos, delete, insert in txn["patches"]]
    if limit is None or limit >= len(patches):
        return SequentialTrace(data["startContent"], patches, data["endContent"])
    prefix = patches[:limit]
    return SequentialTrace(data["startContent"], prefix, replay_str(data["startContent"], prefix))
