"""Every error the protocol layer raises, so callers can catch exactly what they mean.

Two families, as in h11: a ``RemoteProtocolError`` is the peer's fault (bad bytes, forged
signatures, limits exceeded) and is grounds for scoring or disconnecting it; a
``LocalProtocolError`` is our own misuse (bad key file, wrong arguments).
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base class of every protocol error."""


class LocalProtocolError(ProtocolError):
    """We used the protocol wrongly; nothing a remote peer did."""


class IdentityError(LocalProtocolError):
    """A key file is missing, malformed, or readable by other users."""


class InvalidSpaceName(LocalProtocolError, ValueError):
    """A space name that is empty or too long (a ValueError too, for callers that catch that)."""


class RemoteProtocolError(ProtocolError):
    """A peer sent something we must reject; carries a hint for logs and scoring."""


class WireError(RemoteProtocolError):
    """Bytes that do not decode to a valid message of a supported version."""


class LimitExceeded(WireError):
    """A frame, list or pending set is larger than its named limit allows."""


class OverLimit(LimitExceeded):
    """A well-formed message that holds more than a named limit allows (a list too long, a
    batch with too many ops). Not garbage: a peer of another version, or one whose space grew
    past what we handle, can send it, so it ends the session without a ban."""


class CapabilityError(WireError):
    """A capability record (protocol/capabilities.py) that does not decode, verify, or belong to
    the space it was offered for: the sender's fault."""


class CapabilityLimit(CapabilityError, OverLimit):
    """A capability record or log past a named budget: well formed, so no ban."""


class PeerRecordError(WireError):
    """A peer record (protocol/peer_record.py: a member's signed name and kind) that does not
    decode or verify, or a message of them that is malformed: the sender's fault."""


class SnapshotPointerError(WireError):
    """A snapshot pointer (protocol/snapshot_pointer.py: a member's signed pointer to a space's
    latest published manifest) that does not decode or verify, is of another space, or is older
    than one already seen (a replay): whoever served it is at fault."""


class InvalidPeerRecord(LocalProtocolError, ValueError):
    """We asked for a peer record that cannot be issued (an empty or overlong name): our own
    arguments (config.toml's ``name``), never a peer's bytes."""


class InvalidCapability(LocalProtocolError, ValueError):
    """We asked for a capability record that cannot be issued (bad glob, unknown role, too many
    paths): our own arguments, never a peer's bytes."""


class TicketError(LocalProtocolError, ValueError):
    """An invitation ticket that is not one: mistyped, truncated, or for no usable invitation.
    A ticket is pasted by the user, so its fault is local (a ValueError too, for API callers)."""


class MessageTooLarge(LocalProtocolError):
    """A message we were about to send does not fit a frame: our own fault, never the peer's."""


class VerificationError(RemoteProtocolError):
    """A signature, author or hash link that does not check out."""


class BadSignature(VerificationError):
    """The signature does not verify under the claimed key."""


class WrongAuthor(VerificationError):
    """A change's actor id is not the key that signed the tip covering it."""


class UnknownChange(VerificationError):
    """A tip names a change hash that is neither supplied nor stored."""


class InvalidActor(VerificationError):
    """A change's actor id is not a 32-byte Ed25519 public key."""


class UnusableChanges(VerificationError):
    """Changes that are signed and well formed but break Automerge's rules for the document: a
    second change for an author's sequence number (a forked author chain), a sequence number
    that does not continue the author's chain, or ops Automerge refuses to apply. Storing one
    would make the document unloadable on every peer that stored it. Raised by a store's
    ``apply``; protocol/ingest.py refuses such changes one by one (``Refused``)."""


class UnexpectedMessage(RemoteProtocolError):
    """A well-formed message the session's state does not allow (or a Hello that lies)."""


class Flood(RemoteProtocolError):
    """A peer sends faster, or leaves more unverifiable changes with us, than the limits allow."""
