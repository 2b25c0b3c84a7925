"""Who is who: each member's signed peer record reaches the other members, and ``members``,
``log`` and ``blame`` show the kind and name from it (node/peer_records.py).

Two REAL daemons (``distspace up``): Alice, a human, creates a private space; Bob, an agent
by his config.toml, joins it by a ticket and writes. Then the store-side directory on its own:
persisted, reissued when the config changes, a record waiting for its key's grant.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import Any

import trio

from api_helpers import distspace
from e2e_helpers import CONVERGE_TIMEOUT_S, client, daemon
from node.peer_records import PeerDirectory
from protocol.capabilities import Grant, Role
from protocol.identity import Identity, PeerKind
from protocol.peer_record import PeerRecord
from store.repo import Repo

# Records travel on a stream of their own and raise no API notification: Alice's answers are
# read again at this pace until they show Bob's record, within the step's deadline.
POLL_S = 0.1


def configure(home: Path, name: str, kind: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(f'name = "{name}"\nkind = "{kind}"\n')


def cli_json(home: Path, *args: str) -> dict[str, Any]:
    return dict(json.loads(distspace(home, *args, "--json").stdout))


async def until_shown(home: Path, command: tuple[str, ...], shown: Any) -> dict[str, Any]:
    """``distspace COMMAND --json`` on ``home`` until ``shown(result)``, polled (see POLL_S)."""
    with trio.fail_after(CONVERGE_TIMEOUT_S):
        for _ in itertools.count():
            result = cli_json(home, *command)
            if shown(result):
                return result
            await trio.sleep(POLL_S)  # noqa: sleep — a bounded poll of another process's state
    raise AssertionError("unreachable")


async def test_an_agents_record_shows_in_the_inviters_members_log_and_blame(tmp_path: Path) -> None:
    alice_home, bob_home = tmp_path / "alice", tmp_path / "bob"
    configure(alice_home, "Alice", "human")
    configure(bob_home, "bob-bot", "agent")
    distspace(alice_home, "init", "team")
    bob_id = cli_json(bob_home, "id")["peer_id"]
    with daemon(alice_home) as alice_daemon, daemon(bob_home) as bob_daemon:
        ticket = cli_json(alice_home, "invite", "--role", "write")["ticket"]
        distspace(bob_home, "join", ticket)
        async with client(alice_daemon) as alice, client(bob_daemon) as bob:
            await bob.until(lambda: bob_holds_a_session(bob))
            await bob.write("bob.md", "written by an agent\n")
            await alice.until(lambda: alice_has(alice, "bob.md"))

        def bob_shown(result: dict[str, Any]) -> bool:
            return any(m["peer_id"] == bob_id and m["kind"] == "agent" for m in result["members"])

        listed = await until_shown(alice_home, ("members",), bob_shown)
        row = next(m for m in listed["members"] if m["peer_id"] == bob_id)
        assert (row["name"], row["kind"], row["role"]) == ("bob-bot", "agent", "write")
        assert [(m["name"], m["kind"]) for m in listed["members"] if m["root"]] == [("Alice", "human")]

        entries = cli_json(alice_home, "log")["entries"]
        by_bob = [e for e in entries if e["author"] == bob_id]
        assert by_bob and all((e["author_name"], e["author_kind"]) == ("bob-bot", "agent") for e in by_bob)
        assert "bob-bot [agent]" in distspace(alice_home, "log").stdout.decode()
        lines = cli_json(alice_home, "blame", "bob.md")["lines"]
        assert [(line["author"], line["author_kind"]) for line in lines] == [(bob_id, "agent")]
        table = distspace(alice_home, "members").stdout.decode()
        assert "bob-bot" in table and "agent" in table

        # And the other way: Bob's node shows Alice's record as she signed it.
        await until_shown(bob_home, ("members",), lambda r: any(m["root"] and m["kind"] == "human" for m in r["members"]))


async def bob_holds_a_session(bob: Any) -> bool:
    return any(peer["spaces"] for peer in (await bob.api.call("node.peers"))["peers"])


async def alice_has(alice: Any, path: str) -> bool:
    return await alice.read(path) is not None


# ----- the directory, without a network -----


def identity_of(name: str) -> Identity:
    return Identity(hashlib.sha256(b"peer directory test " + name.encode()).digest())


def test_the_directory_persists_reissues_on_a_new_kind_and_holds_a_record_until_its_grant(tmp_path: Path) -> None:
    alice, bob = identity_of("alice"), identity_of("bob")
    path = tmp_path / "peer_records.json"
    with Repo.open(None, alice) as repo:
        space = repo.create_space("team", 1_000, private=True).space_id
        directory = PeerDirectory(path)
        first = directory.publish_own(alice, space, "Alice", PeerKind.HUMAN, now_ms=5_000)
        assert first is not None and directory.publish_own(alice, space, "Alice", PeerKind.HUMAN, now_ms=6_000) is None
        # The clock went back; the new kind still wins.
        second = directory.publish_own(alice, space, "Alice", PeerKind.AGENT, now_ms=10)
        assert second is not None and second.issued_ms == first.issued_ms + 1
        assert PeerDirectory(path).get(space, alice.public_key) == second  # as saved

        from_bob = PeerRecord.issue(bob, space=space, name="bob", kind=PeerKind.RELAY, issued_ms=1)
        assert directory.add(space, [from_bob], repo) == []  # not a member yet: it waits
        assert directory.get(space, bob.public_key) is None
        grant = Grant.issue(alice, space=space, subject=bob.public_key, role=Role.RELAY, issued_ms=2)
        repo.add_capability_records(space, [grant.encode()])
        assert directory.retry(space, repo) == [from_bob]
        assert PeerDirectory(path).get(space, bob.public_key) == from_bob


def test_a_damaged_directory_file_is_left_out_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "peer_records.json"
    path.write_text('{"records": ["00ff", "not hex"]}')
    assert PeerDirectory(path).records(bytes(32)) == []
    path.write_text('{"records": ["00ff"]}')
    assert PeerDirectory(path).records(bytes(32)) == []
