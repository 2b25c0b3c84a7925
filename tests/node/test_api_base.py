"""Base-relative splices through the local API, on two real daemons syncing over loopback.

Bob's editor reads a file (text and heads), Alice's edit of it reaches Bob's daemon, and only
then does Bob's editor send the splice it computed on what it read, with ``base``: it must land
where Bob meant. Unknown heads are refused with an error naming ``base``, and change nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from api_helpers import ApiConnection
from e2e_helpers import Client, addr, client, create_space, daemon, join, wait_converged
from node.rpc import INVALID_PARAMS, RpcError

PATH = "greet.txt"
UNKNOWN_VERSION = 1005  # node/api_methods.py STORE_ERROR_CODES[UnknownVersion], UnknownBase's code


async def read(api: ApiConnection) -> tuple[str, list[str]]:
    result = await api.call("fs.read", path=PATH)
    return result["text"], result["heads"]


async def test_a_splice_at_a_stale_base_lands_where_its_author_meant(tmp_path: Path) -> None:
    homes = {name: tmp_path / name for name in ("alice", "bob")}
    team = create_space(homes["alice"])
    join(homes["bob"], team)
    with daemon(homes["alice"]) as alice_d, daemon(homes["bob"], "--peer", addr(alice_d)) as bob_d:
        async with client(alice_d) as alice, client(bob_d) as bob:
            await alice.write(PATH, "hello world\n")
            await wait_converged([alice, bob], ["hello world\n"], PATH)
            await bob.api.call("subscribe.file", path=PATH)  # so bob.until wakes on content changes
            text, base = await read(bob.api)
            assert base == (await bob.api.call("fs.stat", path=PATH))["heads"]

            await alice.api.call("fs.splice", path=PATH, position=0, insert="oh, ")
            await bob.until(lambda: _starts_with(bob, "oh, "))  # arrived after bob read
            result = await bob.api.call("fs.splice", path=PATH, position=text.index(" world"), insert=",", base=base)

            now, heads = await read(bob.api)
            assert now == "oh, hello, world\n" and result["heads"] == heads != base
            assert await wait_converged([alice, bob], ["oh, hello, world\n"], PATH) == "oh, hello, world\n"


async def test_unknown_or_malformed_base_heads_are_refused_naming_base(tmp_path: Path) -> None:
    home = tmp_path / "alice"
    create_space(home)
    with daemon(home) as alice_d:
        async with client(alice_d) as alice:
            await alice.write(PATH, "hello world\n")
            before = await read(alice.api)
            with pytest.raises(RpcError) as unknown:
                await alice.api.call("fs.splice", path=PATH, position=0, insert="x", base=["ab" * 32])
            assert (unknown.value.code, unknown.value.name) == (UNKNOWN_VERSION, "UnknownBase")
            assert unknown.value.message.startswith("base:")
            with pytest.raises(RpcError) as malformed:
                await alice.api.call("fs.splice", path=PATH, position=0, insert="x", base=["not hex"])
            assert malformed.value.code == INVALID_PARAMS and "params.base[0]" in malformed.value.message
            with pytest.raises(RpcError) as outside:
                await alice.api.call("fs.splice", path=PATH, position=13, insert="x", base=before[1])
            assert "cannot delete 0 characters at 13" in outside.value.message
            assert await read(alice.api) == before  # nothing applied


async def _starts_with(each: Client, prefix: str) -> bool:
    text = await each.read(PATH)
    return text is not None and text.startswith(prefix)
