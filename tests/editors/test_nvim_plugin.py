"""The Neovim plugin (editors/nvim) in real headless Neovims on real daemons.

Each Neovim is ``nvim --embed --headless --clean -u NONE`` with the plugin on its runtime path,
driven through its API as a user drives it: keys typed (``nvim_input``), commands run. Each
daemon is a ``distspace up`` process; Alice's and Bob's share a space (benchmarks/editor.py's
harness, which the keystroke benchmark uses too). Waits are on conditions — inside Neovim with
``vim.wait`` on its own events, on the daemons with their notifications — never fixed sleeps.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pynvim import NvimError  # type: ignore[import-untyped]

from benchmarks.editor import DaemonPair, Neovim, daemon_pair, editors, nvim_command

pytestmark = pytest.mark.skipif(nvim_command() is None, reason="no nvim on PATH (apt-get install neovim; .ci/run installs it)")

PATH = "shared.txt"
ERROR_LINE = re.compile(r"^.*\blevel=error\b.*$", re.MULTILINE)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[DaemonPair]:
    with daemon_pair(tmp_path) as running:
        yield running
    for log in tmp_path.glob("*-daemon.log"):
        errors = ERROR_LINE.findall(log.read_text(errors="replace"))
        assert not errors, f"{log}: {errors[0][:2000]}"


@pytest.fixture
def alice_and_bob(pair: DaemonPair) -> Iterator[tuple[Neovim, Neovim]]:
    with editors(pair) as both:
        yield both


def _keys(text: str) -> str:
    """``text`` as keys to type in insert mode."""
    return text.replace("<", "<lt>").replace("\n", "<CR>")


def _settled(editor: Neovim, buffer: int, text: str) -> None:
    """The buffer holds ``text`` with nothing unsent, and never lost step with its daemon."""
    status = editor.wait_text(buffer, text)
    assert status["text"] == text
    assert status["idle"], status
    assert status["resyncs"] == 0, status


# Random keystrokes (position, bytes deleted, text inserted) against the text each leaves, folded
# into one doc.edit's edits against the text they started from: applied to it (last first, as
# they all refer to it), they give the text typed; they never overlap or touch.
_PENDING_PROPERTY = """
local seed, trials = ...
local edits = require("distspace.edits")
math.randomseed(seed)
local function applied(text, list)
  for i = #list, 1, -1 do
    local e = list[i]
    text = text:sub(1, e.position) .. e.insert .. text:sub(e.position + e.delete + 1)
  end
  return text
