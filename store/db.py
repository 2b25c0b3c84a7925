"""The SQLite schema, its migrations, and how a node's database is opened.

One database per node home holds every space. ``PRAGMA user_version`` is the schema version;
``MIGRATIONS[i]`` takes a database from version ``i`` to ``i + 1``, each in its own
transaction, so an interrupted upgrade leaves the old version intact. A database written by a
newer version is refused rather than misread.

Hashes, heads and deps are stored as concatenated fixed-width byte strings (32-byte change
hashes, 36-byte CIDs): compact, and a wrong length is detectable corruption.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from store.errors import SchemaError, StorageError

# Crash safety: WAL keeps readers and the writer apart and makes each commit one append;
# synchronous=FULL fsyncs the WAL at every commit, so an acknowledged write survives power
# loss, not just a killed process (~1.5 ms per commit on this machine's ext4). It is the
# default; the backend lowers it to NORMAL for the transactions of writes that need not be
# durable (remote changes, sync states: see store/sqlite_backend.py).
# page_size (only takes effect when the file is created) and cache_size: 8 KiB pages and a
# 16 MiB cache keep the random inserts into the change-hash index in memory; together ~25%
# faster bulk ingest of 100k changes than the defaults (4 KiB, 2 MiB).
# wal_autocheckpoint: copy the WAL into the database every 2,000 pages (16 MB) rather than the
# default 1,000, so bulk ingest checkpoints (and fsyncs the database) half as often.
_PRAGMAS = (
    "PRAGMA page_size = 8192",
    "PRAGMA cache_size = -16384",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
    "PRAGMA wal_autocheckpoint = 2000",
)
# How long a writer waits for another connection's lock before failing: long enough to ride out
# a checkpoint, short enough that a second process on the same home fails visibly.
BUSY_TIMEOUT_MS = 5_000
# The database holds every space's content and the peers' sync states: for the node's user
# alone, whatever the umask or an older version left. SQLite gives the -wal and -shm files it
# creates the database file's mode, so restricting the database restricts them; those an earlier
# run left are restricted at open too.
FILE_MODE = 0o600
SIDE_FILE_SUFFIXES = ("-wal", "-shm", "-journal")

MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: the first schema. A doc gets a small integer key, so the hot changes table
    # repeats 8 bytes per row instead of a 48-byte (space, doc) pair, and its rows are appended
    # in arrival order (a rowid table: ~3x faster ingest than a WITHOUT ROWID table keyed by
    # hash, measured with 100k changes).
    """
    CREATE TABLE spaces (
        space   BLOB PRIMARY KEY,
        genesis BLOB NOT NULL,
        ordinal INTEGER NOT NULL UNIQUE        -- the order spaces were added in
    );
    CREATE TABLE docs (
        doc_key      INTEGER PRIMARY KEY,
        space        BLOB NOT NULL REFERENCES spaces (space),
        doc          BLOB NOT NULL,
        heads        BLOB,                     -- sorted change hashes; NULL until the doc has state
        change_count INTEGER NOT NULL,
        UNIQUE (space, doc)
    );
    CREATE TABLE changes (
        doc_key  INTEGER NOT NULL REFERENCES docs (doc_key),
        position INTEGER NOT NULL,             -- arrival order within the doc: a causal order
        hash     BLOB NOT NULL,
        actor    BLOB NOT NULL,
        seq      INTEGER NOT NULL,
        deps     BLOB NOT NULL,
        time_s   INTEGER NOT NULL,
        raw      BLOB,                         -- NULL once compacted into a doc snapshot
        UNIQUE (doc_key, hash),
        UNIQUE (doc_key, position)
    );
    CREATE TABLE tips (
        doc_key     INTEGER NOT NULL REFERENCES docs (doc_key),
        author      BLOB NOT NULL,
        change_hash BLOB NOT NULL,
        seq         INTEGER NOT NULL,
        signature   BLOB NOT NULL,
        PRIMARY KEY (doc_key, author)
    );
    CREATE TABLE versions (
        space   BLOB NOT NULL REFERENCES spaces (space),
        number  INTEGER NOT NULL,
        doc     BLOB NOT NULL,
        heads   BLOB NOT NULL,
        hashes  BLOB NOT NULL,
        origin  TEXT NOT NULL CHECK (origin IN ('local', 'remote')),
        time_ms INTEGER NOT NULL,
        PRIMARY KEY (space, number)
    );
    CREATE INDEX versions_by_doc ON versions (space, doc, number);
    CREATE TABLE sync_states (
        peer  BLOB NOT NULL,
        space BLOB NOT NULL REFERENCES spaces (space),
        doc   BLOB NOT NULL,
        state BLOB NOT NULL,
        PRIMARY KEY (peer, space, doc)
    );
    CREATE TABLE blocks (
        cid  BLOB PRIMARY KEY,
        data BLOB NOT NULL
    );
    CREATE TABLE doc_snapshots (
        doc_key      INTEGER PRIMARY KEY REFERENCES docs (doc_key),
        heads        BLOB NOT NULL,
        change_count INTEGER NOT NULL,
        chunks       BLOB NOT NULL,            -- the CIDs of the raw blocks, concatenated
        created_ms   INTEGER NOT NULL
    );
    CREATE TABLE space_snapshots (
        space        BLOB PRIMARY KEY REFERENCES spaces (space),
        manifest_cid BLOB NOT NULL,
        version      INTEGER NOT NULL,
        created_ms   INTEGER NOT NULL
    );
    """,
    # 1 -> 2: hardening (issue 12). An index on each author's chain, so ingest checks that a
    # change continues its author's chain (and Repo.author_seq answers) with one index seek;
    # a quarantine for changes and tips that break a doc (store/repair.py moves them there,
    # nothing is deleted); and when each sync state was last saved, so maintain can prune the
    # rows of peers gone for good.
    """
    CREATE INDEX changes_by_author ON changes (doc_key, actor, seq);
    CREATE TABLE quarantine (
        doc_key        INTEGER NOT NULL REFERENCES docs (doc_key),
        kind           TEXT NOT NULL CHECK (kind IN ('change', 'tip')),
        hash           BLOB NOT NULL,          -- the change's hash (a tip's: the change it names)
        actor          BLOB NOT NULL,
        seq            INTEGER NOT NULL,
        deps           BLOB NOT NULL,
        time_s         INTEGER NOT NULL,
        raw            BLOB,                   -- a change's bytes, a tip's signature
        reason         TEXT NOT NULL,
        quarantined_ms INTEGER NOT NULL,
        PRIMARY KEY (doc_key, kind, hash, actor)
    );
    ALTER TABLE sync_states ADD COLUMN seen_ms INTEGER NOT NULL DEFAULT 0;
    UPDATE sync_states SET seen_ms = CAST(strftime('%s', 'now') AS INTEGER) * 1000;
    """,
    # 2 -> 3: private spaces (issue 13). Each space's capability log: signed grants and
    # revocations, content-addressed, kept as received (the log's order is computed from
    # their parents, not from the order of arrival, so no position is stored).
    """
    CREATE TABLE capability_records (
        space BLOB NOT NULL REFERENCES spaces (space),
        hash  BLOB NOT NULL,                   -- sha256 of data
        data  BLOB NOT NULL,                   -- the encoded, signed record
        PRIMARY KEY (space, hash)
    ) WITHOUT ROWID;
    """,
    # 3 -> 4: refused changes (issue 13). Changes of a private space that ingest refused as
    # unauthorised, kept (bounded, store/refused.py) with the reason: never materialised, listed
    # by verify and log. Keyed by hash alone within a space (a change refused again is one row),
    # the doc a plain column: the store may hold nothing else of it. A rowid table: oldest first.
    """
    CREATE TABLE refused_changes (
        space      BLOB NOT NULL REFERENCES spaces (space),
        hash       BLOB NOT NULL,
        doc        BLOB NOT NULL,
        author     BLOB NOT NULL,
        seq        INTEGER NOT NULL,
        time_s     INTEGER NOT NULL,
        raw        BLOB,                       -- NULL when over REFUSED_CHANGE_BYTES_MAX
        reason     TEXT NOT NULL,
        refused_ms INTEGER NOT NULL,           -- when first refused
        UNIQUE (space, hash)
    );
    """,
    # 4 -> 5: the text cache (store/repo.py ``cached_text``). A text file doc's text at the
    # heads it was stored for, one row per doc, so reading a file at those heads does not load
    # its doc (~11 ms per 12 KB file); created with the doc's first change by a bulk write.
    """
    CREATE TABLE texts (
        doc_key INTEGER PRIMARY KEY REFERENCES docs (doc_key),
        heads   BLOB NOT NULL,                 -- sorted change hashes the text is at
        text    BLOB NOT NULL                  -- UTF-8
    );
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) and migrate the database at ``path``.

    The connection is in autocommit mode: every write is an explicit ``BEGIN IMMEDIATE`` ...
    ``COMMIT``, so nothing is half-written and nothing commits implicitly.
    """
    restrict(path)
    try:
        connection = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        for pragma in _PRAGMAS:
            connection.execute(pragma)
        migrate(connection)
    except sqlite3.Error as error:
        raise StorageError(f"cannot open the store database {path}: {error}") from error
    return connection


def restrict(path: Path) -> None:
    """Create the database file (if missing) and its side files readable by the owner only.

    Raises:
        StorageError: the file cannot be created or its mode set (another user owns it).
    """
    path = Path(path)
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE))
        for file in (path, *(path.with_name(path.name + suffix) for suffix in SIDE_FILE_SUFFIXES)):
            if file.exists():
                os.chmod(file, FILE_MODE)
    except OSError as error:
        raise StorageError(f"cannot make the store database {path} private: {error}") from error


def migrate(connection: sqlite3.Connection) -> None:
    """Bring the schema up to SCHEMA_VERSION, one transaction per migration."""
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise SchemaError(f"the store database has schema version {version}; this code knows up to {SCHEMA_VERSION}")
    for target in range(version + 1, SCHEMA_VERSION + 1):
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(MIGRATIONS[target - 1]):
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {target}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise


def _statements(script: str) -> list[str]:
    """Split a script into statements (``executescript`` would commit, breaking the transaction)."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending)
            pending = ""
    return statements
