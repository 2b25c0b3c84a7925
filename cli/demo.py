"""``distspace demo``: three peers on this machine share a space, edit it at once and apart, converge.

Alice and Bob are people, Ada is an agent; each is a real ``distspace up`` daemon in a process of
its own, with a home of its own in a temporary directory, listening on 127.0.0.1 and dialling the
others. The demo drives them through their local APIs, as an editor or an agent would:

1. the three daemons start and connect to each other;
2. Alice creates a private space and invites Bob and Ada: each joins by a one-time ticket
   (``space.invite``, ``space.join``), and Alice's daemon admits it once it checks the ticket;
3. Alice writes ``greet.py``; all three then edit it at the same moment, each in a place of its
   own, and each adds a file of its own;
4. Bob's daemon stops. Alice and Ada keep editing; Bob edits too, offline, with ``distspace cat``
   and ``distspace write`` on his store directly;
5. Bob's daemon starts again and catches up, and Alice and Ada receive his offline work;
6. all three hold the same changes (the same history digest), the same files at the same heads,
   and every signature checks out (``node.verify``);
7. the signed history says who changed what, and when.

Every wait is on the API, with a deadline: notifications of the peer expected to change, and a
re-check of the condition at least every POLL_S (a fetched space announces nothing). Daemons are
stopped and the temporary directory removed whatever happens, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from cli import render
from cli.daemon_process import COMMAND, DaemonNotReady, DaemonProcess, start_daemon
from cli.errors import CliError
from node.api_client import ApiClient, ApiUnavailable
from node.home import NodeHome
from node.rpc import RpcError

Json = dict[str, Any]

# Any one step: a daemon's start (importing libp2p alone takes ~1 s) or a few sync round trips on
# loopback; ten times what it takes on an idle laptop, so a loaded machine still gets through.
STEP_TIMEOUT_S = 30.0
# How often a wait re-checks its condition when no notification comes (a fetched space sends none).
POLL_S = 0.05
# More changes than the demo makes: history.log returns them all.
HISTORY_LIMIT = 10_000
PIPE_WIDTH = 110  # rich's 80 columns would fold the history table in a log file

PEOPLE = (("alice", "human"), ("bob", "human"), ("ada", "agent"))
SPACE_NAME = "greeter"
BASE = '''def greet(name):
    return "Hello, " + name


if __name__ == "__main__":
    print(greet("world"))
'''
TEST = '''from greet import greet


def test_greet():
    assert "Ada" in greet("Ada")
'''
FAREWELL = '''


def farewell(name):
    return "Bye, " + name'''


class DemoFailed(CliError):
    """A step did not happen in time, or a peer refused or went away: one line, exit code 1."""


class Peer:
    """One daemon of the demo, its home, and an API connection to it while it runs."""

    def __init__(self, name: str, kind: str, root: Path) -> None:
        self.name = name
        self.kind = kind
        self.home = NodeHome(root / name)
        self.home.ensure()
        # Discovery stays off: the demo names each peer's peers, and leaves other daemons alone.
        self.home.config_file.write_text(f'name = "{name}"\nkind = "{kind}"\nmdns = false\nlisten = ["/ip4/127.0.0.1/tcp/0"]\n')
        self.log_file = root / f"{name}.log"
        self.peer_id = ""
        self.addrs: list[str] = []
        self._daemon: DaemonProcess | None = None
        self._api: ApiClient | None = None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.kind})"

    def start(self, peers: list[str]) -> None:
        """Start ``distspace up`` dialling ``peers``, wait for its ready line, connect to its API.

        Raises:
            DemoFailed: it exited first, or said nothing within STEP_TIMEOUT_S (its log's last
                line says why).
        """
        dial = [arg for addr in peers for arg in ("--peer", addr)]
        try:
            self._daemon = start_daemon(self.home.path, *dial, log=self.log_file, ready_timeout_s=STEP_TIMEOUT_S)
        except DaemonNotReady as error:
            raise DemoFailed(f"{self.name}'s daemon did not become ready: {self._last_log_line()}") from error
        self.peer_id, self.addrs = self._daemon.ready["peer_id"], self._daemon.ready["addrs"]
        try:
            self._api = ApiClient.connect(self.home.api_socket, self.home.token_file.read_text(), timeout=STEP_TIMEOUT_S)
        except (ApiUnavailable, RpcError) as error:
            raise DemoFailed(f"cannot reach {self.name}'s API: {error}") from error
        self.call("subscribe.peers")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers; safe to call on a stopped peer."""
        if self._api is not None:
            self._api.close()
            self._api = None
        daemon, self._daemon = self._daemon, None
        if daemon is not None:
            daemon.stop()

    def call(self, method: str, **params: Any) -> Json:
        if self._api is None:
            raise DemoFailed(f"{self.name}'s daemon is not running")
        try:
            return self._api.call(method, **params)
        except (ApiUnavailable, RpcError) as error:
            raise DemoFailed(f"{self.name}: {method} failed: {error}") from error

    def offline(self, *args: str, input: bytes = b"") -> bytes:
        """Run a ``distspace`` command on this peer's home (its daemon stopped: on the store itself)."""
        command = [*COMMAND, "--home", str(self.home.path), *args]
        result = subprocess.run(command, input=input, capture_output=True, timeout=STEP_TIMEOUT_S)
        if result.returncode != 0:
            raise DemoFailed(f"{self.name}: distspace {' '.join(args)} failed: {result.stderr.decode().strip()}")
        return result.stdout

    def wait_for_news(self, timeout: float) -> None:
        """Return at this peer's next notification, or after ``timeout``."""
        if self._api is None:
            return
        try:
            self._api.next_notification(timeout)
        except TimeoutError:
            pass
        except ApiUnavailable as error:
            raise DemoFailed(f"{self.name}'s daemon went away: {error}") from error

    def _last_log_line(self) -> str:
        lines = self.log_file.read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else "(no log)"


