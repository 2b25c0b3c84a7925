"""Daemons that mirror a space into folders, and the tests' ways of looking at them.

A ``Side`` is one daemon (``distspace up --folder DIR``, a process of its own, started by
``e2e_helpers.daemon`` so its log is checked for error lines on the way out) with its folder
and a blocking API connection. The mirror tests compare four views of the same tree: each
folder on disk and each daemon's store through the API; ``wait_converged`` polls them, with a
bounded deadline, until they agree (disk changes send no notification, so a wait on disk is a
poll; a failure says what was last seen).

Programs that write into a folder (a slow writer, a churning writer for the crash trials) run
as processes of their own: ``run_standalone`` starts a function of this module that imports
only the standard library, from its source, so it costs no import of the node's code.
"""

from __future__ import annotations

import base64
import inspect
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from api_helpers import Daemon
from e2e_helpers import addr, create_space, daemon, join
from node.api_client import ApiClient
from node.api_schema import schema
from node.rpc import RpcError

# A save in one folder reaches the other through debounce, ingest, sync and an atomic write:
# well under a second on an idle machine; this bounds a loaded 2-core one (and a restart).
MIRROR_TIMEOUT_S = 40.0
POLL_S = 0.02
# The mirror's own temp files (node/mirror.py): never in the space, never left behind.
MIRROR_TEMP_PREFIX = ".distspace-tmp-"
# Never synced, in either direction, at any depth.
GIT_DIR = ".git"

T = TypeVar("T")


@dataclass
class Tree:
    """One view of a tree: files (path -> bytes; None while a file's content is not here yet)
    and directories, paths relative to the root the view was taken from."""

    files: dict[str, bytes | None] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)


@dataclass
class Side:
    """One daemon mirroring the space into ``folder``, with an API connection to it."""

    name: str
    home: Path
    folder: Path
    daemon: Daemon
    api: ApiClient

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """A call whose result must match node/api_schema.json."""
        result = self.api.call(method, **params)
        schema().check_result(method, result)
        return result

    def disk(self, under: str = "") -> Tree:
        return disk_tree(self.folder / under)

    def space(self, under: str = "") -> Tree:
        return space_tree(self, under)

    def put(self, path: str, content: bytes | str) -> None:
        """Write through the API (parents created): text for str, base64 for bytes."""
        if isinstance(content, str):
            self.call("fs.write", path=path, text=content, parents=True)
        else:
            self.call("fs.write", path=path, base64=base64.b64encode(content).decode(), parents=True)

    def stat(self, path: str) -> dict[str, Any] | None:
        try:
            return self.call("fs.stat", path=path)
        except RpcError:
            return None

    def reconnect(self, running: Daemon) -> None:
        """After a restart: the new process and a connection to it."""
        self.api.close()
        self.daemon = running
        self.api = connect_api(running)


def connect_api(running: Daemon) -> ApiClient:
    return ApiClient.connect(Path(running.ready["api"]["unix"]), running.token, timeout=MIRROR_TIMEOUT_S)


def disk_tree(root: Path) -> Tree:
    """Every file and directory under ``root`` except ``.git`` (at any depth). A file that
    vanishes while it is read is left out (a poll looks again)."""
    tree = Tree()
    if not root.is_dir():
        return tree
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != GIT_DIR)
        here = Path(directory).relative_to(root).as_posix()
        prefix = "" if here == "." else f"{here}/"
        tree.dirs.update(prefix + d for d in dirs)
        for name in files:
            try:
                tree.files[prefix + name] = (Path(directory) / name).read_bytes()
            except FileNotFoundError:
                continue
    return tree


def space_tree(side: Side, under: str = "") -> Tree:
    """The store's tree under ``under`` (recursively), through fs.ls and fs.read."""
    tree = Tree()
    pending = [under]
    while pending:
        directory = pending.pop()
        try:
            entries = side.call("fs.ls", path=directory)["entries"]
        except RpcError:  # not there (yet), or removed while listed
            continue
        for entry in entries:
            relative = entry["path"][len(under) :].lstrip("/") if under else entry["path"]
            if entry["kind"] == "dir":
                tree.dirs.add(relative)
                pending.append(entry["path"])
                continue
            try:
                read = side.call("fs.read", path=entry["path"])
            except RpcError:
                tree.files[relative] = None
                continue
            if read.get("pending"):
                tree.files[relative] = None
            elif read["encoding"] == "text":
                tree.files[relative] = read["text"].encode()
            else:
                tree.files[relative] = base64.b64decode(read["base64"])
    return tree


