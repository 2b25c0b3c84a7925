"""Per-author undo in the editor protocol (node/editor.py): ``doc.undo`` reverts this
connection's last edit and nobody else's, made at that edit's change and merged, so what others
wrote since — even inside the text undone — stays; ``doc.redo`` reverts the undo. Two clients on
one real daemon, each an ``EditorDocument`` (the reference client of the CLIENT RULE) that gets
the undo like any remote change, as a doc.changed.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import trio

from api_helpers import ApiConnection, Daemon, connect, daemon_with_a_space, own_directory
from e2e_helpers import CONVERGE_TIMEOUT_S
from node.editor import UNDO_DEPTH, inverse_edits
from node.editor_client import EditorDocument
from node.rpc import INVALID_PARAMS, RpcError
from store.workspace import Edit


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with daemon_with_a_space(tmp_path_factory, "undo") as running:
        yield running


@pytest.fixture
async def store(node: Daemon) -> AsyncIterator[ApiConnection]:
    async with connect(node, "unix") as connection:
        yield connection


@pytest.fixture
async def path(store: ApiConnection, request: pytest.FixtureRequest) -> str:
    name = own_directory(request) + ".txt"
    await store.call("fs.write", path=name, text="one two three\n")
    return name


@dataclass
class Editor:
    """An editor on its own connection: each keystroke sent and confirmed before the next."""

    api: ApiConnection
    document: EditorDocument

    @classmethod
    async def open(cls, api: ApiConnection, path: str, encoding: str = "utf-16") -> Editor:
        return cls(api, EditorDocument(await api.call("doc.open", path=path, encoding=encoding)))

    async def type(self, index: int, delete: int, insert: str) -> None:
        """At code point ``index`` of the buffer."""
        position = self.document.position_of(index)
        self.document.type(position, self.document.position_of(index + delete) - position, insert)
        params = self.document.take_edit()
        assert params is not None
        self.document.confirm(await self.api.call("doc.edit", **params))

    async def undo(self, method: str = "doc.undo") -> dict[str, str | None]:
        return await self.api.call(method, path=self.document.path)

    async def catch_up(self, store: ApiConnection) -> str:
        """Apply doc.changed until the buffer is the store's text at its heads; that text."""
        with trio.fail_after(CONVERGE_TIMEOUT_S):
            while True:
                now = await store.call("fs.read", path=self.document.path)
                if self.document.confirmed == sorted(now["heads"]) and self.document.text == now["text"]:
                    text: str = now["text"]
                    return text
                self.document.receive((await self.api.notification())["params"])


@pytest.fixture
async def alice(node: Daemon, path: str) -> AsyncIterator[Editor]:
    async with connect(node, "unix") as connection:
        yield await Editor.open(connection, path)


@pytest.fixture
async def bob(node: Daemon, path: str) -> AsyncIterator[Editor]:
    async with connect(node, "websocket") as connection:
        yield await Editor.open(connection, path, "utf-8")


def test_the_inverse_of_patches_takes_the_text_back_by_character_identity() -> None:
    before = "aaa bbb"
    patches = [
        {"action": "splice_text", "index": 1, "value": "a"},  # an "a" among a's: the inserted one goes, not an old one
        {"action": "del_seq", "index": 5, "length": 2},
        {"action": "splice_text", "index": 5, "value": "XY"},
    ]
    assert inverse_edits(before, patches) == [Edit(1, 1, ""), Edit(5, 2, "bb")]  # on "aaaa XYb"
    rng = random.Random(3)
    for _ in range(500):
        text = start = "".join(rng.choices("ab\n", k=rng.randint(0, 8)))
        patches = []
        for _ in range(rng.randint(0, 4)):
            index = rng.randint(0, len(text))
            if text and index < len(text) and rng.random() < 0.5:
                length = rng.randint(1, len(text) - index)
                patches.append({"action": "del_seq", "index": index, "length": length})
                text = text[:index] + text[index + length :]
            else:
                value = "".join(rng.choices("abx", k=rng.randint(1, 3)))
                patches.append({"action": "splice_text", "index": index, "value": value})
                text = text[:index] + value + text[index:]
        back = text
        for edit in reversed(inverse_edits(start, patches)):  # they all refer to the text the patches made
            back = back[: edit.position] + edit.insert + back[edit.position + edit.delete :]
        assert back == start, (start, patches)


