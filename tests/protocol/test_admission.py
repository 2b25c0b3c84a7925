"""Admission before disclosure, sans-IO: who a private space's Replicator says anything to, and
how its capability log travels (protocol/replicator.py's module docstring).

Alice is the root of a private space; Bob holds a write grant Alice issued (both stores hold
it); Mallory is a stranger. Frames are read off the Replicators' actions, so a test sees every
byte a peer would have received.
"""

from __future__ import annotations

import hashlib
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from harness import START_MS, Network, edits, identity_of, text_doc_id
from protocol.capabilities import Grant, Record, Revocation, Role
from protocol.events import Action, CapabilitiesAdded, Connected, DataReceived, Disconnect, LocalCommit, PeerPenalized, Send
from protocol.identity import Identity
from protocol.limits import MAX_PROOF_RECORDS, SUPPORTED_VERSIONS
from protocol.memory import MemoryChangeStore
from protocol.reconcile import space_summary
from protocol.replicator import NOT_SERVED, Replicator
from protocol.space import INDEX_DOC_ID, Genesis
from protocol.ticket import Ticket, invite, redeem
from protocol.wire import Bye, Capabilities, FrameDecoder, Hello, Message, Status, encode_frame
from store.repo import Repo, RepoEvent, StoreEvent
from store.workspace import Workspace

GENESIS = Genesis.create(identity_of("alice"), "private", START_MS, nonce=bytes(16), private=True)
SPACE = GENESIS.space_id
OPEN_GENESIS = Genesis.create(identity_of("alice"), "open", START_MS, nonce=bytes(16))
NOTES = text_doc_id("notes.md")
DAY_MS = 86_400_000
NOT_SERVED_FRAME = encode_frame(Bye(NOT_SERVED))


def key(name: str) -> bytes:
    return identity_of(name).public_key


def grant(subject: str, issuer: str = "alice", role: Role = Role.WRITE, **fields: object) -> Grant:
    return Grant.issue(identity_of(issuer), space=SPACE, subject=key(subject), role=role, issued_ms=START_MS - DAY_MS, **fields)  # type: ignore[arg-type]


BOB_GRANT = grant("bob")


def store_with(*records: Record, genesis: Genesis = GENESIS) -> MemoryChangeStore:
    store = MemoryChangeStore(geneses=[genesis])
    store.add_capability_records(genesis.space_id, [record.encode() for record in records])
    return store


def private_network(**members: tuple[Record, ...]) -> Network:
    """A peer per name, its store holding the genesis and the records given."""
    network = Network(space=SPACE)
    for name, records in members.items():
        network.add_peer(name, store=store_with(*records))
    return network


def messages(actions: list[Action]) -> list[Message]:
    decoder = FrameDecoder(max_frame_bytes=1 << 30)
    for action in actions:
        if isinstance(action, Send):
            decoder.receive_data(action.data)
    out = []
    while (message := decoder.next_message()) is not None:
        out.append(message)
    return out


def record_sends(network: Network, name: str) -> list[Action]:
    """Every action of the peer's Replicator from now on (its frames, to any peer)."""
    peer = network.peers[name]
    seen: list[Action] = []
    handle = peer.replicator.handle

    def recording(event, now_ms):  # type: ignore[no-untyped-def]
        actions = handle(event, now_ms)
        seen.extend(actions)
        return actions

    peer.replicator.handle = recording  # type: ignore[method-assign]
    return seen


def stranger_hello(identity: Identity, space: bytes) -> bytes:
    return encode_frame(Hello(SUPPORTED_VERSIONS, space, identity.public_key, Status(space_summary({}), (), False)))


def answer(replicator: Replicator, identity: Identity, space: bytes, proof: tuple[Record, ...] = (), conn: object = "m") -> list[Action]:
    """What the responder sends a peer that opens a stream and says Hello for ``space``."""
    actions = replicator.handle(Connected(conn, identity.public_key, None), START_MS)
    if proof:
        frame = encode_frame(Capabilities(bytes(32), tuple(record.encode() for record in proof)))
        actions += replicator.handle(DataReceived(conn, frame), START_MS)
    return actions + replicator.handle(DataReceived(conn, stranger_hello(identity, space)), START_MS)