end
for _ = 1, trials do
  local base = ("abcdefghij"):sub(1, math.random(0, 10))
  local pending, now = edits.pending(#base), base
  for _ = 1, math.random(1, 8) do
    local position = math.random(0, #now)
    local delete = math.random(0, #now - position)
    local insert = ({ "", "X", "YZ", "\\n", "é" })[math.random(1, 5)]
    now = now:sub(1, position) .. insert .. now:sub(position + delete + 1)
    pending:apply(position, delete, #insert)
  end
  local list = pending:edits(function(from, to) return now:sub(from + 1, to) end)
  for i = 2, #list do
    if list[i].position <= list[i - 1].position + list[i - 1].delete then return vim.inspect(list) end
  end
  if applied(base, list) ~= now then return vim.inspect({ base = base, now = now, edits = list }) end
end
return "ok"
"""


def test_keystrokes_fold_into_edits_at_their_base(alice_and_bob: tuple[Neovim, Neovim]) -> None:
    alice, _ = alice_and_bob
    assert alice.lua(_PENDING_PROPERTY, 14, 3000) == "ok"


class _Agent:
    """A program typing through the editor protocol on Bob's daemon: each doc.edit at the heads
    its previous reply returned, relative to the text it has written itself (it never applies
    a doc.changed, and needs not: positions at its base are its own text's)."""

    def __init__(self, pair: DaemonPair) -> None:
        self.api = pair.apis[1]
        opened = self.api.call("doc.open", path=PATH, encoding="codepoint")
        self.text, self.heads = opened["text"], opened["heads"]

    def type(self, keys: str) -> None:
        """Append to the second line: before the text's final line break."""
        end = len(self.text) - 1
        reply = self.api.call("doc.edit", path=PATH, base=self.heads, edits=[{"position": end, "delete": 0, "insert": keys}])
        self.text, self.heads = self.text[:end] + keys + self.text[end:], reply["heads"]


def test_two_neovims_and_an_agent_typing_at_once_keep_every_keystroke(pair: DaemonPair, alice_and_bob: tuple[Neovim, Neovim]) -> None:
    alice, bob = alice_and_bob
    pair.write_everywhere(PATH, "first line\nsecond line\n")
    alice_buffer, bob_buffer = alice.open(PATH), bob.open(PATH)
    agent = _Agent(pair)
    alice.type("ggA")  # Alice appends to the first line,
    bob.type("ggI")  # Bob writes before it: each one's cursor must follow the other's typing
    rng = random.Random(14)
    typed = {"alice": rng.choices("abcdé\n", k=300), "bob": rng.choices("WXYZ€ ", k=300), "agent": rng.choices("0123456789ñ", k=150)}
    typists = {"alice": (alice, alice_buffer), "bob": (bob, bob_buffer)}
    at = dict.fromkeys(typed, 0)
    while any(at[name] < len(typed[name]) for name in typed):
        name = rng.choice([name for name in typed if at[name] < len(typed[name])])
        burst = "".join(typed[name][at[name] : at[name] + rng.randint(1, 4)])
        at[name] += len(burst)
        if name == "agent":
            agent.type(burst)
            continue
        editor, buffer = typists[name]
        editor.type(_keys(burst))
        if rng.random() < 0.05:  # a pause: what is typed reaches the daemon, remote patches land mid-insert
            assert editor.lua("return require('distspace').flush(...)", buffer)
    alice.type("<Esc>")
    bob.type("<Esc>")

    expected = "".join(typed["bob"]) + "first line" + "".join(typed["alice"]) + "\nsecond line" + "".join(typed["agent"]) + "\n"
    assert sum(at.values()) == 750
    _settled(alice, alice_buffer, expected)
    _settled(bob, bob_buffer, expected)
    assert pair.converged(PATH) == expected
    assert pair.read(0, PATH)["text"] == pair.read(1, PATH)["text"] == expected


NORMAL_MODE_EDITS = [
    "ggdd",  # the first line
    "Gdd",  # the last line, and with it the text's last line break (or not: that is the case)
    "Goappended<Esc>",
    "ggOabove<Esc>",
    "ggJ",
    "GJ",
    "gg0x",
    "G$x",
    "yyp",
    "ggP",
    "u",
    "<C-r>",
    ":%s/e/EE/g<CR>",
    "ggAé€ and ü<Esc>",
    "gg>>",
    "Gdd",
    "ggdG",
    "ione<CR>two<Esc>",
    "Go<Esc>",
    "u",
]


@pytest.mark.parametrize("initial", ["alpha\nbeta gamma\ndelta\n", "alpha\nbeta gamma\ndelta"], ids=["final line break", "no final line break"])
def test_normal_mode_edits_reach_the_other_buffer_and_both_daemons(pair: DaemonPair, alice_and_bob: tuple[Neovim, Neovim], initial: str) -> None:
    alice, bob = alice_and_bob
    pair.write_everywhere(PATH, initial)
    alice_buffer, bob_buffer = alice.open(PATH), bob.open(PATH)
    for keys in NORMAL_MODE_EDITS:
        alice.type(keys)
        assert alice.lua("return require('distspace').flush(...)", alice_buffer), keys
        text = alice.status(alice_buffer)["text"]
        assert pair.read(0, PATH)["text"] == text, keys
        _settled(bob, bob_buffer, text)
    assert pair.converged(PATH) == alice.status(alice_buffer)["text"]


# The character under the cursor of the current window.
_UNDER_CURSOR = "local row, col = unpack(vim.api.nvim_win_get_cursor(0)); return vim.api.nvim_buf_get_lines(0, row - 1, row, true)[1]:sub(col + 1, col + 1)"


@pytest.mark.parametrize("initial", ["one\ntwo\n", "one\ntwo"], ids=["final line break", "no final line break"])
def test_an_agents_edits_reach_the_buffer_and_the_cursor_stays_on_its_character(pair: DaemonPair, alice_and_bob: tuple[Neovim, Neovim], initial: str) -> None:
    alice, _ = alice_and_bob
    agent = pair.apis[0]
    pair.write_everywhere(PATH, initial)
    buffer = alice.open(PATH)
    alice.type("jfw")  # on the "w" of "two"
    texts = []
    for position, delete, insert in [(0, 0, "zero\n"), (5, 0, "ONE "), (0, 3, "0"), (3, 0, "\n\n")]:
        agent.call("fs.splice", path=PATH, position=position, delete=delete, insert=insert)
        texts.append(pair.read(0, PATH)["text"])
        _settled(alice, buffer, texts[-1])
        assert alice.lua(_UNDER_CURSOR) == "w", texts[-1]
    # The text's end, where the buffer keeps a line break the text may not have.
    end = len(texts[-1])
    for position, delete, insert in [(end - 1, 1, ""), (end - 1, 0, "!"), (end, 0, "\n"), (end + 1, 0, "tail"), (0, end + 5, "all new\n")]:
        agent.call("fs.splice", path=PATH, position=position, delete=delete, insert=insert)
        _settled(alice, buffer, pair.read(0, PATH)["text"])
    alice.type("Goand mine<Esc>")
    assert alice.lua("return require('distspace').flush(...)", buffer)
    assert pair.read(0, PATH)["text"] == "all new\nand mine\n"


def test_close_sends_what_is_unsent_and_stops_following(pair: DaemonPair, alice_and_bob: tuple[Neovim, Neovim]) -> None:
    alice, bob = alice_and_bob
    pair.write_everywhere(PATH, "x\n")
    alice_buffer, bob_buffer = alice.open(PATH), bob.open(PATH)
    alice.type("ggIlast words <Esc>")
    alice.session.command("DistspaceClose")  # at once: the edit may still be unsent or in flight
    assert not alice.lua("return vim.api.nvim_buf_is_valid(...)", alice_buffer)
    assert pair.read(0, PATH)["text"] == "last words x\n"
    _settled(bob, bob_buffer, "last words x\n")
    bob.type("ggAmore<Esc>")
    _settled(bob, bob_buffer, "last words xmore\n")
    assert pair.converged(PATH) == "last words xmore\n"
    assert alice.open(PATH) != alice_buffer  # open again: a new buffer, with the text now
    _settled(alice, alice.open(PATH), "last words xmore\n")


def test_a_missing_file_or_daemon_is_an_error_message_and_no_buffer(pair: DaemonPair, alice_and_bob: tuple[Neovim, Neovim], tmp_path: Path) -> None:
    alice, _ = alice_and_bob
    buffers = alice.lua("return #vim.api.nvim_list_bufs()")
    with pytest.raises(NvimError, match=re.escape("no-such-file.txt")):
        alice.session.command("DistspaceOpen no-such-file.txt")
    assert alice.lua("return #vim.api.nvim_list_bufs()") == buffers
    nobody = tmp_path / "nobody"  # a home whose daemon is not running
    nobody.mkdir()
    (nobody / "api.token").write_text("t" * 43)
    carol = Neovim.start(nobody)
    try:
        with pytest.raises(NvimError, match="no daemon listens on"):
            carol.session.command("DistspaceOpen notes.txt")
        assert carol.lua("return #vim.api.nvim_list_bufs()") == 1
    finally:
        carol.quit()
