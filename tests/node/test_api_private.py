"""Private spaces and scoped tokens over REAL daemons: ``distspace up`` processes, their API
over the Unix socket and the WebSocket, and the ``distspace`` command.

- a scoped token (``distspace token --role write --path 'src/*'``) writes under src/ and is
  refused on docs/ with the scope in the error, over both sockets and from the command line;
- invite -> join by ticket -> both edit -> converge; a used-up ticket (uses=1, two joiners)
  refuses the second joiner and keeps the first; an expired one is refused by the joiner's clock; a read-only member
  cannot write; a revoked one is cut off and cannot write.

What the inviter's node refuses of an expired ticket is not shown here: an honest joiner checks
the expiry first with the same clock, so only a doctored joiner reaches the inviter with one
(tests/protocol/test_admission.py covers the inviter's side with its own clock).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from api_helpers import DISTSPACE, STEP_TIMEOUT_S, Daemon, connect, distspace, transport
from e2e_helpers import CONVERGE_TIMEOUT_S, Client, client, daemon, members, metric, wait_converged
from node.api_methods import NOT_AUTHORISED
from node.api_scopes import OUT_OF_SCOPE
from node.rpc import RpcError

__all__ = ["transport"]  # the fixture, imported for its parametrization


def run(home: Path, *args: str, token: str | None = None, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """The installed command, with DISTSPACE_TOKEN set when ``token`` is given; not checked."""
    env = {**os.environ, **({"DISTSPACE_TOKEN": token} if token is not None else {})}
    return subprocess.run([DISTSPACE, "--home", str(home), *args], input=input, capture_output=True, timeout=STEP_TIMEOUT_S, env=env, text=True)


# ----- scoped tokens -----


async def test_a_write_token_for_src_edits_src_and_is_refused_on_docs_naming_the_scope(tmp_path: Path, transport: str) -> None:
    home = tmp_path / "home"
    distspace(home, "init", "main")
    with daemon(home) as running:
        made = json.loads(distspace(home, "token", "--role", "write", "--path", "src/*", "--json").stdout)
        assert made["scope"]["role"] == "write" and made["scope"]["paths"] == ["src/*"]
        async with connect(running, "unix") as full:
            await full.call("fs.mkdir", path="src")
            await full.call("fs.mkdir", path="docs")
        async with connect(running, transport, token=made["token"]) as agent:
            written = await agent.call("fs.write", path="src/x.py", text="print('agent')\n")
            assert written["version"] > 0
            with pytest.raises(RpcError) as caught:
                await agent.call("fs.write", path="docs/a.md", text="not mine\n")
            assert caught.value.code == OUT_OF_SCOPE and caught.value.name == "OutOfScope"
            assert caught.value.message.startswith("token is scoped to write src/*")
            assert caught.value.message.endswith("docs/a.md is outside it")
            with pytest.raises(RpcError) as caught:
                await agent.call("token.create", role="write")
            assert caught.value.message.endswith("token.create needs the full token (HOME/api.token)")
            assert (await agent.call("fs.read", path="src/x.py"))["text"] == "print('agent')\n"
        async with connect(running, "unix") as full:
            assert [e["path"] for e in (await full.call("fs.ls", path="docs"))["entries"]] == []

        # The command line, as an agent given only the token runs it.
        assert run(home, "write", "src/y.py", token=made["token"], input="y = 1\n").returncode == 0
        refused = run(home, "write", "docs/b.md", token=made["token"], input="no\n")
        assert refused.returncode == 1
        assert "token is scoped to write src/*" in refused.stderr and "docs/b.md is outside it" in refused.stderr
        assert run(home, "cat", "src/y.py", token=made["token"]).stdout == "y = 1\n"

        token_id = made["scope"]["id"]
        assert distspace(home, "token", "--revoke", token_id).returncode == 0
        wrong = run(home, "cat", "src/y.py", token=made["token"])
        assert wrong.returncode == 1 and "wrong token" in wrong.stderr
    refused_offline = run(home, "cat", "src/y.py", token=made["token"])  # no daemon: never the store itself
    assert refused_offline.returncode == 1 and "DISTSPACE_TOKEN is set" in refused_offline.stderr


# ----- private spaces: invite, join by ticket, roles, revocation -----

# A refused joiner is seen by the inviter's counters only (it learns nothing, by design): they are
# read from its metrics endpoint at this pace until they move, within the step's deadline.
METRICS_POLL_S = 0.1
EXPIRY_MARGIN_S = 0.05  # past a 1 s ticket's expiry on the wall clock, whatever the float rounding


def fresh(*homes: Path) -> None:
    """Homes with a key (``distspace id`` makes one), for a daemon to start on."""
    for home in homes:
        distspace(home, "id")


def invite(home: Path, *args: str) -> dict[str, Any]:
    return json.loads(distspace(home, "invite", "--json", *args).stdout)


async def until_either(running: Daemon, *thresholds: tuple[str, float]) -> None:
    """Until one of the daemon's counters reaches its threshold, polled within CONVERGE_TIMEOUT_S."""
    with trio.fail_after(CONVERGE_TIMEOUT_S):
        for _ in itertools.count():
            if any(metric(running, name) >= at_least for name, at_least in thresholds):
                return
            await trio.sleep(METRICS_POLL_S)  # noqa: sleep — a bounded poll of another process's counters


