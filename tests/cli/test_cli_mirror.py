"""The folder mirror from the command line: ``up --folder``, ``folder`` in config.toml, ``clone``,
``status``, on real daemons and real folders.

These tests are about the wiring (which folder the daemon mirrors, what the commands print and
refuse); how the mirror itself behaves under editors, renames and crashes is
tests/node/test_mirror_*.py's.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

from cli_helpers import Cli
from tests.node.api_helpers import STEP_TIMEOUT_S, running_daemon

POLL_S = 0.02


def _until(check: Callable[[], bool], what: str) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after STEP_TIMEOUT_S."""
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {STEP_TIMEOUT_S} s: {what}")
        time.sleep(POLL_S)  # noqa: sleep — a bounded poll of another process's folder and API


def _reads(path: Path, text: str) -> Callable[[], bool]:
    return lambda: path.is_file() and path.read_text() == text


def _space_with_files(tmp_path: Path, name: str = "alice") -> Cli:
    cli = Cli(tmp_path / name)
    cli.ok("init", "main")
    cli.ok("write", "-p", "src/app.py", input=b"print('hi')\n")
    cli.ok("write", "README.md", input=b"# main\n")
    return cli


def test_up_folder_mirrors_the_space_both_ways_and_status_shows_it(tmp_path: Path) -> None:
    cli = _space_with_files(tmp_path)
    folder = tmp_path / "work"
    with running_daemon(cli.home, "--folder", str(folder)) as daemon:
        space = json.loads(cli.ok("spaces", "--json"))["spaces"][0]["space_id"]
        # The first checkout is done before the ready line, which names the folder.
        assert daemon.ready["mirrors"] == [{"space": space, "folder": str(folder)}]
        assert (folder / "src" / "app.py").read_text() == "print('hi')\n"
        assert json.loads(daemon.home.daemon_file.read_text())["mirrors"] == daemon.ready["mirrors"]

        cli.ok("write", "notes.txt", input=b"from the space\n")
        _until(_reads(folder / "notes.txt", "from the space\n"), "a write to the space appears in the folder")
        (folder / "src" / "app.py").write_text("print('hello')\n")
        _until(lambda: cli.ok("cat", "src/app.py") == "print('hello')\n", "a save in the folder reaches the space")

        status = json.loads(cli.ok("status", "--json"))
        [mirror] = status["mirror"]["mirrors"]
        assert (mirror["space"], mirror["folder"], mirror["state"], mirror["error"]) == (space, str(folder), "running", None)
        assert mirror["files"] == 3 and mirror["watcher"] in {"inotify", "polling"}
        assert status["mirror"]["configured"] is None  # --folder is not written to config.toml
        text = cli.ok("status")
        assert f"folder    {folder}  space {space[:12]}  3 files" in text
    assert "\nfolder " not in cli.ok("status")  # no daemon, nothing configured: no mirror to show


def test_the_folder_of_config_toml_is_mirrored_and_shown_without_a_daemon(tmp_path: Path) -> None:
    cli = _space_with_files(tmp_path)
    folder = tmp_path / "configured"
    config = cli.home / "config.toml"
    config.write_text(f'folder = "{folder}"\nfolder_space = "main"\n' + config.read_text())
    text = cli.ok("status")
    assert f"folder    {folder}  (config.toml; mirrored while the daemon runs" in text
    assert json.loads(cli.ok("status", "--json"))["mirror"] == {
        "daemon": False,
        "configured": {"folder": str(folder), "space": "main"},
        "mirrors": [],
    }
    with running_daemon(cli.home) as daemon:
        assert [m["folder"] for m in daemon.ready["mirrors"]] == [str(folder)]
        assert (folder / "README.md").read_text() == "# main\n"


