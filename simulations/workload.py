"""What the writers type, and how their nodes sign it.

A writer types one edit at a time into its node's typing buffer; the node signs everything
buffered into commits (one ``LocalCommit`` per doc) a little later. Only a signed commit is in
the store — acknowledged — so a crash loses the buffer and nothing else.

Two workloads share that shape:

- ``RandomEdits``: insertions and deletions at random places in a few text files, and now and
  then a file-tree entry in the index doc, typed in bursts with pauses between them.
- ``TraceReplay``: an editing trace split across the writers. A transaction is typed only once
  its author holds its parents (its recorded view), through the author's ``Editor``; a crash
  puts the lost transactions back in the author's queue, to be typed again after the restart.

The simulator asks a workload when each writer next types (``type``) and hands it the buffer
to sign (``sign``); workloads never touch the network.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import native
from protocol.events import LocalCommit
from protocol.identity import Identity
from protocol.memory import Edit, MemoryChangeStore
from protocol.space import INDEX_DOC_ID
from protocol.tips import SignedTip
from simulations.errors import TraceError
from simulations.loop import EPOCH_MS, US_PER_MS
from simulations.scenario import WorkloadOptions
from simulations.traces import GENESIS, Editor, Trace, genesis_edit, reference_text

WORDS = ("def ", "return ", "self", "x = 1", "import os\n", "# todo\n", "if ", "else:\n", "pass\n", "()", "{}", " ")
DELETE_SHARE = 0.25  # of text edits; keeps files from only ever growing
DELETE_CHARS_MAX = 6


def file_doc_id(number: int) -> bytes:
    return hashlib.sha256(b"simulation file %d" % number).digest()[:16]


Item = Any  # what a workload buffers for one typed edit; only that workload reads it


class Writer(Protocol):
    """What a workload needs of a writer's node."""

    identity: Identity
    store: MemoryChangeStore


@dataclass(frozen=True, slots=True)
class Typed:
    """The writer's next edit, if it typed one, and when it types the one after (None: it has
    nothing more to type, or is ``blocked`` until something arrives in its store)."""

    item: Item | None
    next_us: int | None
    blocked: bool = False


