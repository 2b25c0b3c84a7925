"""A cheap pre-scan of Automerge binary chunks: how much they hold, before Automerge builds it.

Why: Automerge's columns are run-length encoded and may be deflated, so a few bytes can stand
for millions of ops. One change splicing four million characters into a text saves to a
4,107-byte document, and ``native.Document.load`` of it takes 1.6 s and 370 MB (an 8 KB one cost
a peer 8.7 s and 740 MB). Honest histories are as dense: 50,000 one-character inserts, one change
each, save to 283 bytes. So no ratio of bytes to work tells a bomb from a history; only the
counts the bytes encode do, and those can be read without expanding anything: a run header says
"this value n times", so summing run lengths counts rows in O(bytes).

What is counted (``ChunkCounts``), summed over every chunk of the input (document, change and
deflated change chunks, in any order, as ``Automerge::load`` takes them):

* ``changes``: one per change chunk; a document chunk's rows of change columns.
* ``ops``: a change chunk's rows of its action column — Automerge's own count (its op iterator
  stops when that column ends). A document chunk's sum over its changes of
  ``max_op - max(max_op of its deps)``: the number Automerge's change collector gives each change
  and sizes its op buffer by. A document stores deletions as successors, not rows, so its op
  rows (counted on the op id actor column, as Automerge does) are at most that.
* ``deps``: dependency edges (32-byte hashes in a change, change indexes in a document).
* ``preds``: predecessor ids (a change's pred group, a document's succ group), each an op id
  Automerge materialises: held to ``max_ops`` like ops.
* ``inflated_bytes``: the chunk bodies with deflated columns and change chunks inflated, the
  inflation bounded by what the limit has left, so a deflate bomb costs the limit and no more.

Every column is walked by its run headers (a long literal run of integers is counted in C) and
cross-checked: the ungrouped columns of a set describe the same rows as its counting column, a
group's columns the sum of its counts, a value column the bytes its metadata announces; in a
document every dep names one of its changes and no max_op is below its deps'. Failing a check
is ``WireError``; a count over a limit is ``LimitExceeded`` at the first run that passes it,
before any later column is inflated or any list expanded, so a bomb costs only what was read.

Why that is exact enough: these are the numbers Automerge sizes its work by, read from the same
columns by the same rules (automerge 0.7.4 ``storage/``, ``op_set2/``, ``change_graph.rs``). A
liar who understates them changes what Automerge decodes: a change's ops are its action rows, and
other columns with more rows are refused here (Automerge would not read them); a document's op
rows above its changes' ops are refused here, an op outside every change's range is dropped by
Automerge (``builders_index``) and a max_op below its deps' refused (``InvalidMaxOp``); a string
run of n copies stays one run in Automerge's packed columns. Verified on 3 x 30,000 random
mutations of honest chunks with their checksums fixed up, so Automerge parses what we parse (the
test suite runs the same check): of those the scan passed, every change Automerge decoded had
exactly the ops and deps counted, no document it loaded had more changes or ops than counted,
and none took it more than tens of milliseconds under limits of 5,000 ops and 256 KB. Checksums
and hashes are not verified here (Automerge does, after the scan passes). Bundle chunks (type 3)
are refused: our peers never send them.

Cost: O(len(input)), plus O(changes + deps) for a document's change columns, both bounded by the
limits before anything is expanded; memory: one inflated column at a time, and three integers per
change and one per dep of a document.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

from protocol.errors import LimitExceeded, WireError
from protocol.limits import MAX_HEADS

_MAGIC = b"\x85\x6f\x4a\x83"
# magic (4), checksum (4), chunk type (1), then the body length (uLEB) and the body.
_CHUNK_TYPE_OFFSET = 8
_CHUNK_DOCUMENT, _CHUNK_CHANGE, _CHUNK_COMPRESSED, _CHUNK_BUNDLE = 0, 1, 2, 3
_HASH_BYTES = 32
# A uLEB or sLEB of 64 bits takes 10 bytes; Automerge refuses longer ones, and a longer one
# would only make us build a huge Python int.
_LEB_BYTES_MAX = 10
_U32_MAX = 2**32 - 1
# Automerge stores max_op as u32 (and reads anything else as 0); an honest one always fits, so
# we refuse the rest.
_MAX_OP_MAX = _U32_MAX

# Column specification: id << 4 | deflate bit | type (storage/columns/column_specification.rs).
_DEFLATE_BIT = 0b1000
_TYPE_MASK = 0b0111
_GROUP, _ACTOR, _INTEGER, _DELTA, _BOOLEAN, _STRING, _VALUE_METADATA, _VALUE = range(8)
# A value metadata entry is length << 4 | value type.
_VALUE_LENGTH_SHIFT = 4
# The column whose rows Automerge takes as the rows of a column set: a change's action column
# (its op iterator stops when it ends), a document's op id actor column and change actor column
# (the ``len`` of op_set2/columns.rs ``Columns::load`` and change_graph.rs ``ChangeGraphCols::load``).
_ACTION_SPEC = 4 << 4 | _INTEGER
_OP_ID_ACTOR_SPEC = 2 << 4 | _ACTOR
_CHANGE_ACTOR_SPEC = 0 << 4 | _ACTOR
# Document change-metadata columns (change_graph.rs) we need the values of.
_MAX_OP_SPEC = 1 << 4 | _DELTA
_DEPS_COUNT_SPEC = 4 << 4 | _GROUP
_DEPS_VALUE_SPEC = 4 << 4 | _DELTA
_DEPS_GROUP_ID = 4
# The group whose counts are predecessor ids: succ in a document (op_set2/columns.rs), pred in a
# change (storage/change/change_op_columns.rs).
_SUCC_GROUP_ID = 8
_PRED_GROUP_ID = 7
# Each dep of a change is one of its author's heads at commit time, and a doc with more heads
# than MAX_HEADS is pathological (protocol/limits.py): more deps than this per change on average
# are not an honest history.
_DEPS_PER_CHANGE_MAX = MAX_HEADS
# Raw deflate, no zlib header (Automerge uses flate2's DeflateDecoder).
_RAW_DEFLATE_WBITS = -15
# Literal runs up to this long are stepped over in Python: cheaper than counting them in C
# (measured: a keystroke change's runs hold one value; a long document's, a handful).
_SHORT_LITERALS = 8
# Maps a byte to 0 where it ends a LEB128 (high bit clear), so counting zeros counts values.
_LEB_END_TABLE = bytes(0 if byte < 0x80 else 1 for byte in range(256))


@dataclass(frozen=True, slots=True)
class ChunkCounts:
    """What the scanned chunks hold, summed over all of them (see the module docstring)."""

    changes: int
    ops: int
    deps: int
    preds: int
    inflated_bytes: int


class _Tally:
    """Running totals over the chunks of one input, each refused the moment it passes its limit."""

    __slots__ = ("changes", "changes_max", "deps", "inflated_bytes", "inflated_bytes_max", "ops", "ops_max", "preds")

    def __init__(self, ops_max: int, changes_max: int, inflated_bytes_max: int) -> None:
        self.ops_max, self.changes_max, self.inflated_bytes_max = ops_max, changes_max, inflated_bytes_max
        self.changes = self.ops = self.deps = self.preds = self.inflated_bytes = 0

    def add_changes(self, count: int) -> None:
        self.changes = _within(self.changes + count, self.changes_max, "changes")

    def add_ops(self, count: int) -> None:
        self.ops = _within(self.ops + count, self.ops_max, "ops")

    def add_preds(self, count: int) -> None:
        self.preds = _within(self.preds + count, self.ops_max, "predecessor ids")

    def add_deps(self, count: int) -> None:
        self.deps = _within(self.deps + count, _DEPS_PER_CHANGE_MAX * self.changes, "dependencies")

    def add_bytes(self, count: int) -> None:
        self.inflated_bytes = _within(self.inflated_bytes + count, self.inflated_bytes_max, "inflated bytes")

    def bytes_left(self) -> int:
        return self.inflated_bytes_max - self.inflated_bytes

    def counts(self) -> ChunkCounts:
        return ChunkCounts(self.changes, self.ops, self.deps, self.preds, self.inflated_bytes)


def _within(total: int, limit: int, what: str) -> int:
    if total > limit:
        raise LimitExceeded(f"the chunks hold more than {limit} {what}")
    return total


def scan_document(data: bytes, *, max_ops: int, max_changes: int, max_inflated_bytes: int) -> ChunkCounts:
    """The counts of a saved document: any sequence of document, change and deflated change chunks
    (what ``save()``, ``save_incremental()`` and their concatenations produce).

    Raises:
        LimitExceeded: the chunks hold more changes, ops (or preds) or inflated bytes than allowed.
        WireError: the bytes are not well-formed Automerge chunks.
    """
    tally = _Tally(max_ops, max_changes, max_inflated_bytes)
    try:
        pos = 0
        while pos < len(data):
            chunk_type, start, end = _chunk_header(data, pos)
            if chunk_type == _CHUNK_DOCUMENT:
                _scan_document_body(data, start, end, tally)
            else:
                _scan_change_chunk(data, chunk_type, start, end, tally)
            pos = end
    except IndexError as error:  # a read past the end of the input or of a column
        raise WireError("a chunk is truncated") from error
    return tally.counts()


def scan_change(raw: bytes, *, max_ops: int, max_inflated_bytes: int) -> ChunkCounts:
    """The counts of one raw change (a change chunk, or a deflated change chunk), as a batch
    carries it.

    Raises:
        LimitExceeded: it holds more ops (or preds) or inflates to more bytes than allowed.
        WireError: the bytes are not one well-formed change chunk.
    """
    tally = _Tally(max_ops, 1, max_inflated_bytes)
    try:
        chunk_type, start, end = _chunk_header(raw, 0)
        if chunk_type == _CHUNK_DOCUMENT:
            raise WireError("a document chunk where a change was expected")
        if end != len(raw):
            raise WireError("trailing bytes after a change chunk")
        _scan_change_chunk(raw, chunk_type, start, end, tally)
    except IndexError as error:
        raise WireError("a change chunk is truncated") from error
    return tally.counts()


def _chunk_header(data: bytes, pos: int) -> tuple[int, int, int]:
    """(chunk type, body start, body end) of the chunk at ``pos``."""
    if not data.startswith(_MAGIC, pos):
        raise WireError("not an Automerge chunk (bad magic bytes)")
    chunk_type = data[pos + _CHUNK_TYPE_OFFSET]
    if chunk_type == _CHUNK_BUNDLE:
        raise WireError("bundle chunks are not accepted")
    if chunk_type not in (_CHUNK_DOCUMENT, _CHUNK_CHANGE, _CHUNK_COMPRESSED):
        raise WireError(f"unknown Automerge chunk type {chunk_type}")
    length, start = _uleb(data, pos + _CHUNK_TYPE_OFFSET + 1)
    end = start + length
    if end > len(data):
        raise WireError("a chunk is longer than the bytes that hold it")
    return chunk_type, start, end


def _scan_change_chunk(data: bytes, chunk_type: int, start: int, end: int, tally: _Tally) -> None:
    tally.add_changes(1)
    if chunk_type == _CHUNK_COMPRESSED:
        body = _inflate(data[start:end], tally, "a deflated change chunk")
        _scan_change_body(body, 0, len(body), tally)
    else:
        tally.add_bytes(end - start)
        _scan_change_body(data, start, end, tally)


def _scan_change_body(data: bytes, pos: int, end: int, tally: _Tally) -> None:
    """The body of a change chunk (storage/change.rs ``parse_following_header``)."""
    deps, pos = _uleb(data, pos)
    pos = _skip(pos, _HASH_BYTES * deps, end)
    tally.deps += deps  # 32 bytes of input each: no bomb, so no cap
    pos = _skip_length_prefixed(data, pos, end)  # actor
    _seq, pos = _uleb(data, pos)
    start_op, pos = _uleb(data, pos)
    if start_op == 0:
        raise WireError("a change's start op is 0")
    _time, pos = _sleb(data, pos)
    pos = _skip_length_prefixed(data, pos, end)  # message
    other_actors, pos = _uleb(data, pos)
    if other_actors > end - pos:
        raise WireError("a change lists more actors than it has bytes")
    for _ in range(other_actors):
        pos = _skip_length_prefixed(data, pos, end)
    specs, _, pos = _column_specs(data, pos, end)
    columns = _ColumnWalk("a change's op columns", _ACTION_SPEC, tally.ops_max - tally.ops, tally.ops_max - tally.preds)
    # Whatever follows the columns is the change's extra bytes (kept, never decoded).
    for spec, length in specs:
        if spec & _DEFLATE_BIT:
            raise WireError("a change chunk has deflated columns")
        columns.add(spec, data, pos, pos + length)
        pos += length
    tally.add_ops(columns.finish())
    tally.add_preds(columns.group_sums.get(_PRED_GROUP_ID, 0))


def _scan_document_body(data: bytes, pos: int, end: int, tally: _Tally) -> None:
    """The body of a document chunk (storage/document.rs ``Document::parse``)."""
    body_start = pos
    actors, pos = _uleb(data, pos)
    if actors > end - pos:
        raise WireError("a document lists more actors than it has bytes")
    for _ in range(actors):
        pos = _skip_length_prefixed(data, pos, end)
    heads, pos = _uleb(data, pos)
    pos = _skip(pos, _HASH_BYTES * heads, end)
    change_specs, change_bytes, pos = _column_specs(data, pos, end)
    op_specs, op_bytes, pos = _column_specs(data, pos, end)
    if pos + change_bytes + op_bytes > end:
        raise WireError("a document's columns are longer than its body")
    # The raw (possibly deflated) column bytes are part of the body; inflated columns add theirs.
    tally.add_bytes(end - body_start)

    changes = _ColumnWalk(
        "a document's change columns",
        _CHANGE_ACTOR_SPEC,
        tally.changes_max - tally.changes,
        _DEPS_PER_CHANGE_MAX * tally.changes_max,
        keep=frozenset((_MAX_OP_SPEC, _DEPS_COUNT_SPEC, _DEPS_VALUE_SPEC)),
    )
    pos = _walk_columns(data, pos, change_specs, changes, tally)
    change_count = changes.finish()
    tally.add_changes(change_count)
    tally.add_deps(changes.group_sums.get(_DEPS_GROUP_ID, 0))
    ops = _document_ops(changes, change_count)
    tally.add_ops(ops)

    # Op rows are the ops that are not deletions (those are successors): never more than ops.
    op_columns = _ColumnWalk("a document's op columns", _OP_ID_ACTOR_SPEC, tally.ops_max, tally.ops_max - tally.preds)
    pos = _walk_columns(data, pos, op_specs, op_columns, tally)
    if op_columns.finish() > ops:
        raise WireError("a document has more op rows than its changes have ops")
    tally.add_preds(op_columns.group_sums.get(_SUCC_GROUP_ID, 0))

    # Then, unless the body ends, the index of each head among the changes.
    if pos < end:
        for _ in range(heads):
            _index, pos = _uleb(data, pos)
    if pos != end:
        raise WireError("leftover bytes after a document's columns")


def _walk_columns(data: bytes, pos: int, specs: list[tuple[int, int]], walk: _ColumnWalk, tally: _Tally) -> int:
    """Hand each column of a document's column set to ``walk``, inflating deflated ones; the
    position after them."""
    for spec, length in specs:
        stop = pos + length
        if spec & _DEFLATE_BIT:
            column = _inflate(data[pos:stop], tally, "a deflated column")
            walk.add(spec & ~_DEFLATE_BIT, column, 0, len(column))
        else:
            walk.add(spec, data, pos, stop)
        pos = stop
    return pos


def _document_ops(changes: _ColumnWalk, change_count: int) -> int:
    """Sum over the changes of max_op - max(max_op of deps), the op count Automerge gives each
    (change_graph.rs ``ChangeGraphCols::load``)."""
    max_ops = _values(changes.kept.get(_MAX_OP_SPEC, b""), delta=True)
    dep_counts = _values(changes.kept.get(_DEPS_COUNT_SPEC, b""), delta=False)
    deps = _values(changes.kept.get(_DEPS_VALUE_SPEC, b""), delta=True)
    if len(max_ops) != change_count:
        raise WireError("a document's max_op column does not describe every change")
    if not dep_counts:
        dep_counts = [0] * change_count
    if len(dep_counts) != change_count or sum(dep_counts) != len(deps):
        raise WireError("a document's dependency columns do not describe every change")
    if deps and (min(deps) < 0 or max(deps) >= change_count):
        raise WireError("a document's change depends on a change it does not hold")
    if max_ops and (min(max_ops) < 0 or max(max_ops) > _MAX_OP_MAX):
        raise WireError("a document's max_op is out of range")
    total = 0
    next_dep = 0
    for max_op, count in zip(max_ops, dep_counts, strict=True):
        if count == 1:
            floor = max_ops[deps[next_dep]]
        elif count:
            floor = max(max_ops[dep] for dep in deps[next_dep : next_dep + count])
        else:
            floor = 0
        next_dep += count
        if max_op < floor:
            raise WireError("a document's change has a max_op below its dependencies'")
        total += max_op - floor
    return total


class _ColumnWalk:
    """One column set, column by column: the layout rules of storage/columns.rs
    (``ColumnLayoutParser``) and the row counts, cross-checked as each column arrives."""

    __slots__ = (
        "group",
        "group_sum_max",
        "group_sums",
        "keep",
        "kept",
        "meta",
        "primary",
        "primary_seen",
        "rows",
        "rows_max",
        "what",
    )

    def __init__(
        self, what: str, primary: int, rows_max: int, group_sum_max: int, keep: frozenset[int] = frozenset()
    ) -> None:
        self.what = what
        self.primary = primary  # the column whose rows are the set's rows (see _ACTION_SPEC)
        self.primary_seen = False
        self.rows_max = rows_max  # of the ungrouped columns
        self.group_sum_max = group_sum_max  # of the counts of any one group
        self.keep = keep
        self.kept: dict[int, bytes] = {}
        self.rows: int | None = None  # of the ungrouped columns
        self.group: tuple[int, int, bool] | None = None  # (id, sum of counts, a member seen)
        self.group_sums: dict[int, int] = {}
        self.meta: tuple[int, int] | None = None  # value metadata awaiting its value: (id, bytes)

    def add(self, spec: int, data: bytes, start: int, end: int) -> None:
        """The column ``data[start:end]``."""
        column_id, column_type = spec >> 4, spec & _TYPE_MASK
        if self.meta is not None:
            meta_id, meta_bytes = self.meta
            self.meta = None
            if column_type == _VALUE and column_id == meta_id:
                if end - start != meta_bytes:
                    raise WireError(f"{self.what}: a value column's length differs from its metadata")
                return
            if meta_bytes:
                raise WireError(f"{self.what}: value metadata without its value column")
        if column_type == _VALUE:
            raise WireError(f"{self.what}: a value column without metadata")
        if self.group is not None and self.group[0] != column_id:
            self._close_group(*self.group)
        if spec in self.keep:
            self.kept[spec] = data[start:end]
        group = self.group  # open, and this column is one of its members
        if group is not None and column_type == _GROUP:
            raise WireError(f"{self.what}: a nested group")
        rows_max = self.rows_max if group is None else self.group_sum_max
        rows, total = _walk(data, start, end, column_type, rows_max, self.what)
        if column_type == _VALUE_METADATA:
            self.meta = (column_id, total)
        if group is not None:
            if end > start:
                if rows != group[1]:
                    raise WireError(f"{self.what}: a grouped column's rows differ from its group's counts")
                self.group = (group[0], group[1], True)
            return
        if column_type == _GROUP:
            if total > self.group_sum_max:
                raise LimitExceeded(f"{self.what}: a group counts more than {self.group_sum_max} values")
            self.group = (column_id, total, False)
        if end == start:
            return  # an empty column stands for all-default rows, however many
        self.primary_seen = self.primary_seen or spec == self.primary
        if self.rows is None:
            self.rows = rows
        elif rows != self.rows:
            raise WireError(f"{self.what} describe different numbers of rows")

    def finish(self) -> int:
        """The rows of the column set: its primary column's, which every other one matches."""
        if self.meta is not None and self.meta[1]:
            raise WireError(f"{self.what}: value metadata without its value column")
        if self.group is not None:
            self._close_group(*self.group)
        if self.rows and not self.primary_seen:
            raise WireError(f"{self.what} describe rows but have no column {self.primary:#x} to count them")
        return self.rows or 0

    def _close_group(self, group_id: int, group_sum: int, member_seen: bool) -> None:
        if group_sum and not member_seen:
            raise WireError(f"{self.what}: a group counts values none of its columns hold")
        self.group_sums[group_id] = self.group_sums.get(group_id, 0) + group_sum
        self.group = None


