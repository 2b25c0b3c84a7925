"""What peers wrote reaches the terminal as plain text: no rich markup, no control characters.

A commit message, a name or a line of a file comes from whoever wrote it — any peer of the
space. Shown by ``distspace log``, ``blame`` or ``diff``, it must not colour, move, retitle or
clear the terminal, open a hyperlink, or split a row of a table.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from cli import render
from cli_helpers import MODES, Cli, node

# An OSC title change with BEL, a screen clear, a carriage return over the line, a C1 CSI,
# a bidirectional override, and rich markup for a hyperlink and blinking text.
HOSTILE = "\x1b]0;owned\x07\x1b[2J\rfake line\x9b31m\u202eabc [link=https://evil.example]click[/link] [blink]x[/blink]"
RAW_CONTROLS = ("\x1b", "\x07", "\r", "\x9b", "\u202e")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module", params=MODES)
def cli(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with node(tmp_path_factory.mktemp(request.param) / "home", request.param) as running:
        yield running


def test_log_blame_and_diff_show_a_hostile_message_and_file_plainly(cli: Cli) -> None:
    cli.ok("write", "-m", HOSTILE, "evil.txt", input=f"one\n{HOSTILE}\n".encode())
    for args in (("log",), ("blame", "evil.txt"), ("diff", "0")):
        shown = cli.ok(*args)
        assert not any(char in shown for char in RAW_CONTROLS), (args, shown)
        assert "\\x1b]0;owned\\x07" in shown and "\\u202e" in shown
    row = next(line for line in cli.ok("log").split("\n") if "evil.txt" in line)
    assert row.count("\t") == 5 and "fake line" in row, row  # the message's own \r stays inside its cell


def test_a_table_on_a_terminal_shows_markup_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    monkeypatch.setenv("COLUMNS", "400")
    render.table(["message"], [[HOSTILE]])
    shown = terminal.getvalue()
    assert "[link=https://evil.example]click[/link]" in shown and "[blink]x[/blink]" in shown
    assert "\x1b]8;" not in shown and "\x1b[5m" not in shown  # no hyperlink, no blink
    assert "\x07" not in shown and "\x1b[2J" not in shown and "\\x1b[2J" in shown


def test_say_and_hint_escape_controls_but_keep_lines_and_tabs(capsys: pytest.CaptureFixture[str]) -> None:
    render.say("a\tb\nc\x1b[31m")
    render.hint("peer name \x1b]0;x\x07")
    out, err = capsys.readouterr()
    assert out == "a\tb\nc\\x1b[31m\n"
    assert err == "peer name \\x1b]0;x\\x07\n"


def test_plain_leaves_ordinary_text_alone() -> None:
    text = "naïve 文字 — ok\ttab"
    assert render.plain(text) == text
    assert render.plain(text, cell=True) == "naïve 文字 — ok\\x09tab"