def peer_id(home: Path) -> str:
    return str(json.loads(distspace(home, "id", "--json").stdout)["peer_id"])


async def test_invite_join_by_ticket_both_edit_and_converge(tmp_path: Path) -> None:
    alice_home, bob_home = tmp_path / "alice", tmp_path / "bob"
    created = json.loads(distspace(alice_home, "init", "team", "--json").stdout)
    assert created["private"]
    fresh(bob_home)
    with daemon(alice_home) as alice_daemon, daemon(bob_home) as bob_daemon:
        ticket = invite(alice_home, "--role", "write", "--uses", "1")
        assert ticket["ticket"].startswith("dist1") and ticket["addrs"] and ticket["uses"] == 1
        joined = json.loads(distspace(bob_home, "join", ticket["ticket"], "--json").stdout)
        assert joined["status"] == "joined" and joined["space_id"] == created["space_id"]
        assert joined["member"] == {"private": True, "role": "write", "paths": [], "expires_ms": None}
        async with client(alice_daemon) as alice, client(bob_daemon) as bob:
            await alice.write("alice.md", "from alice\n")
            await bob.until(lambda: has(bob, "alice.md"))
            await bob.write("bob.md", "from bob\n")
            await alice.splice("alice.md", 0, "bob's turn? ")
            await bob.splice("alice.md", 0, "[bob] ")
            await wait_converged([alice, bob], ["bob's turn? ", "[bob] ", "from alice"], "alice.md")
            await alice.until(lambda: has(alice, "bob.md"))
            assert await alice.files() == await bob.files()
            assert (await alice.verify())["ok"] and (await bob.verify())["ok"]
        listed = members(alice_home)
        assert listed[peer_id(alice_home)]["root"] and listed[peer_id(alice_home)]["role"] == "admin"
        assert listed[peer_id(bob_home)]["role"] == "write" and not listed[peer_id(bob_home)]["revoked"]
        assert members(bob_home).keys() == listed.keys()  # the log reached bob too


async def has(each: Client, path: str) -> bool:
    return await each.read(path) is not None


async def test_a_used_up_ticket_refuses_the_second_joiner_and_keeps_the_first(tmp_path: Path) -> None:
    """uses=1, redeemed by two nodes at the same inviter: the second is refused and the first
    stays admitted, never cut off.

    Alone, the capability rule (protocol/capabilities.py rule 5) counts the first valid grant
    in the log's fixed order (height, then hash), so a second redemption whose grant sorts
    first would take the use from bob. The inviter takes a proof only if it displaces no one
    (protocol/replicator.py), so carol gets the Bye of any refusal whichever way the two
    grants sort (the invitation key is fresh each run), and nothing of the space after it.
    """
    alice_home, bob_home, carol_home = tmp_path / "alice", tmp_path / "bob", tmp_path / "carol"
    distspace(alice_home, "init", "team")
    fresh(bob_home, carol_home)
    with daemon(alice_home) as alice_daemon, daemon(bob_home) as bob_daemon, daemon(carol_home) as carol_daemon:
        ticket = invite(alice_home, "--uses", "1")["ticket"]
        async with client(alice_daemon) as alice:
            await alice.write("plan.md", "members only\n")
            distspace(bob_home, "join", ticket)
            async with client(bob_daemon) as bob:
                await bob.until(lambda: has(bob, "plan.md"))  # bob is in: his redemption took the use
            distspace(carol_home, "join", ticket)  # carol's own clock and log see nothing wrong
        async with client(alice_daemon) as alice, client(bob_daemon) as bob, client(carol_daemon) as carol:
            await until_either(alice_daemon, ("replicator_refused_not_admitted_total", 1))
            assert metric(alice_daemon, "replicator_proofs_taken_total") == 1
            assert metric(alice_daemon, "replicator_closed_not_admitted_total") == 0  # bob's session stayed
            assert [peer for peer in members(alice_home) if peer in (peer_id(bob_home), peer_id(carol_home))] == [peer_id(bob_home)]
            await alice.write("later.md", "after the ticket was spent\n")
            await bob.until(lambda: has(bob, "later.md"))
            assert metric(alice_daemon, "replicator_closed_not_admitted_total") == 0
            assert await carol.read("plan.md") is None and await carol.read("later.md") is None
            assert not any(peer["spaces"] for peer in (await carol.api.call("node.peers"))["peers"])


