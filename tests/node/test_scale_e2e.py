"""A fresh peer fetches big spaces over real daemons (issue 16's scale half).

Alice's daemon imports a git repository into a private space (git.import, in bulk) and invites;
Bob's daemon starts on an empty home and joins by the ticket alone. The test polls Bob's API,
under a deadline, until Bob holds as many docs and changes as Alice; then Bob's whole tree — every
path with its size and heads — must be Alice's, its files exactly the commit's (less what the
import skipped), and a sample of the contents must read the same on both.

Two spaces: a generated repository of ``FILES`` files (over the 10,000 at which one Hello no
longer fitted a frame), and this project's own repository with ``HISTORY`` commits replayed.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import trio

from api_helpers import ApiConnection, connect
from e2e_helpers import daemon
from node.home import NodeHome
from test_api_git import generated_repository

FILES = 20_000
HISTORY = 3  # commits of the project's own history replayed
SAMPLE = 200  # files whose contents are read on both daemons
# Each of the 20,000-file import and fetch, on the shared 2-core machine: the fetch took 73-127 s
# at load averages of 4-6 (benchmarks/scale.py measures it), the whole test ~5 min.
FETCH_TIMEOUT_S = 360.0
POLL_S = 0.5
PROJECT = Path(__file__).resolve().parents[2]


async def test_a_fresh_peer_fetches_twenty_thousand_files(tmp_path: Path) -> None:
    commit = generated_repository(tmp_path / "repo", FILES)
    await _fetched_by_a_fresh_peer(tmp_path, tmp_path / "repo", commit, history=1)


async def test_a_fresh_peer_fetches_the_projects_own_repository(tmp_path: Path) -> None:
    head = (await trio.run_process(["git", "-C", str(PROJECT), "rev-parse", "HEAD"], capture_stdout=True)).stdout.decode().strip()
    counted = await trio.run_process(["git", "-C", str(PROJECT), "rev-list", "--count", "--first-parent", "HEAD"], capture_stdout=True)
    await _fetched_by_a_fresh_peer(tmp_path, PROJECT, head, history=min(HISTORY, int(counted.stdout)))  # a shallow clone has fewer


async def _fetched_by_a_fresh_peer(tmp_path: Path, repo: Path, commit: str, *, history: int) -> None:
    alice_home, bob_home = tmp_path / "alice", tmp_path / "bob"
    for home in (alice_home, bob_home):
        NodeHome(home).ensure()
    tree = await _commit_files(repo, commit)
    with daemon(alice_home) as alice_d, daemon(bob_home) as bob_d:
        async with connect(alice_d, "unix") as alice, connect(bob_d, "unix") as bob:
            imported = await _import(alice, repo, history)
            assert imported["commit"] == commit and len(imported["imports"]) == history
            skipped = {path for each in imported["imports"] for path in each["skipped"]}
            ticket = (await alice.call("space.invite", space="big", role="read"))["ticket"]
            space = (await bob.call("space.join", ticket=ticket))["space_id"]
            want = await _counts(alice, space)
            assert want[0] > len(tree) - len(skipped)  # every file's doc, and the tree's
            await _until_counts(bob, space, want)
            theirs, ours = await _listing(alice, space), await _listing(bob, space)
            assert ours == theirs
            files = sorted(path for path, entry in ours.items() if entry["kind"] == "file")
            assert files == sorted(tree - skipped)
            assert all(ours[path]["size"] is not None for path in files)  # contents here, not only the tree
            for path in files[:: max(1, len(files) // SAMPLE)]:
                assert await _read(bob, space, path) == await _read(alice, space, path), path


async def _commit_files(repo: Path, commit: str) -> set[str]:
    """Every path git lists in the commit's tree (files, symlinks and submodules)."""
    listed = await trio.run_process(["git", "-C", str(repo), "ls-tree", "-r", "-z", "--name-only", commit], capture_stdout=True)
    return {path for path in listed.stdout.decode().split("\0") if path}


async def _import(api: ApiConnection, repo: Path, history: int) -> dict[str, Any]:
    """git.import with progress: each step's notification arrives well inside a step's
    timeout, where the whole import of 20,000 files would not."""
    params = {"repo": str(repo), "space": "big", "history": history, "progress": True}
    await api.send({"jsonrpc": "2.0", "id": 1, "method": "git.import", "params": params})
    with trio.fail_after(FETCH_TIMEOUT_S):
        while "id" not in (message := await api.receive()):
            assert message["method"] == "call.progress", message
    assert "result" in message, message
    result: dict[str, Any] = message["result"]
    return result


async def _counts(api: ApiConnection, space: str) -> tuple[int, int]:
    """(docs, changes) of the space on that daemon; (0, 0) before it holds the space."""
    for each in (await api.call("node.stats"))["spaces"]:
        if each["space_id"] == space:
            return each["docs"], each["changes"]
    return 0, 0


async def _until_counts(api: ApiConnection, space: str, want: tuple[int, int]) -> None:
    """A bounded poll of another process's store: a fetch sends its API no notification."""
    with trio.fail_after(FETCH_TIMEOUT_S):
        for _ in itertools.count():
            if await _counts(api, space) == want:
                return
            await trio.sleep(POLL_S)  # noqa: sleep — a bounded poll of another process's store


async def _listing(api: ApiConnection, space: str) -> dict[str, dict[str, Any]]:
    """Every path of the space's tree and its stat (a walk of fs.ls)."""
    found: dict[str, dict[str, Any]] = {}
    pending = [""]
    while pending:
        for entry in (await api.call("fs.ls", space=space, path=pending.pop()))["entries"]:
            found[entry["path"]] = entry
            if entry["kind"] == "dir":
                pending.append(entry["path"])
    return found


async def _read(api: ApiConnection, space: str, path: str) -> Any:
    result = await api.call("fs.read", space=space, path=path)
    return result.get("text", result.get("base64"))
