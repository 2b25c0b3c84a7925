"""Honest peers keep converging while a hostile peer mixes well-formed attacks into their sync.

A hypothesis state machine on the in-memory harness: alice, bob and carol edit a few docs over
links that lose, duplicate and reorder frames, get cut, and restart. Mallory holds a raw
connection to each of them — no Replicator of hers, only frames built with the protocol's own
encoders (protocol/wire.py, protocol/batch.py, protocol/tips.py): forged tips, tips signed for
another doc or space, replayed honest batches (as they were, or under another doc), garbage,
changes that never get a tip, whole documents nobody asked for, a self-forked author chain (two changes with one actor and one
seq, each under a valid tip), Status and Heads naming random docs, and wants for the largest
doc. Keys cost her nothing, so a connection that gets her banned is replaced by one under a
fresh key.

After every step: no honest store holds a change mallory could not validly have signed for that
doc, no store holds two changes of one (actor, seq) (Automerge would refuse the whole doc), every
stored doc loads and every stored change is covered by its author's tip, and no sync state is
persisted for a doc mallory named that nobody holds. After she leaves and the network heals,
the honest peers hold identical heads. A Replicator that raises fails the step it raised in.
"""

from __future__ import annotations

from collections import Counter
from itertools import count

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import native
from harness import Faults, Network, edits, identity_of, make_space, splice, text_doc_id
from protocol.batch import pack_changes
from protocol.events import Applied, Connected, ConnectionLost, DataReceived, Disconnect, LocalCommit
from protocol.identity import Identity
from protocol.limits import DOCUMENT_MIN_CHANGES
from protocol.reconcile import space_summary
from protocol.space import DOC_ID_BYTES
from protocol.tips import CHANGE_HASH_BYTES, SignedTip, TipSignature
from protocol.wire import SUMMARY_BYTES, Changes, DocHeads, Encoding, Heads, Hello, Status, encode_frame, varint

HONEST = ("alice", "bob", "carol")
SMALL_DOCS = (text_doc_id("main.py"), text_doc_id("notes.md"))
# Past DOCUMENT_MIN_CHANGES, so a want for it is answered with a whole saved document: the
# costliest reply a 23-byte frame can ask for here.
BIG_DOC = text_doc_id("big.log")
BIG_DOC_CHANGES = DOCUMENT_MIN_CHANGES + 16
DOCS = (*SMALL_DOCS, BIG_DOC)
OTHER_SPACE = make_space("mallory")
# Enough anti-entropy rounds for a healed network to repair what loss and cuts left behind.
HEAL_ROUNDS = 12
# Wants mallory repeats in one step: enough to show a repeat is not free work for ever.
MAX_REPEATED_WANTS = 5

peers = st.sampled_from(HONEST)
docs = st.sampled_from(DOCS)
random_docs = st.one_of(docs, st.binary(min_size=DOC_ID_BYTES, max_size=DOC_ID_BYTES))
random_heads = st.lists(st.binary(min_size=CHANGE_HASH_BYTES, max_size=CHANGE_HASH_BYTES), max_size=3)


def push_frame(doc: bytes, raw: list[bytes], tips: tuple[TipSignature, ...]) -> bytes:
    encoding, data = pack_changes(raw)
    return encode_frame(Changes(doc, encoding, data, (), tips, push=True))


