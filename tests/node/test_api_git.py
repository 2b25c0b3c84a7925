"""fs.batch and git.import / git.promote / git.log on real daemons (node/api_git.py).

Two daemons share an open space; Alice imports a repository into it through her API, both edit,
they converge, and the promoted commit is checked with the git CLI: fsck clean, and its diff
against the imported commit is exactly the two edits.
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pygit2
import pytest

from api_helpers import ApiConnection, Daemon, connect, daemon_with_a_space, own_directory
from e2e_helpers import Client, addr, client, create_space, daemon, join
from node.api_scopes import OUT_OF_SCOPE
from node.rpc import INVALID_PARAMS, RpcError

FILES = {
    "README.md": (b"# demo\n\nfirst line\nsecond line\n", pygit2.enums.FileMode.BLOB),
    "src/main.py": (b"def main():\n    return 1\n", pygit2.enums.FileMode.BLOB),
    "tools/run.sh": (b"#!/bin/sh\nexec python -m src.main\n", pygit2.enums.FileMode.BLOB_EXECUTABLE),
    "data/blob.bin": (bytes(range(256)), pygit2.enums.FileMode.BLOB),
}


def make_repository(path: Path) -> tuple[pygit2.Repository, str]:
    repository = pygit2.init_repository(str(path), initial_head="main")
    index = pygit2.Index()
    for name, (data, mode) in FILES.items():
        index.add(pygit2.IndexEntry(name, repository.create_blob(data), mode))
    signature = pygit2.Signature("Ada Lovelace", "ada@example.com", 1_700_000_000, 0)
    commit = repository.create_commit("refs/heads/main", signature, signature, "demo project", index.write_tree(repository), [])
    return repository, str(commit)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


async def error_of(api: ApiConnection, method: str, **params: object) -> RpcError:
    with pytest.raises(RpcError) as caught:
        await api.call(method, **params)
    return caught.value


# ----- fs.batch, on one daemon -----


@pytest.fixture(scope="module")
def one(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with daemon_with_a_space(tmp_path_factory, "batch") as running:
        yield running


@pytest.fixture
async def api(one: Daemon) -> AsyncIterator[ApiConnection]:
    async with connect(one, "unix") as connection:
        yield connection


async def test_fs_batch_writes_many_paths_and_refuses_as_one(api: ApiConnection, request: pytest.FixtureRequest) -> None:
    root = own_directory(request)
    await api.call("fs.write", path=f"{root}/old.txt", text="old", parents=True)
    result = await api.call(
        "fs.batch",
        ops=[
            {"op": "create", "path": f"{root}/a/one.txt", "text": "one\n"},
            {"op": "write", "path": f"{root}/bin.dat", "base64": base64.b64encode(b"\x00\x01").decode(), "executable": True},
            {"op": "delete", "path": f"{root}/old.txt"},
            {"op": "mkdir", "path": f"{root}/empty"},
        ],
        message="many at once",
    )
    assert sorted(file["path"] for file in result["files"]) == [f"{root}/a/one.txt", f"{root}/bin.dat"]
    assert result["changes"] == 3  # two content docs and the tree
    for file in result["files"]:
        assert file["heads"] == (await api.call("fs.stat", path=file["path"]))["heads"]
    listing = await api.call("fs.ls", path=root)
    assert [entry["path"] for entry in listing["entries"]] == [f"{root}/a", f"{root}/bin.dat", f"{root}/empty"]
    version = (await api.call("node.status"))["spaces"][0]["version"]
    refused = await error_of(api, "fs.batch", ops=[{"op": "create", "path": f"{root}/b.txt", "text": "b"}, {"op": "create", "path": f"{root}/a/one.txt", "text": "again"}])
    assert (refused.code, refused.name) == (1006, "AlreadyExists")
    for bad in (
        [{"op": "create", "path": f"{root}/c.txt"}],  # no content
        [{"op": "mode", "path": f"{root}/bin.dat"}],  # no bit
        [{"op": "delete", "path": f"{root}/a", "text": "x"}],  # content where none belongs
        [{"op": "chmod", "path": f"{root}/bin.dat"}],  # the schema's enum
    ):
        assert (await error_of(api, "fs.batch", ops=bad)).code == INVALID_PARAMS
    assert (await api.call("node.status"))["spaces"][0]["version"] == version
    assert not [e for e in (await api.call("fs.ls", path=root))["entries"] if e["path"].endswith(("b.txt", "c.txt"))]


async def test_a_scoped_token_batches_inside_its_scope_only(one: Daemon, api: ApiConnection, request: pytest.FixtureRequest) -> None:
    root = own_directory(request)
    await api.call("fs.mkdir", path=root)
    token = (await api.call("token.create", role="write", paths=[f"{root}/*"]))["token"]
    async with connect(one, "unix", token=token) as agent:
        await agent.call("fs.batch", ops=[{"op": "create", "path": f"{root}/in/x.txt", "text": "x"}])
        outside = await error_of(agent, "fs.batch", ops=[{"op": "create", "path": f"{root}/y.txt", "text": "y"}, {"op": "create", "path": "elsewhere.txt", "text": "no"}])
        assert outside.code == OUT_OF_SCOPE and "elsewhere.txt" in outside.message
        needs_full = await error_of(agent, "git.import", repo="/nowhere")
        assert needs_full.code == OUT_OF_SCOPE and "full token" in needs_full.message
        await agent.call("git.log")  # a read


# ----- git, on two daemons -----


async def test_import_edit_on_two_daemons_then_promote(tmp_path: Path) -> None:
    _, imported = make_repository(tmp_path / "repo")
    repo_dir = tmp_path / "repo"
    homes = {name: tmp_path / name for name in ("alice", "bob")}
    team = create_space(homes["alice"], "team")
    join(homes["bob"], team)
    with daemon(homes["alice"]) as alice_d, daemon(homes["bob"], "--peer", addr(alice_d)) as bob_d:
        async with client(alice_d) as alice, client(bob_d) as bob:
            result = await alice.api.call("git.import", repo=str(repo_dir), space="team")
            assert (result["created"], result["commit"], result["imports"][0]["added"]) == (False, imported, 4)
            await bob.until(lambda: _has(bob, "src/main.py", "def main():\n    return 1\n"))
            await alice.splice("README.md", len("# demo\n\n"), "alice was here\n")
            await bob.api.call("fs.write", path="src/main.py", text="def main():\n    return 2\n")
            for each in (alice, bob):
                await each.until(lambda each=each: _converged(each))
            version = (await alice.api.call("git.log"))["version"]
            first = await alice.api.call("git.promote", version=version, branch="session")
            again = await alice.api.call("git.promote", version=version, branch="session")
            assert first["commit"] == again["commit"] and first["parent"] == imported and first["ref"] == "refs/distspace/session"
            assert first["repo"] == str(repo_dir)
            log = (await alice.api.call("git.log"))["links"]
            assert [(link["kind"], link["commit"]) for link in log] == [("promote", first["commit"]), ("import", imported)]
            await _bad_input_changes_nothing(alice, repo_dir, tmp_path)
    check_promoted(repo_dir, imported, first["commit"])


def check_promoted(repo_dir: Path, imported: str, promoted: str) -> None:
    """With the git CLI: the repository is sound, and the promoted commit is the import plus exactly the two edits."""
    fsck = subprocess.run(["git", "-C", str(repo_dir), "fsck", "--strict", "--no-dangling"], capture_output=True, text=True)
    assert fsck.returncode == 0 and not fsck.stdout.strip(), fsck
    assert git(repo_dir, "diff", "--name-only", imported, promoted).split() == ["README.md", "src/main.py"]
    diff = git(repo_dir, "diff", "--unified=0", imported, promoted)
    assert [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")] == ["+alice was here", "-    return 1", "+    return 2"]
    assert git(repo_dir, "ls-tree", promoted, "tools/run.sh").startswith("100755 ")
    assert git(repo_dir, "rev-parse", "refs/distspace/session").strip() == promoted


async def _bad_input_changes_nothing(alice: Client, repo_dir: Path, tmp_path: Path) -> None:
    before = await alice.api.call("git.log")
    refs = git(repo_dir, "for-each-ref")
    cases = [
        ("git.import", {"repo": str(repo_dir), "ref": "no-such-branch", "space": "team"}, 1042, "UnknownRef"),
        ("git.import", {"repo": str(tmp_path), "space": "team"}, 1041, "NotARepository"),
        ("git.promote", {"version": before["version"] + 100, "branch": "x"}, 1005, "UnknownVersion"),
        ("git.promote", {"branch": "main", "repo": str(tmp_path / "nope")}, 1041, "NotARepository"),
        ("git.import", {"repo": "relative/path"}, INVALID_PARAMS, "InvalidParams"),
    ]
    for method, params, code, name in cases:
        error = await error_of(alice.api, method, **params)
        assert (error.code, error.name) == (code, name), (method, params, error)
    assert await alice.api.call("git.log") == before and git(repo_dir, "for-each-ref") == refs


async def _has(each: Client, path: str, text: str) -> bool:
    return await each.read(path) == text


async def _converged(each: Client) -> bool:
    readme, main = await each.read("README.md"), await each.read("src/main.py")
    return readme is not None and "alice was here" in readme and main == "def main():\n    return 2\n"
