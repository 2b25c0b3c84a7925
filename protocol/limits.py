"""Every hard limit and timing of the sync protocol, in one place, each with the reason for it.

A peer is untrusted: every size it can make us hold, every list it can make us walk, and every
rate it can make us work at is bounded here. ``SyncConfig`` carries the timings and rates so a
test, the simulator or a benchmark can tighten or loosen them; its defaults are these constants.
"""

from __future__ import annotations

from dataclasses import dataclass

# --- wire ---
# The node's libp2p framing uses the same bound (node/framing.py): a saved document of a
# file with a few million edits fits (the 260k-edit automerge-paper history saves to 129 KB),
# while one connection can make us buffer at most this much.
MAX_FRAME_BYTES = 4 * 1024 * 1024
# A varint of 5 bytes already encodes 2**35 - 1, far above MAX_FRAME_BYTES: more is garbage.
MAX_FRAME_HEADER_BYTES = 5
# Our messages nest at most four arrays deep (message > docs > entry > heads).
MAX_CBOR_DEPTH = 4
# A doc with more concurrent heads than this is pathological (every head is a fork nobody
# merged); it also bounds the work of one heads list.
MAX_HEADS = 64
# Docs one status message may list. A status of a larger space goes in pages (below), so this
# only bounds one message: ~80 B a doc with one head, 10k docs under 1 MB.
MAX_DOCS_PER_STATUS = 10_000
# A status is sent in pages of at most this many bytes of doc entries (and MAX_DOCS_PER_STATUS
# docs), so even a Hello of a 50,000-file space fits the small pre-Hello frame limit.
STATUS_PAGE_BYTES = 48 * 1024
# Docs all the pages of one status may list together: what a peer can make us hold while it
# sends a paged status (~100 B a doc: 20 MB), and the largest space we can sync (200k files).
MAX_STATUS_DOCS_TOTAL = 200_000
# Before its Hello a peer is a stranger: its frames may be this large at most (a Hello with one
# status page, with room to spare); the full MAX_FRAME_BYTES only after it.
MAX_PRE_HELLO_FRAME_BYTES = 2 * STATUS_PAGE_BYTES + 16 * 1024
# Tips one batch may carry: one per author whose changes it holds. ~100 B and one verify
# (~0.1 ms) each, so a full batch costs 400 KB and 0.4 s at most; a reply to a peer that lacks
# the work of more authors than this cannot be sent in one batch (v1 does not split by author).
MAX_TIPS_PER_BATCH = 4096
# Changes one batch may carry once decoded (a DOCUMENT batch expands to every change of the
# doc): the 260k-edit automerge-paper history fits; verification memory stays ~100 MB.
MAX_CHANGES_PER_BATCH = 300_000
# A deflated batch may inflate to this much at most (bounds a decompression bomb); a batch of
# MAX_CHANGES_PER_BATCH keystroke-sized changes (~120 B each raw) fits.
MAX_INFLATED_BATCH_BYTES = 64 * 1024 * 1024
# Ops one batch may make us decode (counted by protocol/chunk_scan.py before anything is built).
# Decoding costs ~0.4 us and ~90 B of memory per op (a 4M-op splice bomb of 4 KB loads in 1.6 s
# to 369 MB). The largest honest change is one local API write of MAX_WRITE_BYTES (2 MiB: at
# most 2M characters, one op each) and must fit one batch; a larger saved document is sent as
# change batches instead (protocol/batch.py). So a bomb costs at most ~1 s and ~200 MB, once
# per decoded-ops budget (SyncConfig), and an 8 KB document of 8M ops is refused unread.
MAX_OPS_PER_BATCH = 2 * 1024 * 1024 + 64 * 1024
# Bytes a batch's chunks may inflate to while scanning (their deflated columns), and bytes of
# values a batch may hold: as much as an inflated DEFLATE batch.
MAX_SCAN_INFLATED_BYTES = 64 * 1024 * 1024
# A Bye or error reason is for logs, not for essays.
MAX_REASON_CHARS = 200
# Wire versions this code speaks; a Hello lists them and both sides use the highest in common.
SUPPORTED_VERSIONS = (1,)