def test_folders_that_cannot_be_mirrored_are_refused_with_the_reason(tmp_path: Path) -> None:
    cli = _space_with_files(tmp_path)
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    refusals = {
        str(cli.home): "is the node home",
        str(cli.home / "inside"): "is inside the node home",
        str(a_file): "is not a directory",
    }
    for folder, says in refusals.items():
        assert says in cli.fails("up", "--no-mdns", "--folder", folder), folder
        assert says in cli.fails("clone", "main", folder), folder
    assert not (cli.home / "inside").exists()
    assert "no space 'nope'" in cli.fails("up", "--no-mdns", "--folder", str(tmp_path / "x"), "--space", "nope")

    config = cli.home / "config.toml"
    kept = config.read_text()
    config.write_text('folder = "relative/dir"\n' + kept)
    assert "folder must be an absolute path" in cli.fails("up", "--no-mdns")
    config.write_text(kept)

    full = tmp_path / "full"
    full.mkdir()
    (full / "mine.txt").write_text("mine")
    assert "is not empty" in cli.fails("clone", "main", str(full))


def test_clone_without_a_daemon_is_a_one_shot_checkout(tmp_path: Path) -> None:
    cli = _space_with_files(tmp_path)
    folder = tmp_path / "copy"
    result = cli.run("clone", "main", str(folder))
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode() == f"checked out 2 file(s), 19 bytes, into {folder}\n"
    assert "to keep it live: distspace up --folder" in result.stderr.decode()
    assert (folder / "src" / "app.py").read_text() == "print('hi')\n"
    started_with = os.umask(0o022)  # this process's, which the command inherits
    os.umask(started_with)
    assert stat.S_IMODE((folder / "src" / "app.py").stat().st_mode) == 0o666 & ~started_with  # the user's umask, not the store's 077
    cloned = json.loads(cli.ok("clone", "main", str(tmp_path / "again"), "--json"))
    assert (cloned["files"], cloned["paths"], cloned["mirroring"]) == (2, ["README.md", "src/app.py"], False)
    assert "fetching needs it: start it (distspace up)" in cli.fails("clone", "ab" * 32, str(tmp_path / "x"), "--peer", "/ip4/127.0.0.1/tcp/1")


def test_clone_from_a_peer_through_the_daemon_keeps_the_folder_mirrored(tmp_path: Path) -> None:
    alice = _space_with_files(tmp_path, "alice")
    space = json.loads(alice.ok("spaces", "--json"))["spaces"][0]["space_id"]
    bob = Cli(tmp_path / "bob")
    folder = tmp_path / "bobs-copy"
    with running_daemon(alice.home), running_daemon(bob.home) as bob_daemon:
        assert bob_daemon.ready["mirrors"] == []
        ticket = alice.ok("invite").strip()  # the space is private: bob clones by a ticket, which names alice's addresses
        result = bob.run("clone", ticket, str(folder), "--json")
        assert result.returncode == 0, result.stderr.decode()
        cloned = json.loads(result.stdout)
        assert (cloned["space"], cloned["folder"], cloned["mirroring"], cloned["saved"]) == (space, str(folder), True, True)
        assert cloned["paths"] == ["README.md", "src/app.py"]
        assert (folder / "src" / "app.py").read_text() == "print('hi')\n"

        alice.ok("write", "later.txt", input=b"after the clone\n")
        _until(_reads(folder / "later.txt", "after the clone\n"), "alice's later write reaches bob's folder")
        (folder / "from-bob.txt").write_text("bob saved this\n")
        _until(lambda: alice.run("cat", "from-bob.txt").stdout == b"bob saved this\n", "bob's save reaches alice")

        again = bob.fails("clone", space, str(tmp_path / "second"))
        assert f"the space is mirrored into {folder} already" in again
    # config.toml kept the folder: bob's next daemon mirrors it again.
    assert json.loads(bob.ok("status", "--json"))["mirror"]["configured"] == {"folder": str(folder), "space": space}
    with running_daemon(bob.home) as bob_daemon:
        assert bob_daemon.ready["mirrors"] == [{"space": space, "folder": str(folder)}]


def test_clone_says_in_its_help_when_it_keeps_mirroring(tmp_path: Path) -> None:
    text = " ".join(Cli(tmp_path / "home").ok("clone", "--help").split())
    assert "asks the daemon to mirror DIR" in text and "stays mirrored both ways" in text
    assert "Without a daemon, clone is a one-shot checkout" in text and "To keep it live: distspace up --folder DIR" in text