class HostileMix(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.network = Network(seed=7)
        for name in HONEST:
            self.network.add_peer(name)
        self.network.commit("alice", BIG_DOC, edits([f"line {i}\n" for i in range(BIG_DOC_CHANGES)]))
        self.network.connect_all()
        self.network.run()
        self.honest_commits: list[LocalCommit] = []  # every honest batch, to replay
        self.forbidden: set[tuple[bytes, bytes]] = set()  # (doc, hash): never validly signed for that doc
        self.unheld: set[tuple[bytes, bytes]] = set()  # (her key, doc): docs she named that nobody holds
        self.mallory: dict[str, tuple[object, Identity]] = {}  # victim -> her open connection and its key
        self._numbers = count(1)

    # ----- mallory's connections -----

    def _connection(self, victim: str) -> tuple[object, Identity]:
        """Her open connection to ``victim``, or a new one under a fresh key, past its Hello.

        The connection id names no harness link, so the harness drops what the victim sends her."""
        if victim not in self.mallory:
            number = next(self._numbers)
            key = identity_of(f"mallory-{number}")
            conn = ("mallory", number)
            self.mallory[victim] = (conn, key)
            self._feed(victim, Connected(conn, key.public_key, None))
            hello = Hello((1,), self.network.space, key.public_key, Status(space_summary({}), (), False))
            self._send(victim, encode_frame(hello))
        return self.mallory[victim]

    def _send(self, victim: str, data: bytes) -> None:
        conn, _ = self._connection(victim)
        self._feed(victim, DataReceived(conn, data))

    def _feed(self, victim: str, event: Connected | DataReceived) -> None:
        conn = self.mallory[victim][0]
        for action in self.network.feed(victim, event):
            if isinstance(action, Disconnect) and action.conn == conn:
                del self.mallory[victim]  # banned or refused: her next frame comes from a new key
            if isinstance(action, Applied) and action.conn == conn:
                taken = {(action.doc, h) for h in action.hashes} & self.forbidden
                assert not taken, f"{victim} applied {len(taken)} changes mallory never validly signed"

    def _her_changes(self, victim: str, doc: bytes, actor: bytes) -> list[bytes]:
        """A new change by ``actor`` on top of the victim's copy of ``doc``, as mallory makes it."""
        store = self.network.peers[victim].store
        document = store.document(self.network.space, doc).fork(actor)
        splice(f"mallory {next(self._numbers)}\n")(document)
        document.commit(None, time=self.network.now_ms // 1000)
        return document.get_changes(store.heads(self.network.space, doc))

    def _name_unheld(self, victim: str, named: list[bytes]) -> None:
        """Remember which key named docs nobody holds: no sync state may be kept for them."""
        _, key = self._connection(victim)
        self.unheld.update((key.public_key, doc) for doc in named if doc not in DOCS)

    def _forbid(self, doc: bytes, raw: list[bytes]) -> None:
        self.forbidden.update((doc, native.decode_change(change).hash) for change in raw)

    # ----- honest peers and the network -----

    @rule(author=peers, doc=docs, text=st.text(min_size=1, max_size=8))
    def honest_edit(self, author: str, doc: bytes, text: str) -> None:
        commit = self.network.commit(author, doc, edits([text]))
        self.honest_commits.append(commit)
        # The same first edit of an empty doc makes the same change in any doc: one replayed
        # under this doc before is now its author's to sign.
        self.forbidden -= {(doc, native.decode_change(raw).hash) for raw in commit.changes}

    @rule()
    def one_flight(self) -> None:
        self.network.flight()

    @rule()
    def deliver_everything(self) -> None:
        self.network.run()

    @rule(loss=st.sampled_from([0.0, 0.2, 0.5]), duplication=st.sampled_from([0.0, 0.2]), reordering=st.booleans())
    def set_faults(self, loss: float, duplication: float, reordering: bool) -> None:
        self.network.faults = Faults(loss, duplication, reordering)

    @rule(data=st.data())
    def cut_a_link(self, data: st.DataObject) -> None:
        if self.network.links:
            self.network.cut(data.draw(st.sampled_from(sorted(self.network.links.values(), key=lambda link: link.number))))

    @rule()
    def heal(self) -> None:
        self.network.heal()

    @rule(ms=st.sampled_from([250, 5_000, 60_000]))
    def time_passes(self, ms: int) -> None:
        self.network.advance(ms)

    @rule(name=peers)
    def restart(self, name: str) -> None:
        self.network.restart(name)
        self.mallory.pop(name, None)  # the new Replicator never heard of her connection

    # ----- mallory -----

    @rule(victim=peers, doc=docs, as_alice=st.booleans(), signature=st.binary(min_size=64, max_size=64))
    def forged_tip(self, victim: str, doc: bytes, as_alice: bool, signature: bytes) -> None:
        """Her change under a garbage signature, or a change in alice's name that she signs."""
        _, key = self._connection(victim)
        actor = identity_of("alice").public_key if as_alice else key.public_key
        raw = self._her_changes(victim, doc, actor)
        if as_alice:
            signature = SignedTip.sign(key, self.network.space, doc, native.decode_change(raw[-1]).hash).signature
        self._forbid(doc, raw)
        self._send(victim, push_frame(doc, raw, (TipSignature(len(raw) - 1, signature),)))

    @rule(victim=peers, doc=docs, other_space=st.booleans())
    def tip_for_another_doc_or_space(self, victim: str, doc: bytes, other_space: bool) -> None:
        _, key = self._connection(victim)
        raw = self._her_changes(victim, doc, key.public_key)
        space, signed_doc = (OTHER_SPACE, doc) if other_space else (self.network.space, next(d for d in DOCS if d != doc))
        tip = SignedTip.sign(key, space, signed_doc, native.decode_change(raw[-1]).hash)
        self._forbid(doc, raw)
        self._send(victim, push_frame(doc, raw, (TipSignature(len(raw) - 1, tip.signature),)))

    @rule(victim=peers, doc=docs)
    def changes_that_never_get_a_tip(self, victim: str, doc: bytes) -> None:
        _, key = self._connection(victim)
        raw = self._her_changes(victim, doc, key.public_key)
        self._forbid(doc, raw)
        self._send(victim, push_frame(doc, raw, ()))

    @rule(victim=peers, data=st.data(), under_doc=st.one_of(st.none(), docs))
    def replayed_batch(self, victim: str, data: st.DataObject, under_doc: bytes | None) -> None:
        """An honest batch again, as its author pushed it (valid: at most a duplicate), or
        under another doc (its tip then signs nothing of that doc)."""
        if not self.honest_commits:
            return
        commit = data.draw(st.sampled_from(self.honest_commits))
        doc = commit.doc if under_doc is None else under_doc
        if doc != commit.doc:
            self._forbid(doc, list(commit.changes))
        self._send(victim, push_frame(doc, list(commit.changes), (TipSignature(len(commit.changes) - 1, commit.tip.signature),)))

    @rule(victim=peers, doc=st.binary(min_size=DOC_ID_BYTES, max_size=DOC_ID_BYTES), push=st.booleans())
    def unsolicited_document_batch(self, victim: str, doc: bytes, push: bool) -> None:
        """A whole saved document of hers, validly signed, for a doc nobody asked her about
        (issue 12's class 2). Pushed, it is refused: a push is forwarded verbatim, and a document
        is loaded before anything about it is known. As a reply its changes are hers and signed,
        so storing them is no harm (the decode budget bounds what loading it costs)."""
        _, key = self._connection(victim)
        document = native.Document(actor=key.public_key)
        splice(f"mallory {next(self._numbers)}\n")(document)
        head = document.commit(None, time=self.network.now_ms // 1000)
        tip = SignedTip.sign(key, self.network.space, doc, head)
        if push:
            self._forbid(doc, document.get_changes([]))
        self._send(victim, encode_frame(Changes(doc, Encoding.DOCUMENT, document.save(), (), (TipSignature(head, tip.signature),), push)))

    @rule(victim=peers, payload=st.binary(max_size=64), framed=st.booleans())
    def garbage(self, victim: str, payload: bytes, framed: bool) -> None:
        self._send(victim, varint(len(payload)) + payload if framed else payload)

    # Issue 12's class 1 (an author's changes form one chain): before ingest refused a second
    # change for a stored (actor, seq), alice stored both halves and her doc stopped loading.
    @rule(victim=peers, doc=docs)
    def self_forked_chain(self, victim: str, doc: bytes) -> None:
        """Two changes by one actor with one seq, each under a valid tip of hers: Automerge
        refuses a doc holding both ("duplicate seq"), so the second must be refused. Both go to
        one victim: halves sent to two peers would leave each honest copy refusing the other's."""
        _, key = self._connection(victim)
        for raw in (self._her_changes(victim, doc, key.public_key), self._her_changes(victim, doc, key.public_key)):
            tip = SignedTip.sign(key, self.network.space, doc, native.decode_change(raw[-1]).hash)
            if victim in self.mallory:
                self._send(victim, push_frame(doc, raw, (TipSignature(len(raw) - 1, tip.signature),)))

    @rule(victim=peers, listed=st.lists(st.tuples(random_docs, random_heads), max_size=20, unique_by=lambda e: e[0]),
          summary=st.binary(min_size=SUMMARY_BYTES, max_size=SUMMARY_BYTES), complete=st.booleans())
    def status_naming_random_docs(self, victim: str, listed: list, summary: bytes, complete: bool) -> None:
        entries = tuple(DocHeads(doc, tuple(heads)) for doc, heads in listed)
        self._name_unheld(victim, [doc for doc, _ in listed])
        self._send(victim, encode_frame(Status(summary, entries, complete)))

    @rule(victim=peers, doc=random_docs, heads=random_heads, want=st.booleans())
    def heads_naming_random_docs(self, victim: str, doc: bytes, heads: list[bytes], want: bool) -> None:
        self._name_unheld(victim, [doc])
        self._send(victim, encode_frame(Heads(doc, tuple(heads), want)))

    @rule(victim=peers, times=st.integers(1, MAX_REPEATED_WANTS))
    def wants_for_the_big_doc(self, victim: str, times: int) -> None:
        self._send(victim, encode_frame(Heads(BIG_DOC, (), want=True)) * times)

    # ----- what must always hold -----

    @invariant()
    def honest_stores_hold_only_valid_changes(self) -> None:
        space = self.network.space
        for name in HONEST:
            store = self.network.peers[name].store
            for doc in store.doc_ids(space):
                changes = [native.decode_change(raw) for raw in store.changes_since(space, doc, [])]
                taken = {(doc, change.hash) for change in changes} & self.forbidden
                assert not taken, f"{name} stores {len(taken)} changes mallory never validly signed"
                forks = [chain for chain, n in Counter((c.actor, c.seq) for c in changes).items() if n > 1]
                assert not forks, f"{name} stores two changes for one (actor, seq) in {doc.hex()}"
                store.document(space, doc)  # Automerge still loads it
        self.network.assert_all_covered()

    @invariant()
    def no_state_is_kept_for_docs_nobody_holds(self) -> None:
        """Issue 12's class 4: a Status or Heads naming random docs persists nothing."""
        for name in HONEST:
            store = self.network.peers[name].store
            kept = [doc for key, doc in self.unheld if store.load_sync_state(key, self.network.space, doc) is not None]
            assert not kept, f"{name} persisted sync states for {len(kept)} docs it does not hold"

    def teardown(self) -> None:
        network = self.network
        for victim, (conn, _) in list(self.mallory.items()):
            network.feed(victim, ConnectionLost(conn))  # she leaves: her sessions' states are written
        self.no_state_is_kept_for_docs_nobody_holds()
        network.heal()
        network.settle(rounds=HEAL_ROUNDS)
        assert network.converged(), "the honest peers did not converge after the heal"


HostileMix.TestCase.settings = settings(
    max_examples=50, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
test_hostile_frames_never_break_honest_peers = HostileMix.TestCase
