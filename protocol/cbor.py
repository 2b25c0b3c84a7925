"""Canonical CBOR in and out: one place that turns any decoder failure into ``WireError``."""

from __future__ import annotations

from typing import Any

import cbor2

from protocol.errors import WireError


def dumps(value: Any) -> bytes:
    """Canonical (deterministic) CBOR, so equal values always sign and hash the same."""
    return cbor2.dumps(value, canonical=True)


def loads(data: bytes, what: str) -> Any:
    """Decode untrusted bytes; any failure, however the decoder reports it, is a WireError."""
    try:
        return cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError, MemoryError, EOFError) as error:
        raise WireError(f"malformed {what}: {error}") from error
