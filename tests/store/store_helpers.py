"""Small scenario helpers for the store tests: edit a text doc, sync one repo into another."""

from __future__ import annotations

import hashlib

import native
from protocol.clock import FIXED_NOW_MS as NOW_MS
from protocol.space import DOC_ID_BYTES
from protocol.tips import SignedTip
from store.records import ChangeRow, DocRow, TipRow, VersionRecord, VersionRow, WriteBatch
from store.repo import Repo

TEXT_KEY = "text"
FILE_DOC = bytes([0x0F]) * DOC_ID_BYTES
OTHER_DOC = bytes([0x0E]) * DOC_ID_BYTES


def text_obj(document: native.Document) -> str:
    """The doc's text object, created on first use (pending until the caller commits)."""
    found = document.get(native.ROOT, TEXT_KEY)
    if isinstance(found, native.ObjectRef):
        return found.id
    return document.put_object(native.ROOT, TEXT_KEY, "text")


def append(repo: Repo, space: bytes, doc: bytes, text: str, now_ms: int = NOW_MS) -> bytes:
    """Append ``text`` to the doc's text and commit it as one change; returns the change hash."""
    document = repo.document(space, doc)
    obj = text_obj(document)
    document.splice_text(obj, document.length(obj), 0, text)
    change = repo.commit(space, doc, f"append {text!r}", now_ms=now_ms)
    assert change is not None
    return change


def read_text(repo: Repo, space: bytes, doc: bytes) -> str:
    document = repo.document(space, doc)
    found = document.get(native.ROOT, TEXT_KEY)
    return document.text(found.id) if isinstance(found, native.ObjectRef) else ""


def sync(source: Repo, target: Repo, space: bytes, doc: bytes) -> list[bytes]:
    """Send every change the target lacks, with the source's tips, as the protocol would."""
    changes = [native.decode_change(raw) for raw in source.changes_since(space, doc, target.heads(space, doc))]
    return target.apply(space, doc, changes, source.tips(space, doc), now_ms=NOW_MS)


def shared_space(creator: Repo, *members: Repo) -> bytes:
    """A space the creator makes and every member joins; returns its id."""
    genesis = creator.create_space("project", NOW_MS)
    for member in members:
        member.add_space(genesis)
    return genesis.space_id


# ----- hostile changes (issue 12): signed, well formed, and refused by Automerge -----


def forked_pair(repo: Repo, space: bytes, doc: bytes) -> tuple[native.DecodedChange, native.DecodedChange]:
    """Two changes by the repo's own author with one seq (a forked author chain): each made on a
    fork of its document, with the same actor, edited apart. Both can carry a valid tip."""
    document = repo.document(space, doc)
    forks = []
    for side in ("left", "right"):
        fork = document.fork(repo.identity.public_key)
        fork.put(native.ROOT, "fork", side)
        fork.commit(f"fork {side}", time=NOW_MS // 1000)
        forks.append(native.decode_change(fork.get_last_local_change()))
    return forks[0], forks[1]


def _uleb(data: bytes, index: int) -> tuple[int, int]:
    """An unsigned LEB128 at ``index``: (its value, the index after it)."""
    end = index
    while data[end] & 0x80:
        end += 1
    return sum((byte & 0x7F) << (7 * i) for i, byte in enumerate(data[index : end + 1])), end + 1


def _encode_uleb(value: int) -> bytes:
    return bytes([value]) if value < 0x80 else bytes([value & 0x7F | 0x80]) + _encode_uleb(value >> 7)


def without_deps(raw: bytes) -> native.DecodedChange:
    """The change re-encoded with no deps (a valid chunk, checksum and hash): its ops may then
    name objects of actors the receiving doc has never seen, which Automerge panics on."""
    magic, chunk_type = raw[:4], raw[8]
    length, start = _uleb(raw, 9)
    body = raw[start : start + length]
    deps, after = _uleb(body, 0)
    body = _encode_uleb(0) + body[after + 32 * deps :]
    chunk = bytes([chunk_type]) + _encode_uleb(len(body)) + body
    return native.decode_change(magic + hashlib.sha256(chunk).digest()[:4] + chunk)


def store_unchecked(repo: Repo, space: bytes, doc: bytes, change: native.DecodedChange, tip: SignedTip | None = None) -> None:
    """Write a change (and its tip, if newer) straight into the repo's backend as ``Repo.apply``
    did before it checked author chains and trial-applied: how a poisoned store came to be.
    Open a new Repo over the backend afterwards: this one's caches do not know of the write."""
    backend = repo.backend
    row = backend.doc(space, doc)
    heads, count = (row.heads, row.change_count) if row else ((), 0)
    deps = tuple(change.deps)
    new_heads = tuple(sorted({*heads, change.hash} - set(deps)))
    number = backend.latest_version(space) + 1
    batch = WriteBatch(
        changes=[ChangeRow(space, doc, change.hash, count, change.actor, change.seq, deps, change.time, change.raw)],
        docs=[DocRow(space, doc, new_heads, count + 1)],
        versions=[VersionRow(space, VersionRecord(number, doc, new_heads, (change.hash,), "remote", NOW_MS))],
    )
    stored = {t.author: t.seq for t in backend.tips(space, doc)}
    if tip is not None and change.seq > stored.get(tip.author, 0):
        batch.tips.append(TipRow(space, doc, tip.author, tip.change_hash, change.seq, tip.signature))
    backend.write(batch)