def alice_replicator(*records: Record, spaces: tuple[bytes, ...] = (SPACE,)) -> Replicator:
    return Replicator(identity_of("alice"), store_with(*records), random.Random(0), spaces)


# ----- the responder -----


def test_no_such_space_and_not_a_member_get_the_same_bye_byte_for_byte() -> None:
    mallory = identity_of("mallory")
    self_granted = Grant.issue(mallory, space=SPACE, subject=mallory.public_key, role=Role.ADMIN, issued_ms=START_MS)
    answers = {
        "no such space": answer(alice_replicator(BOB_GRANT), mallory, hashlib.sha256(b"another space").digest()),
        "not a member": answer(alice_replicator(BOB_GRANT), mallory, SPACE),
        "not a member, with a proof that proves nothing": answer(alice_replicator(BOB_GRANT), mallory, SPACE, (self_granted,)),
        "bob's key without bob": answer(alice_replicator(), identity_of("bob"), SPACE),
    }
    for why, actions in answers.items():
        assert [a.data for a in actions if isinstance(a, Send)] == [NOT_SERVED_FRAME], why
        assert sum(isinstance(a, Disconnect) for a in actions) == 1, why
        assert not any(isinstance(a, PeerPenalized) for a in actions), why


def test_a_member_is_answered_with_a_hello_and_counted_apart() -> None:
    alice = alice_replicator(BOB_GRANT)
    sent = messages(answer(alice, identity_of("bob"), SPACE))
    assert isinstance(sent[0], Hello) and sent[0].space == SPACE
    assert Capabilities(alice.store.capability_log(SPACE).digest, ()) in sent
    refused = alice_replicator(BOB_GRANT)
    answer(refused, identity_of("mallory"), SPACE)
    answer(refused, identity_of("mallory"), bytes(32), conn="other")
    assert refused.stats["refused_not_admitted"] == 1 and refused.stats["refused_unknown_space"] == 1


def test_a_proof_that_does_not_admit_its_sender_is_not_stored() -> None:
    alice = alice_replicator(BOB_GRANT)
    mallory = identity_of("mallory")
    # Valid signatures, of the right space, but no authority: Bob may not delegate.
    from_bob = grant("mallory", issuer="bob", parents=(BOB_GRANT.hash,))
    answer(alice, mallory, SPACE, (BOB_GRANT, from_bob))
    assert len(alice.store.capability_log(SPACE)) == 1


def test_a_proof_is_verified_before_its_space_is_known_so_garbage_costs_the_same_everywhere() -> None:
    for space in (SPACE, bytes(32)):
        alice = alice_replicator(BOB_GRANT)
        conn = "m"
        alice.handle(Connected(conn, key("mallory"), None), START_MS)
        actions = alice.handle(DataReceived(conn, encode_frame(Capabilities(bytes(32), (b"not a record",)))), START_MS)
        actions += alice.handle(DataReceived(conn, stranger_hello(identity_of("mallory"), space)), START_MS)
        assert [a.offense for a in actions if isinstance(a, PeerPenalized)] == ["malformed"]
        sent = messages(actions)
        assert not any(isinstance(m, Hello) for m in sent)
        assert all(SPACE not in (a.data if isinstance(a, Send) else b"") for a in actions)


def test_a_proof_of_more_records_than_a_proof_holds_ends_the_session() -> None:
    alice = alice_replicator(BOB_GRANT)
    alice.handle(Connected("m", key("bob"), None), START_MS)
    proof = encode_frame(Capabilities(bytes(32), (BOB_GRANT.encode(),) * (MAX_PROOF_RECORDS + 1)))
    actions = alice.handle(DataReceived("m", proof), START_MS)
    assert [a.offense for a in actions if isinstance(a, PeerPenalized)] == ["over-limit"]
    assert any(isinstance(a, Disconnect) for a in actions)