def _column_specs(data: bytes, pos: int, end: int) -> tuple[list[tuple[int, int]], int, int]:
    """A column set's metadata: ([(spec, length)] in normalised order (raw_column.rs), the sum
    of their lengths, the position after it)."""
    count, pos = _uleb(data, pos)
    if count > (end - pos) // 2:
        raise WireError("more columns than bytes to describe them")
    packed = data[pos : pos + 2 * count]
    if not packed or max(packed) < 0x80:  # every spec and length one byte, as in most changes
        specs = list(zip(packed[::2], packed[1::2], strict=True))  # packed is 2 * count bytes: count <= (end - pos) // 2
        pos += 2 * count
    else:
        specs = []
        for _ in range(count):
            spec, pos = _uleb(data, pos)
            length, pos = _uleb(data, pos)
            specs.append((spec, length))
    last = -1
    total = 0
    for spec, length in specs:
        normalised = spec & ~_DEFLATE_BIT
        if normalised <= last or spec > _U32_MAX:
            raise WireError("columns out of order, repeated or out of range")
        last = normalised
        total += length
    if pos + total > end:
        raise WireError("columns longer than the chunk that holds them")
    return specs, total, pos


def _walk(data: bytes, pos: int, end: int, column_type: int, rows_max: int, what: str) -> tuple[int, int]:
    """(rows, sum of values) of the column ``data[pos:end]``, from its run headers; the sum only
    for group counts (the rows of the group's columns) and value metadata (the bytes of the value
    column). One-byte LEB128s, nearly all of them, are read inline.

    Raises:
        LimitExceeded: at the first run that takes the rows past ``rows_max``.
    """
    if column_type == _BOOLEAN:
        return _boolean_rows(data, pos, end, rows_max, what), 0
    rows = total = 0
    strings, summed, shift, read = _RLE_KINDS[column_type]
    while pos < end:
        count = data[pos]
        if count < 0x40:
            pos += 1
        elif count < 0x80:
            count -= 0x80
            pos += 1
        else:
            count, pos = _sleb(data, pos)
        if count == 0:
            nulls, pos = _uleb(data, pos)
            rows += nulls
            if rows > rows_max:
                break
        else:
            # A run is one value ``count`` times; a literal run, -count values once each.
            values, weight = (1, count) if count > 0 else (-count, 1)
            rows += values * weight
            if rows > rows_max:
                break
            if values > 1 and not (strings or summed):
                pos = _skip_literal_integers(data, pos, end, values, what)
                continue
            for _ in range(values):
                value = data[pos]
                if value < 0x80:
                    pos += 1
                else:
                    value, pos = read(data, pos)
                if strings:
                    pos += value
                    if pos > end:
                        break
                elif summed:
                    total += weight * (value >> shift)
    if rows > rows_max:
        raise LimitExceeded(f"{what} describe more than {rows_max} rows")
    if pos > end:
        raise WireError(f"{what}: a column's last value runs past its end")
    return rows, total


