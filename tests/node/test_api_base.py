"""Base-relative writes through the local API, on two real daemons syncing over loopback.

Bob's editor reads a file (text and heads), Alice's edit of it reaches Bob's daemon, and only
then does Bob's editor send what it computed on what it read, with ``base``: a splice, a list of
edits (``fs.edit``) or a whole-file save (``fs.write``) must land where Bob meant. Unknown heads
and bad edits are refused as invalid params naming the param, and change nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from api_helpers import ApiConnection
from e2e_helpers import Client, addr, client, create_space, daemon, join, wait_converged
from node.rpc import INVALID_PARAMS, RpcError

PATH = "greet.txt"
NOT_TEXT = 1011  # node/api_methods.py STORE_ERROR_CODES[NotText]


async def read(api: ApiConnection) -> tuple[str, list[str]]:
    result = await api.call("fs.read", path=PATH)
    return result["text"], result["heads"]


@asynccontextmanager
async def alice_and_bob(tmp_path: Path) -> AsyncIterator[tuple[Client, Client]]:
    """Two daemons syncing, both holding PATH ("hello world\n"); Bob subscribed to it, so his
    ``until`` wakes on its content changes."""
    homes = {name: tmp_path / name for name in ("alice", "bob")}
    team = create_space(homes["alice"])
    join(homes["bob"], team)
    with daemon(homes["alice"]) as alice_d, daemon(homes["bob"], "--peer", addr(alice_d)) as bob_d:
        async with client(alice_d) as alice, client(bob_d) as bob:
            await alice.write(PATH, "hello world\n")
            await wait_converged([alice, bob], ["hello world\n"], PATH)
            await bob.api.call("subscribe.file", path=PATH)
            yield alice, bob


async def test_a_splice_at_a_stale_base_lands_where_its_author_meant(tmp_path: Path) -> None:
    async with alice_and_bob(tmp_path) as (alice, bob):
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
            assert (unknown.value.code, unknown.value.name) == (INVALID_PARAMS, "UnknownBase")
            assert unknown.value.message.startswith("base:")
            with pytest.raises(RpcError) as malformed:
                await alice.api.call("fs.splice", path=PATH, position=0, insert="x", base=["not hex"])
            assert malformed.value.code == INVALID_PARAMS and "params.base[0]" in malformed.value.message
            with pytest.raises(RpcError) as outside:
                await alice.api.call("fs.splice", path=PATH, position=13, insert="x", base=before[1])
            assert "cannot delete 0 characters at 13" in outside.value.message
            assert await read(alice.api) == before  # nothing applied


async def test_edits_and_a_whole_file_save_at_a_stale_base_keep_what_arrived_since(tmp_path: Path) -> None:
    async with alice_and_bob(tmp_path) as (alice, bob):
        text, base = await read(bob.api)

        await alice.api.call("fs.edit", path=PATH, edits=[{"position": 0, "insert": "oh, "}])
        await bob.until(lambda: _starts_with(bob, "oh, "))
        edits = [{"position": len(text) - 1, "insert": "!"}, {"position": text.index(" world"), "insert": ","}]
        result = await bob.api.call("fs.edit", path=PATH, base=base, edits=edits, message="punctuate")
        now, heads = await read(bob.api)
        assert now == "oh, hello, world!\n" and result["heads"] == heads and result["change"] in heads

        await wait_converged([alice, bob], [now], PATH)
        text, base = now, heads  # bob's editor holds this; alice appends a line meanwhile
        await alice.api.call("fs.splice", path=PATH, position=len(text), insert="by alice\n")
        await bob.until(lambda: _ends_with(bob, "by alice\n"))
        saved = await bob.api.call("fs.write", path=PATH, text=text.replace("oh, ", "Oh, "), base=base)
        assert await read(bob.api) == ("Oh, hello, world!\nby alice\n", saved["heads"])
        assert await wait_converged([alice, bob], ["Oh, hello, world!\nby alice\n"], PATH)


async def test_bad_edits_are_invalid_params_naming_the_param_and_change_nothing(tmp_path: Path) -> None:
    home = tmp_path / "alice"
    create_space(home)
    with daemon(home) as alice_d:
        async with client(alice_d) as alice:
            await alice.write(PATH, "hello world\n")
            await alice.api.call("fs.write", path="data.bin", base64="AAE=")
            before = await read(alice.api)
            refusals = [
                ({"edits": [{"position": 0, "delete": 3}, {"position": 2, "insert": "x"}]}, INVALID_PARAMS, "edits: edits[0] and edits[1] overlap"),
                ({"edits": [{"position": 13}], "base": before[1]}, INVALID_PARAMS, "edits[0]: cannot delete 0 characters at 13"),
                ({"edits": [{"position": 0, "insert": "x"}], "base": ["ab" * 32]}, INVALID_PARAMS, "base:"),
                ({"edits": [{"insert": "x"}]}, INVALID_PARAMS, "params.edits[0]"),
                ({"edits": [{"position": -1}]}, INVALID_PARAMS, "params.edits[0].position"),
                ({"edits": [{"position": 0}], "path": "data.bin"}, NOT_TEXT, "binary"),
            ]
            for params, code, says in refusals:
                with pytest.raises(RpcError) as refused:
                    await alice.api.call("fs.edit", **{"path": PATH, **params})
                assert refused.value.code == code and says in refused.value.message, (params, refused.value.message)
            with pytest.raises(RpcError) as unknown:
                await alice.api.call("fs.write", path=PATH, text="x", base=["ab" * 32])
            assert (unknown.value.code, unknown.value.name) == (INVALID_PARAMS, "UnknownBase")
            assert await read(alice.api) == before  # nothing applied


async def _ends_with(each: Client, suffix: str) -> bool:
    text = await each.read(PATH)
    return text is not None and text.endswith(suffix)


async def _starts_with(each: Client, prefix: str) -> bool:
    text = await each.read(PATH)
    return text is not None and text.startswith(prefix)
