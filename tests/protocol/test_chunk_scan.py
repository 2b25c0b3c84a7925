"""The chunk pre-scan against the real binding: its counts are Automerge's own on honest
histories, it refuses real and crafted bombs without expanding them, and any other input gets
WireError or LimitExceeded, never anything else."""

from __future__ import annotations

import hashlib
import tracemalloc
import zlib
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import native
from protocol.chunk_scan import ChunkCounts, scan_change, scan_document
from protocol.errors import LimitExceeded, WireError
from tests.native.helpers import corrupted, garbage

ALICE, BOB, CAROL = (bytes([n]) * 32 for n in (1, 2, 3))
UNLIMITED = {"max_ops": 10**12, "max_inflated_bytes": 10**12}
UNLIMITED_DOC = {**UNLIMITED, "max_changes": 10**12}
# Small enough that Automerge loads whatever passes them in milliseconds.
SMALL = {"max_ops": 5_000, "max_inflated_bytes": 256 * 1024}
SMALL_DOC = {**SMALL, "max_changes": 500}
MAGIC = b"\x85\x6f\x4a\x83"
CHANGE, COMPRESSED = 1, 2
ACTION_SPEC = 4 << 4 | 2  # the action column of a change (integer, id 4)
ID_ACTOR_SPEC = 2 << 4 | 1  # the op id actor column of a document (actor, id 2)
MAX_OP_SPEC = 1 << 4 | 3  # a document's change max_op column (delta, id 1)
VALUE_SPEC = 5 << 4 | 7  # a document's op value column (raw value bytes, id 5)
DEFLATE_BIT = 0b1000
# The splice bomb: one change of this many characters saves to ~2 KB.
BOMB_CHARS = 2_000_000


# --- honest histories by three actors -------------------------------------------------------

EDITS = st.lists(
    st.tuples(
        st.sampled_from(("splice", "unsplice", "put", "unput", "nest", "commit", "merge", "empty")),
        st.integers(0, 2),  # which actor
        st.integers(0, 10_000),  # a position or a choice
        st.text("ab\n\u00e9\U0001f600", max_size=12),
    ),
    min_size=1,
    max_size=40,
)


def replay(edits: list[tuple[str, int, int, str]], saves: list[bytes] | None = None) -> native.Document:
    """A history by three actors on a shared text and map, merged into alice's doc at the end.

    With ``saves``, alice saves once midway and then incrementally, appending each piece.
    """
    docs = [native.Document(actor) for actor in (ALICE, BOB, CAROL)]
    text = docs[0].put_object(native.ROOT, "text", "text")
    board = docs[0].put_object(native.ROOT, "board", "map")
    docs[0].commit("create", time=1)
    for doc in docs[1:]:
        doc.apply_changes(docs[0].get_changes())
    for step, (kind, who, n, chars) in enumerate(edits):
        doc = docs[who]
        length = doc.length(text)
        if kind == "splice" and chars:
            doc.splice_text(text, n % (length + 1), 0, chars)
        elif kind == "unsplice" and length:
            doc.splice_text(text, n % length, 1 + n % 4, "")
        elif kind == "put":
            doc.put(board, "key" + str(n % 3), (n, chars, None, True, 1.5, chars.encode())[n % 6])
        elif kind == "unput" and doc.keys(board):
            doc.delete(board, sorted(doc.keys(board))[n % len(doc.keys(board))])
        elif kind == "nest":
            inner = doc.put_object(board, "nest" + str(n % 2), ("list", "map", "text")[n % 3])
            if doc.object_type(inner) == "list":
                doc.insert(inner, 0, chars)
            elif doc.object_type(inner) == "map":
                doc.put(inner, "x", n)
            else:
                doc.splice_text(inner, 0, 0, chars)
        elif kind == "commit":
            doc.commit(chars or None, time=step)
        elif kind == "merge":
            doc.commit(None, time=step)
            doc.apply_changes(docs[n % 3].get_changes())
        elif kind == "empty":
            doc.commit(None, time=step)
            doc.empty_change(chars or None, time=step)
        if saves is not None and who == 0 and doc.pending_ops() == 0:
            saves.append(doc.save() if not saves else doc.save_incremental())
    for doc in docs[1:]:
        doc.commit(None, time=10**6)
        docs[0].apply_changes(doc.get_changes())
    docs[0].commit(None, time=10**6)
    if saves is not None:
        saves.append(docs[0].save_incremental() if saves else docs[0].save())
    return docs[0]


