"""The Neovim plugin (editors/nvim) in real headless Neovims on real daemons.

Each Neovim is ``nvim --embed --headless --clean -u NONE`` with the plugin on its runtime path,
driven through its API as a user drives it: keys typed (``nvim_input``), commands run. Each
daemon is a ``distspace up`` process; Alice's and Bob's share a space (benchmarks/editor.py's
harness, which the keystroke benchmark uses too). Waits are on conditions — inside Neovim with
``vim.wait`` on its own events, on the daemons with their notifications — never fixed sleeps.
"""

from __future__ import annotations

import json
import queue
import random
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pynvim import NvimError  # type: ignore[import-untyped]

from benchmarks.editor import STEP_TIMEOUT_S, DaemonPair, Neovim, daemon_pair, editors, nvim_command

pytestmark = pytest.mark.skipif(nvim_command() is None, reason="no nvim on PATH (apt-get install neovim; .ci/run installs it)")

PATH = "shared.txt"
CLIENT_DIR = Path(__file__).resolve().parents[2] / "clients" / "js"
TYPING_AGENT = CLIENT_DIR / "examples" / "typing_agent.mjs"
NODE = shutil.which("node")
# The agent's longest pause between bursts: its 150 keys then take about as long as the Neovims' 400.
AGENT_PAUSE_MS = 20
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


def _interleave(rng: random.Random, typed: dict[str, list[str]], typists: dict[str, Callable[[str], None]]) -> int:
    """Bursts of 1 to 4 of each author's keys, the authors in a random order; the keys typed."""
    at = dict.fromkeys(typists, 0)
    while any(at[name] < len(typed[name]) for name in typists):
        name = rng.choice([name for name in typists if at[name] < len(typed[name])])
        burst = "".join(typed[name][at[name] : at[name] + rng.randint(1, 4)])
        at[name] += len(burst)
        typists[name](burst)
    return sum(at.values())


def _typist(editor: Neovim, buffer: int, rng: random.Random) -> Callable[[str], None]:
    def type_burst(burst: str) -> None:
        editor.type(_keys(burst))
        if rng.random() < 0.05:  # a pause: what is typed reaches the daemon, remote patches land mid-insert
            assert editor.lua("return require('distspace').flush(...)", buffer)

    return type_burst


def _expected(typed: dict[str, list[str]]) -> str:
    """Bob types before the first line, Alice at its end, the agent at the end of the second."""
    return "".join(typed["bob"]) + "first line" + "".join(typed["alice"]) + "\nsecond line" + "".join(typed["agent"]) + "\n"


def test_two_neovims_and_an_agent_typing_at_once_keep_every_keystroke(pair: DaemonPair, alice_and_bob: tuple[Neovim, Neovim]) -> None:
    alice, bob = alice_and_bob
    pair.write_everywhere(PATH, "first line\nsecond line\n")
    alice_buffer, bob_buffer = alice.open(PATH), bob.open(PATH)
    agent = _Agent(pair)
    alice.type("ggA")  # Alice appends to the first line,
    bob.type("ggI")  # Bob writes before it: each one's cursor must follow the other's typing
    rng = random.Random(14)
    typed = {"alice": rng.choices("abcdé\n", k=300), "bob": rng.choices("WXYZ€ ", k=300), "agent": rng.choices("0123456789ñ", k=150)}
    typists = {"alice": _typist(alice, alice_buffer, rng), "bob": _typist(bob, bob_buffer, rng), "agent": agent.type}
    assert _interleave(rng, typed, typists) == 750
    alice.type("<Esc>")
    bob.type("<Esc>")

    expected = _expected(typed)
    _settled(alice, alice_buffer, expected)
    _settled(bob, bob_buffer, expected)
    assert pair.converged(PATH) == expected
    assert pair.read(0, PATH)["text"] == pair.read(1, PATH)["text"] == expected