# ----- the opener -----


def test_the_opener_sends_nothing_at_all_to_a_peer_the_log_does_not_admit() -> None:
    alice = alice_replicator(BOB_GRANT)
    actions = alice.handle(Connected("m", key("mallory"), SPACE), START_MS)
    assert not any(isinstance(a, Send) for a in actions)
    assert any(isinstance(a, Disconnect) for a in actions)
    assert alice.stats["not_admitted_not_opened"] == 1


def test_a_member_that_is_not_the_root_opens_with_its_proof() -> None:
    bob = Replicator(identity_of("bob"), store_with(BOB_GRANT), random.Random(0), [SPACE])
    sent = messages(bob.handle(Connected("a", key("alice"), SPACE), START_MS))
    assert isinstance(sent[0], Capabilities) and sent[0].records == (BOB_GRANT.encode(),)
    assert isinstance(sent[1], Hello)


# ----- any key, admitted or not -----

seeds = st.binary(min_size=32, max_size=32)
membership = st.sampled_from(["stranger", "member", "expired", "revoked", "not yet"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(seeds, membership, st.sampled_from(list(Role))), min_size=1, max_size=6, unique_by=lambda k: k[0]))
def test_only_keys_the_log_admits_ever_get_a_frame_naming_the_space(keys: list[tuple[bytes, str, Role]]) -> None:
    alice_identity = identity_of("alice")
    records: list[Record] = []
    for seed, kind, role in keys:
        subject = Identity(seed).public_key
        if kind == "stranger":
            continue
        expires = START_MS - 1 if kind == "expired" else None
        not_before = START_MS + DAY_MS if kind == "not yet" else 0
        given_grant = Grant.issue(
            alice_identity, space=SPACE, subject=subject, role=role, issued_ms=START_MS - DAY_MS, expires_ms=expires, not_before_ms=not_before
        )
        records.append(given_grant)
        if kind == "revoked":
            records.append(Revocation.issue(alice_identity, space=SPACE, subject=subject, issued_ms=START_MS - 1, parents=(given_grant.hash,)))
    for number, (seed, kind, _) in enumerate(keys):
        identity = Identity(seed)
        admitted = kind == "member" or identity.public_key == alice_identity.public_key
        as_responder = answer(alice_replicator(*records), identity, SPACE, conn=number)
        as_opener = alice_replicator(*records).handle(Connected(number, identity.public_key, SPACE), START_MS)
        if admitted:
            assert isinstance(messages(as_responder)[0], Hello)
            assert isinstance(messages(as_opener)[0], Hello)
        else:
            assert [a.data for a in as_responder if isinstance(a, Send)] == [NOT_SERVED_FRAME]
            assert not any(isinstance(a, Send) for a in as_opener)


# ----- members sync, and so does the log -----


def test_members_sync_a_private_space_and_equal_logs_cost_a_digest_each_way() -> None:
    network = private_network(alice=(BOB_GRANT,), bob=(BOB_GRANT,))
    alice_sent = record_sends(network, "alice")
    network.connect("bob", "alice")
    network.commit("alice", NOTES, edits(["from alice "]))
    network.commit("bob", text_doc_id("todo.md"), edits(["from bob "]))
    network.settle()
    assert network.converged()
    assert network.heads("alice")
    capabilities = [m for m in messages(alice_sent) if isinstance(m, Capabilities)]
    assert capabilities == [Capabilities(network.peers["alice"].store.capability_log(SPACE).digest, ())]


