"""Peer records on a node: who each member of a space says it is (protocol/peer_record.py),
kept in HOME/peer_records.json (here) and carried between the peers that sync the space
(node/peer_record_relay.py, in a daemon: this module is for commands on the store too, so it
imports no network code).

Why a stream of its own (``/distspace/peer-records/1``) and not the sync protocol: the
capability log's wire message (``Capabilities``) is the Replicator's, which adds whatever it
carries to the capability log, and a second kind of record there would change the Replicator
and the log's digest. Admission is decided there already, so this rides on it: records of a
space go only to a peer we have an active sync session of that space with (``peers_syncing``:
past both Hellos, so our log admits it), and are taken only from a peer the space's log admits
now. A member sends its whole book of a space when a session of it opens, and every record
that is new to it (from a peer, or its own) to the space's other peers: a record reaches every
member that is connected to one that has it, like the log itself.

What a peer can make us hold is bounded: records only for keys the log has had as members
(``protocol.peer_record.may_publish``), the newest per key, at most MAX_PEER_RECORDS_PER_SPACE a
space; messages at PEER_RECORD_MESSAGES_PER_S a peer (a burst of PEER_RECORD_BURST), a malformed
one dropped whole (records are advisory: not worth scoring a peer over, as presence).

The node's own record of a space is issued when the space is stored here, and again when its
name or kind changes (config.toml's ``name`` and ``kind``; a node running as a relay is a
``relay``): ``NodeServices.publish_own_record``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from node.home import write_atomically
from node.logs import event
from protocol.errors import PeerRecordError
from protocol.identity import Identity, PeerKind
from protocol.peer_record import PeerBook, PeerRecord, decode_peer_record, may_publish
from store.repo import Repo

logger = logging.getLogger(__name__)

__all__ = ["PEER_RECORDS_FILE", "PeerDirectory"]

PEER_RECORDS_FILE: Final = "peer_records.json"
# Verified records of keys our log does not know yet (a member whose grant is still on its way:
# a joiner's first session brings the book and the log at once, in either order), kept in
# memory per space until the log grows; the oldest go beyond this.
MAX_WAITING_PEER_RECORDS: Final = 256


class PeerDirectory:
    """Every space's ``PeerBook`` on this node, persisted as JSON (the records' hex) at ``path``.

    Loaded on first use; a damaged file or record is logged and left out (records come back
    from peers, and our own is issued again), never a reason not to start.
    """

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._books: dict[bytes, PeerBook] | None = None
        self._waiting: dict[bytes, dict[bytes, PeerRecord]] = {}  # space -> key -> record

    def _loaded(self) -> dict[bytes, PeerBook]:
        if self._books is None:
            self._books = {}
            for record in self._read():
                self._book(record.space).add(record)
        return self._books

    def _read(self) -> list[PeerRecord]:
        if self._path is None or not self._path.exists():
            return []
        try:
            raw = json.loads(self._path.read_text())
            items = [bytes.fromhex(item) for item in raw["records"]]
        except (OSError, ValueError, KeyError, TypeError) as error:
            event(logger, "peer_records.damaged_file", logging.WARNING, path=self._path, error=repr(error))
            return []
        records = []
        for item in items:
            try:
                records.append(decode_peer_record(item))
            except PeerRecordError as error:
                event(logger, "peer_records.damaged_record", logging.WARNING, path=self._path, error=error)
        return records

    def _save(self) -> None:
        if self._path is None:
            return
        records = [record.encode().hex() for book in self._loaded().values() for record in book.records()]
        write_atomically(self._path, json.dumps({"records": records}, indent=1))

    def _book(self, space: bytes) -> PeerBook:
        books = self._loaded()
        if space not in books:
            books[space] = PeerBook(space)
        return books[space]

    def get(self, space: bytes, key: bytes) -> PeerRecord | None:
        book = self._loaded().get(space)
        return None if book is None else book.get(key)

    def records(self, space: bytes) -> list[PeerRecord]:
        book = self._loaded().get(space)
        return [] if book is None else book.records()

    def add(self, space: bytes, records: Iterable[PeerRecord], repo: Repo) -> list[PeerRecord]:
        """Keep each record its space's log lets its key publish (``may_publish``) if it is the
        newest of its key; returns those kept, saved before returning. A record of a key the
        log does not know (yet) waits for ``retry``."""
        log = repo.capability_log(space)
        book = self._book(space)
        kept = []
        for record in records:
            if may_publish(log, record.key):
                if book.add(record):
                    kept.append(record)
                continue
            waiting = self._waiting.setdefault(space, {})
            held = waiting.pop(record.key, None)
            waiting[record.key] = record if held is None or record.supersedes(held) else held
            while len(waiting) > MAX_WAITING_PEER_RECORDS:
                del waiting[next(iter(waiting))]
        if kept:
            self._save()
        return kept

    def retry(self, space: bytes, repo: Repo) -> list[PeerRecord]:
        """The space's log grew: keep the waiting records it now lets publish (as ``add``)."""
        waiting = self._waiting.get(space)
        if not waiting:
            return []
        log = repo.capability_log(space)
        ready = [waiting.pop(key) for key in [key for key in waiting if may_publish(log, key)]]
        return self.add(space, ready, repo)

    def publish_own(self, identity: Identity, space: bytes, name: str, kind: PeerKind, now_ms: int) -> PeerRecord | None:
        """Our record of ``space``, issued and saved if we hold none saying ``name`` and ``kind``
        (later than any we issued before, whatever the clock did); None if we hold that one."""
        book = self._book(space)
        held = book.get(identity.public_key)
        if held is not None and (held.name, held.kind) == (name, kind):
            return None
        issued_ms = now_ms if held is None else max(now_ms, held.issued_ms + 1)
        record = PeerRecord.issue(identity, space=space, name=name, kind=kind, issued_ms=issued_ms)
        book.add(record)
        self._save()
        return record