def _skip_literal_integers(data: bytes, pos: int, end: int, count: int, what: str) -> int:
    """The position after ``count`` LEB128 values from ``pos`` in a column that ends at ``end``."""
    if count <= _SHORT_LITERALS:  # most literal runs are: step over them here, byte by byte
        for _ in range(count):
            while data[pos] >= 0x80:
                pos += 1
                if pos >= end:
                    raise WireError(f"{what}: a column's last value runs past its end")
            pos += 1
        return pos
    # Longer ones are counted in C: each window is as long as the values still missing, so when
    # it holds all of them each of its bytes ends one and the window ends on the last.
    while count:
        stop = pos + count
        if stop > end:
            raise WireError(f"{what}: a literal run is longer than its column")
        count -= data[pos:stop].translate(_LEB_END_TABLE).count(0)
        pos = stop
    return pos


def _boolean_rows(data: bytes, pos: int, end: int, rows_max: int, what: str) -> int:
    """A boolean column is alternating run lengths (false first): its rows are their sum."""
    column = data[pos:end]
    if not column or max(column) < 0x80:  # every run length one byte: sum them in C
        rows = sum(column)
    else:
        rows = 0
        while pos < end and rows <= rows_max:
            run = data[pos]
            pos += 1
            if run >= 0x80:  # inline, as a hostile column may be nothing but two-byte runs
                byte = data[pos]
                pos += 1
                run = run & 0x7F | (byte & 0x7F) << 7
                if byte >= 0x80:
                    more, pos = _uleb(data, pos)
                    run |= more << 14
                    if run >> 64:
                        raise WireError(f"{what}: a LEB128 value above 64 bits")
            rows += run
    if rows > rows_max:
        raise LimitExceeded(f"{what} describe more than {rows_max} rows")
    if pos > end:
        raise WireError(f"{what}: a boolean column's last run runs past its end")
    return rows


