"""Capability records: signed Grants and Revocations, their one canonical encoding and the strict
decoder for bytes from peers. The rule that reads a set of them is protocol/capabilities.py."""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeAlias

import pathspec

from protocol.errors import CapabilityError, CapabilityLimit, InvalidCapability
from protocol.identity import PUBLIC_KEY_BYTES, Identity
from protocol.signed import SignedRecord, load_fields, sign, verified
from protocol.space import DOC_ID_BYTES

DOMAIN_CAPABILITY: Final = b"distspace/capability/v1\x00"
# A grant to this "key" is a grant to every key: a public read (or write) inside a private space.
ANYONE: Final = bytes(32)
HASH_BYTES: Final = 32
# Records one space's log may hold: the rule reads them all on every change of the set (~1 ms a
# hundred records), and a member list longer than this is no longer a private space.
MAX_CAPABILITY_RECORDS: Final = 10_000
# A grant is ~250 B with a few globs; this leaves room for MAX_PATHS_PER_GRANT short ones and
# keeps a proof of a few grants inside the small pre-Hello frame.
MAX_RECORD_BYTES: Final = 2_048
# A revocation lists the subject's last seq per doc it wrote (~25 B a doc); a key that wrote
# MAX_SEEN_DOCS docs still fits one frame (protocol/limits.MAX_FRAME_BYTES).
MAX_SEEN_DOCS: Final = 100_000
MAX_REVOCATION_BYTES: Final = 3 * 1024 * 1024
MAX_PATHS_PER_GRANT: Final = 32
MAX_GLOB_CHARS: Final = 256
# Parents are the issuer's log heads: more than this many concurrent heads is a log nobody
# merges; heads keeps the latest this many.
MAX_PARENTS: Final = 16

_GRANT, _REVOCATION = 1, 2


class Role(enum.IntEnum):
    """What a member may do; each role includes the ones below it."""

    RELAY = 1  # store and forward the space's changes (spaces are not encrypted: a relay can read them)
    READ = 2
    WRITE = 3
    ADMIN = 4

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise InvalidCapability(f"unknown role {name!r}: one of relay, read, write, admin") from None

    @property
    def label(self) -> str:
        return self.name.lower()


@functools.lru_cache(maxsize=4096)
def compile_globs(globs: tuple[str, ...]) -> pathspec.GitIgnoreSpec:
    """The matcher of a grant's globs, compiled once per distinct set. Git's own semantics (as
    the folder mirror's ignore rules): ``src/*`` covers ``src/a/b.py`` too, since git ignores a
    matched directory's contents, and a later ``!glob`` re-excludes."""
    return pathspec.GitIgnoreSpec.from_lines(globs)


def glob_problem(glob: str) -> str | None:
    """Why ``glob`` cannot scope a grant (None: it can)."""
    if not glob or len(glob) > MAX_GLOB_CHARS:
        return f"a glob has 1 to {MAX_GLOB_CHARS} characters"
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in glob):
        return "a glob has no control characters"
    try:
        patterns = pathspec.GitIgnoreSpec.from_lines([glob]).patterns
    except (ValueError, re.error) as error:  # pathspec's own error, or a character class re refuses
        return f"invalid glob {glob!r}: {error}"
    if len(patterns) != 1 or patterns[0].include is None:
        return f"glob {glob!r} matches nothing (a comment or blank line in gitignore syntax)"
    return None


def _sorted_unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(items)))


def _optional(value: int | None) -> list[int]:
    return [] if value is None else [value]


