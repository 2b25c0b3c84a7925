"""The durable backend: one SQLite database (WAL) per node home; one transaction per batch.

``write`` runs the whole ``WriteBatch`` as ``BEGIN IMMEDIATE`` ... ``COMMIT`` with one
``executemany`` per table, so ingest costs one fsync per batch, and a crash at any instant
leaves either all of the batch or none of it. When ``write`` returns, the batch is durable.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

from protocol.tips import CHANGE_HASH_BYTES

from store import db
from store.blocks import CID_BYTES
from store.errors import CorruptionError, StorageError
from store.records import (
    ChangeRow,
    DocRow,
    DocSnapshot,
    SpaceSnapshot,
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


class SqliteBackend:
    """A Backend over one SQLite file, created and migrated on open.

    Docs are keyed internally by a small integer (``docs.doc_key``); the (space, doc) pair of the
    interface is translated at the edge and the keys are cached.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = db.connect(path)
        self._doc_keys: dict[tuple[bytes, bytes], int] = {}

    # ----- writes -----

    def write(self, batch: WriteBatch) -> None:
        created: dict[tuple[bytes, bytes], int] = {}
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._write(batch, created)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise StorageError(f"store write failed, nothing was written: {error}") from error
        self._doc_keys.update(created)  # only keys whose rows committed

    def _write(self, batch: WriteBatch, created: dict[tuple[bytes, bytes], int]) -> None:
        run = self._db.executemany

        def key(space: bytes, doc: bytes) -> int:
            found = self._doc_keys.get((space, doc)) or created.get((space, doc)) or self._lookup_key(space, doc)
            if found is None:
                cursor = self._db.execute(
                    "INSERT INTO docs (space, doc, change_count) VALUES (?, ?, 0) RETURNING doc_key", (space, doc)
                )
                found = created[space, doc] = cursor.fetchone()[0]
            return found

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
            "INSERT OR REPLACE INTO sync_states (peer, space, doc, state) VALUES (?, ?, ?, ?)",
            [(s.peer, s.space, s.doc, s.state) for s in batch.sync_states],
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

    # ----- reads -----

    def _all(self, sql: str, parameters: Sequence[object]) -> list[tuple]:
        try:
            return self._db.execute(sql, parameters).fetchall()
        except sqlite3.Error as error:
            raise StorageError(f"store read failed: {error}") from error

    def _lookup_key(self, space: bytes, doc: bytes) -> int | None:
        rows = self._all("SELECT doc_key FROM docs WHERE space = ? AND doc = ?", (space, doc))
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
        rows = self._all(
            "SELECT heads, change_count FROM docs WHERE space = ? AND doc = ? AND heads IS NOT NULL", (space, doc)
        )
        return DocRow(space, doc, _hashes(rows[0][0], "heads"), rows[0][1]) if rows else None

    def stored_hashes(self, space: bytes, doc: bytes, hashes: Collection[bytes]) -> set[bytes]:
        doc_key = self._key(space, doc)
        if doc_key is None:
            return set()
        wanted = list(hashes)
        found: set[bytes] = set()
        for start in range(0, len(wanted), MAX_SQL_PARAMETERS):
            part = wanted[start : start + MAX_SQL_PARAMETERS]
            marks = ",".join("?" * len(part))
            rows = self._all(f"SELECT hash FROM changes WHERE doc_key = ? AND hash IN ({marks})", (doc_key, *part))
            found.update(row[0] for row in rows)
        return found

    def _change_rows(self, space: bytes, doc: bytes, condition: str, parameters: tuple[object, ...]) -> list[ChangeRow]:
        doc_key = self._key(space, doc)
        if doc_key is None:
            return []
        rows = self._all(
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
        rows = self._change_rows(space, doc, "hash = ?", (change_hash,))
        return rows[0] if rows else None

    def tips(self, space: bytes, doc: bytes) -> list[TipRow]:
        doc_key = self._key(space, doc)
        if doc_key is None:
            return []
        rows = self._all(
            "SELECT author, change_hash, seq, signature FROM tips WHERE doc_key = ? ORDER BY author", (doc_key,)
        )
        return [TipRow(space, doc, *row) for row in rows]

    def latest_version(self, space: bytes) -> int:
        return self._all("SELECT COALESCE(MAX(number), 0) FROM versions WHERE space = ?", (space,))[0][0]

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

    def block(self, cid: bytes) -> bytes | None:
        rows = self._all("SELECT data FROM blocks WHERE cid = ?", (cid,))
        return rows[0][0] if rows else None

    def blocks(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(self._all("SELECT cid, data FROM blocks ORDER BY cid", ()))

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