def _values(column: bytes, *, delta: bool) -> list[int]:
    """Every value of an integer RLE (or delta) column; only for columns whose rows the limits
    already bound (a document's change columns). Nulls have no place in them: malformed."""
    values: list[int] = []
    current = 0
    pos = 0
    read = _sleb if delta else _uleb
    while pos < len(column):
        count, pos = _sleb(column, pos)
        if count > 0:
            value, pos = read(column, pos)
            if not delta:
                values.extend([value] * count)
            elif value:
                last = current + value * count
                values.extend(range(current + value, last + (1 if value > 0 else -1), value))
                current = last
            else:
                values.extend([current] * count)
        elif count < 0:
            for _ in range(-count):
                value, pos = read(column, pos)
                if delta:
                    current += value
                    value = current
                values.append(value)
        else:
            raise WireError("a null in a document's change column")
    return values


def _inflate(deflated: bytes, tally: _Tally, what: str) -> bytes:
    """Raw-inflate ``deflated``, at most what the tally has left, counting the bytes."""
    left = tally.bytes_left()
    inflater = zlib.decompressobj(_RAW_DEFLATE_WBITS)
    try:
        inflated = inflater.decompress(deflated, left + 1)
    except zlib.error as error:
        raise WireError(f"{what} does not inflate: {error}") from error
    tally.add_bytes(len(inflated))
    if not inflater.eof:
        raise WireError(f"{what} is truncated")
    return inflated