@dataclass(frozen=True, slots=True)
class Grant(SignedRecord):
    """``issuer`` gives ``subject`` ``role`` over ``paths`` (() = the whole space)."""

    space: bytes
    issuer: bytes
    subject: bytes
    role: Role
    paths: tuple[str, ...]
    not_before_ms: int
    expires_ms: int | None
    may_delegate: bool
    uses: int | None
    issued_ms: int
    parents: tuple[bytes, ...]
    signature: bytes
    encoded: bytes = field(init=False, repr=False, compare=False)
    hash: bytes = field(init=False, repr=False, compare=False)

    def _fields(self) -> list[object]:
        return [
            _GRANT,
            self.space,
            self.issuer,
            self.subject,
            int(self.role),
            list(self.paths),
            self.not_before_ms,
            _optional(self.expires_ms),
            self.may_delegate,
            _optional(self.uses),
            self.issued_ms,
            list(self.parents),
        ]

    @property
    def invitation(self) -> bool:
        return self.uses is not None

    def in_force(self, at_ms: int) -> bool:
        return self.not_before_ms <= at_ms and (self.expires_ms is None or at_ms < self.expires_ms)

    @classmethod
    def issue(
        cls,
        identity: Identity,
        *,
        space: bytes,
        subject: bytes,
        role: Role,
        paths: Sequence[str] = (),
        not_before_ms: int = 0,
        expires_ms: int | None = None,
        may_delegate: bool = False,
        uses: int | None = None,
        issued_ms: int,
        parents: Iterable[bytes] = (),
    ) -> Grant:
        """Sign a grant; globs and parents are sorted and deduplicated (their one encoding)."""
        unique_paths = _sorted_unique(paths)
        if len(unique_paths) > MAX_PATHS_PER_GRANT:
            raise InvalidCapability(f"a grant names at most {MAX_PATHS_PER_GRANT} globs")
        for glob in unique_paths:
            if (problem := glob_problem(glob)) is not None:
                raise InvalidCapability(problem)
        if uses is not None and uses < 1:
            raise InvalidCapability("an invitation has at least one use")
        unsigned = cls(
            space, identity.public_key, subject, Role(role), unique_paths, not_before_ms, expires_ms,
            may_delegate, uses, issued_ms, _parents(parents), b"",
        )  # fmt: skip
        grant = sign(unsigned, identity, DOMAIN_CAPABILITY)
        if len(grant.encoded) > MAX_RECORD_BYTES:
            raise InvalidCapability(f"the grant encodes to {len(grant.encoded)} bytes, over {MAX_RECORD_BYTES}")
        return grant


@dataclass(frozen=True, slots=True)
class Revocation(SignedRecord):
    """``issuer`` (an admin) revokes the key ``subject``; ``seen`` keeps its changes the issuer had."""

    space: bytes
    issuer: bytes
    subject: bytes
    seen: tuple[tuple[bytes, int], ...]  # (doc id, the subject's highest seq held), sorted by doc
    issued_ms: int
    parents: tuple[bytes, ...]
    signature: bytes
    encoded: bytes = field(init=False, repr=False, compare=False)
    hash: bytes = field(init=False, repr=False, compare=False)

    def _fields(self) -> list[object]:
        seen = [[doc, seq] for doc, seq in self.seen]
        return [_REVOCATION, self.space, self.issuer, self.subject, seen, self.issued_ms, list(self.parents)]

    @classmethod
    def issue(
        cls,
        identity: Identity,
        *,
        space: bytes,
        subject: bytes,
        seen: Iterable[tuple[bytes, int]] = (),
        issued_ms: int,
        parents: Iterable[bytes] = (),
    ) -> Revocation:
        """Sign a revocation; a doc listed twice keeps its highest seq."""
        highest: dict[bytes, int] = {}
        for doc, seq in seen:
            if len(doc) != DOC_ID_BYTES or seq < 0:
                raise InvalidCapability("seen lists (16-byte doc id, seq >= 0) pairs")
            highest[doc] = max(seq, highest.get(doc, 0))
        if len(highest) > MAX_SEEN_DOCS:
            raise InvalidCapability(f"a revocation lists at most {MAX_SEEN_DOCS} docs")
        unsigned = cls(space, identity.public_key, subject, tuple(sorted(highest.items())), issued_ms, _parents(parents), b"")
        return sign(unsigned, identity, DOMAIN_CAPABILITY)


Record: TypeAlias = Grant | Revocation


def _parents(parents: Iterable[bytes]) -> tuple[bytes, ...]:
    unique = tuple(sorted(set(parents)))
    if len(unique) > MAX_PARENTS or any(len(parent) != HASH_BYTES for parent in unique):
        raise InvalidCapability(f"a record names at most {MAX_PARENTS} parents of {HASH_BYTES} bytes")
    return unique