def wait_for(observe: Callable[[], T], holds: Callable[[T], bool], what: str, timeout_s: float = MIRROR_TIMEOUT_S) -> T:
    """Poll ``observe`` until ``holds`` of it, at most ``timeout_s``; the last observation is
    returned, or shown in the AssertionError."""
    deadline = time.monotonic() + timeout_s
    while True:
        seen = observe()
        if holds(seen):
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f} s: {what}; last seen: {_short(seen)}")
        time.sleep(POLL_S)  # noqa: sleep — polls folders and daemons in other processes, bounded by the deadline above


def wait_file(side: Side, path: str, content: bytes | None, timeout_s: float = MIRROR_TIMEOUT_S) -> None:
    """Until ``path`` in the side's folder holds ``content`` (None: until it is gone)."""
    target = side.folder / path

    def read() -> bytes | None:
        try:
            return target.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return None

    wait_for(read, lambda seen: seen == content, f"{side.name}'s {path} == {_short(content)}", timeout_s)


def wait_converged(
    sides: list[Side],
    under: str = "",
    *,
    expected: dict[str, bytes] | None = None,
    local_only: dict[str, set[str]] | None = None,
    dirs: bool = False,
    expected_dirs: set[str] | None = None,
    timeout_s: float = MIRROR_TIMEOUT_S,
) -> dict[str, bytes]:
    """Until every side's folder and store hold the same files under ``under`` (and the same
    ``expected`` ones, when given), none of them a mirror temp file; returns those files.

    Args:
        local_only: per side name, paths (relative to ``under``) that are on that side's disk
            and must stay there only: left out of its disk view, and never in any store.
        dirs: compare the directories too; expected_dirs: and these are they.
    """
    local_only = local_only or {}

    def observe() -> dict[str, Tree]:
        views: dict[str, Tree] = {}
        for side in sides:
            disk = side.disk(under)
            for path in local_only.get(side.name, set()):
                disk.files.pop(path, None)
            views[f"{side.name} disk"] = disk
            views[f"{side.name} space"] = side.space(under)
        return views

    def agree(views: dict[str, Tree]) -> bool:
        first = next(iter(views.values()))
        if expected is not None and first.files != expected:
            return False
        if any(view.files != first.files for view in views.values()):
            return False
        if expected_dirs is not None and first.dirs != expected_dirs:
            return False
        return not (dirs or expected_dirs is not None) or all(view.dirs == first.dirs for view in views.values())

    what = f"folders and stores agree under {under or '/'}" + (f" on {_short(expected)}" if expected is not None else "")
    what += f", directories {sorted(expected_dirs)}" if expected_dirs is not None else ""
    views = wait_for(observe, agree, what, timeout_s)
    files = next(iter(views.values())).files
    for name, view in views.items():
        temps = [p for p in view.files if Path(p).name.startswith(MIRROR_TEMP_PREFIX)]
        assert not temps, f"mirror temp files in {name}: {temps}"
    for name, paths in local_only.items():
        for view_name, view in views.items():
            leaked = sorted(paths & set(view.files))
            assert not leaked or view_name == f"{name} disk", f"{name}'s local-only {leaked} in {view_name}"
    return {path: content for path, content in files.items() if content is not None}


def assert_heads_agree(sides: list[Side], under: str = "") -> None:
    """Every file under ``under`` has the same doc heads in every store (the stores agree,
    not only the texts)."""

    def heads(side: Side) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        pending = [under]
        while pending:
            try:
                entries = side.call("fs.ls", path=pending.pop())["entries"]
            except RpcError:  # not there (yet): no files, as space_tree sees it
                continue
            for entry in entries:
                if entry["kind"] == "dir":
                    pending.append(entry["path"])
                else:
                    found[entry["path"]] = sorted(entry["heads"])
        return found

    wait_for(lambda: [heads(side) for side in sides], lambda seen: all(h == seen[0] for h in seen), "every file's heads agree")


@contextmanager
def mirrored_pair(root: Path, prepare: Callable[[Path], None] | None = None) -> Iterator[tuple[Side, Side]]:
    """Alice and Bob, two daemons on one space, each mirroring it into a folder of its own;
    Bob dials Alice. ``prepare`` fills Alice's folder before her daemon starts (its first scan
    takes it in)."""
    homes = {name: root / name / "home" for name in ("alice", "bob")}
    folders = {name: root / name / "folder" for name in homes}
    for folder in folders.values():
        folder.mkdir(parents=True)
    team = create_space(homes["alice"])
    join(homes["bob"], team)
    if prepare is not None:
        prepare(folders["alice"])
    with ExitStack() as stack:
        alice_d = stack.enter_context(daemon(homes["alice"], "--folder", str(folders["alice"])))
        bob_d = stack.enter_context(daemon(homes["bob"], "--peer", addr(alice_d), "--folder", str(folders["bob"])))
        sides = []
        for name, running in (("alice", alice_d), ("bob", bob_d)):
            api = stack.enter_context(connect_api(running))
            sides.append(Side(name, homes[name], folders[name], running, api))
        yield sides[0], sides[1]


