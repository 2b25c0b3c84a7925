"""The durable backend: one SQLite database (WAL) per node home; one transaction per batch.

``write`` runs the whole ``WriteBatch`` as ``BEGIN IMMEDIATE`` ... ``COMMIT`` with one
``executemany`` per table, and a crash at any instant leaves either all of the batch or none
of it. A durable write commits with ``synchronous = FULL`` (the WAL is fsynced: ~1.5–4 ms on
this machine); any other with ``NORMAL``, which writes the WAL but leaves the fsync to the next
durable commit or checkpoint. A power loss can then take the newest non-durable commits, never a
durable one nor any commit before it: the WAL is replayed as a prefix of its commits.

Inside ``group()`` writes are combined, not run: the rows wait in one ``WriteBatch`` and go to
SQLite together — inside one transaction, committed when the group ends — when the group ends or
a read needs them: one commit and one statement per table for a burst of single-change remote
batches, not one commit and four statements each (~65 us per single-change apply, not ~120 us;
the rest is the repo's own work). The reads a remote apply makes between writes (stored hashes,
a change, tips, a doc's row) are answered from the waiting rows and the database without
sending them. A ``group(durable=True)`` runs its transaction at ``synchronous = FULL``: a burst
of local commits then costs one fsync, not one each.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

from protocol.tips import CHANGE_HASH_BYTES
from store import db
from store.backend import NOT_DURABLE_GROUP
from store.blocks import CID_BYTES
from store.errors import CorruptionError, InvalidInput, StorageError
from store.records import (
    CapabilityRow,
    ChangeRow,
    DocRow,
    DocSnapshot,
    QuarantineKind,
    QuarantineRow,
    RefusedRow,
    SpaceSnapshot,
    SyncStateKey,
    TextRow,
    TipRow,
    VersionRecord,
    WriteBatch,
)

# SQLite before 3.32 allows 999 bound parameters per statement; batches of IN (...) lookups stay
# below that on every build.
MAX_SQL_PARAMETERS = 900


def pack(hashes: Sequence[bytes]) -> bytes:
    """Fixed-width hashes or CIDs as one blob (the width is implied by the column)."""
    return b"".join(hashes)


def unpack(blob: bytes, width: int, what: str) -> tuple[bytes, ...]:
    """Split a packed blob; a length that is not a multiple of ``width`` is corruption."""
    if len(blob) % width:
        raise CorruptionError(f"stored {what} is {len(blob)} bytes, not a multiple of {width}: the row is damaged")
    return tuple(blob[start : start + width] for start in range(0, len(blob), width))


def _hashes(blob: bytes, what: str) -> tuple[bytes, ...]:
    return unpack(blob, CHANGE_HASH_BYTES, what)


def _kind(stored: str) -> QuarantineKind:
    if stored not in ("change", "tip"):
        raise CorruptionError(f"a quarantine row of unknown kind {stored!r}")
    return stored  # type: ignore[return-value]


_TABLES = tuple(table.name for table in fields(WriteBatch))


# The tables whose rows a group may combine: written table by table, a combined batch of them
# equals the batches written one by one (new changes, newer tips, doc rows, versions, sync
# states, texts). Not so for blocks (one batch may delete a block a later one writes again): a batch
# with rows of the other tables is sent at once, in order.
_COMBINED = ("changes", "tips", "docs", "versions", "sync_states", "texts")
_SENT_AT_ONCE = tuple(table for table in _TABLES if table not in _COMBINED)


class _Waiting:
    """An open group's rows not yet written: one combined batch, and the newest of each row by key."""

    def __init__(self) -> None:
        self.rows = WriteBatch()
        self.empty = True
        self.changes: dict[tuple[bytes, bytes], dict[bytes, ChangeRow]] = {}
        self.tips: dict[tuple[bytes, bytes], dict[bytes, TipRow]] = {}
        self.docs: dict[tuple[bytes, bytes], DocRow] = {}

    def add(self, batch: WriteBatch) -> None:
        for table in _TABLES:
            rows = getattr(batch, table)
            if rows:
                getattr(self.rows, table).extend(rows)
                self.empty = False
        for change in batch.changes:
            self.changes.setdefault((change.space, change.doc), {})[change.hash] = change
        for tip in batch.tips:
            self.tips.setdefault((tip.space, tip.doc), {})[tip.author] = tip
        for doc_row in batch.docs:
            self.docs[doc_row.space, doc_row.doc] = doc_row