def _skip(pos: int, count: int, end: int) -> int:
    pos += count
    if pos > end:
        raise WireError("a field runs past the end of its chunk")
    return pos


def _skip_length_prefixed(data: bytes, pos: int, end: int) -> int:
    length, pos = _uleb(data, pos)
    return _skip(pos, length, end)


def _uleb(data: bytes, pos: int) -> tuple[int, int]:
    """(an unsigned LEB128 at ``pos``, the position after it); IndexError past the end."""
    byte = data[pos]
    if byte < 0x80:
        return byte, pos + 1
    value, _, pos = _long_leb(data, pos)
    if value >> 64:
        raise WireError("a LEB128 value above 64 bits")
    return value, pos


def _sleb(data: bytes, pos: int) -> tuple[int, int]:
    """(a signed LEB128 at ``pos``, the position after it); IndexError past the end."""
    byte = data[pos]
    if byte < 0x80:
        return (byte - 0x80 if byte & 0x40 else byte), pos + 1
    value, bits, pos = _long_leb(data, pos)
    if value >> (bits - 1):  # the sign bit of the last group
        value -= 1 << bits
    if not -(2**63) <= value < 2**63:
        raise WireError("a signed LEB128 value beyond 64 bits")
    return value, pos


def _long_leb(data: bytes, pos: int) -> tuple[int, int, int]:
    """A LEB128 of more than one byte: (its 7-bit groups as one unsigned value, their bits, the
    position after it)."""
    value = bits = 0
    last = pos + _LEB_BYTES_MAX
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << bits
        bits += 7
        if byte < 0x80:
            return value, bits, pos
        if pos >= last:
            raise WireError("a LEB128 value longer than 10 bytes")


# How ``_walk`` reads each RLE column type (after the readers it names): (values are strings,
# values are summed, shift of a summed value, value reader).
_RLE_KINDS: dict[int, tuple[bool, bool, int, Callable[[bytes, int], tuple[int, int]]]] = {
    _GROUP: (False, True, 0, _uleb),
    _ACTOR: (False, False, 0, _uleb),
    _INTEGER: (False, False, 0, _uleb),
    _DELTA: (False, False, 0, _sleb),
    _STRING: (True, False, 0, _uleb),
    _VALUE_METADATA: (False, True, _VALUE_LENGTH_SHIFT, _uleb),
}
