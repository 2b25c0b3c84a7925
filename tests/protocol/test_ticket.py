"""Invitation tickets: one pasted string, strictly parsed, redeemed into a grant the log accepts."""

from __future__ import annotations

import base64
import dataclasses
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import cbor
from protocol.capabilities import CapabilityLog, Grant, Role
from protocol.errors import TicketError
from protocol.identity import Identity
from protocol.space import Genesis
from protocol.ticket import MAX_TICKET_CHARS, TICKET_PREFIX, Ticket, _checksum, invite, redeem


def identity_of(name: str) -> Identity:
    return Identity(hashlib.sha256(b"ticket test " + name.encode()).digest())


ROOT = identity_of("root")
ALICE = identity_of("alice")
JOINER = identity_of("joiner")
GENESIS = Genesis.create(ROOT, "private space", 1, nonce=bytes(16), private=True)
ADDRS = ("/ip4/127.0.0.1/tcp/4001/p2p/12D3KooW",)


def inviter_log() -> CapabilityLog:
    """A log where root made Alice an admin, so Alice's tickets carry a one-grant chain."""
    log = CapabilityLog(GENESIS)
    log.add(Grant.issue(ROOT, space=log.space, subject=ALICE.public_key, role=Role.ADMIN, issued_ms=5))
    return log


def test_a_ticket_round_trips_through_one_pasteable_string():
    log = inviter_log()
    ticket = invite(log, ALICE, role=Role.WRITE, paths=("src/*",), expires_ms=1_000, uses=3, issued_ms=10, addrs=ADDRS)
    text = ticket.encode()
    assert text.startswith(TICKET_PREFIX) and text == text.strip() and text.isalnum() and text == text.lower()
    assert len(text) < 2_000
    assert Ticket.decode(f"  {text}\n") == ticket
    assert ticket.grant.uses == 3 and ticket.grant.subject == Identity(ticket.secret or b"").public_key
    assert len(ticket.records) == 2  # Alice's grant, then the invitation


def test_redeeming_gives_a_grant_the_inviters_log_accepts_and_that_admits_the_joiner():
    log = inviter_log()
    ticket = invite(log, ALICE, role=Role.WRITE, paths=("src/*",), uses=1, issued_ms=10, addrs=ADDRS)
    log.add(ticket.grant)
    proof = redeem(Ticket.decode(ticket.encode()), JOINER, now_ms=20)
    for record in proof:
        log.add(record)
    assert all(log.verdict(record.hash) is None for record in proof)
    assert log.admits(JOINER.public_key, 30)
    assert log.role(JOINER.public_key) is Role.WRITE
    assert log.change_refusal(JOINER.public_key, bytes(16), 1, ["docs/a"], 30) == "write is scoped to src/*; docs/a is outside it"
    joiners_own = CapabilityLog(ticket.genesis, proof)  # the joiner's log, before any sync
    assert joiners_own.admits(JOINER.public_key, 30) and joiners_own.admits(ALICE.public_key, 30)
    assert joiners_own.proof_for(JOINER.public_key) == proof
    second = redeem(ticket, identity_of("second"), now_ms=21)
    log.add(second[-1])
    # one use: of two redemptions, the first in the fixed order holds it (either may be that one)
    first_in_order = min([proof[-1], second[-1]], key=lambda grant: grant.hash)
    assert [log.verdict(g.hash) for g in (proof[-1], second[-1])] == [None if g is first_in_order else "uses spent" for g in (proof[-1], second[-1])]


def test_a_ticket_naming_the_joiner_directly_needs_no_secret():
    log = CapabilityLog(GENESIS)
    direct = Grant.issue(ROOT, space=log.space, subject=JOINER.public_key, role=Role.READ, issued_ms=1)
    ticket = Ticket(GENESIS, (direct,), None, ADDRS)
    decoded = Ticket.decode(ticket.encode())
    assert decoded.secret is None
    assert redeem(decoded, JOINER, 5) == [direct]
    with pytest.raises(TicketError, match="another key"):
        redeem(decoded, ALICE, 5)


def test_an_expired_invitation_is_refused_when_redeemed():
    ticket = invite(inviter_log(), ALICE, role=Role.READ, expires_ms=100, issued_ms=10)
    with pytest.raises(TicketError, match="expired"):
        redeem(ticket, JOINER, now_ms=100)


@pytest.mark.parametrize(
    "text",
    ["", "hello", TICKET_PREFIX, TICKET_PREFIX + "!!!!", TICKET_PREFIX + "a", TICKET_PREFIX + "aa" * 20, "x" * (MAX_TICKET_CHARS + 1), TICKET_PREFIX + "é"],
)
def test_garbage_is_a_ticket_error(text):
    with pytest.raises(TicketError):
        Ticket.decode(text)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(max_size=200))
def test_any_text_is_a_ticket_or_a_ticket_error(text):
    with pytest.raises(TicketError):
        Ticket.decode(TICKET_PREFIX + text)


_TICKET = invite(inviter_log(), ALICE, role=Role.READ, issued_ms=10, addrs=ADDRS).encode()


@settings(max_examples=300, deadline=None, derandomize=True)
@given(position=st.integers(len(TICKET_PREFIX), len(_TICKET) - 1), char=st.sampled_from("abcdefghijklmnopqrstuvwxyz234567"))
def test_a_mistyped_ticket_is_a_ticket_error(position, char):
    typo = _TICKET[:position] + char + _TICKET[position + 1 :]
    if typo == _TICKET:
        return
    try:
        decoded = Ticket.decode(typo)
    except TicketError:
        return
    # the last character's low bits are base32 padding: a typo there may decode to the same ticket
    assert decoded == Ticket.decode(_TICKET)


def test_a_crafted_ticket_is_refused_with_a_clear_message():
    ticket = Ticket.decode(_TICKET)
    other_space = Genesis.create(ROOT, "other", 1, private=True)
    wrong_secret = dataclasses.replace(ticket, secret=bytes(32))
    with pytest.raises(TicketError, match="not the invitation's key"):
        Ticket.decode(wrong_secret.encode())
    with pytest.raises(TicketError, match="another space"):
        Ticket.decode(dataclasses.replace(ticket, genesis=other_space).encode())
    with pytest.raises(TicketError):
        Ticket.decode(TICKET_PREFIX + "".join(chr(c) for c in b"x"))
    fields = [GENESIS.encode(), [b"not a record"], b"", []]
    data = cbor.dumps(fields)
    text = TICKET_PREFIX + base64.b32encode(data + _checksum(data)).decode().rstrip("=").lower()
    with pytest.raises(TicketError, match="do not verify"):
        Ticket.decode(text)
