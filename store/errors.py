"""Every error the store raises, so callers can catch exactly what they mean.

The store distinguishes three kinds of failure: the caller asked about something the store
does not hold (``UnknownSpace``, ``UnknownDoc``, ``UnknownBlock``), the caller passed something
malformed (``InvalidInput``), and the bytes on disk no longer match their hash or signature
(``CorruptionError`` — nothing the caller did; restore the object from a peer). Every store
error is a ``StoreError``; the workspace layer subclasses it too (store/workspace_errors.py).
``RefusedChanges`` is also the protocol's ``UnusableChanges``: remote changes the store will not
take because they would make the doc unloadable (the sender is at fault).
"""

from __future__ import annotations

from protocol.errors import UnusableChanges


class StoreError(Exception):
    """Base class of every store error."""


class InvalidInput(StoreError):
    """An argument is malformed (wrong id length, bad genesis, negative version); nothing changed."""


class UnknownSpace(StoreError):
    """The store holds no space with this id."""


class UnknownDoc(StoreError):
    """The space holds no doc with this id (or no change for it)."""


class UnknownBlock(StoreError):
    """No block with this CID is stored."""


class UnknownSnapshot(StoreError):
    """No snapshot with this id is stored for the space."""


class CorruptionError(StoreError):
    """Stored bytes fail their hash, checksum or signature: the object is damaged on disk.

    Reading the object is refused rather than returning wrong data; other objects are unaffected.
    """


class StorageError(StoreError):
    """The storage engine failed (disk full, I/O error, locked database); the write did not happen."""


class SchemaError(StoreError):
    """The database was written by a newer schema version than this code understands."""


class ClosedError(StoreError):
    """The repo was used after ``close()``."""


class RefusedChanges(StoreError, UnusableChanges):
    """Remote changes that would break the doc: a second change for an author's seq (a forked
    author chain), a seq that does not continue the author's chain, or ops Automerge refuses.
    Nothing of the apply is stored; the doc is as it was."""


class NotAuthorised(StoreError):
    """A write the space's capability log does not allow this node's key (a private space: no
    write role, a path outside the write scope, a revoked key); the message is the log's reason,
    naming the scope. Nothing was written: the peers would refuse the change anyway."""


class GitError(StoreError):
    """The git bridge (store/git_bridge.py) cannot do what was asked: nothing was changed."""


class NotARepository(GitError):
    """The path given is not a git repository."""


class UnknownRef(GitError):
    """No commit at that ref (or commit id) in the repository."""