def automerge_counts(raw_changes: list[bytes]) -> tuple[int, int, int]:
    decoded = [native.decode_change(raw) for raw in raw_changes]
    return len(decoded), sum(change.op_count for change in decoded), sum(len(change.deps) for change in decoded)


def counted(counts: ChunkCounts) -> tuple[int, int, int]:
    return counts.changes, counts.ops, counts.deps


# --- chunk surgery: encoders and rewriters for crafted chunks -------------------------------


def deflated_chunk(raw: bytes) -> bytes:
    """A raw change as Automerge's ``Compressed::compress`` writes it: the raw change's checksum,
    chunk type 2, and the change body raw-deflated."""
    body = deflate(body_of(raw))
    return raw[:8] + bytes([COMPRESSED]) + uleb(len(body)) + body


def uleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def sleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        done = (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40)
        out.append(byte | (0 if done else 0x80))
        if done:
            return bytes(out)


def read_uleb(data: bytes, pos: int) -> tuple[int, int]:
    last = pos
    while data[last] & 0x80:
        last += 1
    return sum((byte & 0x7F) << 7 * index for index, byte in enumerate(data[pos : last + 1])), last + 1


def skip_prefixed(data: bytes, pos: int, count: int = 1) -> int:
    """Past ``count`` fields, each a uLEB length and that many bytes."""
    for _ in range(count):
        length, pos = read_uleb(data, pos)
        pos += length
    return pos


def deflate(data: bytes) -> bytes:
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    return deflater.compress(data) + deflater.flush()


def rewrite_columns(body: bytes, pos: int, replace: list[dict[int, bytes]], deflated: bool = False) -> bytes:
    """``body`` from ``pos`` (column sets: all their metadata, then all their data) with the data of
    the columns ``replace`` names (one dict per set) swapped; deflated, with the spec's deflate
    bit set, if ``deflated``."""
    metas: list[list[tuple[int, int]]] = []
    for _ in replace:
        count, pos = read_uleb(body, pos)
        meta = []
        for _ in range(count):
            spec, pos = read_uleb(body, pos)
            length, pos = read_uleb(body, pos)
            meta.append((spec, length))
        metas.append(meta)
    out_meta, out_data = bytearray(), bytearray()
    for meta, swaps in zip(metas, replace, strict=True):
        out_meta += uleb(len(meta))
        for spec, length in meta:
            column = body[pos : pos + length]
            pos += length
            if spec in swaps:
                column = deflate(swaps[spec]) if deflated else swaps[spec]
                spec |= DEFLATE_BIT if deflated else 0
            out_meta += uleb(spec) + uleb(len(column))
            out_data += column
    return bytes(out_meta + out_data) + body[pos:]


def with_body(chunk_type: int, body: bytes) -> bytes:
    """A chunk of ``body``, its checksum correct, so Automerge parses it as far as it goes."""
    header = bytes([chunk_type]) + uleb(len(body))
    return MAGIC + hashlib.sha256(header + body).digest()[:4] + header + body


def body_of(chunk: bytes) -> bytes:
    length, start = read_uleb(chunk, 9)
    return chunk[start : start + length]


def rewrite_change(raw: bytes, replace: dict[int, bytes]) -> bytes:
    body = body_of(raw)
    deps, pos = read_uleb(body, 0)
    pos = skip_prefixed(body, pos + 32 * deps)  # deps, actor
    for _ in range(3):  # seq, start op, time
        pos = read_uleb(body, pos)[1]
    pos = skip_prefixed(body, pos)  # message
    count, pos = read_uleb(body, pos)
    pos = skip_prefixed(body, pos, count)  # other actors
    return with_body(CHANGE, body[:pos] + rewrite_columns(body, pos, [replace]))


def rewrite_document(
    saved: bytes, change_columns: dict[int, bytes], op_columns: dict[int, bytes], deflated: bool = False
) -> bytes:
    """A document with the change columns and op columns these name swapped."""
    body = body_of(saved)
    count, pos = read_uleb(body, 0)
    pos = skip_prefixed(body, pos, count)  # actors
    count, pos = read_uleb(body, pos)
    pos += 32 * count  # heads
    return with_body(0, body[:pos] + rewrite_columns(body, pos, [change_columns, op_columns], deflated))