def test_a_joiner_with_a_ticket_is_admitted_by_its_proof_and_its_grant_reaches_the_others() -> None:
    alice_store = store_with(BOB_GRANT)
    ticket = invite(alice_store.capability_log(SPACE), identity_of("alice"), role=Role.WRITE, issued_ms=START_MS - DAY_MS)
    alice_store.add_capability_records(SPACE, [ticket.grant.encode()])
    joined = redeem(ticket, identity_of("carol"), START_MS)
    network = Network(space=SPACE)
    network.add_peer("alice", store=alice_store)
    network.add_peer("bob", store=store_with(BOB_GRANT))
    network.add_peer("carol", store=store_with(*joined))
    network.connect("bob", "alice")
    network.run()
    network.commit("alice", NOTES, edits(["welcome"]))
    network.connect("carol", "alice")
    network.settle()
    carol_grant = joined[-1]
    assert network.peers["alice"].replicator.stats["proofs_taken"] == 1
    assert network.heads("carol") == network.heads("alice")
    for name in ("alice", "bob", "carol"):
        log = network.peers[name].store.capability_log(SPACE)
        assert carol_grant.hash in log and log.admits(key("carol"), START_MS), name
    network.commit("carol", NOTES, edits(["carol writes "]))
    network.settle()
    assert network.converged()


def test_a_log_that_differs_is_sent_whole_once_and_then_equal() -> None:
    dave = grant("dave")
    network = private_network(alice=(BOB_GRANT, dave), bob=(BOB_GRANT, grant("erin")))
    network.connect("alice", "bob")
    network.run()
    logs = [network.peers[name].store.capability_log(SPACE) for name in ("alice", "bob")]
    assert logs[0].digest == logs[1].digest and len(logs[0]) == 3
    assert all(network.peers[name].replicator.stats["capability_logs_sent"] == 1 for name in ("alice", "bob"))


def test_a_record_added_locally_is_pushed_to_every_session_of_the_space() -> None:
    network = private_network(alice=(BOB_GRANT,), bob=(BOB_GRANT,), carol=(BOB_GRANT, grant("carol")))
    network.peers["alice"].store.add_capability_records(SPACE, [grant("carol").encode()])
    network.connect("bob", "alice")
    network.connect("carol", "alice")
    network.run()
    sent_before = network.peers["bob"].replicator.stats["capability_records_sent"]
    dave = grant("dave", role=Role.READ)
    added = network.peers["alice"].store.add_capability_records(SPACE, [dave.encode()])
    network.feed("alice", CapabilitiesAdded(SPACE, tuple(added)))
    network.run()
    for name in ("bob", "carol"):
        assert dave.hash in network.peers[name].store.capability_log(SPACE), name
    # Bob's copy is not pushed back to Alice: nothing more goes round.
    assert network.peers["bob"].replicator.stats["capability_records_sent"] == sent_before


def test_a_revoked_member_is_closed_and_not_let_back_in() -> None:
    network = private_network(alice=(BOB_GRANT,), bob=(BOB_GRANT,))
    network.connect("bob", "alice")
    network.run()
    assert network.peers["alice"].replicator.connections(SPACE)
    alice_sent = record_sends(network, "alice")
    log = network.peers["alice"].store.capability_log(SPACE)
    revocation = Revocation.issue(identity_of("alice"), space=SPACE, subject=key("bob"), issued_ms=START_MS, parents=log.heads)
    added = network.peers["alice"].store.add_capability_records(SPACE, [revocation.encode()])
    network.feed("alice", CapabilitiesAdded(SPACE, tuple(added)))
    network.run()
    assert not network.peers["alice"].replicator.connections(SPACE)
    assert network.peers["alice"].replicator.stats["closed_not_admitted"] == 1
    told = [m for m in messages(alice_sent) if isinstance(m, Capabilities) and m.records]
    assert told[-1].records == (revocation.encode(),)  # what Bob is told as he goes: why, and no more
    bob_sent = record_sends(network, "alice")
    network.connect("bob", "alice")
    network.run()
    assert [a.data for a in bob_sent if isinstance(a, Send)] == [NOT_SERVED_FRAME]


