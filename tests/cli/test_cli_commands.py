"""Every ``distspace`` command, run as the installed executable, with and without a daemon.

The same assertions hold in both modes: with a daemon the command goes through its API, without
one it opens the store directly; the user must not be able to tell, except from ``status``.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_helpers import DISTSPACE, MODES, Cli, node
from protocol.identity import Identity


@pytest.fixture(scope="module", params=MODES)
def cli(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    with node(tmp_path_factory.mktemp(request.param) / "home", request.param) as running:
        yield running


def test_status_tells_whether_a_daemon_serves(cli: Cli) -> None:
    status = json.loads(cli.ok("status", "--json"))
    assert status["daemon"] is (cli.daemon is not None)
    assert [s["name"] for s in status["spaces"]] == ["main"]
    text = cli.ok("status")
    assert ("running for" in text) is (cli.daemon is not None)
    identity = json.loads(cli.ok("id", "--json"))
    assert identity == {"peer_id": status["peer_id"], "public_key": Identity.load(cli.home / "identity.key").public_key.hex()}
    assert cli.ok("id").startswith(f"peer id     {status['peer_id']}")


def test_write_then_cat_gives_back_the_same_bytes(cli: Cli, tmp_path: Path) -> None:
    source = tmp_path / "hello.py"
    source.write_text("print('héllo')\n")
    assert "wrote w/hello.py" in cli.ok("write", "-p", "w/hello.py", str(source))
    assert cli.ok("cat", "w/hello.py") == "print('héllo')\n"
    blob = bytes(range(256)) * 4
    cli.ok("write", "w/blob.bin", "-", input=blob)
    assert cli.run("cat", "w/blob.bin").stdout == blob
    cli.ok("write", "w/stdin.txt", input=b"from stdin\n")
    assert cli.ok("cat", "w/stdin.txt") == "from stdin\n"
    read = json.loads(cli.ok("cat", "w/blob.bin", "--json"))
    assert (read["encoding"], base64.b64decode(read["base64"])) == ("binary", blob)


def test_ls_prints_a_listing_and_json(cli: Cli) -> None:
    cli.ok("mkdir", "-p", "l/sub")
    cli.ok("write", "l/a.txt", input=b"four")
    assert cli.ok("ls", "l").splitlines() == ["a.txt\ttext\t4", "sub/\tdir\t"]
    entries = json.loads(cli.ok("ls", "l", "--json"))["entries"]
    assert [(e["path"], e["kind"], e["size"]) for e in entries] == [("l/a.txt", "file", 4), ("l/sub", "dir", None)]


def test_mv_rm_mkdir(cli: Cli) -> None:
    cli.ok("mkdir", "-p", "m/a/b")
    cli.ok("write", "m/a/b/f.txt", input=b"f")
    cli.ok("mv", "m/a", "m/z", "-m", "rename a")
    assert cli.ok("cat", "m/z/b/f.txt") == "f"
    assert "use -r" in cli.fails("rm", "m/z")
    cli.ok("rm", "-r", "m/z")
    assert cli.ok("ls", "m") == ""


def test_history_log_diff_blame_revert_and_time_travel(cli: Cli) -> None:
    first = json.loads(cli.ok("write", "h/story.txt", "-p", "--json", input=b"once\n"))["version"]
    cli.ok("write", "h/story.txt", "-m", "more", input=b"once\nupon a time\n")

    log = cli.ok("log", "h/story.txt").splitlines()
    assert "more" in log[0] and "h/story.txt" in log[0]
    entries = json.loads(cli.ok("log", "h/story.txt", "--json", "-n", "1"))["entries"]
    assert [e["message"] for e in entries] == ["more"]

    assert "+upon a time" in cli.ok("diff", str(first), "h")
    assert json.loads(cli.ok("diff", str(first), "--json"))["files"][0]["new_path"] == "h/story.txt"
    blame = cli.ok("blame", "h/story.txt").splitlines()
    assert [line.split(") ", 1)[1] for line in blame] == ["once", "upon a time"]

    assert cli.ok("cat", "h/story.txt", "--at", str(first)) == "once\n"
    assert "reverted h/story.txt" in cli.ok("revert", "--to", str(first), "h/story.txt")
    assert cli.ok("cat", "h/story.txt") == "once\n"


def test_snapshot_and_verify(cli: Cli) -> None:
    cli.ok("write", "s.txt", input=b"s")
    assert "manifest bafy" in cli.ok("snapshot")
    assert "verifies" in cli.ok("verify")
    assert json.loads(cli.ok("verify", "--json")) == {"ok": True, "problems": [], "kept": []}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["cat", "nope.txt"], "distspace: no file or directory 'nope.txt'\n"),
        (["write", "no/dir/f.txt", "-"], "use -p"),
        (["write", "x.txt", "/no/such/file"], "distspace: cannot read /no/such/file: No such file or directory\n"),
        (["cat", "x", "--space", "nowhere"], "no space 'nowhere'"),
        (["revert", "--to", "999999", "--space", "main"], "versions 0 to"),
        (["join", "00" * 32], "give --peer"),
    ],
)
def test_user_errors_are_one_line_and_exit_1(cli: Cli, args: list[str], says: str) -> None:
    code = 2 if args[0] == "join" else 1
    stderr = cli.fails(*args, code=code)
    assert says in stderr
    if code == 1:
        assert stderr.count("\n") == 1


def test_a_closed_pipe_ends_cat_quietly(cli: Cli) -> None:
    big = bytes(range(256)) * 4000  # binary, and far more than a pipe buffers
    cli.ok("write", "big.bin", input=big)
    process = subprocess.Popen(
        [DISTSPACE, "--home", str(cli.home), "cat", "big.bin"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.read(10) == big[:10]
    process.stdout.close()
    assert process.wait(20) == 0
    assert process.stderr.read() == b""
    process.stderr.close()


def test_cat_loads_no_network_stack(cli: Cli) -> None:
    """``import libp2p`` alone costs a second: commands other than ``up`` must never pay it; and
    with a daemon, ``cat`` is one call over the socket, with neither the store nor the signing
    library loaded (they would add ~25 ms to a 150 ms budget)."""
    cli.ok("write", "light.txt", input=b"light")
    result = subprocess.run(
        [str(Path(DISTSPACE).with_name("python")), "-X", "importtime", DISTSPACE, "--home", str(cli.home), "cat", "light.txt"],
        capture_output=True,
        timeout=20,
    )
    assert result.stdout == b"light"
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.decode().splitlines()}
    heavy = {name for name in imported if name.split(".")[0] in {"libp2p", "aiortc", "trio", "trio_websocket", "multiaddr"}}
    assert not heavy
    if cli.daemon is not None:
        local = {name for name in imported if name.split(".")[0] in {"store", "native", "nacl", "cbor2"}}
        assert local <= {"store", "store.errors"}  # the errors the command reports, nothing more


def test_spaces_peers_and_joining(cli: Cli, tmp_path: Path) -> None:
    other = Cli(tmp_path / "other")
    created = json.loads(other.ok("init", "shared", "--public", "--json"))
    joined = cli.ok("join", created["space_id"], "--genesis", created["genesis"])
    assert joined.strip() == f"joined space 'shared' ({created['space_id']})"
    names = {s["name"] for s in json.loads(cli.ok("spaces", "--json"))["spaces"]}
    assert names == {"main", "shared"}
    assert cli.ok("ls") == cli.ok("ls", "--space", "main")  # the first space stays the default
    assert cli.ok("ls", "--space", "shared") == ""
    assert cli.ok("--space", "main", "ls") != ""  # before the command name too

    unseen = json.loads(Cli(tmp_path / "third").ok("init", "unseen", "--public", "--json"))["space_id"]
    pending = cli.ok("join", unseen, "--peer", "/ip4/127.0.0.1/tcp/4001")
    assert pending.startswith(f"recorded: space {unseen} will be fetched")
    assert "(pending)" in cli.ok("spaces")
    peers = json.loads(cli.ok("peers", "--json"))
    assert peers == {"daemon": cli.daemon is not None, "peers": []}
    assert cli.ok("peers").startswith("no peers connected")