class RandomEdits:
    def __init__(self, options: WorkloadOptions, space: bytes, writers: int, rng: random.Random) -> None:
        self.options = options
        self.space = space
        self.docs = [file_doc_id(i) for i in range(options.docs)]
        self._rng = rng
        self._left = [options.edits // writers + (w < options.edits % writers) for w in range(writers)]
        self._bursts = [_burst_starts(options, -(-left // options.burst_edits), rng) for left in self._left]
        self._burst_left = [0] * writers
        self._burst_doc = [self.docs[0]] * writers

    def first_us(self, writer: int) -> int:
        return self._bursts[writer][0]

    def type(self, writer: int, node: Writer, now_us: int) -> Typed:
        if not self._left[writer]:
            return Typed(None, None)
        rng, o = self._rng, self.options
        if not self._burst_left[writer]:
            self._bursts[writer].pop(0)
            self._burst_left[writer] = o.burst_edits
            self._burst_doc[writer] = rng.choice(self.docs)
        self._left[writer] -= 1
        self._burst_left[writer] -= 1
        if rng.random() < o.index_edit_share:
            item = (INDEX_DOC_ID, _file_entry(f"src/{rng.randrange(4 * o.docs)}.py", rng.choice(self.docs), rng.getrandbits(32)))
        else:
            item = (self._burst_doc[writer], _text_edit(rng.random(), rng.random() < DELETE_SHARE, rng.choice(WORDS)))
        if not self._left[writer]:
            return Typed(item, None)
        next_us = now_us + o.typing_interval_ms * US_PER_MS
        if not self._burst_left[writer]:
            next_us = max(next_us, self._bursts[writer][0])
        return Typed(item, next_us)

    def sign(self, writer: int, node: Writer, items: Sequence[Item], now_ms: int) -> list[LocalCommit]:
        """One commit per doc, in the order the docs were first typed into."""
        by_doc: dict[bytes, list[Edit]] = {}
        for doc, edit in items:
            by_doc.setdefault(doc, []).append(edit)
        return [node.store.commit(node.identity, self.space, doc, edits, now_ms=now_ms) for doc, edits in by_doc.items()]

    def lost(self, writer: int, items: Sequence[Item]) -> None:
        """Unsigned edits die with the node that crashed: never acknowledged, never owed."""

    def done(self) -> bool:
        return not any(self._left)

    def expected_text(self, actors: Sequence[bytes]) -> None:
        return None  # random edits have no reference: convergence is the check


def _burst_starts(options: WorkloadOptions, bursts: int, rng: random.Random) -> list[int]:
    """When a writer's bursts start, in order (a burst that would overlap the last waits)."""
    start_us, span_us = options.start_ms * US_PER_MS, options.typing_span_ms * US_PER_MS
    if options.bursts == "even":
        slot = span_us / max(1, bursts)
        return [start_us + round(slot * (i + rng.random())) for i in range(bursts)]
    return sorted(start_us + round(rng.uniform(0, span_us)) for _ in range(bursts))


def _text_edit(where: float, delete: bool, word: str) -> Edit:
    def edit(document: native.Document) -> None:
        found = document.get(native.ROOT, "text")
        text = found.id if isinstance(found, native.ObjectRef) else document.put_object(native.ROOT, "text", "text")
        length = document.length(text)
        pos = int(where * (length + 1))
        if delete and length:
            pos = min(pos, length - 1)
            document.splice_text(text, pos, min(DELETE_CHARS_MAX, length - pos))
        else:
            document.splice_text(text, pos, 0, word)

    return edit


def _file_entry(path: str, doc: bytes, revision: int) -> Edit:
    """A file-tree entry; the revision makes every edit an operation (Automerge skips a put
    of the value already there)."""

    def edit(document: native.Document) -> None:
        found = document.get(native.ROOT, "files")
        files = found.id if isinstance(found, native.ObjectRef) else document.put_object(native.ROOT, "files", "map")
        document.put(files, path, f"{doc.hex()} r{revision}")

    return edit


TRACE_DOC_ID = file_doc_id(-1)


@dataclass(eq=False, slots=True)
class _Author:
    queue: list[int]  # transactions still to type, in order
    editor: Editor | None = None  # None until first used, and after a crash
    buffered: set[int] = field(default_factory=set)  # typed, not yet signed


class TraceReplay:
    def __init__(self, options: WorkloadOptions, space: bytes, trace: Trace, writers: int) -> None:
        if trace.agents > writers:
            raise TraceError(f"{trace.name} has {trace.agents} agents; the workload needs as many writers, has {writers}")
        self.options = options
        self.space = space
        self.trace = trace
        self.docs = [TRACE_DOC_ID]
        self.changes: dict[int, bytes] = {}  # transaction -> its change, once typed
        self.hashes: dict[int, bytes] = {}
        self._authors = [_Author([i for i, t in enumerate(trace.txns) if t.agent == w]) for w in range(writers)]
        self._genesis_typed = False

    def first_us(self, writer: int) -> int:
        return self.options.start_ms * US_PER_MS

    def _due_us(self, index: int) -> int:
        return (self.options.start_ms + (index + 1) * self.options.typing_interval_ms) * US_PER_MS

    def type(self, writer: int, node: Writer, now_us: int) -> Typed:
        if writer == 0 and not self._genesis_typed:
            self._genesis_typed = True
            return Typed((GENESIS, None), self._next_us(writer, now_us))
        author = self._authors[writer]
        if not author.queue:
            return Typed(None, None)
        index = author.queue[0]
        if now_us < self._due_us(index):
            return Typed(None, self._due_us(index))
        if not all(self._visible(node, author, p) for p in self.trace.parents(index)):
            return Typed(None, None, blocked=True)
        if author.editor is None:
            author.editor = Editor(self.trace, node.identity.public_key)
        raw = author.editor.type(index, self.changes.__getitem__, (EPOCH_MS + now_us // US_PER_MS) // 1000)
        author.queue.pop(0)
        author.buffered.add(index)
        self.changes[index] = raw
        self.hashes[index] = native.decode_change(raw).hash
        return Typed((index, raw), self._next_us(writer, now_us))

    def _next_us(self, writer: int, now_us: int) -> int | None:
        queue = self._authors[writer].queue
        return max(now_us, self._due_us(queue[0])) if queue else None

    def _visible(self, node: Writer, author: _Author, index: int) -> bool:
        """Whether the author holds transaction ``index``: signed into its store, or typed by
        itself and still in its buffer."""
        if index in author.buffered:
            return True
        change_hash = self.hashes.get(index)
        return change_hash is not None and node.store.has_change(self.space, TRACE_DOC_ID, change_hash)

    def sign(self, writer: int, node: Writer, items: Sequence[Item], now_ms: int) -> list[LocalCommit]:
        """The genesis as a commit of its own, then the transactions as one signed batch."""
        commits = []
        if items[0][0] == GENESIS:
            genesis = node.store.commit(node.identity, self.space, TRACE_DOC_ID, [genesis_edit(self.trace.start)], now_ms=now_ms)
            self.changes[GENESIS] = genesis.changes[0]
            self.hashes[GENESIS] = genesis.tip.change_hash
            commits.append(genesis)
            items = items[1:]
        if items:
            raws = [raw for _, raw in items]
            decoded = [native.decode_change(raw) for raw in raws]
            tip = SignedTip.sign(node.identity, self.space, TRACE_DOC_ID, decoded[-1].hash)
            stored = node.store.apply(self.space, TRACE_DOC_ID, decoded, [tip])
            if len(stored) != len(decoded):
                raise TraceError("a writer's own transactions depend on changes its store lacks")
            commits.append(LocalCommit(self.space, TRACE_DOC_ID, tuple(raws), tip))
        self._authors[writer].buffered.difference_update(index for index, _ in items)
        return commits

    def lost(self, writer: int, items: Sequence[Item]) -> None:
        """The writer's node crashed before signing ``items``: type them again after restart."""
        author = self._authors[writer]
        indexes = [index for index, _ in items]
        if GENESIS in indexes:
            self._genesis_typed = False
        for index in indexes:
            self.changes.pop(index, None)
            self.hashes.pop(index, None)
        author.queue[:0] = sorted(i for i in indexes if i != GENESIS)
        author.buffered.clear()
        author.editor = None

    def done(self) -> bool:
        return self._genesis_typed and not any(a.queue or a.buffered for a in self._authors)

    def expected_text(self, actors: Sequence[bytes]) -> str:
        return reference_text(self.trace, actors)


Workload = RandomEdits | TraceReplay
