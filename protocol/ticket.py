"""Invitation tickets: one copy-paste string that lets a new key join a private space.

A ticket carries the space's genesis, the inviter's proof plus the invitation grant, the
invitation key's secret seed (or none when the grant names the joiner's key directly), and the
inviter's addresses, like an iroh ticket. The joiner redeems it by signing, with the invitation
key, a grant of the invitation's rights to its own key: that grant, with the ticket's records,
is the proof it presents before its Hello. The secret only lets its holder spend one of the
invitation's ``uses``; the invitation key itself has no access (protocol/capabilities.py, rule 5).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Final

from protocol import cbor
from protocol.capabilities import CapabilityLog, Grant, Record, Role, decode_record
from protocol.errors import ProtocolError, TicketError
from protocol.identity import SEED_BYTES, Identity
from protocol.space import Genesis

TICKET_PREFIX: Final = "dist1"
# A ticket is pasted into a terminal or a chat: a root's invitation is ~700 characters, a chain of
# a few delegations a few thousand; more is not a ticket.
MAX_TICKET_CHARS: Final = 16_384
MAX_TICKET_RECORDS: Final = 16
MAX_TICKET_ADDRS: Final = 16
MAX_ADDR_CHARS: Final = 512
# A typo must not become a wrong address or a different invitation: the CBOR is followed by the
# first bytes of its sha256 (one in 4 billion typos slips through).
CHECKSUM_BYTES: Final = 4


def _checksum(data: bytes) -> bytes:
    return hashlib.sha256(b"distspace/ticket/v1\x00" + data).digest()[:CHECKSUM_BYTES]


@dataclass(frozen=True, slots=True)
class Ticket:
    """What a joiner needs: the space, the proof of the invitation, its secret, where to dial."""

    genesis: Genesis
    records: tuple[Record, ...]  # the inviter's proof, then the invitation grant
    secret: bytes | None  # the invitation key's Ed25519 seed; None: the grant names the joiner
    addrs: tuple[str, ...]

    @property
    def grant(self) -> Grant:
        """The invitation grant (the last record)."""
        last = self.records[-1] if self.records else None
        if not isinstance(last, Grant):
            raise TicketError("the ticket holds no invitation grant")
        return last

    def encode(self) -> str:
        data = cbor.dumps([self.genesis.encode(), [record.encode() for record in self.records], self.secret or b"", list(self.addrs)])
        data += _checksum(data)
        return TICKET_PREFIX + base64.b32encode(data).decode("ascii").rstrip("=").lower()

    @classmethod
    def decode(cls, text: str) -> Ticket:
        """Parse a pasted ticket (surrounding whitespace ignored).

        Raises:
            TicketError: anything that is not a well-formed ticket whose records verify.
        """
        text = text.strip()
        if len(text) > MAX_TICKET_CHARS:
            raise TicketError(f"a ticket has at most {MAX_TICKET_CHARS} characters; this one has {len(text)}")
        if not text.startswith(TICKET_PREFIX):
            raise TicketError(f"not a Dist-Space ticket: it should start with {TICKET_PREFIX!r}")
        body = text[len(TICKET_PREFIX) :].upper()
        try:
            data = base64.b32decode(body + "=" * (-len(body) % 8))
        except (binascii.Error, ValueError) as error:
            raise TicketError("the ticket is damaged (not base32): was it copied whole?") from error
        data, checksum = data[:-CHECKSUM_BYTES], data[-CHECKSUM_BYTES:]
        if len(checksum) != CHECKSUM_BYTES or _checksum(data) != checksum:
            raise TicketError("the ticket is damaged (its checksum does not match): was it copied whole?")
        try:
            fields = cbor.loads_canonical(data, "ticket")
        except ProtocolError as error:
            raise TicketError("the ticket is damaged: was it copied whole?") from error
        match fields:
            case [bytes() as genesis_bytes, list() as record_list, bytes() as secret, list() as addr_list] if (
                0 < len(record_list) <= MAX_TICKET_RECORDS and len(addr_list) <= MAX_TICKET_ADDRS and len(secret) in (0, SEED_BYTES)
            ):
                pass
            case _:
                raise TicketError("the ticket is damaged: wrong shape")
        try:
            genesis = Genesis.decode(genesis_bytes)
            records = tuple(decode_record(item) if type(item) is bytes else _not_bytes() for item in record_list)
        except ProtocolError as error:
            raise TicketError(f"the ticket's records do not verify: {error}") from error
        if any(type(addr) is not str or not 0 < len(addr) <= MAX_ADDR_CHARS or not addr.isprintable() for addr in addr_list):
            raise TicketError("the ticket's addresses are malformed")
        if any(record.space != genesis.space_id for record in records):
            raise TicketError("the ticket's records are for another space")
        ticket = cls(genesis, records, secret or None, tuple(addr_list))
        if ticket.secret is not None and ticket.grant.subject != Identity(ticket.secret).public_key:
            raise TicketError("the ticket's secret is not the invitation's key")
        return ticket


def _not_bytes() -> Record:
    raise TicketError("the ticket is damaged: a record is not bytes")


def invite(
    log: CapabilityLog,
    inviter: Identity,
    *,
    role: Role,
    paths: tuple[str, ...] = (),
    expires_ms: int | None = None,
    uses: int = 1,
    may_delegate: bool = False,
    issued_ms: int,
    addrs: tuple[str, ...] = (),
) -> Ticket:
    """A ticket for a fresh invitation key with ``uses`` uses of ``role`` over ``paths``.

    The grant names only the inviter's own grants as parents (``parents_for``), so the ticket
    holds just the delegation chain. Add ``ticket.grant`` to ``log`` (and publish it) so that
    peers can check joiners' grants.

    Raises:
        InvalidCapability: arguments no grant can carry.
    """
    invitation_key = Identity.generate()
    grant = Grant.issue(
        inviter,
        space=log.space,
        subject=invitation_key.public_key,
        role=role,
        paths=paths,
        expires_ms=expires_ms,
        may_delegate=may_delegate,
        uses=uses,
        issued_ms=issued_ms,
        parents=log.parents_for(inviter.public_key),
    )
    proof = log.proof_for(inviter.public_key)
    return Ticket(log.genesis, (*proof, grant), invitation_key.seed, addrs)


def redeem(ticket: Ticket, joiner: Identity, now_ms: int) -> list[Record]:
    """The records a joiner adds to its log and presents as proof: the ticket's, then (with a
    secret) a grant of the invitation's rights from the invitation key to ``joiner``.

    Raises:
        TicketError: an expired invitation, or a ticket for another key.
    """
    invitation = ticket.grant
    if invitation.expires_ms is not None and now_ms >= invitation.expires_ms:
        raise TicketError("this invitation has expired; ask for a new one")
    if ticket.secret is None:
        if invitation.subject != joiner.public_key:
            raise TicketError("this ticket is for another key")
        return list(ticket.records)
    invitation_key = Identity(ticket.secret)
    joined = Grant.issue(
        invitation_key,
        space=invitation.space,
        subject=joiner.public_key,
        role=invitation.role,
        paths=invitation.paths,
        not_before_ms=invitation.not_before_ms,
        expires_ms=invitation.expires_ms,
        may_delegate=invitation.may_delegate,
        issued_ms=max(now_ms, invitation.not_before_ms),
        parents=(invitation.hash,),
    )
    return [*ticket.records, joined]
