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

A reply is sent once: what we sent on a stream counts as held by the peer until it asks again
(``Heads(want=True)``), so a StatusRequest round or an anti-entropy Status crossing a large
reply does not send the same document a second time.

Live, each signed batch a local author commits is pushed along one tree per origin and pruned
where it arrives twice: Plumtree's eager push (protocol/push_tree.py decides, this module sends).
A peer that hears of heads it lacks waits a short delay for them to arrive by push, then asks
one announcer at a time (``Heads(want=True)``); the reply grafts the origins whose changes it
carries, so the replier pushes them again. A pushed batch whose deps have not arrived waits the
same delay before we ask, since with concurrent writers they are usually on their way along
another origin's tree. Announcements go out once per peer and doc at the end of each event and
at most once per ``announce_interval_ms`` (a burst of batches costs one), and not at all to a
peer that already reported holding what they announce. A periodic anti-entropy ``Status``
repairs whatever else went missing.

Per-peer sync states are kept in the session (protocol/session.py) and written to the store when
its timer fires and when it closes. A reply is built once per (doc, base, heads), whoever asks
(protocol/replies.py).

Everything a peer sends is verified before it is applied (protocol/ingest.py), from the
cheapest check to the dearest: a batch's shape, then its op count from the bytes alone
(protocol/chunk_scan.py), then the signatures, the author chains and the store's Automerge.
What a peer may make us spend — decoding, signature checks, replies, frames — comes out of its
session's budgets (protocol/budget.py); what they cannot pay now is dropped and asked for
later, and our own requests and replies are paced within the peer's budget for us, so a large
catch-up never looks like a flood. A status is sent in pages; state is kept only for docs we
hold. A peer that breaks the rules is scored (protocol/scoring.py); over the limit it is
disconnected and refused for a while, and none of the offending message is applied or
forwarded. A well-formed message over a limit ends the session without a ban.

Admission before disclosure (private spaces, protocol/capabilities.py). Nothing that names a
private space goes to a peer its capability log does not admit (``CapabilityLog.admits``):

- We open a session for a space only to a peer the log admits; for any other, ``Connected``
  gets a ``Disconnect`` and not one frame. A member that is not the root first presents its
  proof (``Capabilities`` before its Hello: the grants that admit it, at most
  MAX_PROOF_RECORDS, the nearest to it), for the responder may not hold them yet: a joiner's.
- The responder holds a proof unstored (verified, so a bad record costs the same whatever
  space it is for); on the Hello, if it serves the space, it adds the proof's records of that
  space only if with them the log admits the peer and every record and member valid before
  stays so (a used-up ticket redeemed again would displace its first joiner). A space it does
  not serve and a peer it does not admit get the same ``Bye(NOT_SERVED)``, byte for byte: a
  stranger cannot tell "no such space" from "not a member".
- Once both Hellos are in, each side sends its log's digest (``Capabilities(digest, ())``);
  a side whose digest differs gets every record the other holds, in pages, at most once per
  anti-entropy period: each periodic Status is followed by the digest again, so an answer lost
  on the way is asked for again.
  Records a peer sends are added through the store (a bad one is a malformed message), and
  every record the log gains — from a peer, or locally (``CapabilitiesAdded``) — is pushed to
  every other active session of the space. Whenever the log changes, and at every session
  timer (a grant expires), a session whose peer the log no longer admits is closed.
- A change the log does not authorise (protocol/ingest.py) is not asked for again until it
  may be allowed: when the log changes, and — for a new file's content that came before the
  index entry naming it, judged as a doc the index does not name — when the index moves. Then
  we ask for its doc at once, from the peer it came by. A revocation the log gains may take
  stored changes out of their docs (store/capabilities.py): our heads are read again.