def until(what: str, check: Callable[[Peer], bool], watch: Peer) -> None:
    """Wait until ``check(watch)`` holds, re-checking at each notification of ``watch`` and every POLL_S.

    Raises:
        DemoFailed: it did not hold within STEP_TIMEOUT_S.
    """
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while not check(watch):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DemoFailed(f"{what} did not happen within {STEP_TIMEOUT_S:.0f} s")
        watch.wait_for_news(min(remaining, POLL_S))


def at_once(edits: list[Callable[[], None]]) -> None:
    """Run each peer's edits in a thread of its own, released together: concurrent edits.

    Raises:
        DemoFailed: an edit failed, or did not finish within STEP_TIMEOUT_S.
    """
    barrier = threading.Barrier(len(edits))
    failures: list[BaseException] = []

    def edit(run: Callable[[], None]) -> None:
        try:
            barrier.wait(STEP_TIMEOUT_S)
            run()
        except BaseException as error:  # handed to the main thread below
            failures.append(error)

    threads = [threading.Thread(target=edit, args=(run,), daemon=True) for run in edits]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + STEP_TIMEOUT_S
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        raise DemoFailed(f"the concurrent edits did not finish within {STEP_TIMEOUT_S:.0f} s")
    if failures:
        raise failures[0]


# ----- what a peer holds -----


def snapshot(peer: Peer, space: str) -> Json:
    """What ``peer`` holds of the space: a digest of its change set, every file with its heads and
    content, and its version. Two peers hold the same space when all but the version are equal:
    versions are local numbers (a batch of remote changes to one doc makes one version)."""
    changes = peer.call("history.log", space=space, limit=HISTORY_LIMIT)
    files: dict[str, Json] = {}
    folders = [""]
    while folders:
        for entry in peer.call("fs.ls", space=space, path=folders.pop())["entries"]:
            if entry["kind"] == "dir":
                folders.append(entry["path"])
            else:
                content = peer.call("fs.read", space=space, path=entry["path"])
                files[entry["path"]] = {"heads": entry["heads"], "text": content.get("text")}
    hashes = sorted(change["change"] for change in changes["entries"])
    return {
        "version": changes["version"],
        "changes": len(hashes),
        "history_sha256": hashlib.sha256("".join(hashes).encode()).hexdigest(),
        "files": dict(sorted(files.items())),
    }


def _text(state: Json, path: str) -> str | None:
    text: str | None = state["files"].get(path, {}).get("text")
    return text


def same(states: list[Json]) -> bool:
    shared = [{key: value for key, value in state.items() if key != "version"} for state in states]
    return all(state == shared[0] for state in shared)


def text_of(peer: Peer, space: str, path: str) -> str:
    return str(peer.call("fs.read", space=space, path=path)["text"])


