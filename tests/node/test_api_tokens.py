"""Scoped API tokens, in-process: what a connection with a scoped token may do (node/api_scopes.py).

The methods run through ``dispatch`` with a ``Call`` carrying the scope, as a connection that
authenticated with the token runs them; the store is a real SQLite one in a temporary home. The
daemon tests (test_api_private.py) show the same over both sockets, and from the command line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.api_methods import HANDLERS, Call, dispatch
from node.api_scopes import METHOD_ACCESS, OUT_OF_SCOPE, TOKEN_EXPIRED, Access, TokenScope
from node.home import NodeHome, ScopedToken
from node.rpc import RpcError
from node.services import NodeServices
from protocol.identity import Identity
from store.repo import Repo
from test_api_events import Clock

Json = dict[str, Any]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def services(tmp_path: Path, clock: Clock) -> Iterator[NodeServices]:
    """A node without a daemon (as the CLI's, on its store) holding one open space, "main"."""
    home = NodeHome(tmp_path / "home")
    home.ensure()
    identity = Identity(bytes([0xA4]) * 32)
    with Repo.open(home.database, identity) as repo:
        node = NodeServices(home, home.config(), identity, repo, clock=clock)
        dispatch(Call(node), "space.create", {"name": "main", "public": True})
        yield node
        node.close()


def scoped(services: NodeServices, **params: Any) -> Call:
    """A call context as a connection authenticated with a new token of ``params`` has."""
    token = dispatch(Call(services), "token.create", params)["token"]
    row = services.home.scoped_token(token)
    assert row is not None
    return Call(services, scope=TokenScope.of(row))


def refusal(call: Call, method: str, **params: Any) -> RpcError:
    with pytest.raises(RpcError) as caught:
        dispatch(call, method, params)
    return caught.value


def test_every_method_is_classed_and_unclassed_ones_need_the_full_token() -> None:
    assert set(HANDLERS) <= set(METHOD_ACCESS), set(HANDLERS) - set(METHOD_ACCESS)
    assert all(METHOD_ACCESS[name] is Access.FULL for name in HANDLERS if name.startswith(("token.", "mirror.start", "space.invite", "space.revoke")))


def test_a_write_token_writes_inside_its_globs_and_is_refused_outside_naming_the_scope(services: NodeServices) -> None:
    agent = scoped(services, role="write", paths=["src/*"])
    dispatch(Call(services), "fs.mkdir", {"path": "src"})  # the directory itself is outside src/*
    dispatch(agent, "fs.write", {"path": "src/x.py", "text": "print(1)\n"})
    dispatch(agent, "fs.splice", {"path": "src/x.py", "position": 0, "delete": 0, "insert": "# agent\n"})
    assert dispatch(agent, "fs.read", {"path": "src/x.py"})["text"] == "# agent\nprint(1)\n"

    error = refusal(agent, "fs.write", path="docs/a.md", text="no", parents=True)
    assert error.code == OUT_OF_SCOPE and error.name == "OutOfScope"
    assert error.message.startswith("token is scoped to write src/* in space ")
    assert error.message.endswith(": docs/a.md is outside it")
    error = refusal(agent, "fs.write", path="notes.md", text="no")
    assert error.message.endswith(": notes.md is outside it")
    assert refusal(agent, "fs.mv", source="src/x.py", target="x.py").message.endswith(": x.py is outside it")
    assert refusal(agent, "fs.rm", path="src", recursive=True).message.endswith(": src is outside it")
    assert refusal(agent, "history.revert", version=0).message.endswith("history.revert of the whole space touches every path; name one")
    assert not Call(services).workspace({}).exists("notes.md")
    assert [s["path"] for s in dispatch(Call(services), "fs.ls", {"path": ""})["entries"]] == ["src"]


def test_a_read_token_reads_and_writes_nothing(services: NodeServices) -> None:
    dispatch(Call(services), "fs.write", {"path": "a.md", "text": "hello\n"})
    reader = scoped(services, role="read")
    assert dispatch(reader, "fs.read", {"path": "a.md"})["text"] == "hello\n"
    assert dispatch(reader, "history.log", {})["entries"]
    error = refusal(reader, "fs.write", path="a.md", text="changed\n")
    assert error.code == OUT_OF_SCOPE and error.message.endswith("token is scoped to read in space " + reader.space({}).hex()[:8] + ": fs.write writes")
    assert dispatch(Call(services), "fs.read", {"path": "a.md"})["text"] == "hello\n"


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("token.create", {"role": "write"}),
        ("token.list", {}),
        ("space.create", {"name": "more"}),
        ("mirror.checkout", {"folder": "/tmp/x"}),
    ],
)
def test_membership_tokens_and_mirrors_need_the_full_token(services: NodeServices, method: str, params: Json) -> None:
    agent = scoped(services, role="write")
    error = refusal(agent, method, **params)
    assert error.code == OUT_OF_SCOPE and error.message.endswith(f"{method} needs the full token (HOME/api.token)")