An open space has no log to sync: its sessions send no ``Capabilities`` at all, so its wire
traffic is exactly what it was before private spaces (and an older peer still syncs it). The
timing of the responder's answer is not hidden: a Hello for a space we serve costs a log
lookup (and a proof's evaluation) that one for an unknown space does not.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import native
from protocol.batch import decode_changes, pack_changes, scan_batch, unpack
from protocol.budget import PeerBudget
from protocol.capabilities import CapabilityLog, Record, Revocation, decode_record
from protocol.errors import (
    CapabilityLimit,
    Flood,
    LocalProtocolError,
    MessageTooLarge,
    OverLimit,
    RemoteProtocolError,
    UnexpectedMessage,
    WireError,
)
from protocol.events import (
    Action,
    Applied,
    CapabilitiesAdded,
    Connected,
    ConnectionLost,
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
from protocol.ingest import Ingested, PendingChanges, VerifiedTips, ingest, wait_keys
from protocol.limits import (
    CAPABILITY_PAGE_BYTES,
    MAX_DOCS_PER_STATUS,
    MAX_FRAME_BYTES,
    MAX_PROOF_RECORDS,
    MAX_PUSHED_RECORDS,
    MAX_REASON_CHARS,
    MAX_RECORDS_PER_MESSAGE,
    MAX_RECORDS_PER_SESSION,
    MAX_REFUSED_CHANGES,
    MAX_SCORED_PEERS,
    MAX_STATUS_DOCS_TOTAL,
    MAX_UNHELD_DOCS_PER_SESSION,
    STATUS_PAGE_BYTES,
    SUPPORTED_VERSIONS,
    SyncConfig,
)
from protocol.push_tree import FirstCopy, Push, PushTree
from protocol.recent import Recent
from protocol.reconcile import Heads, PeerDocState, space_summary
from protocol.replies import Reply, ReplyCache
from protocol.scoring import Offense, PeerScore, offense_of
from protocol.session import ALLOWED, Phase, Session
from protocol.space import INDEX_DOC_ID
from protocol.store_api import ChangeStore
from protocol.tips import TipSignature
from protocol.wire import (
    Bye,
    Capabilities,
    Changes,
    DocHeads,
    Encoding,
    Hello,
    Message,
    Ping,
    Prune,
    Status,
    StatusRequest,
    encode_frame,
)
from protocol.wire import Heads as HeadsMessage

# The one answer to a Hello for a space we do not serve and to one from a peer our log does not
# admit: the same bytes, so neither tells a stranger whether the space exists here.
NOT_SERVED = "we do not serve this space"


@dataclass(frozen=True, slots=True)
class _Unauthorised:
    """Where an unauthorised change came from, to ask for it again when it may be allowed."""

    doc: bytes
    conn: ConnId  # the session it came by
    unknown_doc: bool  # judged as a file the index does not name: the index moving may allow it


class _Space:
    """A served space: our heads per doc (kept in step with the store), its summary, its push
    trees, and its active sessions."""

    def __init__(self, store: ChangeStore, space: bytes, config: SyncConfig) -> None:
        self.id = space
        self.heads: dict[bytes, Heads] = {doc: tuple(store.heads(space, doc)) for doc in store.doc_ids(space)}
        self.push = PushTree(config)
        # Changes refused for good (protocol/ingest.py): never asked for, taken or penalized again.
        self.refused: Recent[bytes, None] = Recent(MAX_REFUSED_CHANGES)
        # Changes the capability log does not authorise (protocol/ingest.py): not asked for
        # again until the log changes (or, for a file the index did not name, the index
        # moves), since asking would only bring them back to be refused.
        self.unauthorised: Recent[bytes, _Unauthorised] = Recent(MAX_REFUSED_CHANGES)
        self.sessions: dict[ConnId, Session] = {}
        # Capability records we pushed to the sessions already (see ``_log_gained``).
        self.pushed: Recent[bytes, None] = Recent(MAX_PUSHED_RECORDS)
        self._summary: bytes | None = None

    def set_heads(self, doc: bytes, heads: Iterable[bytes]) -> bool:
        """Keep ``doc``'s heads; whether they changed."""
        new = tuple(sorted(heads))
        if self.heads.get(doc) == new:
            return False
        self.heads[doc] = new
        self._summary = None
        return True

    def reload_heads(self, store: ChangeStore) -> None:
        """Every doc's heads afresh from the store: a revocation took changes out of its docs
        (store/capabilities.py), and a doc of nothing but such changes is gone."""
        held = set(store.doc_ids(self.id))
        for doc in [doc for doc in self.heads if doc not in held]:
            del self.heads[doc]
            self._summary = None
        for doc in held:
            self.set_heads(doc, store.heads(self.id, doc))

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
        wall_clock_ms: Callable[[], int] | None = None,
    ) -> None:
        """``wall_clock_ms``: the time grants expire by (ms since the epoch), where the time
        events come with is not (the node's is monotonic); None: the events' time."""
        self.identity = identity
        self._wall_clock_ms = wall_clock_ms
        self.store = store
        self.config = config
        self.stats: Counter[str] = Counter()
        self._rng = rng
        self._spaces = {space: _Space(store, space, config) for space in spaces}
        self._sessions: dict[ConnId, Session] = {}
        self._scores: dict[bytes, PeerScore] = {}
        self._verified = VerifiedTips()
        self._replies = ReplyCache(store, self.stats)
        self._out: list[Action] = []
        self._touched: dict[Session, None] = {}  # a dict, so timers are set in a stable order
        self._announcements: dict[tuple[Session, bytes], None] = {}
        self._now = 0

    # ----- the interface -----

    def handle(self, event: Event, now_ms: int) -> list[Action]:
        """Process one event; return what the driver must do, in order.

        Raises:
            LocalProtocolError: the event is our own misuse (a space we do not serve);
                nothing changed.
        """
        self._out, self._touched, self._now = [], {}, now_ms
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
                self._spaces.setdefault(event.space, _Space(self.store, event.space, self.config))
            case CapabilitiesAdded():
                self._on_capabilities_added(event)
        if self._announcements:
            self._send_announcements()
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
        if event.space is not None and not self._log(event.space).admits(event.peer, self._wall_ms()):
            # Not one frame: our Hello would name the space to a peer its log does not admit.
            self.stats["not_admitted_not_opened"] += 1
            self._out.append(Disconnect(event.conn, "the peer is not admitted to the space"))
            return
        session = Session(
            conn=event.conn,
            peer=event.peer,
            space=event.space,
            opened_ms=self._now,
            last_received_ms=self._now,
            last_sent_ms=self._now,
            budget=PeerBudget.start(self.config, self._now),
            pending=PendingChanges(self.config.pending_changes_max),
        )
        self._sessions[event.conn] = session
        self._touched[session] = None
        if event.space is not None:
            self._send_proof(session)
            self._send_hello(session)

    def _on_data(self, event: DataReceived) -> None:
        session = self._sessions.get(event.conn)
        if session is None:
            return  # data that was in flight when we closed the connection
        self._touched[session] = None
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
                if isinstance(error, OverLimit) and event.conn in self._sessions:
                    # Well formed, but more than we take: end the session, without a ban.
                    self._close(session, f"over a limit: {error}")

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
        if space.set_heads(event.doc, self.store.heads(event.space, event.doc)) and event.doc == INDEX_DOC_ID:
            self._index_moved(space)
        encoding, data = pack_changes(event.changes)
        tip = TipSignature(len(event.changes) - 1, event.tip.signature)
        batch = Changes(event.doc, encoding, data, (), (tip,), push=True)
        space.push.took(batch.batch_id, None, self.identity.public_key)
        self._spread(space, event.doc, [Push(encode_frame(batch), self.identity.public_key, None)], exclude=None)

    # ----- messages -----

    def _dispatch(self, session: Session, message: Message) -> None:
        if type(message) not in ALLOWED[session.phase]:
            raise UnexpectedMessage(f"{type(message).__name__} is not allowed while {session.phase.value}")
        match message:
            case Hello():
                self._on_hello(session, message)
            case Status():
                self._take_status(session, message, ask=True)
            case StatusRequest():
                self._send_status(session, complete=True)
            case HeadsMessage():
                self._on_heads(session, message)
            case Changes():
                self._on_changes(session, message)
            case Prune():
                self._session_space(session).push.peer_pruned(session.conn, message.origin)
            case Ping():
                pass  # its arrival already refreshed last_received_ms
            case Bye():
                self._close(session, f"peer left: {message.reason}", say_bye=False)
            case Capabilities() if session.phase is Phase.AWAITING_HELLO:
                self._hold_proof(session, message)
            case Capabilities():
                self._on_capabilities(session, message)

    def _on_hello(self, session: Session, hello: Hello) -> None:
        if hello.peer != session.peer:
            raise UnexpectedMessage("the Hello names a key other than the one the transport authenticated")
        if not set(hello.versions) & set(SUPPORTED_VERSIONS):
            self._close(session, f"no common wire version: peer speaks {list(hello.versions)}, we {list(SUPPORTED_VERSIONS)}")
            return
        if session.space is None:
            if not self._admits_hello(session, hello.space):
                self._close(session, NOT_SERVED)
                return
            session.space = hello.space
            self._send_hello(session)
        elif hello.space != session.space:
            raise UnexpectedMessage("the Hello is for another space than the one we asked for")
        elif not self._log(session.space).admits(session.peer, self._wall_ms()):
            self.stats["refused_not_admitted"] += 1  # its membership ended since we opened
            self._close(session, NOT_SERVED)
            return
        session.phase = Phase.ACTIVE
        session.decoder.max_frame_bytes = MAX_FRAME_BYTES
        session.anti_entropy_ms = self._next_anti_entropy()
        space = self._space(session.space)
        space.sessions[session.conn] = session
        space.push.add_link(session.conn)
        log = self._log(space.id)
        if log.private:
            self._send(session, Capabilities(log.digest, ()))
        self._take_status(session, hello.status, ask=False)

    # ----- admission and the capability log -----

    def _log(self, space: bytes) -> CapabilityLog:
        return self.store.capability_log(space)

    def _wall_ms(self) -> int:
        return self._now if self._wall_clock_ms is None else self._wall_clock_ms()

    def _send_proof(self, session: Session) -> None:
        """Before our Hello, the records that admit us, for a responder that may lack them (we
        joined by a ticket): the nearest MAX_PROOF_RECORDS of the chain, which the responder,
        a member, most likely holds the rest of. Nothing for the root or an open space."""
        assert session.space is not None
        log = self._log(session.space)
        proof = log.proof_for(self.identity.public_key)[-MAX_PROOF_RECORDS:]
        if proof:
            self.stats["proofs_sent"] += 1
            self._send(session, Capabilities(log.digest, tuple(record.encode() for record in proof)))

    def _hold_proof(self, session: Session, message: Capabilities) -> None:
        """A proof before the Hello: verified now, before we know its space, so a bad record
        costs the peer the same whether we serve that space or not; stored only on the Hello.

        Raises:
            UnexpectedMessage: from the side that opened nothing, or a second proof.
            OverLimit: more than MAX_PROOF_RECORDS records.
            Flood: its signature checks exceed the peer's budget.
            CapabilityError: a record that does not decode or verify (malformed).
        """
        if session.space is not None or session.proof is not None:
            raise UnexpectedMessage("a proof comes once, from the side that opened the session, before its Hello")
        if len(message.records) > MAX_PROOF_RECORDS:
            raise OverLimit(f"a proof of {len(message.records)} records, more than {MAX_PROOF_RECORDS}")
        if not session.budget.take("signature_checks", len(message.records), self._now):
            raise Flood("a proof's signature checks exceed the peer's budget")
        session.proof = tuple(decode_record(record) for record in message.records)

    def _admits_hello(self, session: Session, space_id: bytes) -> bool:
        """Whether to answer a Hello for ``space_id``: we serve it and its log admits the
        peer, with the peer's proof if it sent one (then stored, with what it pushes)."""
        proof = [record for record in session.proof or () if record.space == space_id]
        session.proof = None
        if space_id not in self._spaces:
            self.stats["refused_unknown_space"] += 1
            return False
        log = self._log(space_id)
        if log.admits(session.peer, self._wall_ms()):
            return True  # what its proof holds that we lack comes with the log exchange
        if proof and self._proof_admits(log, session.peer, proof):
            try:
                added = self.store.add_capability_records(space_id, [record.encode() for record in proof])
            except CapabilityLimit:
                self.stats["proofs_over_log_limit"] += 1
            else:
                self.stats["proofs_taken"] += 1
                self._log_gained(self._spaces[space_id], {record.hash: record.encode() for record in proof}, added, source=None)
        if self._log(space_id).admits(session.peer, self._wall_ms()):
            return True
        self.stats["refused_not_admitted"] += 1
        return False

    def _proof_admits(self, log: CapabilityLog, peer: bytes, proof: list[Record]) -> bool:
        """Whether the log with the proof's records admits the peer without displacing anyone
        (tried on a copy): every record valid now stays valid, every member admitted now stays
        admitted. So a used-up ticket's second redemption is refused here, whether its grant
        sorts before the first's (it would take the use and cut the first joiner off) or after
        (it is spent); the fixed order only decides between redemptions taken at different
        nodes, which meet in the log exchange (protocol/capabilities.py, rule 5)."""
        try:
            trial = CapabilityLog(log.genesis, [*log.records(), *proof])
        except CapabilityLimit:
            return False
        now_ms = self._wall_ms()
        if not trial.admits(peer, now_ms):
            return False
        held = log.records()
        displaced = any(log.verdict(record.hash) is None and trial.verdict(record.hash) is not None for record in held) or any(
            not trial.admits(member.key, now_ms) for member in log.members(now_ms) if not member.revoked and not member.invitation
        )
        if displaced:
            self.stats["proofs_displacing"] += 1
        return not displaced

    def _on_capabilities(self, session: Session, message: Capabilities) -> None:
        """A peer's digest (answered with our whole log, once an anti-entropy period, if it differs) or its
        records (added; what is new to us is pushed on).

        Raises:
            OverLimit: more than MAX_RECORDS_PER_SESSION records this session, or our log is
                full (CapabilityLimit).
            CapabilityError: a record that does not decode or verify, or of another space.
        """
        space = self._session_space(session)
        log = self._log(space.id)
        if not log.private:
            self.stats["capabilities_ignored"] += 1  # an open space has no log to sync
            return
        session.records_received += len(message.records)
        if session.records_received > MAX_RECORDS_PER_SESSION:
            raise OverLimit(f"more than {MAX_RECORDS_PER_SESSION} capability records in one session")
        if message.records:
            added = self.store.add_capability_records(space.id, message.records)  # CapabilityLimit: OverLimit
            self.stats["capability_records_received"] += len(message.records)
            by_hash = {hashlib.sha256(record).digest(): record for record in message.records}
            self._log_gained(space, by_hash, added, source=session)
        elif message.digest != log.digest and not session.log_answered:
            session.log_answered = True
            self.stats["capability_logs_sent"] += 1
            self._send_records(session, [record.encode() for record in log.records()])

    def _on_capabilities_added(self, event: CapabilitiesAdded) -> None:
        """The store's log gained records: push those we have not pushed ourselves."""
        space = self._spaces.get(event.space)
        if space is None:
            return
        new = {h for h in event.hashes if h not in space.pushed}
        by_hash = {record.hash: record.encode() for record in self._log(space.id).records() if record.hash in new} if new else {}
        self._log_gained(space, by_hash, [h for h in event.hashes if h in by_hash], source=None)

    def _log_gained(self, space: _Space, by_hash: dict[bytes, bytes], added: Iterable[bytes], source: Session | None) -> None:
        """Records the log just gained (``added``, their bytes in ``by_hash``): close the sessions
        of peers the log no longer admits (telling each only of a revocation naming it, so its
        own log learns why), then push the records to every other active session of the space
        but the one they came by."""
        added = list(added)
        for h in added:
            space.pushed.put(h, None)
        log = self._log(space.id)
        if any(isinstance(log.get(h), Revocation) for h in added):
            space.reload_heads(self.store)  # the store took the changes it refuses out of their docs
        for session in list(space.sessions.values()):
            if not log.admits(session.peer, self._wall_ms()):
                own = [by_hash[h] for h in added if h in by_hash and _revokes(log.get(h), session.peer)]
                if own and session is not source:
                    self._send_records(session, own)
                self._close_not_admitted(session)
        records = [by_hash[h] for h in added if h in by_hash]
        if records:
            for session in list(space.sessions.values()):
                if session is not source:
                    self._send_records(session, records)
        if added:
            self._ask_again(space, unknown_doc_only=False)  # the log changed: they may be allowed now

    def _close_not_admitted(self, session: Session) -> None:
        self.stats["closed_not_admitted"] += 1
        self._close(session, "the peer is no longer admitted to the space")

    def _send_records(self, session: Session, records: list[bytes]) -> None:
        """Records, in pages of at most CAPABILITY_PAGE_BYTES (and MAX_RECORDS_PER_MESSAGE)."""
        digest = self._log(self._session_space(session).id).digest
        page: list[bytes] = []
        page_bytes = 0
        for record in records:
            if page and (page_bytes + len(record) > CAPABILITY_PAGE_BYTES or len(page) == MAX_RECORDS_PER_MESSAGE):
                self._send(session, Capabilities(digest, tuple(page)))
                page, page_bytes = [], 0
            page.append(record)
            page_bytes += len(record)
        if page:
            self._send(session, Capabilities(digest, tuple(page)))
        self.stats["capability_records_sent"] += len(records)

    def _take_status(self, session: Session, status: Status, *, ask: bool) -> None:
        """Take in one page of a status; the whole status once its last page has come.

        Raises:
            OverLimit: the pages list more docs than MAX_STATUS_DOCS_TOTAL.
        """
        if not status.more and not session.status_pages:
            self._on_status(session, status, ask=ask)
            return
        if not session.status_pages:
            session.status_asks = ask  # a Hello's status does not ask, however many pages follow
        if len(session.status_pages) + len(status.docs) > MAX_STATUS_DOCS_TOTAL:
            raise OverLimit(f"a paged status lists more than {MAX_STATUS_DOCS_TOTAL} docs")
        session.status_pages += status.docs
        if status.more:
            return
        whole = Status(status.summary, tuple(session.status_pages), status.complete)
        session.status_pages = []
        self._on_status(session, whole, ask=session.status_asks)

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
        model = {**{doc: self._state(session, doc).their_heads for doc in unlisted}, **listed}
        if space_summary(model) == status.summary:
            docs = list(model)
        else:
            self.stats["status_mismatches"] += 1
            self._send(session, StatusRequest())
            docs = list(listed)  # what the peer reported is certain; the rest comes with the full listing
        for doc in docs:
            if doc in space.heads or doc in session.states:  # not an unheld doc beyond the limit
                self._reconcile(session, doc, ask=ask, answer=False)

    def _on_heads(self, session: Session, message: HeadsMessage) -> None:
        space = self._session_space(session)
        if message.doc not in space.heads and not message.heads:
            return  # a doc neither side holds: nothing to say or do
        lacks = self._record_report(session, message.doc, message.heads)
        if message.doc not in space.heads and message.doc not in session.states:
            return  # an unheld doc beyond the limit: ignored
        if message.want:
            session.sent.pop(message.doc, None)  # it asks again, so what we sent did not do
            self._reconcile(session, message.doc, ask=True, answer=True)
        elif lacks:
            session.grafts.setdefault(message.doc, self._now + self.config.graft_delay_ms)

    def _on_changes(self, session: Session, batch: Changes) -> None:
        """Check a batch from the cheapest test to the dearest — its shape, what it would cost
        to decode (and whether the peer's budget pays for it), the signatures, the author
        chains, Automerge itself — and apply it; forward a pushed batch only if all of it is
        now stored."""
        space = self._session_space(session)
        first = space.push.first_copy(batch.batch_id) if batch.push else None
        if first is not None:
            self._duplicate(space, session, first)
            return
        if batch.push and (len(batch.tips) != 1 or batch.encoding is Encoding.DOCUMENT):
            raise UnexpectedMessage("a pushed batch is changes of one author under that author's one tip")
        if not session.budget.signature_checks.can_pay(len(batch.tips), self._now):
            # Its tips could need more checks than its budget pays: not even decoded (below).
            ready_ms = session.budget.signature_checks.ready_ms(len(batch.tips), self._now)
            self._defer_batch(session, batch, ready_ms, "signature_checks")
            return
        scanned = scan_batch(batch.encoding, batch.data)
        if not session.budget.take("decoded_ops", scanned.ops, self._now):
            self._defer_batch(session, batch, session.budget.decoded_ops.ready_ms(scanned.ops, self._now), "decoded_ops")
            return
        changes = decode_changes(unpack(scanned, batch.base))
        if batch.push and (not changes or any(change.actor != changes[-1].actor for change in changes)):
            raise UnexpectedMessage("a pushed batch holds changes of its origin only")
        by_hash = {change.hash: change for change in changes}
        tips = [tip.resolve(space.id, batch.doc, changes, by_hash) for tip in batch.tips]
        if len({tip.author for tip in tips}) != len(tips):
            raise WireError("a batch carries two tips by one author")
        checks = sum(1 for tip in tips if tip not in self._verified)
        if checks and not session.budget.take("signature_checks", checks, self._now):
            self._defer_batch(session, batch, session.budget.signature_checks.ready_ms(checks, self._now), "signature_checks")
            return
        result = ingest(self.store, space.id, batch.doc, changes, tips, session.pending, self._verified, self._now, space.refused)
        applied = result.applied
        session.wants.pop(batch.doc, None)
        origin = changes[-1].actor if batch.push else None
        if origin is not None:
            space.push.took(batch.batch_id, session.conn, origin)
        else:  # the replier grafted them (_send_reply)
            space.push.reply_received(session.conn, {change.actor for change in changes}, self._now)
        waiting = session.pending.waiting(batch.doc)
        missing = [change_hash for change_hash in by_hash if change_hash in waiting]
        # The batch as it came, forwarded once all of it is stored (now, or once its deps are).
        whole = not result.refused and not result.unauthorised  # a batch is forwarded only as it came
        push = Push(session.decoder.frame, origin, session.conn) if origin is not None and whole else None
        if push is not None and missing:
            space.push.hold(batch.batch_id, batch.doc, push, missing)
        if applied:
            forward = push if not missing else None
            self._after_apply(space, batch.doc, applied, session, forward, [by_hash[h] for h in applied if h in by_hash])
        self._refuse(session, space, batch.doc, result)
        if session.pending.missing_deps(batch.doc):
            if batch.push:  # the deps are most likely on their way along another origin's tree
                session.grafts.setdefault(batch.doc, self._now + self.config.graft_delay_ms)
            else:
                self._want(session, batch.doc)

    # ----- reconciliation -----

    def _defer_batch(self, session: Session, batch: Changes, ready_ms: int, budget: str) -> None:
        """A batch the peer's budget cannot pay for now: dropped unread, and asked for again
        once the budget has refilled. Nobody asks for a push, so an unpaid one also costs the
        peer score."""
        self.stats[f"budget_{budget}_exhausted"] += 1
        session.grafts[batch.doc] = max(ready_ms, session.grafts.get(batch.doc, 0))
        session.wants.pop(batch.doc, None)
        if batch.push:
            self._penalize(session, Offense.COSTLY, f"pushed more than its {budget} budget")

    def _reconcile(self, session: Session, doc: bytes, *, ask: bool, answer: bool) -> None:
        """Send the peer the changes of ``doc`` it lacks, judged by what it last reported.

        Args:
            ask: also ask for changes we lack (the peer's heads name changes we do not have).
            answer: the peer asked us; if it lacks nothing, say so with our heads.
        """
        space = self._session_space(session)
        ours = space.heads.get(doc, ())
        sent = False
        if session.deferred.get(doc, self._now) > self._now:
            self.stats["replies_deferred"] += 1  # a throttled reply of it is due later anyway
            sent = True
        elif not self._holds(session, doc, ours):
            base = tuple(self._state(session, doc).base(self._known(space.id, doc), session.sent.get(doc, ())))
            reply = None if session.budget.sent_frames.available(self._now) < 1 else self._replies.reply(space.id, doc, base, ours)
            if reply is None or (reply.count and not session.budget.take("sent_frames", len(reply.frames), self._now)):
                # Many docs to send at once (a fresh peer): paced within the peer's frame budget.
                self._pace(session, doc, session.paced_replies, "replies_paced", frames=len(reply.frames) if reply else 1)
                sent = True
            elif reply.count and not session.budget.take("reply_bytes", reply.size, self._now):
                # It asks for more than its budget pays now: the reply goes when it does.
                session.deferred[doc] = session.budget.reply_bytes.ready_ms(reply.size, self._now)
                self.stats["budget_reply_bytes_exhausted"] += 1
                sent = True
            elif reply.count:
                session.deferred.pop(doc, None)
                self._send_reply(session, doc, reply)
                session.sent[doc] = ours
                sent = True
        if answer and not sent:
            self._announce(session, doc)
        if ask and self._lacks(session, doc):
            self._want(session, doc)

    def _holds(self, session: Session, doc: bytes, heads: Heads) -> bool:
        """Whether the peer holds every change up to ``heads``: it reported them, or we sent
        them on this stream (which delivers in order, so they arrive before what we send next)."""
        state = self._state(session, doc)
        sent = session.sent.get(doc, ())
        return all(h in state.their_heads or h in state.shared or h in sent for h in heads)

    def _send_reply(self, session: Session, doc: bytes, reply: Reply) -> None:
        for frame in reply.frames:
            self._send_frame(session, frame)
        self._session_space(session).push.reply_sent(session.conn, reply.origins)
        self.stats["reply_changes_sent"] += reply.count

    def _after_apply(
        self,
        space: _Space,
        doc: bytes,
        applied: list[bytes],
        source: Session,
        push: Push | None,
        decoded: list[native.DecodedChange],
    ) -> None:
        """Tell the world: forward a pushed batch and those held for what was stored, announce
        our new heads, retry what waited for what was stored (``decoded``: the applied changes
        at hand, for their chain slots)."""
        if space.set_heads(doc, self.store.heads(space.id, doc)) and doc == INDEX_DOC_ID:
            self._index_moved(space)
        self.stats["changes_applied"] += len(applied)
        source.shares_history = True
        self._out.append(Applied(space.id, doc, tuple(applied), source.conn))
        if push is None:
            self._announce(source, doc)  # the replier learns where we are now
        self._spread(space, doc, [*([push] if push else []), *space.push.released(doc, applied)], exclude=source)
        keys = [*applied, *wait_keys(decoded)]
        for other in list(space.sessions.values()):
            if other is not source and other.pending.unblocked_by(doc, keys):
                self._retry_pending(space, doc, other)

    def _spread(self, space: _Space, doc: bytes, pushes: list[Push], exclude: Session | None) -> None:
        """Push each batch (its frame) to the peers eager for its origin, except the one it came
        by; announce our heads to a peer that got none of them; skip peers that reported
        holding them already."""
        ours = space.heads.get(doc, ())
        for session in list(space.sessions.values()):
            if session is exclude or self._holds(session, doc, ours):
                continue
            pushed = False
            for push in pushes:
                if push.came_by != session.conn and space.push.pushes(session.conn, push.origin):
                    self._send_frame(session, push.frame)
                    pushed = True
            if not pushed:
                self._announce_lazily(session, doc)

    def _retry_pending(self, space: _Space, doc: bytes, session: Session) -> None:
        waiting = {change.hash: change for change in session.pending.changes(doc)}
        try:
            result = ingest(self.store, space.id, doc, [], [], session.pending, self._verified, self._now, space.refused)
        except RemoteProtocolError as error:
            self._penalize(session, offense_of(error), str(error))
            return
        if result.applied:
            self._after_apply(space, doc, result.applied, session, None, [waiting[h] for h in result.applied if h in waiting])
        self._refuse(session, space, doc, result)

    def _refuse(self, session: Session, space: _Space, doc: bytes, result: Ingested) -> None:
        """Remember the changes refused for good, and score the peer that sent them: a ban if
        it is their author forking its own chain; a lesser fault for relaying one we had not
        refused before (it may have accepted it before the change it conflicts with reached it);
        nothing for offering one again. Changes the log does not authorise are counted and not
        asked for again until the log changes (a new file's content that came before its index
        entry, with what depends on it: until the index moves), but cost the peer nothing: our
        log may lag."""
        unknown_doc = doc != INDEX_DOC_ID and any(unauthorised.unknown_doc for unauthorised in result.unauthorised)
        for unauthorised in result.unauthorised:
            space.unauthorised.put(unauthorised.change, _Unauthorised(doc, session.conn, unknown_doc))
        if result.unauthorised:
            self.store.note_refused(space.id, doc, result.unauthorised)  # kept with the reason, for verify and log
        self.stats["changes_unauthorised"] += len(result.unauthorised)
        new = [refusal for refusal in result.refused if refusal.change not in space.refused]
        for refusal in result.refused:
            space.refused.put(refusal.change, None)
        self.stats["changes_refused"] += len(result.refused)
        if not new or session.conn not in self._sessions:
            return
        equivocation = next((r for r in new if r.forks_chain and r.author == session.peer), None)
        if equivocation is not None:
            self._penalize(session, Offense.EQUIVOCATION, equivocation.reason)
        else:
            self._penalize(session, Offense.UNUSABLE_FORWARDED, new[0].reason)

    def _index_moved(self, space: _Space) -> None:
        """The index doc's heads changed: a file's content refused as a doc the index did not
        name may be named now (its entry came after it), so ask for it again."""
        self._ask_again(space, unknown_doc_only=True)

    def _ask_again(self, space: _Space, *, unknown_doc_only: bool) -> None:
        """Forget the unauthorised changes (those of files the index did not name, or all) and
        ask for their docs again: from the peer each came by (a push leaves no record of what
        the pusher holds) and from any other that reported heads we now lack."""
        again = [(change, where) for change, where in space.unauthorised.items() if where.unknown_doc or not unknown_doc_only]
        if not again:
            return
        by_doc: dict[bytes, set[ConnId]] = {}
        for change, where in again:
            space.unauthorised.discard(change)
            by_doc.setdefault(where.doc, set()).add(where.conn)
        self.stats["unauthorised_asked_again"] += len(again)
        for session in list(space.sessions.values()):
            for doc, conns in by_doc.items():
                if session.conn in conns or (doc in session.states and self._needs(session, doc)):
                    self._want(session, doc)

    def _duplicate(self, space: _Space, session: Session, first: FirstCopy) -> None:
        """A pushed batch came again: prune the link if the push tree says so."""
        self.stats["duplicate_batches"] += 1
        if space.push.prune_on_duplicate(session.conn, first, self._now):
            self.stats["prunes_sent"] += 1
            self._send(session, Prune(first.origin))

    def _want(self, session: Session, doc: bytes) -> None:
        """Ask the peer for what we lack of ``doc``, unless a recent request is unanswered."""
        if session.wants.get(doc, self._now) > self._now:
            return
        if not session.budget.take("sent_frames", 1, self._now):
            self._pace(session, doc, session.paced_wants, "wants_paced", frames=1)
            return
        session.wants[doc] = self._now + self.config.want_timeout_ms
        self.stats["wants_sent"] += 1
        self._announcements.pop((session, doc), None)  # the want carries the same heads
        self._send_heads(session, doc, want=True)

    def _pace(self, session: Session, doc: bytes, queue: dict[bytes, None], stat: str, *, frames: int) -> None:
        """Send this reply, want or announcement (``queue``: the session's paced ones of that
        kind) once our frame pacing towards the peer has room for it."""
        queue[doc] = None
        self.stats[stat] += 1
        if session.paced_due_ms is None:
            session.paced_due_ms = session.budget.sent_frames.ready_ms(frames, self._now)
            self._touched[session] = None

    def _run_paced(self, session: Session) -> None:
        """Send paced replies, then wants, then announcements, in order, until the pacing runs
        out of room again."""
        session.paced_due_ms = None
        while session.paced_due_ms is None and (session.paced_replies or session.paced_wants or session.paced_heads):
            if session.paced_replies:
                doc = next(iter(session.paced_replies))
                del session.paced_replies[doc]
                self._reconcile(session, doc, ask=False, answer=False)
            elif session.paced_wants:
                doc = next(iter(session.paced_wants))
                del session.paced_wants[doc]
                if self._needs(session, doc):
                    self._want(session, doc)
            else:
                doc = next(iter(session.paced_heads))
                del session.paced_heads[doc]
                self._send_heads_paced(session, doc, in_turn=True)

    def _answer_due_ms(self, session: Session, doc: bytes) -> int | None:
        """When a want for ``doc`` we sent another peer less than a graft delay ago turns slow,
        if we sent one and have not heard back: as in Plumtree, we graft from one announcer at
        a time, and from the next only when the first is slow to answer."""
        config = self.config
        asked_ms = [
            other.wants[doc] - config.want_timeout_ms
            for other in self._session_space(session).sessions.values()
            if other is not session and doc in other.wants
        ]
        due_ms = max(asked_ms, default=self._now - config.graft_delay_ms) + config.graft_delay_ms
        return due_ms if due_ms > self._now else None

    def _lacks(self, session: Session, doc: bytes) -> bool:
        """Whether the peer reported heads of ``doc`` we do not hold."""
        known = self._known(self._session_space(session).id, doc)
        return not all(known(h) for h in self._state(session, doc).their_heads)

    def _needs(self, session: Session, doc: bytes) -> bool:
        """Whether we should ask the peer for changes of ``doc``: it has heads we lack, or
        changes it sent wait for deps."""
        return self._lacks(session, doc) or session.pending.missing_deps(doc)

    # ----- status and per-peer state -----

    def _send_hello(self, session: Session) -> None:
        """Our Hello, carrying the first page of our status; the other pages follow it."""
        assert session.space is not None
        first, *rest = self._status_pages(session, complete=False)
        self._count_status(self._send(session, Hello(SUPPORTED_VERSIONS, session.space, self.identity.public_key, first)))
        for page in rest:
            self._count_status(self._send(session, page))

    def _send_status(self, session: Session, *, complete: bool) -> None:
        for page in self._status_pages(session, complete=complete):
            self._count_status(self._send(session, page))

    def _count_status(self, sent_bytes: int) -> None:
        """What our statuses cost on the wire (a Hello with its first page counts as one)."""
        self.stats["status_pages_sent"] += 1
        self.stats["status_bytes_sent"] += sent_bytes

    def _status_pages(self, session: Session, *, complete: bool) -> list[Status]:
        """Our summary, and the heads of every doc whose heads the peer has not been told, in
        pages of at most STATUS_PAGE_BYTES of entries (and MAX_DOCS_PER_STATUS docs)."""
        space = self._session_space(session)
        pages: list[list[DocHeads]] = [[]]
        page_bytes = 0
        for doc, heads in sorted(space.heads.items()):
            if heads and (complete or self._state(session, doc).sent_heads != heads):
                entry_bytes = len(doc) + 34 * len(heads) + 4  # CBOR: an array, a doc id, 2+32 per head
                if pages[-1] and (page_bytes + entry_bytes > STATUS_PAGE_BYTES or len(pages[-1]) == MAX_DOCS_PER_STATUS):
                    pages.append([])
                    page_bytes = 0
                pages[-1].append(DocHeads(doc, heads))
                page_bytes += entry_bytes
                self._save_state(session, doc, self._state(session, doc).told(heads))
        last = len(pages) - 1
        return [Status(space.summary, tuple(docs), complete, more=i < last) for i, docs in enumerate(pages)]

    def _announce(self, session: Session, doc: bytes) -> None:
        """Tell the peer our heads of ``doc`` once this event is handled: a peer and doc get
        one announcement per event, however many batches it applied."""
        self._announcements[session, doc] = None

    def _announce_lazily(self, session: Session, doc: bytes) -> None:
        """Announce now, or with the next announcement due within ``announce_interval_ms``."""
        due_ms = session.announced.get(doc, self._now - self.config.announce_interval_ms) + self.config.announce_interval_ms
        if due_ms <= self._now:
            self._announce(session, doc)
        else:
            session.announce.setdefault(doc, due_ms)
            self._touched[session] = None  # its timer may have to come earlier

    def _send_announcements(self) -> None:
        announcements, self._announcements = self._announcements, {}
        for session, doc in announcements:
            if session.conn in self._sessions:
                self._send_heads_paced(session, doc, in_turn=False)

    def _send_heads_paced(self, session: Session, doc: bytes, *, in_turn: bool) -> None:
        """Announce our heads within our frame pacing towards the peer, after those already
        waiting (``in_turn``: this is the first of them). A fresh peer's catch-up announces
        its heads after every doc it applied; unpaced, those reached a replier of a 20,000-file
        space in bursts over its frames budget, which banned the fetching peer for a flood."""
        if (in_turn or not session.paced_heads) and session.budget.take("sent_frames", 1, self._now):
            self._send_heads(session, doc, want=False)
        else:
            self._pace(session, doc, session.paced_heads, "announcements_paced", frames=1)

    def _send_heads(self, session: Session, doc: bytes, *, want: bool) -> None:
        heads = self._session_space(session).heads.get(doc, ())
        self._send(session, HeadsMessage(doc, heads, want))
        session.announced[doc] = self._now
        session.announce.pop(doc, None)
        self._save_state(session, doc, self._state(session, doc).told(heads))

    def _record_report(self, session: Session, doc: bytes, heads: Heads) -> bool:
        """Take in the heads the peer reported; return whether they name changes we lack.

        A doc we do not hold is remembered only up to MAX_UNHELD_DOCS_PER_SESSION per session
        (a peer can name any number of ids, real or not), and never persisted.
        """
        space = self._session_space(session)
        if doc not in space.heads and doc not in session.states:
            if session.unheld >= MAX_UNHELD_DOCS_PER_SESSION:
                self.stats["unheld_docs_ignored"] += 1
                return False
            session.unheld += 1
        known = self._known(space.id, doc)
        if heads and doc in space.heads and not session.shares_history and all(map(known, heads)):
            session.shares_history = True
        self._save_state(session, doc, self._state(session, doc).reported(heads, known))
        lacks = not all(map(known, heads))
        if not lacks and not session.pending.missing_deps(doc):
            session.grafts.pop(doc, None)
            session.wants.pop(doc, None)
        return lacks

    def _state(self, session: Session, doc: bytes) -> PeerDocState:
        state = session.states.get(doc)
        if state is None:
            space = self._session_space(session)
            saved = self.store.load_sync_state(session.peer, space.id, doc) if doc in space.heads else None
            try:
                state = PeerDocState.decode(saved) if saved is not None else PeerDocState()
            except WireError:
                self.stats["corrupt_sync_states"] += 1  # costs a fuller exchange, nothing else
                state = PeerDocState()
            session.states[doc] = state
        return state

    def _save_state(self, session: Session, doc: bytes, state: PeerDocState) -> None:
        """Keep the state; persist it (later) only for a doc we hold: junk ids stay in memory."""
        if session.states.get(doc) != state:
            session.states[doc] = state
            if doc in self._session_space(session).heads:
                session.unsaved[doc] = None

    def _write_states(self, session: Session) -> None:
        """Hand the store the session's states that changed since the last time (kept here
        until the peer shares history with us)."""
        if session.space is None or not session.shares_history:
            return
        for doc in session.unsaved:
            self.store.save_sync_state(session.peer, session.space, doc, session.states[doc].encode())
        session.unsaved.clear()

    def _known(self, space: bytes, doc: bytes) -> Callable[[bytes], bool]:
        """Whether a change counts as held: stored, refused for good (never to be asked for), or
        not authorised by the log as it is."""
        served = self._space(space)
        refused, unauthorised = served.refused, served.unauthorised
        has_change = self.store.has_change
        return lambda change_hash: has_change(space, doc, change_hash) or change_hash in refused or change_hash in unauthorised

    # ----- timers -----

    def _maintain(self, session: Session) -> None:
        self._touched[session] = None
        self._write_states(session)
        config = self.config
        if self._now - session.last_received_ms >= config.peer_timeout_ms:
            self._close(session, "timed out: nothing heard from the peer", say_bye=False)
            return
        if session.phase is Phase.AWAITING_HELLO and self._now - session.opened_ms >= config.hello_timeout_ms:
            self.stats["hello_timeouts"] += 1
            self._close(session, f"no Hello within {config.hello_timeout_ms} ms")
            return
        if session.phase is Phase.ACTIVE:
            if not self._log(self._session_space(session).id).admits(session.peer, self._wall_ms()):
                self._close_not_admitted(session)  # its grant expired
                return
            expired = session.pending.expire(self._now, config.pending_ttl_ms)
            self.stats["pending_expired"] += expired.covered + expired.uncovered
            if expired.uncovered:
                self._penalize(session, Offense.UNCOVERED_EXPIRED, f"{expired.uncovered} changes never got a tip")
                if session.conn not in self._sessions:
                    return
            for doc in [doc for doc, due in session.grafts.items() if due <= self._now]:
                del session.grafts[doc]
                if not self._needs(session, doc):
                    continue
                slow_ms = self._answer_due_ms(session, doc)
                if slow_ms is not None:  # another peer's answer, due by then, may bring this too
                    session.grafts[doc] = slow_ms
                else:
                    self._want(session, doc)
            for doc in [doc for doc, due in session.wants.items() if due <= self._now]:
                del session.wants[doc]
                if self._needs(session, doc):
                    self._want(session, doc)
            if session.paced_due_ms is not None and session.paced_due_ms <= self._now:
                self._run_paced(session)
            for doc in [doc for doc, due in session.deferred.items() if due <= self._now]:
                del session.deferred[doc]  # its budget has refilled: send the throttled reply
                self._reconcile(session, doc, ask=False, answer=False)
            space = self._session_space(session)
            for doc in [doc for doc, due in session.announce.items() if due <= self._now]:
                del session.announce[doc]
                if not self._holds(session, doc, space.heads.get(doc, ())):
                    self._announce(session, doc)
            if session.anti_entropy_ms is not None and session.anti_entropy_ms <= self._now:
                session.anti_entropy_ms = self._next_anti_entropy()
                self._send_status(session, complete=False)
                log = self._log(space.id)
                if log.private:  # the log's repair too: a lost answer is asked for again
                    session.log_answered = False
                    self._send(session, Capabilities(log.digest, ()))
        if self._now - session.last_sent_ms >= config.heartbeat_interval_ms:
            self._send(session, Ping())

    def _next_anti_entropy(self) -> int:
        return self._now + round(self.config.anti_entropy_interval_ms * self._rng.uniform(0.5, 1.5))

    def _schedule_timers(self) -> None:
        config = self.config
        for session in self._touched:
            if session.conn not in self._sessions:
                continue
            at_ms = min(session.last_received_ms + config.peer_timeout_ms, session.last_sent_ms + config.heartbeat_interval_ms)
            if session.phase is Phase.AWAITING_HELLO:
                at_ms = min(at_ms, session.opened_ms + config.hello_timeout_ms)
            for requests in (session.grafts, session.wants, session.announce, session.deferred):
                if requests:
                    at_ms = min(at_ms, *requests.values())
            for due_ms in (session.anti_entropy_ms, session.paced_due_ms):
                if due_ms is not None:
                    at_ms = min(at_ms, due_ms)
            expiry = session.pending.next_expiry_ms(config.pending_ttl_ms)
            if expiry is not None:
                at_ms = min(at_ms, expiry)
            at_ms = max(at_ms, self._now)
            if at_ms != session.timer_ms:
                session.timer_ms = at_ms
                self._out.append(SetTimer(session.conn, at_ms))

    # ----- sending, closing, scoring -----

    def _send(self, session: Session, message: Message) -> int:
        """Send one message; its frame's bytes (0: too large, not sent)."""
        try:
            frame = encode_frame(message)
        except MessageTooLarge:
            self.stats["own_frames_too_large"] += 1  # our fault, never the peer's: it is not sent
            return 0
        self._send_frame(session, frame)
        return len(frame)

    def _send_frame(self, session: Session, frame: bytes) -> None:
        session.last_sent_ms = self._now
        self._touched[session] = None
        self.stats["messages_sent"] += 1
        self.stats["bytes_sent"] += len(frame)
        self._out.append(Send(session.conn, frame))

    def _take_token(self, session: Session) -> None:
        if not session.budget.take("frames", 1, self._now):
            raise Flood(f"more than {self.config.frames_per_second_max:g} frames a second")

    def _penalize(self, session: Session, offense: Offense, detail: str) -> None:
        """Count the offense against the peer; disconnect and ban it at the limit."""
        score = self._scores.get(session.peer)
        if score is None:
            if len(self._scores) >= MAX_SCORED_PEERS:
                self._forget_scores()
            score = self._scores[session.peer] = PeerScore()
        total = score.add(offense, self._now)
        self.stats[f"offense_{offense.value}"] += 1
        self._out.append(PeerPenalized(session.conn, session.peer, offense.value, detail, total))
        if score.should_disconnect:
            score.ban(self._now + self.config.ban_ms)
            for other in [s for s in self._sessions.values() if s.peer == session.peer]:
                other.shares_history = False  # a banned key's sync states are not worth a row
                self._close(other, f"misbehaved ({offense.value}): {detail}")

    def _forget_scores(self) -> None:
        """Make room among the scores: forget the oldest unbanned ones (a forgiven score is
        worth nothing, an unbanned one little), the oldest bans only if nothing else is left."""
        by_age = sorted(self._scores.items(), key=lambda item: (item[1].banned(self._now), item[1].updated_ms))
        for peer, _ in by_age[: max(1, len(by_age) // 4)]:
            del self._scores[peer]

    def _close(self, session: Session, reason: str, *, say_bye: bool = True) -> None:
        if say_bye:
            self._send(session, Bye(reason[:MAX_REASON_CHARS]))
        self._out.append(Disconnect(session.conn, reason))
        self._forget(session)

    def _forget(self, session: Session) -> None:
        self._write_states(session)
        self._sessions.pop(session.conn, None)
        if session.space in self._spaces:
            self._spaces[session.space].sessions.pop(session.conn, None)
            self._spaces[session.space].push.drop_link(session.conn)

    def _space(self, space: bytes) -> _Space:
        try:
            return self._spaces[space]
        except KeyError:
            raise LocalProtocolError(f"space {space.hex()[:12]} is not served by this replicator") from None

    def _session_space(self, session: Session) -> _Space:
        assert session.space is not None, "a session learns its space before any use of it"
        return self._space(session.space)


def _revokes(record: Record | None, key: bytes) -> bool:
    return isinstance(record, Revocation) and record.subject == key
