"""One connection's sync session: its phase, the table of what the peer may send in each, and
everything we keep towards the peer while it lasts.

A session starts ``AWAITING_HELLO`` and becomes ``ACTIVE`` once the Hellos are exchanged; only
then does it carry a space's status, heads, changes and capability records. Before its Hello a
peer may send one ``Capabilities``: its proof of membership, held here (never stored) until
its Hello names the space it is for. Its per-doc sync states
(protocol/reconcile.py) are loaded from the store on first use and written back when its timer
fires and when it closes: they only make the next reconnect cheaper, so a crash that loses the
latest costs a fuller exchange, never a wrong one. How a session's pushes travel is the push
tree's business (protocol/push_tree.py), keyed by the session's connection.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from protocol.budget import PeerBudget
from protocol.capabilities import Record
from protocol.events import ConnId
from protocol.ingest import PendingChanges
from protocol.limits import MAX_PRE_HELLO_FRAME_BYTES
from protocol.reconcile import Heads, PeerDocState
from protocol.wire import (
    Bye,
    Capabilities,
    Changes,
    DocHeads,
    FrameDecoder,
    Hello,
    Ping,
    Prune,
    Status,
    StatusRequest,
)
from protocol.wire import Heads as HeadsMessage


class Phase(enum.Enum):
    AWAITING_HELLO = "awaiting-hello"
    ACTIVE = "active"


# The one table of what a peer may send in each phase; anything else is UnexpectedMessage.
ALLOWED: dict[Phase, frozenset[type]] = {
    Phase.AWAITING_HELLO: frozenset({Capabilities, Hello, Bye}),
    Phase.ACTIVE: frozenset({Status, StatusRequest, HeadsMessage, Changes, Prune, Ping, Bye, Capabilities}),
}


@dataclass(eq=False, slots=True)
class Session:
    """One connection: the peer's key, the space once known, and our state towards the peer."""

    conn: ConnId
    peer: bytes
    space: bytes | None
    opened_ms: int
    last_received_ms: int
    last_sent_ms: int
    budget: PeerBudget  # what the peer may still make us spend (protocol/budget.py)
    pending: PendingChanges  # what the peer sent that waits for tips or deps
    phase: Phase = Phase.AWAITING_HELLO
    # A stranger's frames are small until its Hello is in (MAX_PRE_HELLO_FRAME_BYTES).
    decoder: FrameDecoder = field(default_factory=lambda: FrameDecoder(MAX_PRE_HELLO_FRAME_BYTES))
    states: dict[bytes, PeerDocState] = field(default_factory=dict)  # the persisted ones, newer
    unsaved: dict[bytes, None] = field(default_factory=dict)  # docs whose state the store lacks
    sent: dict[bytes, Heads] = field(default_factory=dict)  # doc -> our heads, sent with changes
    announced: dict[bytes, int] = field(default_factory=dict)  # doc -> when we last told our heads
    announce: dict[bytes, int] = field(default_factory=dict)  # doc -> when to tell them (lazy push)
    wants: dict[bytes, int] = field(default_factory=dict)  # doc -> when an unanswered want may repeat
    grafts: dict[bytes, int] = field(default_factory=dict)  # doc -> when to ask for announced heads
    deferred: dict[bytes, int] = field(default_factory=dict)  # doc -> when a throttled reply is due
    # Replies, wants and announcements of our heads waiting for room in our frame pacing
    # (``_pace``), in order, and when the bucket will have room again: one timer for all of
    # them, however many.
    paced_replies: dict[bytes, None] = field(default_factory=dict)
    paced_wants: dict[bytes, None] = field(default_factory=dict)
    paced_heads: dict[bytes, None] = field(default_factory=dict)
    paced_due_ms: int | None = None
    unheld: int = 0  # docs in ``states`` that we do not hold (see MAX_UNHELD_DOCS_PER_SESSION)
    # The peer shares history with us: it sent changes we stored, or reported heads we hold.
    # Only then are its sync states persisted: a stranger's would be junk rows, key after key.
    shares_history: bool = False
    # The pages of a paged status so far, and whether the status (once whole) asks us for changes.
    status_pages: list[DocHeads] = field(default_factory=list)
    status_asks: bool = False
    anti_entropy_ms: int | None = None
    timer_ms: int | None = None
    # A joiner's proof, sent before its Hello: decoded and verified, not yet stored (it is
    # added only if it admits the peer to the space its Hello names).
    proof: tuple[Record, ...] | None = None
    log_answered: bool = False  # we sent the peer our whole capability log (this anti-entropy period)
    records_received: int = 0  # capability records the peer sent (MAX_RECORDS_PER_SESSION)
