"""Canonical CBOR in and out: one place that turns any decoder failure into ``WireError``.

We encode with cbor2's canonical mode, so equal values always sign and hash the same.

``loads_canonical`` is the gate for bytes from peers: it first checks them against the small
subset of CBOR our wire records use — unsigned integers, byte and text strings, arrays, true and
false, every length in its shortest form and definite — and only then hands them to cbor2. That
rejects tags (cbor2 would build regexes, dates, shared references from them), maps, floats and
non-canonical encodings before any object is built, so one value has exactly one encoding and a
re-encoded message cannot dodge a seen-set. ``loads`` accepts all of CBOR (dag-cbor manifests
use maps and tag 42) and only guarantees that failures are ``WireError``.
"""

from __future__ import annotations

from typing import Any

import cbor2

from protocol.errors import WireError
from protocol.limits import MAX_CBOR_DEPTH

_UNSIGNED, _BYTES, _TEXT, _ARRAY, _SIMPLE = 0, 2, 3, 4, 7
_FALSE, _TRUE = 0xF4, 0xF5  # whole initial bytes: major type 7, simple values 20 and 21
# Additional-info values 24..27 announce a 1, 2, 4 or 8 byte argument; 28..31 are reserved or
# indefinite, which canonical CBOR never uses.
_ARGUMENT_BYTES = {24: 1, 25: 2, 26: 4, 27: 8}
# The smallest argument each width may carry; a smaller one fits a shorter form.
_SHORTEST_FROM = {1: 24, 2: 0x100, 4: 0x10000, 8: 0x100000000}


def dumps(value: Any) -> bytes:
    """Canonical (deterministic) CBOR, so equal values always sign and hash the same."""
    return cbor2.dumps(value, canonical=True)


def loads(data: bytes, what: str) -> Any:
    """Decode any CBOR value; any failure, however the decoder reports it, is a WireError."""
    try:
        return cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError, MemoryError, EOFError) as error:
        raise WireError(f"malformed {what}: {error}") from error


def loads_canonical(data: bytes, what: str) -> Any:
    """Decode bytes from a peer holding exactly one value of our canonical subset.

    Raises:
        WireError: anything else, however it is malformed.
    """
    check_canonical_subset(data, what)
    return loads(data, what)


def check_canonical_subset(data: bytes, what: str) -> None:
    """Walk the item headers without building values; raise WireError outside our subset.

    Every frame from a peer passes here, so the loop is kept tight: one step per item, byte
    and text strings skipped whole, the common short forms tested first.
    """
    end = len(data)
    offset = 0
    left = 1  # items still to read in the innermost open array; the top level holds one
    enclosing: list[int] = []  # the same for each array around it
    while True:
        if not left:
            if not enclosing:
                break
            left = enclosing.pop()
            continue
        left -= 1
        if offset >= end:
            raise WireError(f"malformed {what}: truncated")
        initial = data[offset]
        offset += 1
        major, argument = initial >> 5, initial & 0x1F
        if major == _SIMPLE:
            if initial != _FALSE and initial != _TRUE:
                raise WireError(f"malformed {what}: only true and false are allowed simple values")
            continue
        if argument >= 24:
            width = _ARGUMENT_BYTES.get(argument)
            if width is None:
                raise WireError(f"malformed {what}: indefinite or reserved length")
            if offset + width > end:
                raise WireError(f"malformed {what}: truncated")
            argument = int.from_bytes(data[offset : offset + width], "big")
            offset += width
            if argument < _SHORTEST_FROM[width]:
                raise WireError(f"malformed {what}: non-canonical length")
        if major == _BYTES or major == _TEXT:
            if argument > end - offset:
                raise WireError(f"malformed {what}: truncated")
            offset += argument
        elif major == _ARRAY:
            if argument > end - offset:  # every item takes at least one byte
                raise WireError(f"malformed {what}: array longer than its data")
            if len(enclosing) >= MAX_CBOR_DEPTH:
                raise WireError(f"malformed {what}: nested deeper than {MAX_CBOR_DEPTH}")
            enclosing.append(left)
            left = argument
        elif major != _UNSIGNED:
            raise WireError(f"malformed {what}: CBOR major type {major} is not used by this protocol")
    if offset != end:
        raise WireError(f"malformed {what}: {end - offset} trailing bytes")