# --- capability logs (protocol/capabilities.py) ---
# Records a peer may send before its Hello: a joiner's proof of membership (its grant and the
# grants above it, protocol/capabilities.CapabilityLog.proof_for). A delegation chain deeper
# than this is not presented; the joiner is then admitted only by a responder that already
# holds the chain. Each record is at most capabilities.MAX_RECORD_BYTES (2 KiB): ~17 KB.
MAX_PROOF_RECORDS = 8
# A whole log goes in pages of at most this many bytes of records (and MAX_RECORDS_PER_MESSAGE
# records): a 10,000-record log (capabilities.MAX_CAPABILITY_RECORDS) of ~300 B records is a
# dozen frames, each far under MAX_FRAME_BYTES; a large revocation (its ``seen`` list, up to
# capabilities.MAX_REVOCATION_BYTES) goes in a page of its own.
CAPABILITY_PAGE_BYTES = 256 * 1024
MAX_RECORDS_PER_MESSAGE = 512
# Records one peer may send us in one session: its whole log (capabilities.MAX_CAPABILITY_RECORDS)
# twice over, for the pushes of a long session. Each costs a signature check (~60 us), so a
# member can make one session cost us ~1.2 s of checks; beyond it the session ends (OverLimit).
MAX_RECORDS_PER_SESSION = 20_000
# Records the Replicator remembers pushing (per space), so the store's report of records it
# added itself does not push them twice: a report follows its add within the same burst.
MAX_PUSHED_RECORDS = 4096

# --- sending ---
# A reconciliation batch that would hold more changes than this is split; it keeps one frame
# well under MAX_FRAME_BYTES even for changes of a few hundred bytes.
CHANGES_PER_SENT_BATCH = 4096
# Below this many missing changes a whole-document batch never wins, so we skip saving one.
DOCUMENT_MIN_CHANGES = 64
# What a change costs on the wire however well it deflates: its 4-byte checksum and a 32-byte
# dep hash are random. A saved document smaller than this per missing change beats sending them.
INCOMPRESSIBLE_BYTES_PER_CHANGE = 36

# --- memory held for a peer ---
# Changes a peer sent that wait for a covering tip or for missing deps. A reconciliation split
# into several batches arrives in causal order with the author's tip in the last batch that
# holds its changes, so this holds a few batches; beyond it the peer is flooding us.
MAX_PENDING_CHANGES = 4 * CHANGES_PER_SENT_BATCH
# Pushed batches remembered per space so each is verified and forwarded once: a few minutes of
# heavy editing by a dozen peers.
MAX_SEEN_BATCHES = 8192
# Origins one peer may ask us (Prune) to announce rather than push: one per writer whose
# batches reach it by another path. Past this the oldest prune is forgotten, which only makes
# us push more.
MAX_LAZY_ORIGINS = 4096
# Pushed batches held back per space until the changes they depend on arrive, to be forwarded
# then (protocol/push_tree.py), and the largest frame held so: a live edit's batch is a few
# hundred bytes and waits milliseconds, so a few hundred cover a busy space; a larger or older
# one is only announced, as before, which costs its receivers a round trip, never a change.
# At most 512 x 16 KiB = 8 MiB per space.
MAX_HELD_PUSHES = 512
HELD_PUSH_BYTES_MAX = 16 * 1024
# Tip signatures already verified, so a retried pending batch is not verified twice.
MAX_VERIFIED_TIPS = 8192
# What we remember per peer and doc of the heads both sides have; more are dropped (which only
# makes us send more, never less).
MAX_SHARED_HEADS = MAX_HEADS
# Docs a peer told us about that we do not hold (new files it made, or junk ids) and that we
# remember for one session, to ask for them. A peer with more new files sends them unasked (it
# sees from our status that we lack them), so this bounds only what we ask for; junk beyond it
# is ignored.
MAX_UNHELD_DOCS_PER_SESSION = 4096
# Changes refused for good per space (a forked author chain, or refused by Automerge), so a
# peer offering one again costs a lookup: one per equivocating author's branch, and few.
MAX_REFUSED_CHANGES = 4096
# Misbehaviour scores remembered; beyond it forgiven, unbanned peers are forgotten first.
MAX_SCORED_PEERS = 4096
# Replies kept, by the bytes of their frames, so the same want of a large doc from many peers
# (or again and again from one) costs its reading and encoding once.
REPLY_CACHE_BYTES = 32 * 1024 * 1024

# --- misbehaviour ---
# Score at which a peer is disconnected and refused for BAN_MS. Forgery and broken framing
# score this at once; lesser faults add up (see protocol/scoring.py).
DISCONNECT_SCORE = 100
# Faults are forgiven with this half-life, so an honest peer's rare expired pending change over
# a long session never adds up to a disconnect.
SCORE_HALF_LIFE_MS = 10 * 60_000