async def test_an_expired_ticket_is_refused_by_the_joiners_clock_with_a_clear_error(tmp_path: Path) -> None:
    alice_home, bob_home = tmp_path / "alice", tmp_path / "bob"
    distspace(alice_home, "init", "team")
    made = invite(alice_home, "--expires", "1s")
    assert made["expires_ms"] is not None
    # The wall clock must pass the ticket's expiry: that is what is tested, not a wait for an event.
    await trio.sleep(max(0.0, made["expires_ms"] / 1000 - time.time()) + EXPIRY_MARGIN_S)  # noqa: sleep — see above
    refused = run(bob_home, "join", made["ticket"])
    assert refused.returncode == 1
    assert refused.stderr.strip() == "distspace: ticket: this invitation has expired; ask for a new one"
    assert json.loads(distspace(bob_home, "spaces", "--json").stdout)["spaces"] == []  # nothing stored
    assert peer_id(bob_home) not in members(alice_home)


async def test_a_read_member_reads_and_cannot_write(tmp_path: Path) -> None:
    alice_home, bob_home = tmp_path / "alice", tmp_path / "bob"
    distspace(alice_home, "init", "team")
    fresh(bob_home)
    with daemon(alice_home) as alice_daemon, daemon(bob_home) as bob_daemon:
        ticket = invite(alice_home, "--role", "read")["ticket"]
        assert json.loads(distspace(bob_home, "join", ticket, "--json").stdout)["member"]["role"] == "read"
        async with client(alice_daemon) as alice, client(bob_daemon) as bob:
            await alice.write("notes.md", "read me\n")
            await bob.until(lambda: has(bob, "notes.md"))
            with pytest.raises(RpcError) as caught:
                await bob.write("notes.md", "mine now\n")
            assert caught.value.code == NOT_AUTHORISED and caught.value.name == "NotAuthorised"
            assert "the author holds read, not write" in caught.value.message
            cli = run(bob_home, "write", "other.md", input="x\n")
            assert cli.returncode == 1 and "holds read, not write" in cli.stderr
            assert await bob.read("notes.md") == "read me\n" and await alice.read("notes.md") == "read me\n"
            with pytest.raises(RpcError) as caught:
                await bob.api.call("space.invite", role="read")
            assert caught.value.code == NOT_AUTHORISED


async def test_a_revoked_member_is_cut_off_and_cannot_write(tmp_path: Path) -> None:
    alice_home, bob_home = tmp_path / "alice", tmp_path / "bob"
    distspace(alice_home, "init", "team")
    fresh(bob_home)
    with daemon(alice_home) as alice_daemon, daemon(bob_home) as bob_daemon:
        distspace(bob_home, "join", invite(alice_home)["ticket"])
        async with client(alice_daemon) as alice, client(bob_daemon) as bob:
            await bob.write("bob.md", "before\n")
            await alice.until(lambda: has(alice, "bob.md"))
            bob_id = peer_id(bob_home)
            revoked = json.loads(distspace(alice_home, "revoke", bob_id, "--json").stdout)
            assert revoked["peer_id"] == bob_id and revoked["docs_seen"] >= 1

            async def told() -> bool:
                return any(m["revoked"] for m in members(bob_home).values())

            await bob.until(told)  # the revocation reached bob before alice closed its session
            with pytest.raises(RpcError) as caught:
                await bob.write("bob.md", "after\n")
            assert caught.value.code == NOT_AUTHORISED and "revoked" in caught.value.message
            assert await alice.read("bob.md") == "before\n"
            assert members(alice_home)[bob_id]["revoked"]
        refused = run(alice_home, "revoke", peer_id(alice_home))
        assert refused.returncode == 1 and "cannot be revoked" in refused.stderr
