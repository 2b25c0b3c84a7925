"""protocol: what signing, the wire format and the sync state machines cost, against Automerge's
own sync protocol where there is one to compare with.

1. ``sign`` / ``verify``: Ed25519 tips per second (one tip covers a whole batch of changes).
2. ``codec.<kind>``: encode and decode time of each message kind, and its size on the wire.
3. ``trace_ingest.batch_<n>``: alice types the automerge-paper trace, one Automerge change per
   edit, signing one tip per batch of n edits; her Replicator pushes each batch to bob's, which
   verifies and stores it. Changes per second end to end (authoring, signing, encoding,
   verifying, storing, and bob's document caught up at the end) and wire bytes per change,
   against Automerge's sync protocol run after every batch between two documents. Automerge's
   apply costs time in proportion to the document on every call, so the single-edit batches
   run on a prefix of the trace (see TRACE_EDITS); both sides always replay the same edits.
4. ``reconnect``: alice and bob share a history, part, each make 10k edits, and reconnect:
   round trips until both hold every change, and bytes each way; then a reconnect with nothing
   new. The baseline is Automerge's sync between the same two documents, with the sync states
   both kept from their previous sync (as ours keeps its per-peer state). One stopping rule
   for both, as in benchmarks/node.py: round trips (and ours' time) count until both hold the
   same heads, each one-way message or flight half a round trip; bytes count until both sides
   are quiet, so the acknowledgements after convergence are in both byte counts.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from time import perf_counter
from typing import Any

import native
from benchmarks.measure import log
from benchmarks.registry import BenchmarkError, Figure, RunOptions, benchmark
from protocol.batch import pack_changes
from protocol.clock import FIXED_NOW_MS as NOW_MS
from protocol.events import Action, Connected, ConnectionLost, DataReceived, Send
from protocol.identity import Identity
from protocol.limits import SyncConfig
from protocol.memory import Edit, MemoryChangeStore
from protocol.replicator import Replicator
from protocol.space import DOC_ID_BYTES, Genesis
from protocol.tips import SignedTip, TipSignature
from protocol.wire import (
    Bye,
    Changes,
    DocHeads,
    Encoding,
    FrameDecoder,
    Heads,
    Hello,
    Message,
    Ping,
    Prune,
    Status,
    StatusRequest,
    encode_frame,
)
from simulations.trace_files import load_sequential

TRACE = "automerge-paper"
BATCH_SIZES = (1, 16, 256)
# Edits replayed per batch size (None: the whole trace). Automerge's sync applies each batch
# into a document whose apply cost grows with its size, so one-edit batches over the whole
# trace would take the baseline hours.
TRACE_EDITS = {1: 5_000, 16: 40_000, 256: None}
QUICK_TRACE_EDITS = {1: 1_000, 16: 5_000, 256: 20_000}
SHARED_EDITS = 1_000  # history both peers hold before they part
DIVERGENT_EDITS = 10_000  # what each makes while apart
QUICK_DIVERGENT_EDITS = 2_000
SIGNATURES = 20_000
QUICK_SIGNATURES = 2_000
CODEC_ROUNDS = 2_000
QUICK_CODEC_ROUNDS = 200
ROUND_TRIPS_TARGET = 3
DOC = bytes([0x0F]) * DOC_ID_BYTES
ALICE, BOB = Identity(bytes([0xA1]) * 32), Identity(bytes([0xB0]) * 32)
SPACE = Genesis.create(ALICE, "benchmark", NOW_MS, nonce=bytes(16)).space_id


# The benchmark's clock stands still while it pushes thousands of batches a second, far over
# the flood guard and budgets meant for peers on a real clock; lift them: throughput is measured.
UNLIMITED = SyncConfig.unbudgeted()


class NotConverged(BenchmarkError):
    pass


# ----- drivers -----


@dataclass
class _Pair:
    """Alice's and bob's Replicators on one in-memory connection, delivering flight by flight."""

    alice: MemoryChangeStore = field(default_factory=MemoryChangeStore)
    bob: MemoryChangeStore = field(default_factory=MemoryChangeStore)
    bytes_to: dict[str, int] = field(default_factory=lambda: {"alice": 0, "bob": 0})
    busy_s: dict[str, float] = field(default_factory=lambda: {"alice": 0.0, "bob": 0.0})  # inside handle()
    _in_flight: dict[str, list[bytes]] = field(default_factory=lambda: {"alice": [], "bob": []})
    _connections: int = 0

    def __post_init__(self) -> None:
        self.replicators = {
            "alice": Replicator(ALICE, self.alice, random.Random(1), [SPACE], UNLIMITED),
            "bob": Replicator(BOB, self.bob, random.Random(2), [SPACE], UNLIMITED),
        }

    def connect(self) -> None:
        self._connections += 1
        self.handle("bob", Connected(self._connections, ALICE.public_key, None))
        self.handle("alice", Connected(self._connections, BOB.public_key, SPACE))

    def disconnect(self) -> None:
        for name in ("alice", "bob"):
            self._in_flight[name].clear()
            self.handle(name, ConnectionLost(self._connections))

    def handle(self, name: str, event: Any) -> None:
        other = "bob" if name == "alice" else "alice"
        started = perf_counter()
        actions: list[Action] = self.replicators[name].handle(event, NOW_MS)
        self.busy_s[name] += perf_counter() - started
        self._in_flight[other] += [action.data for action in actions if isinstance(action, Send)]

    def flight(self) -> bool:
        """Deliver everything in flight both ways; whether anything was."""
        delivering = {name: frames[:] for name, frames in self._in_flight.items()}
        for frames in self._in_flight.values():
            frames.clear()
        for name, frames in delivering.items():
            for frame in frames:
                self.bytes_to[name] += len(frame)
                self.handle(name, DataReceived(self._connections, frame))
        return any(delivering.values())

    def converged(self) -> bool:
        return self.alice.heads(SPACE, DOC) == self.bob.heads(SPACE, DOC)

    def run(self) -> int:
        flights = 0
        while self.flight():
            flights += 1
        return flights


def _reconnected(states: tuple[native.SyncState, native.SyncState]) -> tuple[native.SyncState, native.SyncState]:
    """Sync states as a peer keeps them across a reconnect: persisted (Automerge keeps the
    shared heads and drops what was in flight) and loaded again."""
    left, right = states
    return native.SyncState.decode(left.encode()), native.SyncState.decode(right.encode())


def _automerge_sync(
    left: native.Document, right: native.Document, states: tuple[native.SyncState, native.SyncState], *, until_converged: bool = False
) -> dict[str, Any]:
    """Automerge's sync to quiescence: bytes each way, round trips (left speaks first), and the
    time the right side spent receiving and replying.

    With ``until_converged``, also ``round_trips_to_converged``, counted as ours is in
    ``_reconnect``: up to the first message after which both documents hold the same heads,
    each message half a round trip (off by default: comparing heads is work the timed
    trace-ingest baseline must not pay).
    """
    left_state, right_state = states
    result: dict[str, Any] = {"to_right": 0, "to_left": 0, "round_trips": 0, "right_s": 0.0, "round_trips_to_converged": None}
    messages = 0

    def delivered() -> None:
        nonlocal messages
        messages += 1
        if until_converged and result["round_trips_to_converged"] is None and sorted(left.heads()) == sorted(right.heads()):
            result["round_trips_to_converged"] = messages / 2

    if until_converged and sorted(left.heads()) == sorted(right.heads()):
        result["round_trips_to_converged"] = 0.0
    while True:
        message = left.generate_sync_message(left_state)
        started = perf_counter()
        if message is not None:
            right.receive_sync_message(right_state, message)
            result["to_right"] += len(message)
        reply = right.generate_sync_message(right_state)
        result["right_s"] += perf_counter() - started
        if message is not None:
            delivered()
        if reply is not None:
            left.receive_sync_message(left_state, reply)
            result["to_left"] += len(reply)
            delivered()
        if message is None and reply is None:
            return result
        result["round_trips"] += 1


def _splice(pos: int, delete: int, insert: str) -> Edit:
    def edit(document: native.Document) -> None:
        document.splice_text(_text(document), pos, delete, insert)

    return edit


def _text(document: native.Document) -> str:
    found = document.get(native.ROOT, "text")
    assert isinstance(found, native.ObjectRef)
    return found.id


def _make_text(document: native.Document) -> None:
    document.put_object(native.ROOT, "text", "text")


def _best(runs: int, measure: Callable[[], float]) -> float:
    """The best of ``runs`` timings: noise on a shared machine only adds time."""
    return min(measure() for _ in range(runs))


# ----- 1. signatures -----


def _signatures(options: RunOptions) -> Iterator[Figure]:
    count = QUICK_SIGNATURES if options.quick else SIGNATURES
    hashes = [random.Random(i).randbytes(32) for i in range(count)]

    def sign() -> float:
        started = perf_counter()
        for change_hash in hashes:
            SignedTip.sign(ALICE, SPACE, DOC, change_hash)
        return perf_counter() - started

    tips = [SignedTip.sign(ALICE, SPACE, DOC, h) for h in hashes]

    def verify() -> float:
        started = perf_counter()
        for tip in tips:
            tip.verify()
        return perf_counter() - started

    yield Figure("sign", round(count / _best(options.repeat, sign)), "tips/s")
    yield Figure("verify", round(count / _best(options.repeat, verify)), "tips/s")


# ----- 2. codec -----


def _sample_messages() -> dict[str, Message]:
    """One realistic message of each kind (changes of keystroke size, as typed)."""
    store = MemoryChangeStore()
    first = store.commit(ALICE, SPACE, DOC, [_make_text, _splice(0, 0, "a")], now_ms=NOW_MS)
    sixteen = store.commit(ALICE, SPACE, DOC, [_splice(0, 0, "x") for _ in range(16)], now_ms=NOW_MS)
    heads = tuple(store.heads(SPACE, DOC))
    docs = tuple(DocHeads(bytes([i]) * DOC_ID_BYTES, heads) for i in range(10))
    return {
        "hello_10_docs": Hello((1,), SPACE, ALICE.public_key, Status(bytes(32), docs, False)),
        "status_empty": Status(bytes(32), (), False),
        "status_request": StatusRequest(),
        "heads": Heads(DOC, heads, want=True),
        "changes_1": Changes(DOC, *pack_changes(first.changes[-1:]), (), (TipSignature(0, first.tip.signature),), push=True),
        "changes_16": Changes(DOC, *pack_changes(sixteen.changes), (), (TipSignature(15, sixteen.tip.signature),), push=True),
        "document_18": Changes(DOC, Encoding.DOCUMENT, store.save_document(SPACE, DOC), heads, (), push=False),
        "prune": Prune(ALICE.public_key),
        "ping": Ping(),
        "bye": Bye("shutting down"),
    }


def _encode_s(message: Message, rounds: int) -> float:
    started = perf_counter()
    for _ in range(rounds):
        encode_frame(message)
    return perf_counter() - started


def _decode_s(frame: bytes, rounds: int) -> float:
    decoder = FrameDecoder()
    started = perf_counter()
    for _ in range(rounds):
        decoder.receive_data(frame)
        decoder.next_message()
    return perf_counter() - started


def _codec(options: RunOptions) -> Iterator[Figure]:
    rounds = QUICK_CODEC_ROUNDS if options.quick else CODEC_ROUNDS
    for kind, message in _sample_messages().items():
        frame = encode_frame(message)
        yield Figure(f"codec.{kind}.encode", round(_best(options.repeat, partial(_encode_s, message, rounds)) / rounds * 1e6, 2), "us")
        yield Figure(f"codec.{kind}.decode", round(_best(options.repeat, partial(_decode_s, frame, rounds)) / rounds * 1e6, 2), "us")
        yield Figure(f"codec.{kind}.size", len(frame), "bytes")


# ----- 3. trace ingest -----


def _ingest_ours(patches: Sequence[tuple[int, int, str]], batch: int) -> dict[str, Any]:
    pair = _Pair()
    pair.connect()
    pair.run()
    started = perf_counter()
    pair.handle("alice", pair.alice.commit(ALICE, SPACE, DOC, [_make_text], now_ms=NOW_MS))
    for start in range(0, len(patches), batch):
        edits = [_splice(*patch) for patch in patches[start : start + batch]]
        pair.handle("alice", pair.alice.commit(ALICE, SPACE, DOC, edits, now_ms=NOW_MS))
        pair.run()
    caught_up = perf_counter()
    document = pair.bob.document(SPACE, DOC)  # bob's store applies what it holds to Automerge
    receive_s = pair.busy_s["bob"] + perf_counter() - caught_up
    if not pair.converged():
        raise NotConverged("bob did not receive every batch")
    return {
        "seconds": perf_counter() - started,
        "receive_s": receive_s,
        "bytes": pair.bytes_to["alice"] + pair.bytes_to["bob"],
        "text": document.text(_text(document)),
    }


def _ingest_automerge(patches: Sequence[tuple[int, int, str]], batch: int) -> dict[str, Any]:
    alice, bob = native.Document(ALICE.public_key), native.Document(BOB.public_key)
    states = (native.SyncState(), native.SyncState())
    started = perf_counter()
    _make_text(alice)
    alice.commit()
    total_bytes, receive_s = 0, 0.0
    for start in range(0, len(patches), batch):
        for patch in patches[start : start + batch]:
            _splice(*patch)(alice)
            alice.commit()
        sync = _automerge_sync(alice, bob, states)
        total_bytes += sync["to_right"] + sync["to_left"]
        receive_s += sync["right_s"]
    return {"seconds": perf_counter() - started, "receive_s": receive_s, "bytes": total_bytes, "text": bob.text(_text(bob))}


def _trace_ingest(options: RunOptions) -> Iterator[Figure]:
    limits = QUICK_TRACE_EDITS if options.quick else TRACE_EDITS

    def rate(edits: int, runs: list[dict[str, Any]], key: str) -> int:
        fastest_s: float = min(run[key] for run in runs)
        return round(edits / fastest_s)

    for batch in BATCH_SIZES:
        replay = load_sequential(TRACE, limits[batch])
        edits = len(replay.patches)
        log(f"protocol trace_ingest: {edits} edits in batches of {batch}")
        ours = [_ingest_ours(replay.patches, batch) for _ in range(options.repeat)]
        theirs = [_ingest_automerge(replay.patches, batch) for _ in range(options.repeat)]
        if any(run["text"] != replay.expected for run in [*ours, *theirs]):
            raise NotConverged(f"batch {batch}: a replica's text differs from the trace's")
        name = f"trace_ingest.batch_{batch}"
        yield Figure(f"{name}.edits", edits, "changes")
        yield Figure(f"{name}.receive_rate", rate(edits, ours, "receive_s"), "changes/s", "automerge_sync", rate(edits, theirs, "receive_s"))
        yield Figure(f"{name}.end_to_end_rate", rate(edits, ours, "seconds"), "changes/s", "automerge_sync", rate(edits, theirs, "seconds"))
        yield Figure(f"{name}.wire", round(ours[0]["bytes"] / edits, 1), "bytes/change", "automerge_sync", round(theirs[0]["bytes"] / edits, 1))


# ----- 4. reconnect -----


def _diverged(patches: Sequence[tuple[int, int, str]], divergent: int) -> tuple[_Pair, tuple[native.SyncState, native.SyncState], native.Document, native.Document]:
    """Alice and bob synced over SHARED_EDITS, then each made ``divergent`` edits apart.

    Returns the pair (disconnected) and, as a baseline, the same two histories as Automerge
    documents with the sync states they kept from syncing the shared part."""
    pair = _Pair()
    pair.handle("alice", pair.alice.commit(ALICE, SPACE, DOC, [_make_text], now_ms=NOW_MS))
    shared = patches[:SHARED_EDITS]
    for start in range(0, len(shared), 100):
        pair.handle("alice", pair.alice.commit(ALICE, SPACE, DOC, [_splice(*p) for p in shared[start : start + 100]], now_ms=NOW_MS))
    pair.connect()
    pair.run()
    alice_doc, bob_doc = pair.alice.document(SPACE, DOC).fork(), pair.bob.document(SPACE, DOC).fork()
    states = (native.SyncState(), native.SyncState())
    _automerge_sync(alice_doc, bob_doc, states)
    pair.disconnect()
    apart = patches[SHARED_EDITS : SHARED_EDITS + divergent]
    for name, store, identity in (("alice", pair.alice, ALICE), ("bob", pair.bob, BOB)):
        for start in range(0, len(apart), 100):
            edits = [_splice(*p) for p in apart[start : start + 100]]
            pair.handle(name, store.commit(identity, SPACE, DOC, edits, now_ms=NOW_MS))
    return pair, states, pair.alice.document(SPACE, DOC).fork(), pair.bob.document(SPACE, DOC).fork()


def _reconnect(options: RunOptions) -> Iterator[Figure]:
    divergent = QUICK_DIVERGENT_EDITS if options.quick else DIVERGENT_EDITS
    patches = load_sequential(TRACE, SHARED_EDITS + divergent).patches
    log(f"protocol reconnect: {divergent} changes each way")
    pair, states, alice_doc, bob_doc = _diverged(patches, divergent)
    started = perf_counter()
    pair.connect()
    flights = 0
    while not pair.converged():
        if not pair.flight():
            raise NotConverged("the pair went quiet before converging")
        flights += 1
    seconds = perf_counter() - started
    pair.run()
    states = _reconnected(states)
    baseline = _automerge_sync(alice_doc, bob_doc, states, until_converged=True)
    if flights / 2 > ROUND_TRIPS_TARGET:
        raise NotConverged(f"converged in {flights / 2} round trips, more than {ROUND_TRIPS_TARGET}")
    if baseline["round_trips_to_converged"] is None:
        raise NotConverged("Automerge's sync went quiet before the two documents converged")
    yield Figure("reconnect.divergent_changes_each", divergent, "changes")
    yield Figure("reconnect.round_trips", flights / 2, "round trips", "automerge_sync", baseline["round_trips_to_converged"])
    yield Figure("reconnect.bytes_to_listener", pair.bytes_to["bob"], "bytes", "automerge_sync", baseline["to_right"])
    yield Figure("reconnect.bytes_to_dialer", pair.bytes_to["alice"], "bytes", "automerge_sync", baseline["to_left"])
    yield Figure("reconnect.time", round(seconds, 3), "s")

    pair.disconnect()
    before = dict(pair.bytes_to)
    pair.connect()
    pair.run()
    quiet = _automerge_sync(alice_doc, bob_doc, _reconnected(states))
    yield Figure("reconnect_nothing_new.bytes_to_listener", pair.bytes_to["bob"] - before["bob"], "bytes", "automerge_sync", quiet["to_right"])
    yield Figure("reconnect_nothing_new.bytes_to_dialer", pair.bytes_to["alice"] - before["alice"], "bytes", "automerge_sync", quiet["to_left"])


@benchmark("protocol", cheap=True)
def protocol(options: RunOptions) -> Iterator[Figure]:
    yield from _signatures(options)
    yield from _codec(options)
    yield from _trace_ingest(options)
    yield from _reconnect(options)
