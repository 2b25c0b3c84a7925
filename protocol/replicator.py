"""The sync state machine of one node: every connection, every space, one ``handle``.

``Replicator.handle(event, now_ms) -> [action]`` is the whole interface (see protocol/events.py):
bytes and timers in, bytes, timers and reports out, the store reached only through
``ChangeStore``, time and randomness passed in. The node runs it on trio and libp2p, the tests
on an in-memory link, the simulator on a seeded event loop — the same code everywhere.

A connection carries one space. Both ends start with a ``Hello``: versions, space, key, and a
``Status`` — the space summary plus the heads of every doc that moved since the sender last
told this peer. The receiver rebuilds the sender's full state from its persisted record of that
peer, checks it against the summary (asking for a complete listing if they disagree) and, for
every doc where the peer lacks something, replies at once with the missing changes and the
signed tips that cover them. So two peers that both worked offline converge in one and a half
round trips (Hello; Hello + changes; changes), and two peers with nothing new exchange one
~110-byte Hello each way. A large reply is the sender's saved document (protocol/batch.py).

Live, each signed batch a local author commits is pushed as-is to every peer we push to and
forwarded verbatim once by each receiver (a seen-set of batch ids); peers that told us they
already get batches by another path (``Prune``) get a ``Heads`` announcement instead and ask
(``Heads(want=True)``) if the batch does not reach them within a short delay — Plumtree's
eager and lazy push. A periodic anti-entropy ``Status`` repairs whatever else went missing.

Everything a peer sends is verified before it is applied (protocol/ingest.py). A peer that
breaks the rules is scored (protocol/scoring.py); over the limit it is disconnected and
refused for a while, and none of the offending message is applied or forwarded.
"""

from __future__ import annotations

import enum
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from protocol.batch import decode_changes, pack_changes, plan_reply, unpack
from protocol.errors import Flood, LocalProtocolError, RemoteProtocolError, UnexpectedMessage, WireError
from protocol.events import (
    Action,
    Applied,
    ConnectionLost,
    Connected,
    ConnId,
    DataReceived,
    Disconnect,
    Event,
    LocalCommit,
    PeerPenalized,
    Send,
    SetTimer,
    SpaceAdded,
    TimerFired,
)
from protocol.identity import Identity
from protocol.ingest import PendingChanges, VerifiedTips, ingest
from protocol.limits import MAX_REASON_CHARS, MAX_SEEN_BATCHES, SUPPORTED_VERSIONS, SyncConfig
from protocol.reconcile import Heads, PeerDocState, space_summary
from protocol.scoring import Offense, PeerScore, offense_of
from protocol.store_api import ChangeStore
from protocol.tips import TipSignature
from protocol.wire import (
    Bye,
    Changes,
    DocHeads,
    FrameDecoder,
    Hello,
    Message,
    Ping,
    Prune,
    Status,
    StatusRequest,
    Encoding,
    encode_frame,
)
from protocol.wire import Heads as HeadsMessage


class Phase(enum.Enum):
    AWAITING_HELLO = "awaiting-hello"
    ACTIVE = "active"


# The one table of what a peer may send in each phase; anything else is UnexpectedMessage.
ALLOWED: dict[Phase, frozenset[type]] = {
    Phase.AWAITING_HELLO: frozenset({Hello, Bye}),
    Phase.ACTIVE: frozenset({Status, StatusRequest, HeadsMessage, Changes, Prune, Ping, Bye}),
}


@dataclass(eq=False, slots=True)
class Session:
    """One connection: the peer's key, the space once known, and our state towards the peer."""

    conn: ConnId
    peer: bytes
    space: bytes | None
    last_received_ms: int
    last_sent_ms: int
    tokens: float  # flood control: frames the peer may still send right now
    tokens_ms: int  # when ``tokens`` was last topped up
    pending: PendingChanges  # what the peer sent that waits for tips or deps
    phase: Phase = Phase.AWAITING_HELLO
    decoder: FrameDecoder = field(default_factory=FrameDecoder)
    push_to_peer: bool = True  # Plumtree: eager (push batches) or lazy (announce heads)
    pruned_peer: bool = False  # we asked the peer to stop pushing to us
    states: dict[bytes, PeerDocState] = field(default_factory=dict)  # cache of the persisted ones
    wants: dict[bytes, int] = field(default_factory=dict)  # doc -> when an unanswered want may repeat
    grafts: dict[bytes, int] = field(default_factory=dict)  # doc -> when to ask for announced heads
    anti_entropy_ms: int | None = None
    timer_ms: int | None = None