def test_a_session_ends_when_its_peers_grant_expires() -> None:
    short = grant("bob", expires_ms=START_MS + 30_000)
    network = private_network(alice=(short,), bob=(short,))
    network.connect("bob", "alice")
    network.run()
    assert network.peers["alice"].replicator.connections(SPACE)
    network.advance(60_000)
    assert not network.peers["alice"].replicator.connections(SPACE)
    assert network.peers["alice"].replicator.stats["closed_not_admitted"] == 1


def test_a_member_sending_a_bad_record_is_penalized_and_nothing_is_stored() -> None:
    network = private_network(alice=(BOB_GRANT,), bob=(BOB_GRANT,))
    link = network.connect("bob", "alice")
    network.run()
    conn = link.conn("alice")
    actions = network.feed("alice", DataReceived(conn, encode_frame(Capabilities(bytes(32), (b"forged",)))))
    assert [a.offense for a in actions if isinstance(a, PeerPenalized)] == ["malformed"]
    assert len(network.peers["alice"].store.capability_log(SPACE)) == 1


def test_an_open_space_sends_no_capabilities_at_all() -> None:
    network = Network(space=OPEN_GENESIS.space_id)
    for name in ("alice", "bob"):
        network.add_peer(name, store=MemoryChangeStore(geneses=[OPEN_GENESIS]))
    sent = {name: record_sends(network, name) for name in ("alice", "bob")}
    network.connect("bob", "alice")
    network.commit("alice", NOTES, edits(["open"]))
    network.settle()
    assert network.converged()
    for actions in sent.values():
        assert not any(isinstance(m, Capabilities) for m in messages(actions))


def test_a_revocation_that_arrives_from_a_peer_closes_the_revoked_peers_other_sessions() -> None:
    carol = grant("carol")
    network = private_network(alice=(BOB_GRANT, carol), bob=(BOB_GRANT, carol), carol=(BOB_GRANT, carol))
    network.connect("bob", "alice")
    network.connect("carol", "alice")
    network.connect("bob", "carol")
    network.run()
    assert len(network.peers["carol"].replicator.connections(SPACE)) == 2
    log = network.peers["alice"].store.capability_log(SPACE)
    revocation = Revocation.issue(identity_of("alice"), space=SPACE, subject=key("bob"), issued_ms=START_MS, parents=log.heads)
    added = network.peers["alice"].store.add_capability_records(SPACE, [revocation.encode()])
    network.feed("alice", CapabilitiesAdded(SPACE, tuple(added)))
    network.run()
    assert revocation.hash in network.peers["carol"].store.capability_log(SPACE)
    assert network.peers["carol"].replicator.stats["closed_not_admitted"] == 1
    assert len(network.peers["carol"].replicator.connections(SPACE)) == 1  # Alice's


def test_an_unauthorised_change_is_neither_applied_nor_forwarded_nor_asked_for_until_the_log_changes() -> None:
    reader = grant("bob", role=Role.READ)
    carol = grant("carol")
    network = private_network(alice=(reader, carol), bob=(reader, carol), carol=(reader, carol))
    network.connect("bob", "alice")
    network.connect("carol", "alice")
    network.run()
    network.commit("bob", NOTES, edits(["a reader writes"]))  # its own store takes it; nobody else
    for _ in range(3):
        network.advance(network.config.anti_entropy_interval_ms * 2)
    alice = network.peers["alice"].replicator
    assert NOTES not in network.heads("alice") and NOTES not in network.heads("carol")
    assert 1 <= alice.stats["changes_unauthorised"] <= 2  # the push, and at most one anti-entropy ask
    writer = grant("bob", role=Role.WRITE)
    added = network.peers["alice"].store.add_capability_records(SPACE, [writer.encode()])
    network.feed("alice", CapabilitiesAdded(SPACE, tuple(added)))
    network.settle()
    assert network.converged() and NOTES in network.heads("carol")


# ----- a used-up ticket -----