def test_a_token_bound_to_a_space_defaults_to_it_and_touches_no_other(services: NodeServices) -> None:
    first = Call(services).space({})
    other = dispatch(Call(services), "space.create", {"name": "other", "public": True})["space_id"]
    agent = scoped(services, role="write", space="other")
    dispatch(agent, "fs.write", {"path": "a.md", "text": "in other\n"})  # no space named: the token's
    assert dispatch(Call(services), "fs.read", {"space": other, "path": "a.md"})["text"] == "in other\n"
    error = refusal(agent, "fs.write", space=first.hex(), path="a.md", text="x")
    assert error.message.endswith(f"space {first.hex()[:8]} is outside it")
    assert refusal(agent, "fs.read", space="main", path="a.md").code == OUT_OF_SCOPE


def test_an_expired_or_revoked_token_is_refused_from_its_next_call(services: NodeServices, clock: Clock) -> None:
    agent = scoped(services, role="write", expires_s=60)
    dispatch(agent, "fs.write", {"path": "a.md", "text": "x"})
    clock.now_ms += 60_000
    error = refusal(agent, "fs.read", path="a.md")
    assert error.code == TOKEN_EXPIRED and "expired" in error.message

    other = scoped(services, role="read")
    assert dispatch(Call(services), "token.revoke", {"id": other.scope.token_id if other.scope else ""}) == {"removed": True}
    assert refusal(other, "fs.read", path="a.md").message == "the token was revoked (token.revoke)"
    listed = dispatch(Call(services), "token.list", {})["tokens"]
    assert [(t["scope"]["role"], t["expired"]) for t in listed] == [("write", True)]


def test_the_table_keeps_digests_only_and_is_born_private(services: NodeServices) -> None:
    token = dispatch(Call(services), "token.create", {"role": "write", "paths": ["src/*"]})["token"]
    table = services.home.tokens_file
    assert token.startswith("dst_") and token not in table.read_text()
    assert table.stat().st_mode & 0o077 == 0
    assert services.home.scoped_token(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert services.home.scoped_token(services.home.token_file.read_text() if services.home.token_file.exists() else "x") is None
    row = services.home.scoped_token(token)
    assert isinstance(row, ScopedToken) and row.paths == ("src/*",)


@pytest.mark.parametrize("glob", ["# a comment", "!", "a\x1bb"])
def test_globs_that_scope_nothing_are_invalid_params(services: NodeServices, glob: str) -> None:
    with pytest.raises(RpcError) as caught:
        dispatch(Call(services), "token.create", {"role": "write", "paths": ["src/*", glob]})
    assert caught.value.code == -32602 and caught.value.message.startswith("token.create: params.paths[1]")


# ----- property: a scoped write changes nothing outside the scope, a refused one nothing at all -----

PATHS = ["src", "src/a.py", "src/sub", "src/sub/b.py", "docs", "docs/a.md", "a.md"]
SCOPES = [["src/*"], ["src/**", "!src/sub/**"], ["*.md"], ["docs/", "src/"], ["src/sub/*"]]
operations = st.one_of(
    st.tuples(st.just("fs.write"), st.sampled_from(PATHS), st.text("xy", max_size=3)),
    st.tuples(st.just("fs.mkdir"), st.sampled_from(PATHS), st.none()),
    st.tuples(st.just("fs.rm"), st.sampled_from(PATHS), st.none()),
    st.tuples(st.just("fs.mv"), st.sampled_from(PATHS), st.sampled_from(PATHS)),
)


def _params(op: tuple[str, str, str | None]) -> Json:
    method, path, extra = op
    if method == "fs.write":
        return {"path": path, "text": extra, "parents": True}
    if method == "fs.mkdir":
        return {"path": path, "parents": True}
    if method == "fs.rm":
        return {"path": path, "recursive": True}
    return {"source": path, "target": extra}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(globs=st.sampled_from(SCOPES), setup=st.lists(operations, max_size=6), ops=st.lists(operations, min_size=1, max_size=8))
def test_a_scoped_token_changes_only_paths_inside_its_scope(services: NodeServices, globs: list[str], setup: list[Any], ops: list[Any]) -> None:
    full = Call(services)
    space = dispatch(full, "space.create", {"name": f"p{len(services.repo.spaces())}", "public": True})["space_id"]
    full = Call(services)
    for op in setup:  # the full token makes a tree to start from
        try:
            dispatch(full, op[0], {"space": space, **_params(op)})
        except RpcError:
            pass
    agent = scoped(services, role="write", paths=globs, space=space)
    for op in ops:
        before = _state_of(services, space)
        try:
            dispatch(agent, op[0], _params(op))
        except RpcError as error:
            assert _state_of(services, space) == before, (op, error.message)
            continue
        after = _state_of(services, space)
        changed = {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)}
        assert all(agent.scope is not None and agent.scope.covers(path) for path in changed), (op, changed)


def _state_of(services: NodeServices, space: str) -> dict[str, object]:
    ws = Call(services).workspace({"space": space})
    return {node.path: (node.kind, ws.read(node.path) if node.kind == "file" else None) for node in ws.tree().walk("")}
