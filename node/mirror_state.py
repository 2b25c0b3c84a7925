"""The mirror's per-path records, kept in ``HOME/mirror.sqlite`` so a restart never mistakes our
own old write for a user edit (node/mirror_plan.py says what a record means).

One row per (space, path); every batch of the mirror is one transaction (``save``), so a crash
leaves the records of the last whole batch. The folder a space was mirrored into is kept beside
its rows: records of another folder say nothing about this one, so mirroring a space into a new
folder starts from none (a scan rebuilds them: a file that matches the space is adopted).
The file is a cache of facts a scan can re-derive; losing it costs a rescan, never an edit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from node.mirror_plan import DIR, FILE, Chained, Record
from protocol.tips import CHANGE_HASH_BYTES

__all__ = ["MIRROR_DB_FILE", "MirrorRecords"]

MIRROR_DB_FILE = "mirror.sqlite"
# 1: a record's x bits are compared with the space's executable bit (node/mirror_plan.py). Rows
# of before had them from disk while the space knew none: they start with the bits cleared, so
# an executable file on disk sets its bit in the space rather than losing it to the space's.
_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS folders (space BLOB PRIMARY KEY, folder TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    space BLOB NOT NULL, path TEXT NOT NULL, kind TEXT NOT NULL, file_id TEXT NOT NULL,
    heads BLOB NOT NULL, sha256 BLOB NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL, mode INTEGER NOT NULL,
    PRIMARY KEY (space, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chained (
    space BLOB NOT NULL, path TEXT NOT NULL, heads BLOB NOT NULL, text TEXT NOT NULL,
    PRIMARY KEY (space, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS intents (
    space BLOB NOT NULL, path TEXT NOT NULL, heads BLOB NOT NULL, sha256 BLOB NOT NULL,
    PRIMARY KEY (space, path)
) WITHOUT ROWID;
"""


class MirrorRecords:
    """The records of one space mirrored into one folder: a dict in memory, written through."""

    def __init__(self, database: Path, space: bytes, folder: Path) -> None:
        self._db = sqlite3.connect(database, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # WAL's NORMAL: a commit is in the WAL before the next write-out's rename, so it survives a
        # killed process; a power loss may take the newest rows, which a rescan re-derives. An
        # fsync per write-out intent cost ~3 ms a file (a 1k-file checkout: 3 s of it).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        if self._db.execute("PRAGMA user_version").fetchone()[0] < _VERSION:
            with self._transaction():
                self._db.execute("UPDATE records SET mode = mode & ~73")  # 73 = 0o111
                self._db.execute(f"PRAGMA user_version = {_VERSION}")
        self._space = space
        row = self._db.execute("SELECT folder FROM folders WHERE space = ?", (space,)).fetchone()
        if row is None or row[0] != str(folder):
            with self._transaction():
                self._db.execute("DELETE FROM records WHERE space = ?", (space,))
                self._db.execute("DELETE FROM chained WHERE space = ?", (space,))
                self._db.execute("DELETE FROM intents WHERE space = ?", (space,))
                self._db.execute("INSERT OR REPLACE INTO folders VALUES (?, ?)", (space, str(folder)))
        chained = {r[0]: Chained(_split(r[1]), r[2]) for r in self._db.execute("SELECT path, heads, text FROM chained WHERE space = ?", (space,))}
        self.records: dict[str, Record] = {
            r[0]: Record(r[0], DIR if r[1] == DIR else FILE, r[2], _split(r[3]), r[4], r[5], r[6], r[7], r[8], chained.get(r[0]))
            for r in self._db.execute(
                "SELECT path, kind, file_id, heads, sha256, size, mtime_ns, inode, mode FROM records WHERE space = ?", (space,)
            )
        }

        # Write-outs begun and maybe not recorded: a crash between the rename and ``save``.
        self.intents: dict[str, tuple[tuple[bytes, ...], bytes]] = {
            r[0]: (_split(r[1]), r[2]) for r in self._db.execute("SELECT path, heads, sha256 FROM intents WHERE space = ?", (space,))
        }

    def get(self, path: str) -> Record | None:
        return self.records.get(path)

    def below(self, path: str) -> list[str]:
        """Every recorded path strictly below directory ``path``."""
        prefix = path + "/"
        return [p for p in self.records if p.startswith(prefix)]

    def intend(self, path: str, heads: tuple[bytes, ...], sha256: bytes) -> None:
        """Note, before renaming a write-out over ``path``, the heads and bytes it will hold: if we
        die before ``save`` records it, the next start knows those bytes are ours, not a user's."""
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO intents VALUES (?, ?, ?, ?)", (self._space, path, b"".join(heads), sha256))
        self.intents[path] = (heads, sha256)

    def save(self, put: Iterable[Record], drop: Iterable[str]) -> None:
        """Apply one batch's record changes in memory and in one transaction (their intents done)."""
        put, drop = list(put), list(drop)
        if not put and not drop:
            return
        with self._transaction():
            done = [(self._space, p) for p in [*drop, *(r.path for r in put)] if p in self.intents]
            self._db.executemany("DELETE FROM intents WHERE space = ? AND path = ?", done)
            for _, path in done:
                del self.intents[path]
            self._db.executemany("DELETE FROM records WHERE space = ? AND path = ?", [(self._space, p) for p in drop])
            self._db.executemany("DELETE FROM chained WHERE space = ? AND path = ?", [(self._space, p) for p in [*drop, *(r.path for r in put)]])
            self._db.executemany(
                "INSERT INTO chained VALUES (?, ?, ?, ?)",
                [(self._space, r.path, b"".join(r.chained.heads), r.chained.text) for r in put if r.chained is not None],
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(self._space, r.path, r.kind, r.file_id, b"".join(r.heads), r.sha256, r.size, r.mtime_ns, r.inode, r.mode) for r in put],
            )
        for path in drop:
            self.records.pop(path, None)
        for record in put:
            self.records[record.path] = record

    def close(self) -> None:
        self._db.close()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *rest: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")


def _split(heads: bytes) -> tuple[bytes, ...]:
    return tuple(heads[i : i + CHANGE_HASH_BYTES] for i in range(0, len(heads), CHANGE_HASH_BYTES))