class _BoundedSet:
    """Remembers the newest ``limit`` items."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._items: dict[bytes, None] = {}

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def add(self, item: bytes) -> None:
        self._items[item] = None
        if len(self._items) > self._limit:
            del self._items[next(iter(self._items))]


class _Space:
    """A served space: our heads per doc (kept in step with the store), its summary, the
    batches seen, and its active sessions."""

    def __init__(self, store: ChangeStore, space: bytes) -> None:
        self.id = space
        self.heads: dict[bytes, Heads] = {doc: tuple(store.heads(space, doc)) for doc in store.doc_ids(space)}
        self.seen = _BoundedSet(MAX_SEEN_BATCHES)
        self.sessions: dict[ConnId, Session] = {}
        self._summary: bytes | None = None

    def set_heads(self, doc: bytes, heads: Iterable[bytes]) -> None:
        self.heads[doc] = tuple(sorted(heads))
        self._summary = None

    @property
    def summary(self) -> bytes:
        if self._summary is None:
            self._summary = space_summary(self.heads)
        return self._summary


class Replicator:
    """Syncs the spaces of one node with its peers; see the module docstring."""

    def __init__(
        self,
        identity: Identity,
        store: ChangeStore,
        rng: random.Random,
        spaces: Iterable[bytes] = (),
        config: SyncConfig = SyncConfig(),
    ) -> None:
        self.identity = identity
        self.store = store
        self.config = config
        self.stats: Counter[str] = Counter()
        self._rng = rng
        self._spaces = {space: _Space(store, space) for space in spaces}
        self._sessions: dict[ConnId, Session] = {}
        self._scores: dict[bytes, PeerScore] = {}
        self._verified = VerifiedTips()
        self._out: list[Action] = []
        self._touched: set[Session] = set()
        self._now = 0

    # ----- the interface -----

    def handle(self, event: Event, now_ms: int) -> list[Action]:
        """Process one event; return what the driver must do, in order.

        Raises:
            LocalProtocolError: the event is our own misuse (a space we do not serve);
                nothing changed.
        """
        self._out, self._touched, self._now = [], set(), now_ms
        match event:
            case Connected():
                self._on_connected(event)
            case DataReceived():
                self._on_data(event)
            case ConnectionLost():
                session = self._sessions.get(event.conn)
                if session is not None:
                    self._forget(session)
            case TimerFired():
                session = self._sessions.get(event.conn)
                if session is not None:
                    session.timer_ms = None  # spent: the next one is always asked for afresh
                    self._maintain(session)
            case LocalCommit():
                self._on_local_commit(event)
            case SpaceAdded():
                self._spaces.setdefault(event.space, _Space(self.store, event.space))
        self._schedule_timers()
        return self._out

    def connections(self, space: bytes) -> list[ConnId]:
        """The connections syncing ``space`` (past their Hello)."""
        return list(self._space(space).sessions)

    # ----- events -----

    def _on_connected(self, event: Connected) -> None:
        if event.space is not None:
            self._space(event.space)  # raises for a space we do not serve, before anything changes
        score = self._scores.get(event.peer)
        if score is not None and score.banned(self._now):
            self.stats["refused_banned"] += 1
            self._out.append(Disconnect(event.conn, "peer is banned for misbehaving"))
            return
        session = Session(
            conn=event.conn,
            peer=event.peer,
            space=event.space,
            last_received_ms=self._now,
            last_sent_ms=self._now,
            tokens=self.config.frames_burst_max,
            tokens_ms=self._now,
            pending=PendingChanges(self.config.pending_changes_max),
        )
        self._sessions[event.conn] = session
        self._touched.add(session)
        if event.space is not None:
            self._send(session, self._hello(session))

    def _on_data(self, event: DataReceived) -> None:
        session = self._sessions.get(event.conn)
        if session is None:
            return  # data that was in flight when we closed the connection
        self._touched.add(session)
        session.last_received_ms = self._now
        self.stats["bytes_received"] += len(event.data)
        session.decoder.receive_data(event.data)
        while event.conn in self._sessions:
            try:
                message = session.decoder.next_message()
                if message is None:
                    return
                self.stats["messages_received"] += 1
                self._take_token(session)
                self._dispatch(session, message)
            except RemoteProtocolError as error:
                self._penalize(session, offense_of(error), str(error))

    def _on_local_commit(self, event: LocalCommit) -> None:
        space = self._space(event.space)
        if not event.changes or (event.tip.space, event.tip.doc) != (event.space, event.doc):
            raise LocalProtocolError("a local commit carries changes and a tip of its own space and doc")
        try:
            last = decode_changes(event.changes[-1:])[0]
        except WireError as error:
            raise LocalProtocolError(f"a local commit's change does not decode: {error}") from error
        if last.hash != event.tip.change_hash:
            raise LocalProtocolError("a local commit's tip must sign its last change")
        space.set_heads(event.doc, self.store.heads(event.space, event.doc))
        encoding, data = pack_changes(event.changes)
        tip = TipSignature(len(event.changes) - 1, event.tip.signature)
        batch = Changes(event.doc, encoding, data, (), (tip,), push=True)
        space.seen.add(batch.batch_id)
        self._spread(space, event.doc, batch, exclude=None)

    # ----- messages -----

    def _dispatch(self, session: Session, message: Message) -> None:
        if type(message) not in ALLOWED[session.phase]:
            raise UnexpectedMessage(f"{type(message).__name__} is not allowed while {session.phase.value}")
        match message:
            case Hello():
                self._on_hello(session, message)
            case Status():
                self._on_status(session, message, ask=True)
            case StatusRequest():
                self._send(session, self._status(session, complete=True))
            case HeadsMessage():
                self._on_heads(session, message)
            case Changes():
                self._on_changes(session, message)
            case Prune():
                session.push_to_peer = False  # it hears our batches by another path: announce instead
            case Ping():
                pass  # its arrival already refreshed last_received_ms
            case Bye():
                self._close(session, f"peer left: {message.reason}", say_bye=False)

    def _on_hello(self, session: Session, hello: Hello) -> None:
        if hello.peer != session.peer:
            raise UnexpectedMessage("the Hello names a key other than the one the transport authenticated")
        if not set(hello.versions) & set(SUPPORTED_VERSIONS):
            self._close(session, f"no common wire version: peer speaks {list(hello.versions)}, we {list(SUPPORTED_VERSIONS)}")
            return
        if session.space is None:
            if hello.space not in self._spaces:
                self._close(session, "we do not serve this space")
                return
            session.space = hello.space
            self._send(session, self._hello(session))
        elif hello.space != session.space:
            raise UnexpectedMessage("the Hello is for another space than the one we asked for")
        session.phase = Phase.ACTIVE
        session.anti_entropy_ms = self._next_anti_entropy()
        self._space(session.space).sessions[session.conn] = session
        self._on_status(session, hello.status, ask=False)

    def _on_status(self, session: Session, status: Status, *, ask: bool) -> None:
        """Take in the peer's heads; send what it lacks; if ``ask``, ask for what we lack.

        At Hello time we do not ask: the peer reconciles against our own Hello at the same time.
        """
        space = self._session_space(session)
        listed = {entry.doc: entry.heads for entry in status.docs}
        if status.complete and space_summary(listed) != status.summary:
            raise UnexpectedMessage("a complete status contradicts its own summary")
        unlisted = [doc for doc in space.heads if doc not in listed]
        for doc, heads in listed.items():
            self._record_report(session, doc, heads)
        if status.complete:
            for doc in unlisted:
                self._record_report(session, doc, ())
        model = {doc: self._state(session, doc).their_heads for doc in [*listed, *unlisted]}
        if space_summary(model) == status.summary:
            docs = model
        else:
            self.stats["status_mismatches"] += 1
            self._send(session, StatusRequest())
            docs = listed  # what the peer reported is certain; the rest comes with the full listing
        for doc in docs:
            self._reconcile(session, doc, ask=ask, answer=False)

    def _on_heads(self, session: Session, message: HeadsMessage) -> None:
        self._record_report(session, message.doc, message.heads)
        if message.want:
            session.push_to_peer = True  # a graft: the peer wants batches from us again
            self._reconcile(session, message.doc, ask=True, answer=True)
        elif self._lacks(session, message.doc):
            session.grafts.setdefault(message.doc, self._now + self.config.graft_delay_ms)

    def _on_changes(self, session: Session, batch: Changes) -> None:
        space = self._session_space(session)
        if batch.push and batch.batch_id in space.seen:
            self._duplicate(session)
            return
        changes = decode_changes(unpack(batch.encoding, batch.data, batch.base))
        by_hash = {change.hash: change for change in changes}
        tips = [tip.resolve(space.id, batch.doc, changes, by_hash) for tip in batch.tips]
        applied = ingest(self.store, space.id, batch.doc, changes, tips, session.pending, self._verified, self._now)
        session.wants.pop(batch.doc, None)
        if batch.push:
            space.seen.add(batch.batch_id)
        if applied:
            self._after_apply(space, batch.doc, applied, session, batch if batch.push else None)
        elif batch.push and all(self.store.has_change(space.id, batch.doc, change.hash) for change in changes):
            self._duplicate(session)
        if session.pending.missing_deps(batch.doc):
            self._want(session, batch.doc)

    # ----- reconciliation -----

    def _reconcile(self, session: Session, doc: bytes, *, ask: bool, answer: bool) -> None:
        """Send the peer the changes of ``doc`` it lacks, judged by what it last reported.

        Args:
            ask: also ask for changes we lack (the peer's heads name changes we do not have).
            answer: the peer asked us; if it lacks nothing, say so with our heads.
        """
        space = self._session_space(session)
        state = self._state(session, doc)
        ours = space.heads.get(doc, ())
        if set(state.their_heads) != set(ours):
            base = state.base(self._known(space.id, doc))
            lack = self.store.changes_since(space.id, doc, base) if ours else []
            if lack:
                self._send_changes(session, doc, lack, base)
            elif answer:
                self._send_heads(session, doc, want=False)
        elif answer:
            self._send_heads(session, doc, want=False)
        if ask and self._lacks(session, doc):
            self._want(session, doc)

    def _send_changes(self, session: Session, doc: bytes, lack: list[bytes], base: list[bytes]) -> None:
        space = self._session_space(session)
        hashes = [change.hash for change in decode_changes(lack)]
        signatures = {tip.change_hash: tip.signature for tip in self.store.tips(space.id, doc)}
        start = 0
        for encoding, data, count in plan_reply(lack, lambda: self.store.save_document(space.id, doc)):
            in_batch = hashes[start : start + count]
            # A document batch's changes come out in the receiver's order: name them by hash.
            by_hash = encoding is Encoding.DOCUMENT
            batch_tips = tuple(
                TipSignature(h if by_hash else i, signatures[h]) for i, h in enumerate(in_batch) if h in signatures
            )
            batch_base = tuple(base) if by_hash else ()
            self._send(session, Changes(doc, encoding, data, batch_base, batch_tips, push=False))
            self.stats["reply_changes_sent"] += count
            start += count

    def _after_apply(self, space: _Space, doc: bytes, applied: list[bytes], source: Session, push: Changes | None) -> None:
        """Tell the world: forward a pushed batch, announce our new heads, retry what waited."""
        space.set_heads(doc, self.store.heads(space.id, doc))
        self.stats["changes_applied"] += len(applied)
        self._out.append(Applied(space.id, doc, tuple(applied), source.conn))
        if push is None:
            self._send_heads(source, doc, want=False)  # the replier learns where we are now
        self._spread(space, doc, push, exclude=source)
        for other in list(space.sessions.values()):
            if other is not source and doc in other.pending.docs():
                self._retry_pending(space, doc, other)

    def _spread(self, space: _Space, doc: bytes, push: Changes | None, exclude: Session | None) -> None:
        """Push a batch to eager peers (if there is one to push), announce heads to the rest."""
        frame = encode_frame(push) if push is not None else None
        for session in list(space.sessions.values()):
            if session is exclude:
                continue
            if frame is not None and session.push_to_peer:
                self._send_frame(session, frame)
            else:
                self._send_heads(session, doc, want=False)

    def _retry_pending(self, space: _Space, doc: bytes, session: Session) -> None:
        try:
            applied = ingest(self.store, space.id, doc, [], [], session.pending, self._verified, self._now)
        except RemoteProtocolError as error:
            self._penalize(session, offense_of(error), str(error))
            return
        if applied:
            self._after_apply(space, doc, applied, session, None)

    def _duplicate(self, session: Session) -> None:
        """A batch we already had came by push: this peer need not push to us (Plumtree prune)."""
        self.stats["duplicate_batches"] += 1
        if not session.pruned_peer:
            session.pruned_peer = True
            self._send(session, Prune())

    def _want(self, session: Session, doc: bytes) -> None:
        """Ask the peer for what we lack of ``doc``, unless a recent request is unanswered."""
        if session.wants.get(doc, self._now) > self._now:
            return
        session.wants[doc] = self._now + self.config.want_timeout_ms
        session.pruned_peer = False  # a graft: the peer pushes to us again
        self._send_heads(session, doc, want=True)

    def _lacks(self, session: Session, doc: bytes) -> bool:
        """Whether the peer reported heads of ``doc`` we do not hold."""
        known = self._known(self._session_space(session).id, doc)
        return not all(known(h) for h in self._state(session, doc).their_heads)

    # ----- status and per-peer state -----

    def _hello(self, session: Session) -> Hello:
        assert session.space is not None
        return Hello(SUPPORTED_VERSIONS, session.space, self.identity.public_key, self._status(session, complete=False))

    def _status(self, session: Session, *, complete: bool) -> Status:
        """Our summary, and the heads of every doc whose heads the peer has not been told."""
        space = self._session_space(session)
        docs = []
        for doc, heads in sorted(space.heads.items()):
            if heads and (complete or self._state(session, doc).sent_heads != heads):
                docs.append(DocHeads(doc, heads))
                self._save_state(session, doc, self._state(session, doc).told(heads))
        return Status(space.summary, tuple(docs), complete)

    def _send_heads(self, session: Session, doc: bytes, *, want: bool) -> None:
        heads = self._session_space(session).heads.get(doc, ())
        self._send(session, HeadsMessage(doc, heads, want))
        self._save_state(session, doc, self._state(session, doc).told(heads))

    def _record_report(self, session: Session, doc: bytes, heads: Heads) -> None:
        state = self._state(session, doc).reported(heads, self._known(self._session_space(session).id, doc))
        self._save_state(session, doc, state)
        if not self._lacks(session, doc):
            session.grafts.pop(doc, None)
            session.wants.pop(doc, None)

    def _state(self, session: Session, doc: bytes) -> PeerDocState:
        state = session.states.get(doc)
        if state is None:
            saved = self.store.load_sync_state(session.peer, self._session_space(session).id, doc)
            try:
                state = PeerDocState.decode(saved) if saved is not None else PeerDocState()
            except WireError:
                self.stats["corrupt_sync_states"] += 1  # costs a fuller exchange, nothing else
                state = PeerDocState()
            session.states[doc] = state
        return state

    def _save_state(self, session: Session, doc: bytes, state: PeerDocState) -> None:
        if session.states.get(doc) != state:
            session.states[doc] = state
            self.store.save_sync_state(session.peer, self._session_space(session).id, doc, state.encode())

    def _known(self, space: bytes, doc: bytes) -> Callable[[bytes], bool]:
        return lambda change_hash: self.store.has_change(space, doc, change_hash)

    # ----- timers -----

    def _maintain(self, session: Session) -> None:
        self._touched.add(session)
        config = self.config
        if self._now - session.last_received_ms >= config.peer_timeout_ms:
            self._close(session, "timed out: nothing heard from the peer", say_bye=False)
            return
        if session.phase is Phase.ACTIVE:
            expired = session.pending.expire(self._now, config.pending_ttl_ms)
            self.stats["pending_expired"] += expired.covered + expired.uncovered
            if expired.uncovered:
                self._penalize(session, Offense.UNCOVERED_EXPIRED, f"{expired.uncovered} changes never got a tip")
                if session.conn not in self._sessions:
                    return
            for requests in (session.grafts, session.wants):
                for doc in [doc for doc, due in requests.items() if due <= self._now]:
                    del requests[doc]
                    if self._lacks(session, doc):
                        self._want(session, doc)
            if session.anti_entropy_ms is not None and session.anti_entropy_ms <= self._now:
                session.anti_entropy_ms = self._next_anti_entropy()
                self._send(session, self._status(session, complete=False))
        if self._now - session.last_sent_ms >= config.heartbeat_interval_ms:
            self._send(session, Ping())

    def _next_anti_entropy(self) -> int:
        return self._now + round(self.config.anti_entropy_interval_ms * self._rng.uniform(0.5, 1.5))

    def _schedule_timers(self) -> None:
        for session in self._touched:
            if session.conn not in self._sessions:
                continue
            config = self.config
            due = [
                session.last_received_ms + config.peer_timeout_ms,
                session.last_sent_ms + config.heartbeat_interval_ms,
                *session.grafts.values(),
                *session.wants.values(),
            ]
            if session.anti_entropy_ms is not None:
                due.append(session.anti_entropy_ms)
            expiry = session.pending.next_expiry_ms(config.pending_ttl_ms)
            if expiry is not None:
                due.append(expiry)
            at_ms = max(min(due), self._now)
            if at_ms != session.timer_ms:
                session.timer_ms = at_ms
                self._out.append(SetTimer(session.conn, at_ms))

    # ----- sending, closing, scoring -----

    def _send(self, session: Session, message: Message) -> None:
        self._send_frame(session, encode_frame(message))

    def _send_frame(self, session: Session, frame: bytes) -> None:
        session.last_sent_ms = self._now
        self._touched.add(session)
        self.stats["messages_sent"] += 1
        self.stats["bytes_sent"] += len(frame)
        self._out.append(Send(session.conn, frame))

    def _take_token(self, session: Session) -> None:
        config = self.config
        elapsed_s = (self._now - session.tokens_ms) / 1000
        session.tokens = min(config.frames_burst_max, session.tokens + elapsed_s * config.frames_per_second_max)
        session.tokens_ms = self._now
        if session.tokens < 1:
            raise Flood(f"more than {config.frames_per_second_max:g} frames a second")
        session.tokens -= 1

    def _penalize(self, session: Session, offense: Offense, detail: str) -> None:
        """Count the offense against the peer; disconnect and ban it at the limit."""
        score = self._scores.setdefault(session.peer, PeerScore())
        total = score.add(offense, self._now)
        self.stats[f"offense_{offense.value}"] += 1
        self._out.append(PeerPenalized(session.conn, session.peer, offense.value, detail, total))
        if score.should_disconnect:
            score.ban(self._now + self.config.ban_ms)
            for other in [s for s in self._sessions.values() if s.peer == session.peer]:
                self._close(other, f"misbehaved ({offense.value}): {detail}")

    def _close(self, session: Session, reason: str, *, say_bye: bool = True) -> None:
        if say_bye:
            self._send(session, Bye(reason[:MAX_REASON_CHARS]))
        self._out.append(Disconnect(session.conn, reason))
        self._forget(session)

    def _forget(self, session: Session) -> None:
        self._sessions.pop(session.conn, None)
        if session.space in self._spaces:
            self._spaces[session.space].sessions.pop(session.conn, None)

    def _space(self, space: bytes) -> _Space:
        try:
            return self._spaces[space]
        except KeyError:
            raise LocalProtocolError(f"space {space.hex()[:12]} is not served by this replicator") from None

    def _session_space(self, session: Session) -> _Space:
        assert session.space is not None, "a session learns its space before any use of it"
        return self._space(session.space)
