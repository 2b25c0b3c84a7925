"""Small scenario helpers for the store tests: edit a text doc, sync one repo into another."""

from __future__ import annotations

import native
from protocol.space import DOC_ID_BYTES
from store.repo import Repo

TEXT_KEY = "text"
FILE_DOC = bytes([0x0F]) * DOC_ID_BYTES
OTHER_DOC = bytes([0x0E]) * DOC_ID_BYTES
NOW_MS = 1_700_000_000_000


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
