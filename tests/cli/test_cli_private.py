"""The membership and token commands as a user types them, with and without a daemon: create
(private by default, --public), invite, join TICKET, members, revoke, token. What two daemons do
with a ticket is tests/node/test_api_private.py's; here, what each command prints and refuses.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_helpers import MODES, Cli, node


@pytest.fixture(scope="module", params=MODES)
def cli(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with node(tmp_path_factory.mktemp(request.param) / "home", request.param) as running:
        yield running


def test_a_space_is_private_unless_made_public_and_init_says_how_to_let_others_in(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home")
    result = cli.run("create", "secret")
    assert result.returncode == 0
    assert "private space 'secret'" in result.stderr.decode() and "distspace invite" in result.stderr.decode()
    opened = cli.run("init", "open", "--public", "--json")
    made = json.loads(opened.stdout)
    assert made["private"] is False and made["genesis"]
    listed = json.loads(cli.ok("members", "--space", "open", "--json"))
    assert listed == {"space": made["space_id"], "name": "open", "private": False, "members": []}
    assert "is open" in cli.ok("members", "--space", "open")
    assert "is an open space" in cli.fails("invite", "--space", "open")


def test_invite_prints_a_ticket_and_members_lists_the_root_and_the_invitation(cli: Cli) -> None:
    made = json.loads(cli.ok("invite", "--role", "read", "--path", "docs/*", "--expires", "7d", "--uses", "2", "--json"))
    assert made["ticket"].startswith("dist1") and made["role"] == "read" and made["paths"] == ["docs/*"] and made["uses"] == 2
    assert (made["addrs"] != []) is (cli.daemon is not None)
    human = cli.run("invite")
    assert human.stdout.decode().startswith("dist1") and len(human.stdout.decode().split()) == 1  # stdout: the ticket alone
    assert "usable once" in human.stderr.decode() and "distspace join TICKET" in human.stderr.decode()
    if cli.daemon is None:
        assert "holds no address" in human.stderr.decode()
    listed = json.loads(cli.ok("members", "--json"))
    me = json.loads(cli.ok("id", "--json"))["peer_id"]
    root = [m for m in listed["members"] if m["root"]]
    assert [(m["peer_id"], m["role"]) for m in root] == [(me, "admin")]
    assert made["invitation"] in {m["key"] for m in listed["members"] if m["invitation"]}
    table = cli.ok("members")
    assert "root" in table and "invitation" in table and "docs/*" in table

    # Withdrawing a ticket: revoke its invitation key.
    revoked = json.loads(cli.ok("revoke", made["invitation"], "--json"))
    assert revoked["key"] == made["invitation"] and revoked["docs_seen"] == 0
    assert "cannot be revoked" in cli.fails("revoke", me)
    assert "holds no grant" in cli.fails("revoke", "ab" * 32)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["join", "dist1notaticket"], "ticket: the ticket is damaged"),
        (["join", "dist1" + "a" * 20_000], "space.join: params.ticket must have at most 16384 characters"),
    ],
)
def test_a_bad_ticket_is_one_clear_line(cli: Cli, args: list[str], says: str) -> None:
    stderr = cli.fails(*args)
    assert stderr.startswith(f"distspace: {says}") and stderr.count("\n") == 1


@pytest.mark.parametrize(
    "args",
    [
        ["join", "dist1abc", "--genesis", "AAAA"],
        ["invite", "--expires", "soon"],
        ["invite", "--uses", "0"],
        ["invite", "--role", "owner"],
        ["token", "--role", "admin"],
        ["token", "--expires", "0d"],
    ],
)
def test_usage_errors_exit_2(cli: Cli, args: list[str]) -> None:
    assert "usage: distspace" in cli.fails(*args, code=2)


def test_token_prints_the_token_alone_and_lists_and_revokes_by_id(cli: Cli) -> None:
    made = cli.run("token", "--role", "write", "--path", "src/*", "--expires", "8h")
    token = made.stdout.decode().strip()
    assert made.returncode == 0 and token.startswith("dst_") and "\n" not in token
    assert "scoped to write src/* in space" in made.stderr.decode()
    listed = json.loads(cli.ok("token", "--list", "--json"))["tokens"]
    mine = [t for t in listed if t["scope"]["paths"] == ["src/*"] and t["scope"]["expires_ms"] is not None]
    assert mine and not mine[-1]["expired"]
    assert mine[-1]["scope"]["id"] in cli.ok("token", "--list")
    assert "revoked" in cli.ok("token", "--revoke", mine[-1]["scope"]["id"])
    assert "no scoped token" in cli.fails("token", "--revoke", mine[-1]["scope"]["id"])
    assert "params.paths[0]" in cli.fails("token", "--path", "# not a glob")
