"""``distspace doctor [--repair] [--json]`` (and ``verify --repair``) on a real node home whose store
holds a forked author chain, written as the store took it before ingest checked chains."""

from __future__ import annotations

import json
from pathlib import Path

import native
from cli_helpers import Cli, node
from node.home import NodeHome
from protocol.identity import Identity
from protocol.store_api import Unauthorised
from protocol.tips import SignedTip
from store.repo import Repo
from tests.node.api_helpers import running_daemon
from tests.store.store_helpers import FILE_DOC, append, forked_pair, store_unchecked

ALICE = Identity(bytes([0xA1]) * 32)


def poison(home: Path) -> tuple[bytes, bytes]:
    """Alice's doc in the home's first space, with a fork of her chain: (kept, forked) hashes."""
    node_home = NodeHome(home)
    with Repo.open(node_home.database, node_home.identity()) as store, Repo.open(None, ALICE) as alice:
        genesis = store.spaces()[0]
        alice.add_space(genesis)
        space = genesis.space_id
        append(alice, space, FILE_DOC, "base\n")
        left, right = forked_pair(alice, space, FILE_DOC)
        for raw in alice.changes_since(space, FILE_DOC, []):
            change = native.decode_change(raw)
            store_unchecked(store, space, FILE_DOC, change, SignedTip.sign(ALICE, space, FILE_DOC, change.hash))
        for change in (left, right):
            store_unchecked(store, space, FILE_DOC, change, SignedTip.sign(ALICE, space, FILE_DOC, change.hash))
    return left.hash, right.hash


def report(cli: Cli, *args: str, code: int) -> dict:
    result = cli.run(*args, "--json")
    assert result.returncode == code, result.stderr.decode()
    assert b"Traceback" not in result.stderr
    return json.loads(result.stdout)


def test_doctor_finds_the_fork_and_repair_quarantines_it(tmp_path: Path) -> None:
    with node(tmp_path / "home", "direct") as cli:
        kept, forked = poison(cli.home)

        found = report(cli, "doctor", code=1)
        assert not found["ok"]
        assert {"author-chain-forked", "doc-unloadable"} <= {problem["kind"] for problem in found["problems"]}
        assert "doctor --repair" in cli.fails("doctor")

        repaired = report(cli, "doctor", "--repair", code=0)
        assert repaired["ok"] and repaired["quarantined"] == 1
        assert [doc["quarantined"] for doc in repaired["repaired"]] == [[forked.hex()]]

        assert report(cli, "verify", "--repair", code=0)["repaired"] == []  # the same command, idempotent
        assert report(cli, "verify", code=0)["ok"]
        assert "nothing to repair" in cli.ok("doctor", "--repair")
    with Repo.open(NodeHome(cli.home).database, NodeHome(cli.home).identity()) as store:
        space = store.spaces()[0].space_id
        assert store.document(space, FILE_DOC).get(native.ROOT, "fork") == "left"
        assert store.has_change(space, FILE_DOC, kept) and not store.has_change(space, FILE_DOC, forked)


def test_repair_is_refused_while_a_daemon_runs_and_doctor_reads_through_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with node(home, "direct") as cli:
        pass
    with running_daemon(home) as daemon:
        assert "a daemon runs on" in cli.fails("doctor", "--repair")
        assert report(cli, "doctor", code=0)["ok"]
        assert daemon.process.poll() is None


def test_doctor_passes_a_store_holding_refused_changes_and_log_refused_lists_them(tmp_path: Path) -> None:
    """Changes refused as unauthorised are kept and explained (store/refused.py), not damage:
    doctor lists them apart and succeeds; ``log --refused`` shows who, what and why."""
    with node(tmp_path / "home", "direct") as cli:
        node_home = NodeHome(cli.home)
        with Repo.open(node_home.database, node_home.identity()) as store, Repo.open(None, ALICE) as alice:
            genesis = store.spaces()[0]
            alice.add_space(genesis)
            append(alice, genesis.space_id, FILE_DOC, "not hers to write\n")
            [change] = [native.decode_change(raw) for raw in alice.changes_since(genesis.space_id, FILE_DOC, [])]
            reason = "not a member of this space"
            store.note_refused(genesis.space_id, FILE_DOC, [Unauthorised(change.hash, change.actor, reason, seq=1, raw=change.raw)])

        found = report(cli, "doctor", code=0)
        assert found["ok"] and found["problems"] == []
        assert [(kept["kind"], kept["subject"]) for kept in found["kept"]] == [("refused-change", change.hash.hex())]
        assert "kept, never materialised" in cli.ok("doctor")
        [listed] = report(cli, "log", "--refused", code=0)["refused"]
        assert (listed["change"], listed["reason"], listed["paths"]) == (change.hash.hex(), reason, None)
        assert reason in cli.ok("log", "--refused")
