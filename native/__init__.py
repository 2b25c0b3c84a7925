"""Automerge for Python: the Rust ``automerge`` crate, bound by our own thin PyO3 crate.

Object ids are strings (``ROOT`` is ``"_root"``), change hashes and actor ids are ``bytes``,
text positions count code points like ``str``. Every failure is an ``AutomergeError``
subclass; a panic inside Automerge surfaces as ``AutomergeError`` instead of aborting.
"""

from native._automerge import (
    ROOT,
    AutomergeError,
    DecodedChange,
    DecodeError,
    Document,
    InvalidHash,
    InvalidObjectId,
    InvalidOperation,
    ObjectRef,
    SyncMessage,
    SyncState,
    decode_change,
    decode_sync_message,
    first_change,
)

__all__ = [
    "ROOT",
    "AutomergeError",
    "DecodeError",
    "DecodedChange",
    "Document",
    "InvalidHash",
    "InvalidObjectId",
    "InvalidOperation",
    "ObjectRef",
    "SyncMessage",
    "SyncState",
    "decode_change",
    "decode_sync_message",
    "first_change",
]
