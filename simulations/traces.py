"""Editing traces as causal graphs of transactions, and the editor that types them.

Both kinds of trace (see the editing-traces README) become one shape: transactions, each by an
agent, typed against the version named by its parents. A concurrent trace records that graph; a
sequential one is a chain, split into turns of ``edits_per_turn`` patches that the agents take
in rotation — the next author must receive the previous author's work before going on.

An ``Editor`` is one author's view: an Automerge document that holds exactly the transactions
its author has seen, so every change it makes depends on exactly the recorded parents. That is
the trace's real concurrency, and replaying a whole concurrent trace so reproduces its recorded
``endContent`` (checked for friendsforever and clownschool). Documents are never forked to a
past version: Automerge 0.7.4's ``fork_at`` panics (MissingOps) on histories where actors
alternate, as these do.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import native
from simulations.errors import TraceError
from simulations.trace_files import Patch, read_trace, replay_str

GENESIS = -1  # the transaction that made the text object (and typed a sequential trace's start)


@dataclass(frozen=True, slots=True)
class Txn:
    agent: int
    parents: tuple[int, ...]  # earlier transactions; empty means the genesis
    patches: tuple[Patch, ...]


@dataclass(frozen=True, slots=True)
class Trace:
    name: str
    start: str  # the text the genesis types
    txns: tuple[Txn, ...]
    agents: int
    expected: str | None  # the recorded text after ``txns``, when the trace says it

    def parents(self, index: int) -> tuple[int, ...]:
        return (self.txns[index].parents or (GENESIS,)) if index != GENESIS else ()


def load_trace(spec: str, limit: int, *, agents: int, edits_per_turn: int) -> Trace:
    """The first ``limit`` transactions of ``concurrent/NAME`` or ``sequential/NAME``; a
    sequential trace is split into turns among ``agents``.

    Raises:
        TraceError: no such trace.
    """
    kind, _, name = spec.partition("/")
    data = _read(kind, name)
    if kind == "sequential":
        patches = [tuple(p) for txn in data["txns"] for p in txn["patches"]][:limit]
        txns = tuple(
            Txn((i // edits_per_turn) % agents, (i - 1,) if i else (), (patch,)) for i, patch in enumerate(patches)
        )
        return Trace(spec, data["startContent"], txns, agents, replay_str(data["startContent"], patches))
    recorded = data["txns"]
    txns = tuple(Txn(t["agent"], tuple(t["parents"]), tuple(tuple(p) for p in t["patches"])) for t in recorded[:limit])
    complete = limit >= len(recorded)
    return Trace(spec, "", txns, data["numAgents"], data["endContent"] if complete else None)


@functools.lru_cache(maxsize=4)
def _read(kind: str, name: str) -> dict[str, Any]:
    """A trace file, parsed once per process (the largest takes a second to parse)."""
    return read_trace(kind, name)


class Editor:
    """One author's document: the genesis and exactly the transactions the author has seen."""

    def __init__(self, trace: Trace, actor: bytes) -> None:
        self.trace = trace
        self.document = native.Document(actor)
        self.seen: set[int] = set()

    def type(self, index: int, change_of: Callable[[int], bytes], time_s: int) -> bytes:
        """Bring in the parents of transaction ``index`` (and whatever they depend on), type
        it, and return its change; ``change_of`` gives an earlier transaction's change."""
        self.document.apply_changes([change_of(i) for i in self._unseen(self.trace.parents(index))])
        text = _text_object(self.document)
        for pos, delete, insert in self.trace.txns[index].patches:
            self.document.splice_text(text, pos, delete, insert)
        change_hash = self.document.commit(time=time_s)
        if change_hash is None:
            raise TraceError(f"transaction {index} of {self.trace.name} makes no change")
        self.seen.add(index)
        raw = self.document.get_change_by_hash(change_hash)
        assert raw is not None
        return raw

    def _unseen(self, roots: Sequence[int]) -> list[int]:
        """Every transaction reachable from ``roots`` that this editor has not seen, oldest first
        (trace order is causal order)."""
        found, stack = [], list(roots)
        while stack:
            index = stack.pop()
            if index not in self.seen:
                self.seen.add(index)
                found.append(index)
                stack.extend(self.trace.parents(index))
        return sorted(found)


def genesis_edit(start: str) -> Callable[[native.Document], None]:
    """The genesis: the text object every transaction types into, holding ``start``."""

    def edit(document: native.Document) -> None:
        text = document.put_object(native.ROOT, "text", "text")
        if start:
            document.splice_text(text, 0, 0, start)

    return edit


def text_of(document: native.Document) -> str:
    return document.text(_text_object(document))


def _text_object(document: native.Document) -> str:
    found = document.get(native.ROOT, "text")
    if not isinstance(found, native.ObjectRef):
        raise TraceError("the trace document has no text object: its genesis is missing")
    return found.id


def reference_text(trace: Trace, actors: Sequence[bytes]) -> str:
    """The text the trace replays to with no network in between: what every peer must hold.

    Automerge orders concurrent insertions by op id, and an op id depends only on what its
    author had seen, so this equals any faithful replay, however the changes travelled.
    """
    if trace.expected is not None:
        return trace.expected
    genesis = native.Document(actors[0])
    genesis_edit(trace.start)(genesis)
    genesis.commit(time=0)
    changes = {GENESIS: genesis.get_changes()[0]}
    editors = [Editor(trace, actor) for actor in actors]
    for index, txn in enumerate(trace.txns):
        changes[index] = editors[txn.agent].type(index, changes.__getitem__, 0)
    final = native.Document()
    final.apply_changes([changes[i] for i in sorted(changes)])
    return text_of(final)