def one_use_ticket() -> Ticket:
    """A uses=1 invitation with a fixed key (``invite`` draws a fresh one), so which of two
    redemptions sorts first is the same every run."""
    invitation = identity_of("invitation")
    granted = grant("invitation", uses=1)
    assert granted.subject == invitation.public_key
    return Ticket(GENESIS, (granted,), invitation.seed, ())


SECOND_JOINERS = ("carol", "dave", "erin", "frank", "grace", "heidi")


def test_a_used_up_tickets_second_redemption_is_refused_and_the_first_joiner_stays_admitted() -> None:
    ticket = one_use_ticket()
    first = redeem(ticket, identity_of("bob"), START_MS)
    orders = set()
    for name in SECOND_JOINERS:
        alice = alice_replicator(ticket.grant)
        assert isinstance(messages(answer(alice, identity_of("bob"), SPACE, tuple(first), conn="bob"))[0], Hello)
        second = redeem(ticket, identity_of(name), START_MS)
        sorts_first = second[-1].hash < first[-1].hash  # it would take the use: rule 5's fixed order
        orders.add(sorts_first)
        actions = answer(alice, identity_of(name), SPACE, tuple(second), conn=name)
        assert [a.data for a in actions if isinstance(a, Send)] == [NOT_SERVED_FRAME], name
        log = alice.store.capability_log(SPACE)
        assert second[-1].hash not in log and log.verdict(first[-1].hash) is None, name
        assert alice.connections(SPACE) == ["bob"], name  # bob's session was never closed
        assert alice.stats["proofs_displacing"] == int(sorts_first) and alice.stats["closed_not_admitted"] == 0, name
    assert orders == {True, False}  # both cases: the second grant sorting before bob's, and after


def test_redemptions_of_one_ticket_at_two_nodes_are_decided_by_the_fixed_order_on_both() -> None:
    ticket = one_use_ticket()
    dave = grant("dave")
    network = Network(space=SPACE)
    network.add_peer("alice", store=store_with(ticket.grant, dave))
    network.add_peer("dave", store=store_with(ticket.grant, dave))
    joined = {name: redeem(ticket, identity_of(name), START_MS) for name in ("bob", "carol")}
    network.add_peer("bob", store=store_with(*joined["bob"]))
    network.add_peer("carol", store=store_with(*joined["carol"], dave))  # she knows dave is a member
    network.connect("bob", "alice")
    network.connect("carol", "dave")
    network.run()
    assert network.peers["alice"].replicator.connections(SPACE) and network.peers["dave"].replicator.connections(SPACE)
    network.connect("dave", "alice")  # the logs meet: each node admitted its own joiner
    network.run()
    winner = min(joined, key=lambda name: joined[name][-1].hash)
    for node in ("alice", "dave"):
        log = network.peers[node].store.capability_log(SPACE)
        assert [name for name in joined if log.admits(key(name), START_MS)] == [winner], node
    sessions = {name: network.peers[name].replicator.connections(SPACE) for name in joined}
    assert len(sessions[winner]) == 1 and not sessions[next(name for name in joined if name != winner)]


# ----- a scoped writer's new file -----


def repo_network(*records: Record, names: tuple[str, ...]) -> tuple[Network, dict[str, list[LocalCommit]]]:
    """Peers on real stores (a Repo each: the index's paths are real), and each one's local
    commits as they are made, for the test to hand its Replicator in the order it chooses."""
    network = Network(space=SPACE)
    commits: dict[str, list[LocalCommit]] = {}
    for name in names:
        repo = Repo.open(None, identity_of(name))
        repo.add_space(GENESIS)
        repo.add_capability_records(SPACE, [record.encode() for record in records])
        made = commits[name] = []

        def keep(event: RepoEvent, made: list[LocalCommit] = made) -> None:
            if isinstance(event, StoreEvent) and event.origin == "local" and event.tip is not None:
                made.append(LocalCommit(event.space, event.doc, event.changes, event.tip))

        repo.subscribe(keep)
        network.add_peer(name, store=repo)  # type: ignore[arg-type]  # a Repo is a ChangeStore
    return network, commits