def rechecksummed(data: bytes) -> bytes:
    """A mutated single chunk with a checksum Automerge accepts, so it parses what we parse."""
    try:
        length, start = read_uleb(data, 9)
    except IndexError:
        return data
    if not data.startswith(MAGIC) or data[8] not in (0, CHANGE) or start + length != len(data):
        return data
    return with_body(data[8], data[start:])


# --- counts of honest histories: Automerge's own -----------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EDITS)
def test_a_saved_document_counts_what_automerge_decodes(edits: list[tuple[str, int, int, str]]) -> None:
    doc = replay(edits)
    changes = doc.get_changes()
    document = scan_document(doc.save(), **UNLIMITED_DOC)
    each = [scan_change(raw, **UNLIMITED) for raw in changes]
    assert counted(document) == automerge_counts(changes)
    # Every pred of a change is a succ of an op row in the document.
    assert document.preds == sum(counts.preds for counts in each)
    assert document.inflated_bytes > 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EDITS)
def test_save_then_save_incremental_pieces_count_the_whole_history(edits: list[tuple[str, int, int, str]]) -> None:
    saves: list[bytes] = []
    doc = replay(edits, saves)
    joined = b"".join(saves)
    assert native.Document.load(joined).heads() == doc.heads()  # the concatenation is one history
    assert counted(scan_document(joined, **UNLIMITED_DOC)) == automerge_counts(doc.get_changes())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EDITS)
def test_each_raw_change_counts_its_decoded_ops_and_deps(edits: list[tuple[str, int, int, str]]) -> None:
    for raw in replay(edits).get_changes():
        decoded = native.decode_change(raw)
        counts = scan_change(raw, **UNLIMITED)
        assert (counts.changes, counts.ops, counts.deps) == (1, decoded.op_count, len(decoded.deps))
        assert counts.inflated_bytes < len(raw)  # the body, without its header
        assert scan_document(raw, **UNLIMITED_DOC) == counts  # a change chunk is a valid load input