def _key(value: object) -> bytes:
    if type(value) is not bytes or len(value) != PUBLIC_KEY_BYTES:
        raise CapabilityError("malformed capability record: a key is 32 bytes")
    return value


def _uint(value: object) -> int:
    if type(value) is not int:
        raise CapabilityError("malformed capability record: expected an integer")
    return value


def _optional_uint(value: object) -> int | None:
    match value:
        case []:
            return None
        case [number]:
            return _uint(number)
    raise CapabilityError("malformed capability record: an optional integer is [] or [n]")


def _hash_list(value: object) -> tuple[bytes, ...]:
    if type(value) is not list or len(value) > MAX_PARENTS:
        raise CapabilityError(f"malformed capability record: parents are a list of at most {MAX_PARENTS}")
    if any(type(item) is not bytes or len(item) != HASH_BYTES for item in value):
        raise CapabilityError("malformed capability record: a parent is a 32-byte hash")
    return tuple(value)


def _glob_list(value: object) -> tuple[str, ...]:
    if type(value) is not list or len(value) > MAX_PATHS_PER_GRANT:
        raise CapabilityError(f"malformed capability record: paths are a list of at most {MAX_PATHS_PER_GRANT}")
    for glob in value:
        if type(glob) is not str:
            raise CapabilityError("malformed capability record: a glob is text")
        if (problem := glob_problem(glob)) is not None:
            raise CapabilityError(f"malformed capability record: {problem}")
    return tuple(value)


def _seen_list(value: object) -> tuple[tuple[bytes, int], ...]:
    if type(value) is not list or len(value) > MAX_SEEN_DOCS:
        raise CapabilityError(f"malformed capability record: seen is a list of at most {MAX_SEEN_DOCS}")
    seen: list[tuple[bytes, int]] = []
    for pair in value:
        match pair:
            case [bytes() as doc, seq] if len(doc) == DOC_ID_BYTES:
                seen.append((doc, _uint(seq)))
            case _:
                raise CapabilityError("malformed capability record: seen holds [16-byte doc id, seq] pairs")
    return tuple(seen)


def decode_record(data: bytes) -> Record:
    """Decode and verify a capability record from untrusted bytes.

    Raises:
        CapabilityError: anything wrong (shape, types, non-canonical encoding, signature);
            CapabilityLimit when it is merely larger than a budget.
    """
    if len(data) > MAX_REVOCATION_BYTES:
        raise CapabilityLimit(f"a capability record is at most {MAX_REVOCATION_BYTES} bytes")
    fields = load_fields(data, "capability record", CapabilityError)
    record: Record
    match fields:
        case [1, space, issuer, subject, role, paths, not_before, expires, bool() as may_delegate, uses, issued, parents, bytes() as signature]:
            if len(data) > MAX_RECORD_BYTES:
                raise CapabilityLimit(f"a grant is at most {MAX_RECORD_BYTES} bytes")
            if type(role) is not int or role not in Role._value2member_map_:
                raise CapabilityError("malformed capability record: unknown role")
            record = Grant(
                _key(space), _key(issuer), _key(subject), Role(role), _glob_list(paths), _uint(not_before),
                _optional_uint(expires), may_delegate, _optional_uint(uses), _uint(issued), _hash_list(parents), signature,
            )  # fmt: skip
            if record.paths != _sorted_unique(record.paths) or record.uses == 0:
                raise CapabilityError("malformed capability record: globs unsorted or repeated, or an invitation of no use")
        case [2, space, issuer, subject, seen, issued, parents, bytes() as signature]:
            record = Revocation(_key(space), _key(issuer), _key(subject), _seen_list(seen), _uint(issued), _hash_list(parents), signature)
            docs = [doc for doc, _ in record.seen]
            if docs != sorted(set(docs)):
                raise CapabilityError("malformed capability record: seen docs unsorted or repeated")
        case _:
            raise CapabilityError("malformed capability record: wrong shape")
    if list(record.parents) != sorted(set(record.parents)):
        raise CapabilityError("malformed capability record: parents unsorted or repeated")
    return verified(record, data, record.issuer, DOMAIN_CAPABILITY, "capability record", CapabilityError)
