"""Editing traces (shared/data/editing-traces, beside the project root; see its README).

DISTSPACE_TRACES overrides the folder, for a checkout that keeps the traces elsewhere.
"""

from __future__ import annotations

import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path

from benchmarks.registry import BenchmarkError

TRACES_ENV = "DISTSPACE_TRACES"

Patch = tuple[int, int, str]  # (position in code points, code points deleted, text inserted)


class TraceNotFound(BenchmarkError):
    pass


def traces_dir() -> Path:
    override = os.environ.get(TRACES_ENV)
    return Path(override) if override else Path(__file__).resolve().parents[2] / "shared/data/editing-traces"


def sequential_trace_path(name: str) -> Path:
    path = traces_dir() / "sequential" / f"{name}.json.gz"
    if not path.is_file():
        raise TraceNotFound(f"no editing trace at {path} (set {TRACES_ENV} to the editing-traces folder)")
    return path


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
    """The trace's first `limit` patches (all for None), flattened across transactions."""
    with gzip.open(sequential_trace_path(name), "rt", encoding="utf-8") as f:
        data = json.load(f)
    patches = [(pos, delete, insert) for txn in data["txns"] for pos, delete, insert in txn["patches"]]
    if limit is None or limit >= len(patches):
        return SequentialTrace(data["startContent"], patches, data["endContent"])
    prefix = patches[:limit]
    return SequentialTrace(data["startContent"], prefix, replay_str(data["startContent"], prefix))