class SqliteBackend:
    """A Backend over one SQLite file, created and migrated on open.

    Docs are keyed internally by a small integer (``docs.doc_key``); the (space, doc) pair of the
    interface is translated at the edge and the keys are cached.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = db.connect(path)
        self._doc_keys: dict[tuple[bytes, bytes], int] = {}
        self._durable = True  # db.connect sets synchronous = FULL
        self._waiting: _Waiting | None = None  # the rows of an open group not yet sent to SQLite
        self._group_durable = False  # the open group takes durable writes and commits at FULL
        self._group_lost = False  # a write of the open group failed: the group is rolled back

    # ----- writes -----

    def write(self, batch: WriteBatch, *, durable: bool = True) -> None:
        if self._waiting is None:
            self._run(batch, durable=durable, commit=True)
            return
        if durable and not self._group_durable:
            raise InvalidInput(NOT_DURABLE_GROUP)
        self._check_group()
        self._waiting.add(batch)
        if any(getattr(batch, table) for table in _SENT_AT_ONCE):
            self._send_waiting()

    def _run(self, batch: WriteBatch, *, durable: bool, commit: bool) -> None:
        """Write ``batch`` in the open transaction, or in a new one of that durability; commit if asked."""
        created: dict[tuple[bytes, bytes], int] = {}
        try:
            if not self._db.in_transaction:
                self._set_synchronous(durable)
                self._db.execute("BEGIN IMMEDIATE")
            try:
                self._write(batch, created)
                if commit:
                    self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite rolls back by itself after some errors (disk full)
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise StorageError(f"store write failed, nothing was written: {error}") from error
        self._doc_keys.update(created)  # only keys whose rows are written

    @contextmanager
    def group(self, durable: bool = False) -> Iterator[None]:
        if self._waiting is not None:
            raise InvalidInput("groups do not nest")
        self._waiting = _Waiting()
        self._group_durable = durable
        try:
            yield
            self._send_waiting()
            if self._db.in_transaction:
                try:
                    self._db.execute("COMMIT")
                except sqlite3.Error as error:
                    raise StorageError(f"store group commit failed, nothing of the group was written: {error}") from error
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._doc_keys.clear()  # it may hold keys of rows just rolled back; it refills from the table
            raise
        finally:
            self._waiting = None
            self._group_durable = False
            self._group_lost = False

    def _send_waiting(self) -> None:
        """Write the group's waiting rows into its transaction (begun by the first of them)."""
        self._check_group()
        waiting = self._waiting
        if waiting is None or waiting.empty:
            return
        self._waiting = _Waiting()
        try:
            self._run(waiting.rows, durable=self._group_durable, commit=False)
        except StorageError:
            self._group_lost = True
            raise

    def _check_group(self) -> None:
        if self._group_lost:
            raise StorageError("a write of this group failed: nothing of the group is written")

    def _set_synchronous(self, durable: bool) -> None:
        """Only settable between transactions, so set before each; a no-op when unchanged."""
        if durable != self._durable:
            self._db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
            self._durable = durable

    def _write(self, batch: WriteBatch, created: dict[tuple[bytes, bytes], int]) -> None:
        def run(sql: str, rows: Sequence[tuple[object, ...]]) -> None:
            if rows:  # an empty executemany still costs ~7 us, and most batches fill 3 of 10 tables
                self._db.executemany(sql, rows)

        def key(space: bytes, doc: bytes) -> int:
            found = self._doc_keys.get((space, doc)) or created.get((space, doc)) or self._lookup_key(space, doc)
            if found is None:
                cursor = self._db.execute(
                    "INSERT INTO docs (space, doc, change_count) VALUES (?, ?, 0) RETURNING doc_key", (space, doc)
                )
                found = created[space, doc] = cursor.fetchone()[0]
            return found

        self._resolve_keys(
            [*((d.space, d.doc) for d in batch.docs), *((c.space, c.doc) for c in batch.changes), *((t.space, t.doc) for t in batch.texts)],
            created,
        )
        if batch.spaces:
            (count,) = self._db.execute("SELECT COUNT(*) FROM spaces").fetchone()
            run(
                "INSERT INTO spaces (space, genesis, ordinal) VALUES (?, ?, ?) ON CONFLICT (space) DO NOTHING",
                [(space, genesis, count + index) for index, (space, genesis) in enumerate(batch.spaces)],
            )
        run(
            "UPDATE docs SET heads = ?, change_count = ? WHERE doc_key = ?",
            [(pack(d.heads), d.change_count, key(d.space, d.doc)) for d in batch.docs],
        )
        run(
            "INSERT INTO changes (doc_key, position, hash, actor, seq, deps, time_s, raw)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (doc_key, hash) DO NOTHING",
            [
                (key(c.space, c.doc), c.position, c.hash, c.actor, c.seq, pack(c.deps), c.time_s, c.raw)
                for c in batch.changes
            ],
        )
        run(
            "INSERT OR REPLACE INTO tips (doc_key, author, change_hash, seq, signature) VALUES (?, ?, ?, ?, ?)",
            [(key(t.space, t.doc), t.author, t.change_hash, t.seq, t.signature) for t in batch.tips],
        )
        run(
            "INSERT INTO versions (space, number, doc, heads, hashes, origin, time_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (v.space, r.number, r.doc, pack(r.heads), pack(r.hashes), r.origin, r.time_ms)
                for v in batch.versions
                for r in (v.record,)
            ],
        )
        run(
            "INSERT OR REPLACE INTO sync_states (peer, space, doc, state, seen_ms) VALUES (?, ?, ?, ?, ?)",
            [(s.peer, s.space, s.doc, s.state, s.seen_ms) for s in batch.sync_states],
        )
        run(
            "DELETE FROM sync_states WHERE peer = ? AND space = ? AND doc = ?",
            [(k.peer, k.space, k.doc) for k in batch.pruned_sync_states],
        )
        run("INSERT INTO blocks (cid, data) VALUES (?, ?) ON CONFLICT (cid) DO NOTHING", batch.blocks)
        run(
            "INSERT OR REPLACE INTO doc_snapshots (doc_key, heads, change_count, chunks, created_ms) VALUES (?, ?, ?, ?, ?)",
            [
                (key(s.space, s.doc), pack(s.heads), s.change_count, pack(s.chunks), s.created_ms)
                for s in batch.doc_snapshots
            ],
        )
        run(
            "INSERT OR REPLACE INTO space_snapshots (space, manifest_cid, version, created_ms) VALUES (?, ?, ?, ?)",
            [(s.space, s.manifest_cid, s.version, s.created_ms) for s in batch.space_snapshots],
        )
        run("DELETE FROM blocks WHERE cid = ?", [(cid,) for cid in batch.deleted_blocks])
        run(
            "UPDATE changes SET raw = NULL WHERE doc_key = ? AND position < ? AND raw IS NOT NULL",
            [(key(c.space, c.doc), c.below_position) for c in batch.compactions],
        )
        run(
            "UPDATE versions SET doc = ?, heads = ?, hashes = ?, origin = ?, time_ms = ? WHERE space = ? AND number = ?",
            [
                (r.doc, pack(r.heads), pack(r.hashes), r.origin, r.time_ms, v.space, r.number)
                for v in batch.rewritten_versions
                for r in (v.record,)
            ],
        )
        run(
            "INSERT INTO capability_records (space, hash, data) VALUES (?, ?, ?) ON CONFLICT (space, hash) DO NOTHING",
            [(record.space, record.hash, record.data) for record in batch.capability_records],
        )
        run(
            "INSERT INTO refused_changes (space, hash, doc, author, seq, time_s, raw, reason, refused_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (space, hash) DO NOTHING",
            [(r.space, r.hash, r.doc, r.author, r.seq, r.time_s, r.raw, r.reason, r.refused_ms) for r in batch.refused],
        )
        run("DELETE FROM refused_changes WHERE space = ? AND hash = ?", batch.unrefused)
        run(
            "INSERT OR REPLACE INTO texts (doc_key, heads, text) VALUES (?, ?, ?)",
            [(key(t.space, t.doc), pack(t.heads), t.text) for t in batch.texts],
        )
        if batch.quarantined:
            self._write_quarantine(batch.quarantined, key)

    def _resolve_keys(self, pairs: Sequence[tuple[bytes, bytes]], created: dict[tuple[bytes, bytes], int]) -> None:
        """The keys of a batch's docs not known yet, into ``created``: looked up together and the
        missing rows inserted together (a bulk write's thousands of new docs cost a few statements,
        not a lookup and an insert each), keyed in the order the docs come, as one by one would."""
        unknown = {pair: None for pair in pairs if pair not in self._doc_keys and pair not in created}
        by_space: dict[bytes, list[bytes]] = {}
        for space, doc in unknown:
            by_space.setdefault(space, []).append(doc)
        for space, docs in by_space.items():
            found = self._keys_of(space, docs)
            missing = [(space, doc) for doc in docs if doc not in found]
            if missing:
                self._db.executemany("INSERT INTO docs (space, doc, change_count) VALUES (?, ?, 0)", missing)
                found.update(self._keys_of(space, [doc for _, doc in missing]))
            created.update(((space, doc), key) for doc, key in found.items())

    def _keys_of(self, space: bytes, docs: Sequence[bytes]) -> dict[bytes, int]:
        """doc -> doc_key of those of ``docs`` the space has a row for (in this transaction)."""
        found: dict[bytes, int] = {}
        for start in range(0, len(docs), MAX_SQL_PARAMETERS):
            part = docs[start : start + MAX_SQL_PARAMETERS]
            rows = self._db.execute(f"SELECT doc, doc_key FROM docs WHERE space = ? AND doc IN ({','.join('?' * len(part))})", (space, *part))
            found.update(rows.fetchall())
        return found

    def _write_quarantine(self, rows: Sequence[QuarantineRow], key: Callable[[bytes, bytes], int]) -> None:
        """Move changes and tips into the quarantine, renumbering each touched doc's changes."""
        self._db.executemany(
            "INSERT INTO quarantine (doc_key, kind, hash, actor, seq, deps, time_s, raw, reason, quarantined_ms)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [
                (key(q.space, q.doc), q.kind, q.hash, q.actor, q.seq, pack(q.deps), q.time_s, q.raw, q.reason, q.quarantined_ms)
                for q in rows
            ],
        )
        self._db.executemany(
            "DELETE FROM tips WHERE doc_key = ? AND author = ? AND change_hash = ?",
            [(key(q.space, q.doc), q.actor, q.hash) for q in rows if q.kind == "tip"],
        )
        changes = [(key(q.space, q.doc), q.hash) for q in rows if q.kind == "change"]
        self._db.executemany("DELETE FROM changes WHERE doc_key = ? AND hash = ?", changes)
        for doc_key in {doc_key for doc_key, _ in changes}:
            # Two passes, as UNIQUE (doc_key, position) holds after every row: out of the way, then in place.
            rowids = [row[0] for row in self._db.execute("SELECT rowid FROM changes WHERE doc_key = ? ORDER BY position", (doc_key,))]
            self._db.execute("UPDATE changes SET position = -1 - position WHERE doc_key = ?", (doc_key,))
            self._db.executemany("UPDATE changes SET position = ? WHERE rowid = ?", list(enumerate(rowids)))

    # ----- reads -----

    def _all(self, sql: str, parameters: Sequence[object]) -> list[tuple[Any, ...]]:
        """Rows of a query, once a group's waiting rows are written (the query may need them)."""
        if self._waiting is not None:
            self._send_waiting()
        return self._query(sql, parameters)

    def _query(self, sql: str, parameters: Sequence[object]) -> list[tuple[Any, ...]]:
        """Rows of a query of what SQLite holds (for reads that add a group's waiting rows)."""
        try:
            return self._db.execute(sql, parameters).fetchall()
        except sqlite3.Error as error:
            raise StorageError(f"store read failed: {error}") from error

    def _lookup_key(self, space: bytes, doc: bytes) -> int | None:
        rows = self._query("SELECT doc_key FROM docs WHERE space = ? AND doc = ?", (space, doc))
        return rows[0][0] if rows else None

    def _key(self, space: bytes, doc: bytes) -> int | None:
        """The doc's integer key, or None if the store has never written a row for it."""
        found = self._doc_keys.get((space, doc))
        if found is None:
            found = self._lookup_key(space, doc)
            if found is not None:
                self._doc_keys[space, doc] = found
        return found

    def spaces(self) -> list[tuple[bytes, bytes]]:
        return self._all("SELECT space, genesis FROM spaces ORDER BY ordinal", ())

    def docs(self, space: bytes) -> list[DocRow]:
        rows = self._all(
            "SELECT doc, heads, change_count FROM docs WHERE space = ? AND heads IS NOT NULL ORDER BY doc", (space,)
        )
        return [DocRow(space, doc, _hashes(heads, "heads"), count) for doc, heads, count in rows]

    def doc(self, space: bytes, doc: bytes) -> DocRow | None:
        if self._waiting is not None and (space, doc) in self._waiting.docs:
            return self._waiting.docs[space, doc]
        rows = self._query(
            "SELECT heads, change_count FROM docs WHERE space = ? AND doc = ? AND heads IS NOT NULL", (space, doc)
        )
        return DocRow(space, doc, _hashes(rows[0][0], "heads"), rows[0][1]) if rows else None

    def docs_among(self, space: bytes, docs: Sequence[bytes]) -> list[DocRow]:
        waiting = self._waiting.docs if self._waiting is not None else {}
        found = [waiting[space, doc] for doc in docs if (space, doc) in waiting]
        wanted = [doc for doc in docs if (space, doc) not in waiting]
        for start in range(0, len(wanted), MAX_SQL_PARAMETERS):
            part = wanted[start : start + MAX_SQL_PARAMETERS]
            rows = self._query(
                f"SELECT doc, heads, change_count FROM docs WHERE space = ? AND doc IN ({','.join('?' * len(part))}) AND heads IS NOT NULL",
                (space, *part),
            )
            found.extend(DocRow(space, doc, _hashes(heads, "heads"), count) for doc, heads, count in rows)
        return found

    def stored_hashes(self, space: bytes, doc: bytes, hashes: Collection[bytes]) -> set[bytes]:
        waiting = self._waiting.changes.get((space, doc), {}) if self._waiting is not None else {}
        found = {change_hash for change_hash in hashes if change_hash in waiting}
        doc_key = self._key(space, doc)
        if doc_key is None:
            return found
        wanted = [change_hash for change_hash in hashes if change_hash not in found]
        for start in range(0, len(wanted), MAX_SQL_PARAMETERS):
            part = wanted[start : start + MAX_SQL_PARAMETERS]
            marks = ",".join("?" * len(part))
            rows = self._query(f"SELECT hash FROM changes WHERE doc_key = ? AND hash IN ({marks})", (doc_key, *part))
            found.update(row[0] for row in rows)
        return found

    def _change_rows(
        self, space: bytes, doc: bytes, condition: str, parameters: tuple[object, ...], *, waiting_too: bool = True
    ) -> list[ChangeRow]:
        if waiting_too and self._waiting is not None:
            self._send_waiting()  # before the key lookup: the doc's row may be waiting too
        doc_key = self._key(space, doc)
        if doc_key is None:
            return []
        rows = self._query(
            "SELECT hash, position, actor, seq, deps, time_s, raw FROM changes"
            f" WHERE doc_key = ? AND {condition} ORDER BY position",
            (doc_key, *parameters),
        )
        return [
            ChangeRow(space, doc, change_hash, position, actor, seq, _hashes(deps, "deps"), time_s, raw)
            for change_hash, position, actor, seq, deps, time_s, raw in rows
        ]

    def changes(self, space: bytes, doc: bytes, from_position: int = 0) -> list[ChangeRow]:
        return self._change_rows(space, doc, "position >= ?", (from_position,))

    def change(self, space: bytes, doc: bytes, change_hash: bytes) -> ChangeRow | None:
        waiting = self._waiting.changes.get((space, doc), {}) if self._waiting is not None else {}
        if change_hash in waiting:
            return waiting[change_hash]
        rows = self._change_rows(space, doc, "hash = ?", (change_hash,), waiting_too=False)
        return rows[0] if rows else None

    def author_seq(self, space: bytes, doc: bytes, author: bytes) -> tuple[int, bytes] | None:
        waiting = self._waiting.changes.get((space, doc), {}) if self._waiting is not None else {}
        newest = max(
            ((change.seq, -change.position, change.hash) for change in waiting.values() if change.actor == author),
            default=None,
        )
        doc_key = self._key(space, doc)
        if doc_key is not None:
            rows = self._query(
                "SELECT seq, -position, hash FROM changes WHERE doc_key = ? AND actor = ? ORDER BY seq DESC, position LIMIT 1",
                (doc_key, author),
            )
            if rows and (newest is None or tuple(rows[0]) > newest):
                newest = tuple(rows[0])
        return None if newest is None else (newest[0], newest[2])

    def tips(self, space: bytes, doc: bytes) -> list[TipRow]:
        doc_key = self._key(space, doc)
        rows = [] if doc_key is None else self._query(
            "SELECT author, change_hash, seq, signature FROM tips WHERE doc_key = ? ORDER BY author", (doc_key,)
        )
        tips = {row[0]: TipRow(space, doc, *row) for row in rows}
        if self._waiting is not None:
            tips.update(self._waiting.tips.get((space, doc), {}))
        return sorted(tips.values(), key=lambda tip: tip.author)

    def latest_version(self, space: bytes) -> int:
        return int(self._all("SELECT COALESCE(MAX(number), 0) FROM versions WHERE space = ?", (space,))[0][0])

    def versions(self, space: bytes, since: int, limit: int | None) -> list[VersionRecord]:
        rows = self._all(
            "SELECT number, doc, heads, hashes, origin, time_ms FROM versions"
            " WHERE space = ? AND number > ? ORDER BY number LIMIT ?",
            (space, since, -1 if limit is None else limit),
        )
        return [
            VersionRecord(number, doc, _hashes(heads, "heads"), _hashes(hashes, "hashes"), origin, time_ms)
            for number, doc, heads, hashes, origin, time_ms in rows
        ]

    def heads_at(self, space: bytes, version: int) -> dict[bytes, tuple[bytes, ...]]:
        # One index seek per doc (versions_by_doc), not a scan of every version up to ``version``.
        rows = self._all(
            "SELECT d.doc, (SELECT v.heads FROM versions AS v WHERE v.space = d.space AND v.doc = d.doc"
            " AND v.number <= ? ORDER BY v.number DESC LIMIT 1) FROM docs AS d WHERE d.space = ?",
            (version, space),
        )
        return {doc: _hashes(heads, "heads") for doc, heads in rows if heads is not None}

    def sync_state(self, peer: bytes, space: bytes, doc: bytes) -> bytes | None:
        rows = self._all("SELECT state FROM sync_states WHERE peer = ? AND space = ? AND doc = ?", (peer, space, doc))
        return rows[0][0] if rows else None

    def sync_state_keys(self) -> list[SyncStateKey]:
        return [SyncStateKey(*row) for row in self._all("SELECT peer, space, doc, seen_ms FROM sync_states", ())]

    def quarantined(self, space: bytes) -> list[QuarantineRow]:
        rows = self._all(
            "SELECT d.doc, q.kind, q.hash, q.actor, q.seq, q.deps, q.time_s, q.raw, q.reason, q.quarantined_ms"
            " FROM quarantine AS q JOIN docs AS d ON d.doc_key = q.doc_key WHERE d.space = ? ORDER BY q.rowid",
            (space,),
        )
        return [
            QuarantineRow(space, doc, _kind(kind), change_hash, actor, seq, _hashes(deps, "deps"), time_s, raw, reason, ms)
            for doc, kind, change_hash, actor, seq, deps, time_s, raw, reason, ms in rows
        ]

    def block(self, cid: bytes) -> bytes | None:
        rows = self._all("SELECT data FROM blocks WHERE cid = ?", (cid,))
        return rows[0][0] if rows else None

    def blocks(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(self._all("SELECT cid, data FROM blocks ORDER BY cid", ()))

    def capability_records(self, space: bytes) -> list[CapabilityRow]:
        rows = self._all("SELECT hash, data FROM capability_records WHERE space = ? ORDER BY hash", (space,))
        return [CapabilityRow(space, record_hash, data) for record_hash, data in rows]

    def refused_changes(self, space: bytes) -> list[RefusedRow]:
        rows = self._all(
            "SELECT hash, doc, author, seq, time_s, raw, reason, refused_ms FROM refused_changes"
            " WHERE space = ? ORDER BY rowid",
            (space,),
        )
        return [RefusedRow(space, *row) for row in rows]

    def refused_hashes(self, space: bytes) -> list[bytes]:
        return [row[0] for row in self._all("SELECT hash FROM refused_changes WHERE space = ? ORDER BY rowid", (space,))]

    def text(self, space: bytes, doc: bytes) -> TextRow | None:
        rows = self._all(
            "SELECT t.heads, t.text FROM texts AS t JOIN docs AS d ON d.doc_key = t.doc_key WHERE d.space = ? AND d.doc = ?",
            (space, doc),
        )
        return TextRow(space, doc, _hashes(rows[0][0], "text heads"), rows[0][1]) if rows else None

    def _doc_snapshots(self, space: bytes, condition: str, parameters: tuple[object, ...]) -> list[DocSnapshot]:
        rows = self._all(
            "SELECT d.doc, s.heads, s.change_count, s.chunks, s.created_ms FROM doc_snapshots AS s"
            f" JOIN docs AS d ON d.doc_key = s.doc_key WHERE d.space = ? {condition} ORDER BY d.doc",
            (space, *parameters),
        )
        return [
            DocSnapshot(space, doc, _hashes(heads, "heads"), count, unpack(chunks, CID_BYTES, "chunk CIDs"), created_ms)
            for doc, heads, count, chunks, created_ms in rows
        ]

    def doc_snapshot(self, space: bytes, doc: bytes) -> DocSnapshot | None:
        rows = self._doc_snapshots(space, "AND d.doc = ?", (doc,))
        return rows[0] if rows else None

    def doc_snapshots(self, space: bytes) -> list[DocSnapshot]:
        return self._doc_snapshots(space, "", ())

    def space_snapshot(self, space: bytes) -> SpaceSnapshot | None:
        rows = self._all("SELECT manifest_cid, version, created_ms FROM space_snapshots WHERE space = ?", (space,))
        return SpaceSnapshot(space, *rows[0]) if rows else None

    def close(self) -> None:
        self._db.close()