async def test_undo_reverts_only_my_last_edit_and_keeps_what_another_wrote_inside_it(alice: Editor, bob: Editor, store: ApiConnection) -> None:
    await alice.type(0, 0, "A1 ")
    await alice.type(len("A1 one two"), 0, " [alice's words]")
    await bob.catch_up(store)
    await bob.type(bob.document.text.index("words"), 0, "B ")  # inside the text alice will undo
    assert await alice.catch_up(store) == "A1 one two [alice's B words] three\n"
    history = (await store.call("history.log", path=alice.document.path, limit=3))["entries"]
    undone = await alice.undo()
    assert undone["undone"] == history[1]["change"]  # her second edit, not bob's after it
    assert await alice.catch_up(store) == await bob.catch_up(store) == "A1 one twoB  three\n"
    redone = await alice.undo("doc.redo")
    assert redone["undone"] == undone["change"]
    assert await alice.catch_up(store) == await bob.catch_up(store) == "A1 one two [alice's B words] three\n"
    assert (await bob.undo())["undone"] is not None  # bob's own edit, and nothing more of his
    assert await alice.catch_up(store) == await bob.catch_up(store) == "A1 one two [alice's words] three\n"
    assert await bob.undo() == {"undone": None, "change": None}


async def test_an_undone_deletion_comes_back_where_it_was_while_another_types(alice: Editor, bob: Editor, store: ApiConnection) -> None:
    await alice.type(len("one "), len("two "), "")
    await bob.type(0, 0, ">> ")  # at a base before her deletion, in another place
    await bob.type(len(bob.document.text) - 1, 0, " <<")
    assert await alice.catch_up(store) == ">> one three <<\n"
    await alice.undo()
    assert await alice.catch_up(store) == await bob.catch_up(store) == ">> one two three <<\n"


async def test_undo_walks_back_through_my_edits_and_a_new_edit_forgets_the_redo(alice: Editor, bob: Editor, store: ApiConnection) -> None:
    for word in ("x", "y", "z"):
        await alice.type(0, 0, word)
    await bob.type(len(bob.document.text) - 1, 0, "!")
    await alice.undo()
    await alice.undo()
    assert await alice.catch_up(store) == "xone two three!\n"
    await alice.type(0, 0, "w")
    assert await alice.undo("doc.redo") == {"undone": None, "change": None}
    await alice.undo()
    await alice.undo()
    assert await alice.undo() == {"undone": None, "change": None}  # y and z were undone before
    assert await alice.catch_up(store) == await bob.catch_up(store) == "one two three!\n"


async def test_undo_goes_back_a_bounded_number_of_edits(alice: Editor, store: ApiConnection) -> None:
    for number in range(UNDO_DEPTH + 5):
        await alice.type(0, 0, f"{number % 10}")
    undone = [await alice.undo() for _ in range(UNDO_DEPTH + 1)]
    assert all(each["undone"] is not None for each in undone[:UNDO_DEPTH]) and undone[-1]["undone"] is None
    assert await alice.catch_up(store) == "43210one two three\n"  # the first five are older than the bound


async def test_random_edits_of_two_undone_by_one_leave_exactly_the_others(alice: Editor, bob: Editor, store: ApiConnection) -> None:
    """Tokens typed by both at stale bases (bob never catches up while typing); alice then undoes
    all hers: none of hers remains, every one of bob's does, the text between is whole."""
    rng = random.Random(14)
    typed, bobs = 0, []
    for number in range(24):
        editor, name = (alice, "a") if rng.random() < 0.5 else (bob, "b")
        text = editor.document.text
        boundaries = [0, *(i + 1 for i, char in enumerate(text) if char in " ›"), len(text)]
        token = f"‹{name}{number}😀›"
        await editor.type(rng.choice(boundaries), 0, token)
        typed += editor is alice
        bobs += [token] if editor is bob else []
        if rng.random() < 0.3:
            await alice.catch_up(store)
    for _ in range(typed):
        assert (await alice.undo())["undone"] is not None
    text = await alice.catch_up(store)
    assert await bob.catch_up(store) == text
    assert "‹a" not in text
    for token in bobs:
        assert text.count(token) == 1, (token, text)
        text = text.replace(token, "")
    assert text == "one two three\n"


async def test_undo_of_a_path_not_open_is_refused(store: ApiConnection, path: str) -> None:
    with pytest.raises(RpcError) as caught:
        await store.call("doc.undo", path=path)
    assert caught.value.code == INVALID_PARAMS and caught.value.name == "NotOpen" and "doc.undo: params.path" in caught.value.message