@dataclass(frozen=True, slots=True)
class SyncConfig:
    """Timings and rates of the sync state machines (all in milliseconds or per second)."""

    # Send a Ping when we have sent nothing for this long, so NATs and the peer's timeout see us.
    heartbeat_interval_ms: int = 15_000
    # Drop a peer we have heard nothing from for this long: three missed heartbeats.
    peer_timeout_ms: int = 45_000
    # Mean interval of anti-entropy status exchanges per connection; jittered by +-50% with the
    # seeded rng so the peers of a space do not all repair at once.
    anti_entropy_interval_ms: int = 60_000
    # A lazy peer's announcement of heads we lack is given this long to arrive by eager push
    # from elsewhere before we ask (graft) — Plumtree's IHAVE timeout.
    graft_delay_ms: int = 250
    # A link grafted (it answered our want, so it pushes those origins again) is not pruned for
    # them for this long: a graft means the tree had a hole there. 120 graft delays, so a
    # graft/prune cycle turns a hundred times slower; half an anti-entropy interval, so a link
    # grafted in a passing stall is redundant for well under a minute.
    graft_hold_ms: int = 30_000
    # A link is pruned for an origin once it has brought that origin's batches as duplicates
    # this many times in a row (one that came first by it starts the count again), and a
    # grafted one within graft_hold_ms only after graft_hold_duplicates: the path it stood in
    # for works again, and a link kept eager for the whole hold costs a frame per batch, which
    # a saturated CPU pays for (protocol/push_tree.py).
    prune_duplicates: int = 3
    graft_hold_duplicates: int = 8
    # We announce our heads of a doc to a peer we do not push to at most this often: a burst of
    # batches costs one Heads per peer, not one each (Plumtree's batched lazy push). A batch
    # that went missing on its eager path may so wait this much longer to be noticed.
    announce_interval_ms: int = 250
    # An unanswered request for changes (want) is repeated after this long.
    want_timeout_ms: int = 5_000
    # A change that waits this long for its tip or deps is dropped.
    pending_ttl_ms: int = 60_000
    # How long a disconnected misbehaving peer is refused.
    ban_ms: int = 10 * 60_000
    # Frames per second a peer may send on average, and in a burst: live typing by a dozen
    # peers forwarded to us is well below this; a flood is far above.
    frames_per_second_max: float = 2_000.0
    frames_burst_max: float = 4_000.0
    # Changes one peer may leave waiting for tips or deps (see MAX_PENDING_CHANGES).
    pending_changes_max: int = MAX_PENDING_CHANGES
    # A stranger that has not sent its Hello this long after the stream opened is dropped: a
    # Hello is one small frame, sent at once.
    hello_timeout_ms: int = 10_000
    # Budgets per peer (protocol/budget.py). Ops decoded from its batches: an honest fresh
    # peer's catch-up of a large space goes at this rate at worst, a bomb costs at most this.
    decoded_ops_per_s: float = 2_000_000.0
    decoded_ops_burst: float = float(MAX_OPS_PER_BATCH)
    # What a fresh session may make us decode at once, before its bucket fills (~0.1 s of work):
    # an honest peer's first large batch waits a second at most; a throwaway key buys little.
    decoded_ops_start: float = 256 * 1024
    # Tip signatures checked (~60 us each, not cached ones): one per batch per author, so live
    # typing by many writers forwarded to us is far below; 4,096 throwaway keys per batch not.
    signature_checks_per_s: float = 4_000.0
    signature_checks_burst: float = 2.0 * MAX_TIPS_PER_BATCH
    # A fresh session's first checks (~4 ms): a batch of 4,096 tips with a forged last one costs
    # a throwaway key 64 checks, not 4,096 (0.38 s) — the rest wait until the bucket has filled.
    signature_checks_start: float = 64.0
    # Bytes of replies we send it: a fresh peer's catch-up is served at this rate at most once
    # the burst is spent (the wire itself is rarely faster), and asking again costs it time.
    reply_bytes_per_s: float = 32.0 * 1024 * 1024
    reply_bytes_burst: float = 4.0 * MAX_FRAME_BYTES

    @classmethod
    def unbudgeted(cls) -> SyncConfig:
        """Every per-peer budget lifted: for benchmarks, whose senders go as fast as they can on
        a clock that may stand still, and whose rate is what is measured."""
        return cls(
            frames_per_second_max=1e12,
            frames_burst_max=1e12,
            decoded_ops_per_s=1e15,
            decoded_ops_burst=1e15,
            decoded_ops_start=1e15,
            signature_checks_per_s=1e12,
            signature_checks_burst=1e12,
            signature_checks_start=1e12,
            reply_bytes_per_s=1e15,
            reply_bytes_burst=1e15,
        )