def test_a_deflated_change_chunk_counts_like_its_raw_change() -> None:
    doc = native.Document(ALICE)
    text = doc.put_object(native.ROOT, "text", "text")
    doc.splice_text(text, 0, 0, "hello world, " * 40)
    doc.commit("long", time=1)
    raw = doc.get_changes()[0]
    deflated = deflated_chunk(raw)
    assert len(deflated) < len(raw)
    assert native.Document.load(deflated).text(text) == doc.text(text)  # Automerge reads it
    assert counted(scan_change(deflated, **UNLIMITED)) == counted(scan_change(raw, **UNLIMITED)) == (1, 521, 0)
    assert counted(scan_document(doc.save() + deflated, **UNLIMITED_DOC)) == (2, 1042, 0)
    # The body is inflated against the byte limit.
    with pytest.raises(LimitExceeded):
        scan_change(deflated, max_ops=10**6, max_inflated_bytes=len(raw) // 2)


def test_honest_documents_within_the_limits_pass_them() -> None:
    doc = replay([("splice", 0, 0, "abc"), ("commit", 0, 0, ""), ("unsplice", 0, 1, ""), ("commit", 0, 0, "")])
    exact = scan_document(doc.save(), **UNLIMITED_DOC)
    assert counted(exact) == automerge_counts(doc.get_changes()) == (3, 7, 2)  # 2 objects, 3 inserts, 2 deletes
    at_limits = {"max_ops": exact.ops, "max_changes": exact.changes, "max_inflated_bytes": exact.inflated_bytes}
    assert scan_document(doc.save(), **at_limits) == exact
    for tighter in ("max_ops", "max_changes", "max_inflated_bytes"):
        with pytest.raises(LimitExceeded):
            scan_document(doc.save(), **{**at_limits, tighter: at_limits[tighter] - 1})


def test_an_empty_input_is_an_empty_document() -> None:
    assert scan_document(b"", **SMALL_DOC) == ChunkCounts(0, 0, 0, 0, 0)


# --- bombs ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def splice_bomb() -> tuple[bytes, bytes]:
    """(saved document, raw change) of one change splicing BOMB_CHARS characters into a text."""
    doc = native.Document(ALICE)
    text = doc.put_object(native.ROOT, "text", "text")
    doc.splice_text(text, 0, 0, "x" * BOMB_CHARS)
    doc.commit("bomb", time=1)
    return doc.save(), doc.get_changes()[0]


def test_a_real_splice_bomb_is_refused_on_its_op_count(splice_bomb: tuple[bytes, bytes]) -> None:
    saved, raw = splice_bomb
    assert len(saved) < 4096  # tiny on the wire: the value column deflates to almost nothing
    assert scan_document(saved, **UNLIMITED_DOC).ops == BOMB_CHARS + 1  # the text object too
    with pytest.raises(LimitExceeded, match="ops"):
        scan_document(saved, max_ops=BOMB_CHARS, max_changes=10, max_inflated_bytes=10**9)
    with pytest.raises(LimitExceeded, match="rows"):
        scan_change(raw, max_ops=BOMB_CHARS, max_inflated_bytes=10**9)


def test_a_real_splice_bomb_is_refused_on_its_inflated_bytes(splice_bomb: tuple[bytes, bytes]) -> None:
    saved, _ = splice_bomb
    with pytest.raises(LimitExceeded, match="inflate"):
        scan_document(saved, max_ops=10**9, max_changes=10, max_inflated_bytes=BOMB_CHARS // 2)


def small_history() -> native.Document:
    doc = native.Document(ALICE)
    text = doc.put_object(native.ROOT, "text", "text")
    doc.splice_text(text, 0, 0, "abc")
    doc.commit("small", time=1)
    return doc


def scan_traced(scan: Callable[..., ChunkCounts], data: bytes, **limits: int) -> int:
    """Run ``scan`` on ``data`` and return the peak of Python memory it allocated (it must raise)."""
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceeded):
            scan(data, **limits)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_change_whose_action_run_claims_a_billion_ops_is_refused_without_expanding_it() -> None:
    raw = small_history().get_changes()[0]
    bomb = rewrite_change(raw, {ACTION_SPEC: sleb(10**9) + uleb(2)})
    assert len(bomb) < 200
    peak_bytes = scan_traced(scan_change, bomb, max_ops=10**6, max_inflated_bytes=10**6)
    assert peak_bytes < 64 * 1024


def test_a_document_whose_max_op_claims_a_billion_ops_is_refused_without_expanding_it() -> None:
    saved = small_history().save()
    assert counted(scan_document(saved, **UNLIMITED_DOC)) == (1, 4, 0)
    bomb = rewrite_document(saved, {MAX_OP_SPEC: sleb(1) + sleb(10**9)}, {})
    peak_bytes = scan_traced(scan_document, bomb, max_ops=10**6, max_changes=10, max_inflated_bytes=10**6)
    assert peak_bytes < 64 * 1024


def test_a_document_whose_op_rows_claim_a_billion_is_refused_without_expanding_it() -> None:
    bomb = rewrite_document(small_history().save(), {}, {ID_ACTOR_SPEC: sleb(10**9) + uleb(0)})
    peak_bytes = scan_traced(scan_document, bomb, max_ops=10**6, max_changes=10, max_inflated_bytes=10**6)
    assert peak_bytes < 64 * 1024
    # Within the limits the same lie is malformed: its op columns disagree on their rows.
    with pytest.raises(WireError, match="different numbers of rows"):
        scan_document(bomb, **UNLIMITED_DOC)


def test_a_deflated_column_bomb_is_refused_at_the_byte_limit() -> None:
    # 64 MiB of zeros deflate to ~64 KB: a value column that inflates a thousandfold.
    bomb = rewrite_document(small_history().save(), {}, {VALUE_SPEC: bytes(64 * 1024 * 1024)}, deflated=True)
    assert len(bomb) < 100 * 1024
    peak_bytes = scan_traced(scan_document, bomb, max_ops=10**6, max_changes=10, max_inflated_bytes=10**6)
    assert peak_bytes < 4 * 1024 * 1024


# --- hostile bytes ----------------------------------------------------------------------------


def samples() -> list[bytes]:
    doc = replay(
        [
            ("splice", 0, 0, "hello\n"),
            ("put", 1, 1, "x"),
            ("merge", 0, 1, ""),
            ("nest", 2, 0, "li"),
            ("unsplice", 0, 2, ""),
            ("empty", 1, 0, "m"),
        ]
    )
    changes = doc.get_changes()
    long_change = native.Document(ALICE)
    long_change.splice_text(long_change.put_object(native.ROOT, "t", "text"), 0, 0, "abcdefgh" * 64)
    long_change.commit()
    big = long_change.get_changes()[0]
    return [doc.save(), changes[-1], changes[1], big, deflated_chunk(big), doc.save() + changes[2], long_change.save()]


SAMPLES = samples()


def flipped(samples: list[bytes]) -> st.SearchStrategy[bytes]:
    """An honest sample with several bytes changed (not just one), its checksum left as it is."""

    @st.composite
    def strategy(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(st.sampled_from(samples)))
        for _ in range(draw(st.integers(1, 6))):
            index = draw(st.integers(0, len(data) - 1))
            data[index] = draw(st.integers(0, 255))
        return bytes(data)

    return strategy()


HOSTILE = st.one_of(garbage(SAMPLES), corrupted(SAMPLES), flipped(SAMPLES), st.binary(max_size=64).map(MAGIC.__add__))


@settings(max_examples=1500, deadline=None)
@given(HOSTILE, st.sampled_from([SMALL, {"max_ops": 1, "max_inflated_bytes": 16}, UNLIMITED]))
def test_hostile_bytes_raise_only_wire_errors(data: bytes, limits: dict[str, int]) -> None:
    """Any other exception fails this test; what is accepted is within the limits."""
    for scan, scan_limits in ((scan_document, {**limits, "max_changes": limits["max_ops"]}), (scan_change, limits)):
        try:
            counts = scan(data, **scan_limits)
        except WireError:  # LimitExceeded is a WireError too
            continue
        assert 0 <= counts.ops <= limits["max_ops"] and 0 <= counts.preds <= limits["max_ops"]
        assert 0 <= counts.inflated_bytes <= limits["max_inflated_bytes"]


@settings(max_examples=800, deadline=None)
@given(flipped(SAMPLES[:4] + SAMPLES[6:]).map(rechecksummed))
def test_what_passes_the_scan_costs_automerge_no_more_than_the_scan_counted(data: bytes) -> None:
    """A lie the scan lets through is either refused by Automerge or decodes to no more changes
    and ops than the scan counted (a change chunk: exactly its ops and deps)."""
    try:
        counts = scan_document(data, **SMALL_DOC)
    except WireError:
        return
    try:
        if data[8] == CHANGE:
            decoded = native.decode_change(data)
            assert (decoded.op_count, len(decoded.deps)) == (counts.ops, counts.deps)
            return
        loaded = native.Document.load(data).get_changes()
    except native.AutomergeError:
        return
    changes, ops, _ = automerge_counts(loaded)
    assert changes <= counts.changes and ops <= counts.ops


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"\x00" * 16, "magic"),
        (MAGIC + b"\x00" * 4 + b"\x03" + uleb(0), "bundle"),
        (MAGIC + b"\x00" * 4 + b"\x09" + uleb(0), "unknown Automerge chunk type 9"),
        (MAGIC + b"\x00" * 4 + b"\x01" + uleb(100) + b"\x00", "longer than the bytes"),
        (MAGIC + b"\x00" * 4 + b"\x01" + b"\xff" * 11, "LEB128"),
    ],
)
def test_bad_chunk_headers_are_named(data: bytes, match: str) -> None:
    with pytest.raises(WireError, match=match):
        scan_document(data, **SMALL_DOC)


def test_a_change_scan_refuses_documents_and_trailing_bytes() -> None:
    doc = small_history()
    with pytest.raises(WireError, match="document chunk"):
        scan_change(doc.save(), **SMALL)
    with pytest.raises(WireError, match="trailing"):
        scan_change(doc.get_changes()[0] + b"\x00", **SMALL)


def test_columns_that_disagree_on_their_rows_are_malformed() -> None:
    raw = small_history().get_changes()[0]
    counts = scan_change(raw, **SMALL)
    assert counts.ops == 4
    one_more = rewrite_change(raw, {ACTION_SPEC: sleb(counts.ops + 1) + uleb(2)})
    with pytest.raises(WireError, match="different numbers of rows"):
        scan_change(one_more, **SMALL)
    with pytest.raises(native.AutomergeError):  # Automerge refuses it too (its obj column ends first)
        native.decode_change(one_more)
