"""The editor protocol (node/editor.py): positions across encodings, the reference client of its
CLIENT RULE (node/editor_client.py), and real daemons — editors typing into one file at once on
one daemon and on two synced ones, and every kind of bad input refused with nothing applied.

Encodings are checked against the codecs themselves: a buffer in UTF-8 or UTF-16 is a byte
string, an edit a byte slice, so each conversion is compared with what an editor in that
encoding does to its bytes.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from api_helpers import ApiConnection, Daemon, connect, daemon_with_a_space, own_directory
from e2e_helpers import CONVERGE_TIMEOUT_S, addr, create_space, daemon, join
from node.api_schema import schema
from node.editor import CODECS, ENCODINGS, EncodedText, PositionError, applied, edits_at_base, patches_in
from node.editor_client import EditorDocument
from node.rpc import INVALID_PARAMS, RpcError
from store.workspace import Edit

# Astral-plane characters (two UTF-16 units, four UTF-8 bytes), combining marks (code points of
# their own after a base letter), two- and three-byte characters, and ASCII.
ALPHABET = "ab \n" + "é" + "\u0301\u0308" + "€漢" + "😀𝄞\U0001f469\u200d\U0001f4bb"
texts = st.text(alphabet=ALPHABET, max_size=40)


def encoded(text: str, encoding: str) -> bytes:
    return text.encode(CODECS[encoding][0])


def units(text: str, encoding: str) -> int:
    return len(encoded(text, encoding)) // CODECS[encoding][1]


def splice_units(data: bytes, encoding: str, position: int, delete: int, insert: str) -> bytes:
    """What an editor in ``encoding`` does to its buffer for one edit or patch."""
    width = CODECS[encoding][1]
    return data[: position * width] + encoded(insert, encoding) + data[(position + delete) * width :]


# ----- positions across encodings -----


@given(texts, st.sampled_from(ENCODINGS))
def test_every_character_boundary_round_trips_and_every_other_position_is_refused(text: str, encoding: str) -> None:
    seen = EncodedText(text, encoding)
    assert seen.length == units(text, encoding)
    for index in range(len(text) + 1):
        assert seen.index(seen.position(index)) == index
    boundaries = {seen.position(index) for index in range(len(text) + 1)}
    codec, width = CODECS[encoding]
    for position in range(seen.length + 2):
        if position in boundaries:
            assert encoded(text, encoding)[: position * width].decode(codec) == text[: seen.index(position)]
        else:
            with pytest.raises(PositionError):
                seen.index(position)


def test_a_position_inside_a_surrogate_pair_or_a_utf8_sequence_is_not_a_position() -> None:
    text = "a😀é\u0301"  # units: utf-16 a,hi,lo,é,◌́  utf-8 a,4 bytes,2 bytes,2 bytes
    assert EncodedText(text, "utf-16").index(3) == 2
    with pytest.raises(PositionError, match="splits a character"):
        EncodedText(text, "utf-16").index(2)
    for inside in (2, 3, 4, 6, 8):
        with pytest.raises(PositionError, match="splits a character"):
            EncodedText(text, "utf-8").index(inside)
    assert EncodedText(text, "utf-8").index(7) == 3  # a combining mark is a code point of its own
    with pytest.raises(PositionError, match="past the end"):
        EncodedText(text, "codepoint").index(5)


@st.composite
def text_and_edits(draw: st.DrawFn) -> tuple[str, list[Edit]]:
    """A text and non-overlapping code-point edits of it, in a random order."""
    text = draw(texts)
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=8)))
    edits = []
    for start, end in zip(cuts[::2], cuts[1::2], strict=False):
        delete = draw(st.integers(0, end - start))
        edits.append(Edit(start, delete, draw(st.text(alphabet=ALPHABET, max_size=4))))
    return text, draw(st.permutations(edits))


@given(text_and_edits(), st.sampled_from(ENCODINGS))
def test_edits_in_any_encoding_are_the_code_point_edits_an_editor_meant(case: tuple[str, list[Edit]], encoding: str) -> None:
    text, edits = case
    sent = [
        {"position": units(text[: e.position], encoding), "delete": units(text[e.position : e.position + e.delete], encoding), "insert": e.insert}
        for e in edits
    ]
    converted = edits_at_base(text, sent, encoding)
    assert converted == sorted(edits, key=lambda e: (e.position, e.position + e.delete))
    data = encoded(text, encoding)  # applied from the last to the first, so inserts at one point land in order
    for edit in reversed(sorted(sent, key=lambda e: (e["position"], e["position"] + e["delete"]))):
        data = splice_units(data, encoding, edit["position"], edit["delete"], edit["insert"])
    assert applied(text, converted).encode(CODECS[encoding][0]) == data


@given(texts, st.lists(st.tuples(st.integers(0, 50), st.integers(0, 5), st.text(alphabet=ALPHABET, max_size=4)), max_size=8), st.sampled_from(ENCODINGS))
def test_patches_in_any_encoding_rebuild_the_text(text: str, raw: list[tuple[int, int, str]], encoding: str) -> None:
    splices, now = [], text
    for index, delete, insert in raw:  # code-point splices, each on the text the ones before made
        index = min(index, len(now))
        delete = min(delete, len(now) - index)
        splices.append({"index": index, "delete": delete, "insert": insert})
        now = now[:index] + insert + now[index + delete :]
    data = encoded(text, encoding)
    for patch in patches_in(text, splices, encoding):
        data = splice_units(data, encoding, patch["position"], patch["delete"], patch["insert"])
    assert data == encoded(now, encoding)


@pytest.mark.parametrize(
    ("edits", "says"),
    [
        ([{"position": 9, "delete": 0, "insert": "x"}], "params.edits[0].position: 9 is past the end"),
        ([{"position": 0, "delete": 0, "insert": ""}, {"position": 5, "delete": 9, "insert": ""}], "params.edits[1].delete: its range ends at 14"),
        ([{"position": 0, "delete": 3, "insert": "x"}, {"position": 1, "delete": 0, "insert": "y"}], "params.edits[1] overlaps params.edits[0]"),
        ([{"position": 4, "delete": 0, "insert": "x"}, {"position": 0, "delete": 5, "insert": ""}], "params.edits[0] overlaps params.edits[1]"),
        ([{"position": 2, "delete": 0, "insert": "x"}], "params.edits[0].position: 2 (UTF-16 code units) splits a character"),
        ([{"position": 1, "delete": 1, "insert": "x"}], "params.edits[0].delete: its range ends at 2 (UTF-16 code units) splits"),
    ],
)
def test_bad_edits_are_refused_naming_the_edit(edits: list[dict[str, Any]], says: str) -> None:
    with pytest.raises(RpcError) as caught:
        edits_at_base("a😀bcd", edits, "utf-16")
    assert caught.value.code == INVALID_PARAMS
    assert says in caught.value.message


def test_inserts_at_one_point_land_in_the_order_given_and_a_touching_delete_is_apart() -> None:
    sent = [{"position": 1, "delete": 0, "insert": "x"}, {"position": 1, "delete": 2, "insert": ""}, {"position": 1, "delete": 0, "insert": "y"}]
    assert applied("abcd", edits_at_base("abcd", sent, "utf-8")) == "axyd"


# ----- the reference client -----


@given(texts, st.sampled_from(ENCODINGS), st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1), st.text(alphabet=ALPHABET, max_size=3)), max_size=12), st.integers(1, 4))
def test_keystrokes_kept_while_an_edit_is_in_flight_go_as_one_edit_of_the_text_sent(
    text: str, encoding: str, steps: list[tuple[float, float, str]], batches: int
) -> None:
    document = EditorDocument({"space": "s", "path": "p", "encoding": encoding, "text": text, "heads": ["0" * 64]})
    server = text  # what the store has: the text sent, with each edit applied as node/editor.py does
    for number, (where, portion, insert) in enumerate(steps):
        index = round(where * len(document.text))
        delete = round(portion * (len(document.text) - index) / 2)
        position = document.position_of(index)
        document.type(position, document.position_of(index + delete) - position, insert)
        if number % batches == 0 or number == len(steps) - 1:
            params = document.take_edit()
            if params is None:
                assert document.text == server
                continue
            server = applied(server, edits_at_base(server, params["edits"], encoding))
            assert server == document.text
            document.confirm({"heads": [f"{number:064x}"]})
    assert document.text == server and not document.kept


def test_a_change_is_dropped_while_an_edit_is_in_flight_and_applied_once_it_is_confirmed() -> None:
    opened = {"space": "s", "path": "p", "encoding": "utf-16", "text": "a😀b", "heads": ["aa" * 32]}
    document = EditorDocument(opened)
    document.type(3, 0, "!")  # after the emoji: 3 UTF-16 units
    params = document.take_edit()
    assert params is not None and params["edits"] == [{"position": 3, "delete": 0, "insert": "!"}]
    change = {"space": "s", "path": "p", "from_heads": ["aa" * 32], "to_heads": ["bb" * 32], "patches": [{"position": 0, "delete": 1, "insert": ""}]}
    assert not document.receive(change)  # in flight: dropped, it will come again from [C]
    document.confirm({"heads": ["cc" * 32]})
    assert not document.receive(change)  # from a base the client no longer has
    again = {**change, "from_heads": ["cc" * 32], "to_heads": ["bb" * 32, "cc" * 32]}
    assert document.receive(again)
    assert document.text == "😀!b" and document.confirmed == ["bb" * 32, "cc" * 32] and document.dropped == 2


# ----- one daemon -----


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with daemon_with_a_space(tmp_path_factory, "editor") as running:
        yield running


@pytest.fixture
async def alice(node: Daemon) -> AsyncIterator[ApiConnection]:
    async with connect(node, "unix") as connection:
        yield connection


@pytest.fixture
async def bob(node: Daemon) -> AsyncIterator[ApiConnection]:
    async with connect(node, "websocket") as connection:
        yield connection


@pytest.fixture
async def path(bob: ApiConnection, request: pytest.FixtureRequest) -> str:
    name = own_directory(request) + ".txt"
    await bob.call("fs.write", path=name, text="a😀é\u0301 b\n")
    return name


async def doc_changed(api: ApiConnection) -> dict[str, Any]:
    message = await api.notification()
    assert message["method"] == "doc.changed", message
    return message["params"]


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_another_clients_splice_arrives_as_patches_in_the_encoding_opened(alice: ApiConnection, bob: ApiConnection, path: str, encoding: str) -> None:
    opened = await alice.call("doc.open", path=path, encoding=encoding)
    assert opened["text"] == "a😀é\u0301 b\n" and opened["encoding"] == encoding
    await bob.call("fs.splice", path=path, position=4, delete=1, insert="漢😀")  # code points: the space after é◌́
    await bob.call("fs.splice", path=path, position=0, delete=2, insert="")  # a and the emoji
    seen = encoded(opened["text"], encoding)
    heads = opened["heads"]
    while True:
        change = await doc_changed(alice)
        assert change["from_heads"] == heads and change["path"] == path
        for patch in change["patches"]:
            seen = splice_units(seen, encoding, patch["position"], patch["delete"], patch["insert"])
        heads = change["to_heads"]
        now = await bob.call("fs.read", path=path)
        if heads == now["heads"]:
            break
    assert seen.decode(CODECS[encoding][0]) == now["text"] == "é\u0301漢😀b\n"


async def test_a_closed_or_reopened_document_starts_over(alice: ApiConnection, bob: ApiConnection, path: str) -> None:
    await alice.call("doc.open", path=path, encoding="utf-8")
    assert (await alice.call("doc.close", path=path)) == {"closed": True}
    assert (await alice.call("doc.close", path=path)) == {"closed": False}
    await bob.call("fs.splice", path=path, position=0, delete=0, insert="1")
    reopened = await alice.call("doc.open", path=path, encoding="utf-8")
    assert reopened["text"].startswith("1a")
    await bob.call("fs.splice", path=path, position=0, delete=0, insert="2")
    change = await doc_changed(alice)  # nothing of the first opening, nor of the closed gap
    assert change["from_heads"] == reopened["heads"] and change["patches"] == [{"position": 0, "delete": 0, "insert": "2"}]


# ----- bad input: refused, naming the param, nothing applied -----


async def _refused(api: ApiConnection, bob: ApiConnection, path: str, method: str, **params: Any) -> RpcError:
    before = await bob.call("fs.read", path=path)
    with pytest.raises(RpcError) as caught:
        await api.call(method, path=path, **params)
    assert caught.value.code == INVALID_PARAMS, caught.value.message
    after = await bob.call("fs.read", path=path)
    assert (after["text"], after["heads"]) == (before["text"], before["heads"])
    return caught.value


@pytest.mark.parametrize(
    ("encoding", "edits", "says"),
    [
        ("utf-16", [{"position": 2, "delete": 0, "insert": "x"}], "params.edits[0].position: 2 (UTF-16 code units) splits a character"),
        ("utf-8", [{"position": 3, "delete": 0, "insert": "x"}], "params.edits[0].position: 3 (UTF-8 bytes) splits a character"),
        ("utf-8", [{"position": 0, "delete": 6, "insert": "x"}], "params.edits[0].delete: its range ends at 6 (UTF-8 bytes) splits"),
        ("codepoint", [{"position": 8, "delete": 0, "insert": "x"}], "params.edits[0].position: 8 is past the end of the text (7 code points) at base"),
        ("codepoint", [{"position": 0, "delete": 2, "insert": ""}, {"position": 1, "delete": 0, "insert": "x"}], "params.edits[1] overlaps params.edits[0]"),
    ],
)
async def test_edits_outside_the_text_splitting_a_character_or_overlapping_are_refused(
    alice: ApiConnection, bob: ApiConnection, path: str, encoding: str, edits: list[dict[str, Any]], says: str
) -> None:
    opened = await alice.call("doc.open", path=path, encoding=encoding)
    error = await _refused(alice, bob, path, "doc.edit", base=opened["heads"], edits=edits)
    assert says in error.message and error.name == "InvalidParams"


async def test_an_unknown_or_stale_base_is_refused(alice: ApiConnection, bob: ApiConnection, path: str) -> None:
    opened = await alice.call("doc.open", path=path)
    edits = [{"position": 0, "delete": 0, "insert": "x"}]
    unknown = await _refused(alice, bob, path, "doc.edit", base=["ab" * 32], edits=edits)
    assert unknown.name == "UnknownBase" and "params.base" in unknown.message
    other = f"{path}.other"
    await bob.call("fs.write", path=other, text="other")
    of_another_file = (await bob.call("fs.read", path=other))["heads"]
    stale = await _refused(alice, bob, path, "doc.edit", base=of_another_file, edits=edits)
    assert stale.name == "UnknownBase" and "params.base" in stale.message
    malformed = await _refused(alice, bob, path, "doc.edit", base=["xyz"], edits=edits)
    assert "params.base[0] must match" in malformed.message
    assert opened["heads"] == (await bob.call("fs.read", path=path))["heads"]


async def test_an_unknown_encoding_or_a_path_not_open_is_refused(alice: ApiConnection, bob: ApiConnection, path: str) -> None:
    encoding = await _refused(alice, bob, path, "doc.open", encoding="utf-32")
    assert "params.encoding must be one of" in encoding.message
    heads = (await bob.call("fs.read", path=path))["heads"]
    not_open = await _refused(alice, bob, path, "doc.edit", base=heads, edits=[{"position": 0, "delete": 0, "insert": "x"}])
    assert not_open.name == "NotOpen" and "params.path" in not_open.message


async def test_an_edit_is_one_change_at_its_base_and_is_not_echoed(alice: ApiConnection, bob: ApiConnection, path: str) -> None:
    opened = await alice.call("doc.open", path=path, encoding="utf-16")
    edited = await alice.call("doc.edit", path=path, base=opened["heads"], edits=[{"position": 3, "delete": 0, "insert": "!"}])
    log = (await bob.call("history.log", path=path, limit=1))["entries"]
    now = await bob.call("fs.read", path=path)
    assert edited["heads"] == [log[0]["change"]] == now["heads"]  # [C], the doc now: nothing to send
    assert now["text"] == "a😀!é\u0301 b\n"
    await bob.call("fs.splice", path=path, position=0, delete=0, insert=">")
    change = await doc_changed(alice)  # the first thing she gets: bob's splice, not her own edit
    assert change["from_heads"] == edited["heads"] and change["patches"] == [{"position": 0, "delete": 0, "insert": ">"}]


async def test_an_edit_after_another_local_clients_names_her_buffer_and_the_next_change_brings_his(
    alice: ApiConnection, bob: ApiConnection, path: str
) -> None:
    """This node's changes form one chain, so her edit is made after bob's (which her base
    lacks): the doc at [C] holds his text too, and the reply names her buffer by heads only her
    session knows; the doc.changed from there brings his splice, in her encoding."""
    opened = await alice.call("doc.open", path=path, encoding="utf-16")
    await bob.call("fs.splice", path=path, position=0, delete=0, insert="😀>")
    edited = await alice.call("doc.edit", path=path, base=opened["heads"], edits=[{"position": 3, "delete": 0, "insert": "!"}])
    now = await bob.call("fs.read", path=path)
    assert now["text"] == "😀>a😀!é\u0301 b\n" and edited["heads"] != now["heads"]
    change = await doc_changed(alice)
    if change["from_heads"] == opened["heads"]:  # flushed before her edit: a client with an edit in flight drops it
        change = await doc_changed(alice)
    assert change["from_heads"] == edited["heads"] and change["to_heads"] == now["heads"]
    assert change["patches"] == [{"position": 0, "delete": 0, "insert": "😀>"}]
    again = await alice.call("doc.edit", path=path, base=edited["heads"], edits=[{"position": 4, "delete": 0, "insert": "?"}])  # carried past his splice
    assert (await bob.call("fs.read", path=path))["text"] == "😀>a😀!?é\u0301 b\n"
    assert len(again["heads"]) == 1


# ----- editors typing at once: every keystroke survives -----

KEYSTROKES = 60


@dataclass
class Typist:
    """One editor typing into its buffer: tokens (astral and combining characters included)
    inserted between tokens, and now and then one of its own deleted."""

    name: str
    api: ApiConnection
    document: EditorDocument
    rng: random.Random
    typed: list[str] = field(default_factory=list)
    deleted: set[str] = field(default_factory=set)
    done: bool = False
    _ids: Iterator[int] = field(default_factory=lambda: iter(range(1, 1 << 30)))

    def keystroke(self) -> None:
        text = self.document.text
        mine = [token for token in self.typed if token not in self.deleted and token in text]
        if mine and self.rng.random() < 0.2:
            token = self.rng.choice(mine)
            index = text.index(token)
            start = self.document.position_of(index)
            self.document.type(start, self.document.position_of(index + len(token)) - start, "")
            self.deleted.add(token)
            return
        boundaries = [0, *(i + 1 for i, char in enumerate(text) if char == "›"), len(text)]
        token = f"‹{self.name}{len(self.typed)}😀é\u0301›"
        self.document.type(self.document.position_of(self.rng.choice(boundaries)), 0, token)
        self.typed.append(token)

    async def send_if_idle(self) -> None:
        params = self.document.take_edit()
        if params is not None:
            await self.api.send({"jsonrpc": "2.0", "id": next(self._ids), "method": "doc.edit", "params": params})

    @property
    def idle(self) -> bool:
        return self.done and not self.document.in_flight and not self.document.kept

    def check(self, text: str) -> None:
        for token in self.typed:
            assert text.count(token) == (0 if token in self.deleted else 1), (token, text)


async def _type(typist: Typist, progress: trio.MemorySendChannel[None]) -> None:
    async def read() -> None:
        while True:
            message = await typist.api.receive()
            assert message is not None, "the daemon closed the connection"
            if "id" in message:
                assert "result" in message, message
                schema().check_result("doc.edit", message["result"])
                typist.document.confirm(message["result"])
                await typist.send_if_idle()
            else:
                schema().check_notification(message["method"], message["params"])
                typist.document.receive(message["params"])
            await progress.send(None)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        for _ in range(KEYSTROKES):
            typist.keystroke()
            await typist.send_if_idle()
            await trio.sleep(typist.rng.random() * 0.004)  # noqa: sleep — a typing pace, not a wait for anything
        typist.done = True
        await progress.send(None)
        await trio.sleep_forever()  # reading until the test has seen both converge


async def type_at_once(typists: list[Typist], stores: list[ApiConnection], path: str) -> str:
    """Run the typists until both are idle with one text, the text of every store; check it."""
    send, receive = trio.open_memory_channel[None](1000)
    with trio.fail_after(CONVERGE_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            for typist in typists:
                nursery.start_soon(_type, typist, send)
            async for _ in receive:
                texts = {typist.document.text for typist in typists}
                if len(texts) == 1 and all(typist.idle for typist in typists):
                    stored = {(await store.call("fs.read", path=path))["text"] for store in stores}
                    if stored == texts:
                        nursery.cancel_scope.cancel()
    text = typists[0].document.text
    for typist in typists:
        typist.check(text)
    return text


async def _typist(name: str, api: ApiConnection, path: str, encoding: str, seed: int) -> Typist:
    return Typist(name, api, EditorDocument(await api.call("doc.open", path=path, encoding=encoding)), random.Random(seed))


@pytest.mark.parametrize("seed", [1, 2])
async def test_two_editors_on_one_daemon_type_at_once_and_keep_every_keystroke(node: Daemon, path: str, seed: int) -> None:
    async with connect(node, "unix") as alice, connect(node, "websocket") as bob, connect(node, "unix") as store:
        typists = [await _typist("a", alice, path, "utf-16", seed), await _typist("b", bob, path, "utf-8", seed + 100)]
        text = await type_at_once(typists, [store], path)
    assert "a😀é\u0301 b\n" in text  # tokens go between tokens: the text they were typed into stays whole


async def test_two_editors_on_two_synced_daemons_type_at_once_and_keep_every_keystroke(tmp_path: Path) -> None:
    homes = {name: tmp_path / name for name in ("alice", "bob")}
    team = create_space(homes["alice"])
    join(homes["bob"], team)
    with daemon(homes["alice"]) as alice_d, daemon(homes["bob"], "--peer", addr(alice_d)) as bob_d:
        async with connect(alice_d, "unix") as alice, connect(bob_d, "websocket") as bob, connect(bob_d, "unix") as bob_store:
            await alice.call("fs.write", path="shared.txt", text="a😀é\u0301 b\n")
            await bob_store.call("subscribe.tree")
            with trio.fail_after(CONVERGE_TIMEOUT_S):
                while not any(e["path"] == "shared.txt" for e in (await bob_store.call("fs.ls", path=""))["entries"]):
                    await bob_store.notification()
            typists = [await _typist("a", alice, "shared.txt", "codepoint", 7), await _typist("b", bob, "shared.txt", "utf-16", 8)]
            async with connect(alice_d, "unix") as alice_store:
                text = await type_at_once(typists, [alice_store, bob_store], "shared.txt")
    assert "a😀é\u0301 b\n" in text