def run_standalone(
    function: Callable[..., None], *args: str, helpers: tuple[Callable[..., Any], ...] = (), **popen: Any
) -> subprocess.Popen[bytes]:
    """``function(*args)`` in a new Python process, from its source and its ``helpers``'
    (they must import what they need themselves, from the standard library)."""
    sources = [inspect.getsource(each) for each in (*helpers, function)]
    source = "\n".join(sources) + f"\n{function.__name__}(*__import__('sys').argv[1:])\n"
    return subprocess.Popen([sys.executable, "-c", source, *args], **popen)


def slow_writer(path: str, head: str, lines: str, pause_s: str) -> None:
    """Rewrite ``path`` as ``head`` plus ``lines`` numbered lines, one write(2) per line and a
    pause between them, like a program streaming its output into a file; prints the number
    of lines written after each (so a test can act at a point of the write)."""
    import sys
    import time

    with open(path, "w") as out:
        out.write(head)
        out.flush()
        for i in range(int(lines)):
            out.write(f"A line {i}\n")
            out.flush()
            print(i + 1, flush=True)
            time.sleep(float(pause_s))  # noqa: sleep — the writer's pace between writes
    sys.stdout.close()


def block(name: str, version: str, size_bytes: int) -> bytes:
    """A self-checking file content: a header naming its length, filler lines, an end line.
    Any cut of it (a half-written file) fails ``complete_blocks``. The filler does not depend
    on the version, so one version of a file differs from the next in a few lines (the
    store's history stays small over many trials)."""
    head = f"BEGIN {name} v{version} "
    end = f"END {name} v{version}\n"
    filler_lines = max(0, (size_bytes - len(head) - len(end) - 12) // 32)
    body = "".join(f"{name[:12]:>12} {i:>8} .........."[:31] + "\n" for i in range(filler_lines))
    text = body + end
    return f"{head}{len(text):>10}\n{text}".encode()


def complete_blocks(content: bytes) -> bool:
    """Whether ``content`` is one or more whole ``block``s (appends add whole blocks)."""
    if not content:
        return False
    rest = content
    while rest:
        header, newline, after = rest.partition(b"\n")
        parts = header.split()
        if not newline or len(parts) != 4 or parts[0] != b"BEGIN" or not parts[3].isdigit():
            return False
        length = int(parts[3])
        text, rest = after[:length], after[length:]
        if len(text) != length or not text.endswith(b"END " + parts[1] + b" " + parts[2] + b"\n"):
            return False
    return True


def churn_writer(root: str, seed: str, stop_file: str) -> None:
    """Heavy writes into ``root`` until ``stop_file`` exists: whole-block files written in
    chunks (a reader sees partial files), saves by temp file and rename, appends of a block,
    renames and deletes, in two directories. Every operation completes before it checks for
    the stop, so once it exits every file is a sequence of whole blocks."""
    import os
    import random
    import time

    rng = random.Random(int(seed))
    names = [f"f{i}.txt" for i in range(6)] + [f"sub/g{i}.txt" for i in range(4)]
    os.makedirs(os.path.join(root, "sub"), exist_ok=True)
    versions = iter(range(1, 1 << 30))

    def content(name: str) -> bytes:
        return block(os.path.basename(name), f"w{seed}.{next(versions)}", rng.randrange(2_000, 24_000))  # block: sent with it

    def write_in_chunks(path: str, data: bytes, mode: str) -> None:
        with open(path, mode) as out:
            for start in range(0, len(data), 4096):
                out.write(data[start : start + 4096])
                out.flush()

    while not os.path.exists(stop_file):
        name = rng.choice(names)
        path = os.path.join(root, name)
        op = rng.random()
        if op < 0.35 or not os.path.exists(path):
            write_in_chunks(path, content(name), "wb")
        elif op < 0.55:
            temp = os.path.join(os.path.dirname(path), f".{os.path.basename(name)}.save{rng.randrange(1 << 30)}")
            write_in_chunks(temp, content(name), "wb")
            os.replace(temp, path)
        elif op < 0.7:
            write_in_chunks(path, content(name), "ab")
        elif op < 0.85:
            os.replace(path, os.path.join(root, rng.choice(names)))
        else:
            os.remove(path)
        time.sleep(0.01)  # noqa: sleep — a burst of writes, not a flood: the trial is about the kill


def _short(value: Any, limit: int = 1500) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"
