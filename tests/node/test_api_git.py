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
from node import api_git
from node.api_methods import Call, dispatch
from node.api_scopes import OUT_OF_SCOPE
from node.home import NodeHome
from node.rpc import INVALID_PARAMS, RpcError
from node.services import NodeServices
from protocol.identity import Identity
from store.batch import BATCH_DOCS_PER_STEP
from store.repo import Repo

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


async def test_fs_batch_sets_and_shows_the_executable_bit(api: ApiConnection, request: pytest.FixtureRequest) -> None:
    root = own_directory(request)
    await api.call("fs.batch", ops=[{"op": "create", "path": f"{root}/run.sh", "text": "#!/bin/sh\n"}, {"op": "create", "path": f"{root}/plain.txt", "text": "x"}])
    assert (await api.call("fs.stat", path=f"{root}/run.sh"))["executable"] is False
    await api.call("fs.batch", ops=[{"op": "mode", "path": f"{root}/run.sh", "executable": True}])
    assert (await api.call("fs.stat", path=f"{root}/run.sh"))["executable"] is True
    listing = (await api.call("fs.ls", path=root))["entries"]
    assert [(entry["path"], entry["executable"]) for entry in listing] == [(f"{root}/plain.txt", False), (f"{root}/run.sh", True)]
    assert (await api.call("fs.stat", path=root))["executable"] is False  # a directory
    await api.call("fs.batch", ops=[{"op": "mode", "path": f"{root}/run.sh", "executable": False}])
    assert (await api.call("fs.stat", path=f"{root}/run.sh"))["executable"] is False


async def test_fs_batch_budgets_refuse_before_any_work(api: ApiConnection, request: pytest.FixtureRequest) -> None:
    root = own_directory(request)
    version = (await api.call("node.status"))["spaces"][0]["version"]
    too_many = await error_of(api, "fs.batch", ops=[{"op": "mkdir", "path": f"{root}/d{i}"} for i in range(api_git.MAX_BATCH_OPS + 1)])
    assert too_many.code == INVALID_PARAMS and "params.ops" in too_many.message
    deep = "/".join(["d"] * 1_400)  # one path through 1,400 directories, well inside a path's 3 KB
    too_deep = await error_of(api, "fs.batch", ops=[{"op": "mkdir", "path": f"{root}/{i}/{deep}"} for i in range(api_git.MAX_BATCH_DIRS // 1_400 + 1)])
    assert too_deep.code == INVALID_PARAMS and f"params.ops[{api_git.MAX_BATCH_DIRS // 1_400}].path" in too_deep.message, too_deep.message
    assert (await api.call("node.status"))["spaces"][0]["version"] == version


def test_fs_batch_content_budget(tmp_path: Path) -> None:
    """MAX_BATCH_BYTES binds a command on the store too, where no message limit does."""
    home = NodeHome(tmp_path / "home")
    home.ensure()
    identity = Identity(bytes([0xB7]) * 32)
    with Repo.open(home.database, identity) as repo:
        services = NodeServices(home, home.config(), identity, repo)
        call = Call(services)
        dispatch(call, "space.create", {"name": "main", "public": True})
        half = api_git.MAX_BATCH_BYTES // 2
        ops = [{"op": "create", "path": "a.bin", "base64": base64.b64encode(bytes(half)).decode()}, {"op": "create", "path": "b.txt", "text": "é" * (half // 2 + 1)}]
        with pytest.raises(RpcError) as caught:
            dispatch(call, "fs.batch", {"ops": ops})
        assert caught.value.code == INVALID_PARAMS and "params.ops[1]" in caught.value.message and str(api_git.MAX_BATCH_BYTES) in caught.value.message
        assert dispatch(call, "fs.ls", {"path": ""})["entries"] == []
        services.close()


def generated_repository(path: Path, files: int) -> str:
    repository = pygit2.init_repository(str(path), initial_head="main")
    index = pygit2.Index()
    for number in range(files):
        index.add(pygit2.IndexEntry(f"pkg{number % 20}/f{number}.py", repository.create_blob(f"# {number}\n".encode() + b"x = 1\n" * 200), pygit2.enums.FileMode.BLOB))
    signature = pygit2.Signature("Ada Lovelace", "ada@example.com", 1_700_000_000, 0)
    return str(repository.create_commit("refs/heads/main", signature, signature, "generated", index.write_tree(repository), []))


async def test_an_import_in_steps_leaves_the_daemon_serving_others(one: Daemon, tmp_path: Path) -> None:
    """Another client is answered between the import's steps: its listing of the space, asked
    once the import has begun, is from before the import (the tree moves at the last step)."""
    files = 3 * BATCH_DOCS_PER_STEP
    commit = generated_repository(tmp_path / "big", files)
    async with connect(one, "unix") as importer, connect(one, "unix") as other:
        await importer.send({"jsonrpc": "2.0", "id": 1, "method": "git.import", "params": {"repo": str(tmp_path / "big"), "space": "big", "public": True, "progress": True}})
        started = await importer.notification()
        assert started["method"] == "call.progress" and started["params"]["phase"] == "commit"
        assert "big" in [space["name"] for space in (await other.call("node.status"))["spaces"]]
        assert (await other.call("fs.ls", space="big", path=""))["entries"] == []  # answered mid-import
        steps = []
        while "id" not in (message := await importer.receive()):
            steps.append((message["params"]["phase"], message["params"]["done"], message["params"]["total"]))
        reply = message
    assert reply["result"]["commit"] == commit and reply["result"]["imports"][0]["added"] == files
    assert steps == [("read", done, files) for done in range(BATCH_DOCS_PER_STEP, files + 1, BATCH_DOCS_PER_STEP)] + [
        ("write", done, files) for done in range(BATCH_DOCS_PER_STEP, files + 1, BATCH_DOCS_PER_STEP)
    ]
    async with connect(one, "unix") as after:
        assert len((await after.call("fs.ls", space="big", path=""))["entries"]) == 20


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