def edit_at(peer: Peer, space: str, path: str, anchor: str, insert: str, *, replace: bool = False) -> None:
    """Insert ``insert`` just before ``anchor`` (or in its place) in the text this peer read.

    The position is one of the text read, and the edit names that text's heads as its
    ``base`` (``fs.edit``): the daemon makes the change at that version and merges it with the
    others' edits that reached it between the read and the edit, so it lands where this peer
    meant rather than mid-word, and deletes only the characters this peer saw.
    """
    read = peer.call("fs.read", space=space, path=path)
    edit = {"position": str(read["text"]).index(anchor), "delete": len(anchor) if replace else 0, "insert": insert}
    peer.call("fs.edit", space=space, path=path, edits=[edit], message=f"{peer.name}: edit {path}", base=read["heads"])


# ----- the demo -----


class Show:
    """Progress for people: numbered steps and ticks, on stdout, or on stderr beside --json."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.started = time.monotonic()
        self._step = 0

    def step(self, title: str) -> None:
        self._step += 1
        self.console.print(f"\n[bold cyan]{self._step}. {title}[/]")

    def done(self, text: str) -> None:
        self.console.print(f"   [green]✓[/] {text}  [dim]{time.monotonic() - self.started:.1f} s[/]")


@contextmanager
def _stopping_on_sigterm() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the daemons are stopped and the directory removed."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(*, json_output: bool) -> Json:
    """Run the demo; returns its summary (what ``--json`` prints).

    Raises:
        DemoFailed: a step failed; the daemons are stopped and the directory removed first.
    """
    console = Console(stderr=json_output, highlight=False)
    if not console.is_terminal:
        console.width = PIPE_WIDTH
    show = Show(console)
    with _stopping_on_sigterm(), ExitStack() as cleanup:
        root = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="distspace-demo-")))
        peers = [Peer(name, kind, root) for name, kind in PEOPLE]
        for peer in peers:
            cleanup.callback(peer.stop)
        return _scenario(show, *peers)


def _scenario(show: Show, alice: Peer, bob: Peer, ada: Peer) -> Json:
    everyone = [alice, bob, ada]
    names: dict[str, Peer] = {}

    show.step("Three peers start on this machine, each a distspace daemon with a home of its own")
    alice.start([])
    bob.start(alice.addrs)
    ada.start([*alice.addrs, *bob.addrs])
    for peer in everyone:
        until(f"{peer.name} connected to both others", lambda peer: len(peer.call("node.peers")["peers"]) == 2, peer)
        names[peer.peer_id] = peer
        show.done(f"{peer.label:<14} peer {_short(peer.peer_id)}  on {peer.addrs[0].split('/p2p/')[0]}")

    show.step("Alice creates a private space and invites Bob and Ada, each with a one-time ticket")
    space = alice.call("space.create", name=SPACE_NAME)["space_id"]
    show.done(f"alice created {SPACE_NAME!r}, private: {space}")
    for peer in (bob, ada):
        ticket = alice.call("space.invite", space=space, role="write", uses=1)["ticket"]
        role = peer.call("space.join", ticket=ticket)["member"]["role"]
        show.done(f"{peer.name} joined by a ticket ({len(ticket)} characters) as a {role} member")
    for peer in (bob, ada):
        until(f"{peer.name} syncing the space", lambda peer: any(space in p["spaces"] for p in peer.call("node.peers")["peers"]), peer)
    for peer in everyone:
        peer.call("subscribe.tree", space=space)

    show.step("Alice writes greet.py; then all three edit it at the same moment, and each adds a file")
    alice.call("fs.write", space=space, path="greet.py", text=BASE, parents=False, message="alice: first greet.py")
    for peer in (bob, ada):
        until(f"{peer.name} received greet.py", lambda peer: _text(snapshot(peer, space), "greet.py") == BASE, peer)

    def alice_edits() -> None:
        edit_at(alice, space, "greet.py", '"Hello, "', '"Hi, "', replace=True)
        alice.call("fs.write", space=space, path="README.md", text="# greeter\n\nSays hello.\n", parents=False)

    def bob_edits() -> None:
        edit_at(bob, space, "greet.py", "return ", '"""Greet someone by name."""\n    ')
        bob.call("fs.write", space=space, path="tests/test_greet.py", text=TEST, parents=True)

    def ada_edits() -> None:
        edit_at(ada, space, "greet.py", "(name):", "(name: str) -> str:", replace=True)
        ada.call("fs.write", space=space, path="CHANGELOG.md", text="- greet: type hints (ada)\n", parents=False)

    at_once([alice_edits, bob_edits, ada_edits])
    _wait_converged(everyone, space, "the three edits merged on every peer")
    show.done("merged everywhere: " + ", ".join(sorted(snapshot(alice, space)["files"])))

    show.step("Bob goes offline; all three keep editing, apart")
    bob.stop()
    show.done("bob's daemon stopped")
    edit_at(ada, space, "greet.py", '"world"', '"Dist-Space"', replace=True)
    alice.call("fs.write", space=space, path="README.md", text=text_of(alice, space, "README.md") + "\nRun: python greet.py\n", parents=False)
    show.done("online: ada changed the greeting's target, alice extended README.md")
    offline_text = bob.offline("cat", "greet.py").decode()
    bob.offline("write", "greet.py", "-m", "bob: farewell, offline", input=offline_text.replace("\n\n\nif", FAREWELL + "\n\n\nif").encode())
    bob.offline("write", "TODO.md", input=b"- say goodbye in more languages\n")
    show.done("offline: bob added farewell() and TODO.md with distspace write, on his store alone")
    theirs = {entry["change"] for entry in alice.call("history.log", space=space, limit=HISTORY_LIMIT)["entries"]}
    his = {entry["change"] for entry in json.loads(bob.offline("--json", "log", "-n", str(HISTORY_LIMIT)))["entries"]}
    show.done(f"apart: bob lacks {len(theirs - his)} of the others' changes, and they lack {len(his - theirs)} of his")

    show.step("Bob comes back and catches up; alice and ada receive his offline work")
    bob.start([*alice.addrs, *ada.addrs])
    bob.call("subscribe.tree", space=space)
    _wait_converged(everyone, space, "bob caught up and everyone has his offline edits")
    show.done("all three hold the same changes again")

    show.step("Converged: the same history, the same files at the same heads, every signature valid")
    states = {peer.name: snapshot(peer, space) for peer in everyone}
    verified = {peer.name: peer.call("node.verify")["ok"] for peer in everyone}
    if not all(verified.values()):
        raise DemoFailed(f"node.verify found problems on {', '.join(n for n, ok in verified.items() if not ok)}")
    _print_peers(show.console, everyone, states, verified)
    merged = states["alice"]["files"]["greet.py"]["text"]
    show.console.print(Syntax(merged, "python", line_numbers=True, theme="ansi_dark", background_color="default"))

    show.step("The signed history: who changed what, and when (newest first)")
    history = alice.call("history.log", space=space, limit=HISTORY_LIMIT)["entries"]
    _print_history(show.console, history, names)
    wall_s = round(time.monotonic() - show.started, 2)
    show.console.print(f"\n[bold green]done[/] in {wall_s:.1f} s; the daemons are stopping and their homes go with them")
    return {
        "converged": True,
        "space_id": space,
        "wall_s": wall_s,
        "peers": [
            {
                "name": peer.name,
                "kind": peer.kind,
                "peer_id": peer.peer_id,
                "verified": verified[peer.name],
                **{key: states[peer.name][key] for key in ("version", "changes", "history_sha256")},
            }
            for peer in everyone
        ],
        "files": {path: file["text"] for path, file in states["alice"]["files"].items()},
        "history": [{**entry, "name": names[entry["author"]].name, "kind": names[entry["author"]].kind} for entry in history],
    }


def _wait_converged(peers: list[Peer], space: str, what: str) -> None:
    until(what, lambda _watched: same([snapshot(peer, space) for peer in peers]), peers[1])


def _print_peers(console: Console, peers: list[Peer], states: dict[str, Json], verified: dict[str, bool]) -> None:
    table = Table("peer", "kind", "peer id", "local version", "changes", "history digest", "files", "signatures", box=box.SIMPLE_HEAD)
    for peer in peers:
        state = states[peer.name]
        table.add_row(
            peer.name,
            peer.kind,
            _short(peer.peer_id),
            str(state["version"]),
            str(state["changes"]),
            state["history_sha256"][:16],
            str(len(state["files"])),
            "valid" if verified[peer.name] else "PROBLEMS",
        )
    console.print(table)


def _print_history(console: Console, history: list[Json], names: dict[str, Peer]) -> None:
    table = Table("version", "time", "who", "peer id", "change", "message", "paths", box=box.SIMPLE_HEAD)
    for entry in history:
        author = names[entry["author"]]
        moment = time.strftime("%H:%M:%S", time.localtime(entry["time_ms"] / 1000))  # changes keep whole seconds
        table.add_row(
            str(entry["version"]),
            moment,
            author.label,
            _short(entry["author"]),
            entry["change"][:8],
            entry["message"] or "",
            " ".join(entry["paths"]),
        )
    console.print(table)


def _short(peer_id: str) -> str:
    return "…" + render.short_peer(peer_id)