class _TypeScriptAgent:
    """clients/js/examples/typing_agent.mjs: a node process typing through the TypeScript
    client's EditorDocument on its own, at its own pace, while the test types in the Neovims."""

    def __init__(self, home: Path, keys: str) -> None:
        assert NODE is not None
        job = {"home": str(home), "path": PATH, "keys": keys, "before": "\n", "seed": 14, "pause_ms": AGENT_PAUSE_MS}
        self._stderr = home.parent / "typing-agent.log"
        with self._stderr.open("w") as stderr:
            self.process = subprocess.Popen([NODE, str(TYPING_AGENT), json.dumps(job)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True)
        self._lines = queue.Queue[str]()
        threading.Thread(target=self._read, daemon=True).start()  # its stdout, so that a wait can time out
        assert self.said() == {"ready": True}

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put("")

    def said(self) -> dict[str, Any]:
        """Its next line, within the step timeout."""
        try:
            line = self._lines.get(timeout=STEP_TIMEOUT_S)
        except queue.Empty:
            raise AssertionError(f"the agent said nothing within {STEP_TIMEOUT_S} s") from None
        assert line, f"the agent exited ({self.process.wait(STEP_TIMEOUT_S)}) before answering: {self._stderr.read_text()}"
        message: dict[str, Any] = json.loads(line)
        return message

    def report(self) -> dict[str, Any]:
        """Its text and heads once its buffer is its daemon's."""
        assert self.process.stdin is not None
        self.process.stdin.write("report\n")
        self.process.stdin.flush()
        return self.said()

    def stop(self) -> None:
        """Kill it if it still runs (a failed test)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(STEP_TIMEOUT_S)


@pytest.mark.skipif(NODE is None or not (CLIENT_DIR / "dist" / "index.js").is_file(), reason="needs node and the built client (make builds clients/js)")
def test_two_neovims_and_a_typescript_agent_typing_at_once_keep_every_keystroke(pair: DaemonPair, alice_and_bob: tuple[Neovim, Neovim]) -> None:
    """The issue's acceptance: two Neovims on two daemons and an agent over the TypeScript client
    on Bob's (so his Neovim's edits and the agent's are two local writers of one daemon): both
    buffers, the agent's text and both stores end identical, every keystroke in order per author."""
    alice, bob = alice_and_bob
    pair.write_everywhere(PATH, "first line\nsecond line\n")
    alice_buffer, bob_buffer = alice.open(PATH), bob.open(PATH)
    rng = random.Random(15)
    typed = {"alice": rng.choices("abcdé\n", k=200), "bob": rng.choices("WXYZ€ ", k=200), "agent": rng.choices("0123456789ñ😀", k=150)}
    agent = _TypeScriptAgent(pair.homes[1], "".join(typed["agent"]))
    try:
        alice.type("ggA")
        bob.type("ggI")
        assert _interleave(rng, typed, {"alice": _typist(alice, alice_buffer, rng), "bob": _typist(bob, bob_buffer, rng)}) == 400
        alice.type("<Esc>")
        bob.type("<Esc>")
        assert agent.said() == {"typed": 150}

        expected = _expected(typed)
        _settled(alice, alice_buffer, expected)
        _settled(bob, bob_buffer, expected)
        assert pair.converged(PATH) == expected
        bobs = pair.read(1, PATH)
        assert pair.read(0, PATH)["text"] == bobs["text"] == expected
        assert agent.report() == {"text": expected, "heads": sorted(bobs["heads"])}
        assert agent.process.wait(STEP_TIMEOUT_S) == 0
    finally:
        agent.stop()


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


def _wait_disk(file: Path, text: str, what: str) -> None:
    """Until the daemon's mirror has written ``text`` to ``file`` (another process: polled, bounded)."""
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while (held := file.read_text() if file.is_file() else None) != text:
        assert time.monotonic() < deadline, f"not within {STEP_TIMEOUT_S} s: {what}; the file holds {held!r}"
        time.sleep(0.01)  # noqa: sleep — polls a file another process writes, bounded by the deadline above


def test_a_file_opened_in_a_mirrored_folder_is_live_and_only_the_daemon_writes_it(pair: DaemonPair, alice_and_bob: tuple[Neovim, Neovim], tmp_path: Path) -> None:
    alice, bob = alice_and_bob
    pair.write_everywhere(PATH, "one\n")
    folder = tmp_path / "alice-folder"
    pair.apis[0].call("mirror.start", folder=str(folder))
    file = folder / PATH
    _wait_disk(file, "one\n", "the mirror's first checkout")
    buffer = alice.lua("vim.cmd('edit ' .. vim.fn.fnameescape(...)); return vim.api.nvim_get_current_buf()", str(file))
    assert alice.status(buffer)["path"] == PATH  # bound: a file of the space, not only of the disk
    bob_buffer = bob.open(PATH)
    alice.type("GAtwo<Esc>")
    _settled(bob, bob_buffer, "onetwo\n")
    bob.type("ggIzero <Esc>")
    _settled(alice, buffer, "zero onetwo\n")
    alice.session.command("write")  # waits for the daemon; Neovim writes nothing, so nothing races the mirror
    assert not alice.lua("return vim.bo[...].modified", buffer)
    _wait_disk(file, "zero onetwo\n", "the daemon's write-out of the merge")
    alice.session.command("checktime")  # the daemon rewrote the file: no prompt, the buffer stays
    assert alice.status(buffer)["text"] == "zero onetwo\n"
    alice.session.command("DistspaceClose")  # the buffer stays, as the plain file
    assert alice.lua("return vim.api.nvim_get_current_buf()") == buffer
    assert alice.lua("return vim.bo[...].buftype", buffer) == ""
    alice.type("Gothree<Esc>")
    alice.session.command("write")  # a plain save now, which the mirror takes in
    _settled(bob, bob_buffer, "zero onetwo\nthree\n")
    assert pair.converged(PATH) == "zero onetwo\nthree\n"


def test_a_file_outside_any_mirrored_folder_stays_a_plain_file(pair: DaemonPair, alice_and_bob: tuple[Neovim, Neovim], tmp_path: Path) -> None:
    alice, _ = alice_and_bob
    plain = tmp_path / "plain.txt"
    plain.write_text("mine\n")
    buffer = alice.lua("vim.cmd('edit ' .. vim.fn.fnameescape(...)); return vim.api.nvim_get_current_buf()", str(plain))
    assert alice.lua("return require('distspace').document(...) == nil", buffer)
    alice.type("Goonly<Esc>")
    alice.session.command("write")
    assert plain.read_text() == "mine\nonly\n"
