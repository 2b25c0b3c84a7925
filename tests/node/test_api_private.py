"""Private spaces and scoped tokens over REAL daemons: ``distspace up`` processes, their API
over the Unix socket and the WebSocket, and the ``distspace`` command.

- a scoped token (``distspace token --role write --path 'src/*'``) writes under src/ and is
  refused on docs/ with the scope in the error, over both sockets and from the command line;
- invite -> join by ticket -> both edit -> converge; a used-up ticket (uses=1, a second joiner)
  and an expired one are refused; a read-only member cannot write.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from api_helpers import DISTSPACE, STEP_TIMEOUT_S, connect, distspace, transport
from e2e_helpers import daemon
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