def hand_over(network: Network, commits: dict[str, list[LocalCommit]], name: str, *, content_first: bool) -> None:
    made, commits[name][:] = list(commits[name]), []
    for commit in sorted(made, key=lambda c: (c.doc == INDEX_DOC_ID) == content_first):
        network.feed(name, commit)
    network.run()


def test_a_scoped_writers_new_file_whose_content_comes_before_its_entry_reaches_every_member() -> None:
    """Bob may write src/*. His new file's content doc reaches Alice before the index entry
    naming it, so her ingest cannot tell its path yet (unauthorised, unknown doc); the entry's
    arrival moves her index, and she asks Bob for the content again at once, not at the next
    anti-entropy round. Carol, behind Alice, gets both."""
    network, commits = repo_network(grant("bob", paths=("src/*",)), grant("carol"), names=("alice", "bob", "carol"))
    network.connect("bob", "alice")
    network.connect("carol", "alice")
    network.run()
    workspaces = {name: Workspace(network.peers[name].store, SPACE) for name in network.peers}  # type: ignore[arg-type]
    workspaces["alice"].mkdir("src", now_ms=START_MS)
    hand_over(network, commits, "alice", content_first=False)
    assert workspaces["bob"].exists("src")
    workspaces["bob"].write("src/new.py", "print('new')\n", now_ms=START_MS)
    hand_over(network, commits, "bob", content_first=True)
    network.advance(4 * network.config.graft_delay_ms)  # Carol's ask for announced heads; far from anti-entropy
    alice = network.peers["alice"].replicator
    assert alice.stats["changes_unauthorised"] >= 1 and alice.stats["unauthorised_asked_again"] >= 1  # it did come first
    for name in ("alice", "carol"):
        assert workspaces[name].read("src/new.py") == "print('new')\n", name
    assert network.converged()


def held(network: Network, name: str) -> dict[bytes, list[bytes]]:
    """The peer's heads of the docs it holds a change of (a doc emptied by a revocation stays
    listed, with no heads)."""
    return {doc: heads for doc, heads in network.heads(name).items() if heads}


def test_a_revocation_that_takes_stored_changes_out_keeps_the_replicators_heads_those_of_the_store() -> None:
    """Carol holds Bob's file, which Alice never saw; Alice revokes Bob (having seen nothing
    of his). The revocation reaches Carol, whose store takes Bob's changes out of their docs:
    her Replicator's heads follow the store's, so she and Alice agree at once and stay agreed."""
    network, commits = repo_network(grant("bob"), grant("carol"), names=("alice", "bob", "carol"))
    network.connect("bob", "carol")
    network.run()
    Workspace(network.peers["bob"].store, SPACE).write("bob.md", "by bob\n", now_ms=START_MS)  # type: ignore[arg-type]
    hand_over(network, commits, "bob", content_first=False)
    carol = Workspace(network.peers["carol"].store, SPACE)  # type: ignore[arg-type]
    assert carol.read("bob.md") == "by bob\n"
    alice_log = network.peers["alice"].store.capability_log(SPACE)
    revocation = Revocation.issue(identity_of("alice"), space=SPACE, subject=key("bob"), issued_ms=START_MS, parents=alice_log.heads)
    network.peers["alice"].store.add_capability_records(SPACE, [revocation.encode()])
    network.connect("carol", "alice")
    network.run()
    assert revocation.hash in network.peers["carol"].store.capability_log(SPACE)
    assert not carol.exists("bob.md")
    heads = {name: held(network, name) for name in ("alice", "carol")}
    assert heads["alice"] == heads["carol"]
    network.advance(3 * network.config.anti_entropy_interval_ms)  # statuses go both ways, and agree
    assert held(network, "carol") == heads["carol"]
    assert all(network.peers[name].replicator.stats["status_mismatches"] == 0 for name in ("alice", "carol"))
