"""The tree and history methods of the local API, against a real daemon, over both sockets.

One daemon serves the module (its home holds one space, so ``space`` may be left out); each
test works in a directory of its own, named after the test and the transport.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator

import pytest

from api_helpers import TRANSPORTS, ApiConnection, Daemon, connect, daemon_with_a_space, own_directory
from node.rpc import INVALID_PARAMS, RpcError


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    with daemon_with_a_space(tmp_path_factory, "files") as running:
        yield running


@pytest.fixture(params=TRANSPORTS)
async def api(daemon: Daemon, request: pytest.FixtureRequest) -> AsyncIterator[ApiConnection]:
    async with connect(daemon, request.param) as connection:
        yield connection


@pytest.fixture
async def root(api: ApiConnection, request: pytest.FixtureRequest) -> str:
    """A directory for this test alone."""
    name = own_directory(request)
    await api.call("fs.mkdir", path=name)
    return name


async def error_of(api: ApiConnection, method: str, **params: object) -> RpcError:
    with pytest.raises(RpcError) as caught:
        await api.call(method, **params)
    return caught.value


async def test_write_then_read_text_and_binary(api: ApiConnection, root: str) -> None:
    text_version = (await api.call("fs.write", path=f"{root}/notes.md", text="héllo 😀\n"))["version"]
    blob = bytes(range(256))
    await api.call("fs.write", path=f"{root}/deep/blob.bin", base64=base64.b64encode(blob).decode(), parents=True)

    text = await api.call("fs.read", path=f"{root}/notes.md")
    assert (text["encoding"], text["text"]) == ("text", "héllo 😀\n")
    binary = await api.call("fs.read", path=f"{root}/deep/blob.bin")
    assert (binary["encoding"], base64.b64decode(binary["base64"])) == ("binary", blob)

    stat = await api.call("fs.stat", path=f"{root}/notes.md")
    assert (stat["kind"], stat["encoding"], stat["size"]) == ("file", "text", 8)  # code points
    listing = await api.call("fs.ls", path=root)
    assert [(e["path"], e["kind"]) for e in listing["entries"]] == [(f"{root}/deep", "dir"), (f"{root}/notes.md", "file")]
    assert (await api.call("fs.read", path=f"{root}/notes.md", version=text_version))["text"] == "héllo 😀\n"


async def test_writing_utf8_bytes_to_a_text_file_keeps_it_text(api: ApiConnection, root: str) -> None:
    await api.call("fs.write", path=f"{root}/a.txt", text="one\n")
    await api.call("fs.write", path=f"{root}/a.txt", base64=base64.b64encode(b"two\n").decode())
    assert (await api.call("fs.read", path=f"{root}/a.txt"))["text"] == "two\n"


async def test_splice_edits_text_by_code_points(api: ApiConnection, root: str) -> None:
    await api.call("fs.write", path=f"{root}/a.py", text="print('hi 😀')\n")
    await api.call("fs.splice", path=f"{root}/a.py", position=10, delete=1, insert="🎉", message="party")
    assert (await api.call("fs.read", path=f"{root}/a.py"))["text"] == "print('hi 🎉')\n"
    log = await api.call("history.log", path=f"{root}/a.py", limit=1)
    assert log["entries"][0]["message"] == "party"


async def test_mkdir_mv_rm(api: ApiConnection, root: str) -> None:
    await api.call("fs.mkdir", path=f"{root}/x/y", parents=True)
    await api.call("fs.write", path=f"{root}/x/y/f.txt", text="f")
    await api.call("fs.mv", source=f"{root}/x", target=f"{root}/z")
    assert (await api.call("fs.read", path=f"{root}/z/y/f.txt"))["text"] == "f"
    await api.call("fs.rm", path=f"{root}/z", recursive=True)
    assert (await api.call("fs.ls", path=root))["entries"] == []


async def test_history_log_diff_blame_revert(api: ApiConnection, root: str, daemon: Daemon) -> None:
    path = f"{root}/story.txt"
    first = (await api.call("fs.write", path=path, text="once\nupon\n"))["version"]
    await api.call("fs.write", path=path, text="once\nupon a time\n", message="extend")

    log = await api.call("history.log", path=path)
    assert [e["message"] for e in log["entries"]][:1] == ["extend"]
    assert all(e["author"] == daemon.ready["peer_id"] and path in e["paths"] for e in log["entries"])

    diff = await api.call("history.diff", old=first, path=root)
    assert [(f["status"], f["new_path"]) for f in diff["files"]] == [("modified", path)]
    assert "+upon a time" in diff["files"][0]["unified"]

    blame = await api.call("history.blame", path=path)
    assert [(line["number"], line["text"]) for line in blame["lines"]] == [(1, "once"), (2, "upon a time")]
    assert {line["author"] for line in blame["lines"]} == {daemon.ready["peer_id"]}

    await api.call("history.revert", version=first, path=path)
    assert (await api.call("fs.read", path=path))["text"] == "once\nupon\n"
    await api.call("fs.write", path=f"{root}/later.txt", text="later")
    await api.call("history.revert", version=first)  # the whole space: later.txt goes
    assert (await api.call("fs.ls", path=root))["entries"][0]["path"] == path
    assert len((await api.call("fs.ls", path=root))["entries"]) == 1


@pytest.mark.parametrize(
    ("method", "params", "code", "name", "says"),
    [
        ("fs.read", {"path": "{root}/missing"}, 1003, "NotFound", "no file or directory"),
        ("fs.read", {"path": "{root}"}, 1008, "IsADirectory", "is a directory"),
        ("fs.ls", {"path": "{root}/file.txt"}, 1007, "NotADirectory", "is a file"),
        ("fs.mkdir", {"path": "{root}/file.txt"}, 1006, "AlreadyExists", "already exists"),
        ("fs.rm", {"path": "{root}/sub"}, 1009, "DirectoryNotEmpty", "not empty"),
        ("fs.mv", {"source": "{root}/sub", "target": "{root}/sub/in"}, 1010, "InvalidMove", "into itself"),
        ("fs.write", {"path": "/{root}/abs", "text": "x"}, 1002, "PathError", "leading '/'"),
        ("fs.write", {"path": "{root}/new/f", "text": "x"}, 1003, "NotFound", "does not exist"),
        ("fs.splice", {"path": "{root}/file.txt", "position": 99, "delete": 1}, 1001, "InvalidInput", "cannot delete"),
        ("fs.read", {"path": "{root}/file.txt", "version": 10**9}, 1005, "UnknownVersion", "versions 0 to"),
        ("fs.write", {"path": "{root}/file.txt", "base64": base64.b64encode(b"\xff").decode()}, 1011, "NotText", "not UTF-8"),
        ("fs.write", {"path": "{root}/x", "text": "a", "base64": "YQ=="}, INVALID_PARAMS, "InvalidParams", "exactly one"),
        ("fs.write", {"path": "{root}/x", "base64": "!!"}, INVALID_PARAMS, "InvalidParams", "not base64"),
        ("fs.ls", {"space": "nope"}, 1004, "UnknownSpace", "no space 'nope'"),
        ("history.blame", {"path": "{root}/sub"}, 1008, "IsADirectory", "is a directory"),
    ],
)
async def test_store_refusals_are_errors_with_codes_and_messages(
    api: ApiConnection, root: str, method: str, params: dict[str, object], code: int, name: str, says: str
) -> None:
    await api.call("fs.write", path=f"{root}/file.txt", text="short\n")
    await api.call("fs.write", path=f"{root}/sub/inner.txt", text="x", parents=True)
    before = (await api.call("node.status"))["spaces"][0]["version"]
    filled = {key: value.replace("{root}", root) if isinstance(value, str) else value for key, value in params.items()}
    error = await error_of(api, method, **filled)
    assert (error.code, error.name) == (code, name)
    assert says in error.message
    assert (await api.call("node.status"))["spaces"][0]["version"] == before  # nothing changed


async def test_a_large_write_round_trips(api: ApiConnection, root: str) -> None:
    text = "".join(f"line {n} ✓\n" for n in range(50_000))  # ~600 kB
    await api.call("fs.write", path=f"{root}/big.txt", text=text)
    assert (await api.call("fs.read", path=f"{root}/big.txt"))["text"] == text
