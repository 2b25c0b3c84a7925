"""The folder mirror end to end: two daemons (``distspace up --folder``), two real folders on
this machine, real file events, the tools a developer uses (plain writes, an editor's save by
rename, ``sed -i``, vim's backup and rewrite, ``git checkout``).

One pair serves the module: Alice's folder is a git repository (``.git`` at its root, a
``.gitignore`` and a ``.distspaceignore``) filled before her daemon starts, so her first scan
takes it in; each test then works in a directory of its own. Every wait polls the folders and
the stores (disk changes send no notification) with a bounded deadline.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from api_helpers import own_directory
from mirror_helpers import (
    GIT_DIR,
    Side,
    assert_heads_agree,
    mirrored_pair,
    run_standalone,
    slow_writer,
    wait_converged,
    wait_file,
    wait_for,
)

GIT_IGNORE = "build/\n*.log\n"
DISTSPACE_IGNORE = "secret.txt\n"
# What Alice's folder holds before her daemon starts, and which of it never leaves her disk.
PROJECT = {
    "README.md": b"# project\n",
    "src/main.c": b"int main(void) { return 0; }\n",
    ".gitignore": GIT_IGNORE.encode(),
    ".distspaceignore": DISTSPACE_IGNORE.encode(),
    "build/main.o": b"\x7fELF not really\n",
    "debug.log": b"started\n",
    "src/secret.txt": b"hunter2\n",
}
PROJECT_LOCAL_ONLY = {"build/main.o", "debug.log", "src/secret.txt"}


def git(folder: Path, *args: str) -> str:
    identity = ("-c", "user.name=Alice", "-c", "user.email=alice@example.com", "-c", "commit.gpgsign=false")
    result = subprocess.run(["git", "-C", str(folder), *identity, *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout


def _project(folder: Path) -> None:
    for path, content in PROJECT.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(content)
    git(folder, "init", "-q", "-b", "main")
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", "the project")


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Side, Side]]:
    with mirrored_pair(tmp_path_factory.mktemp("mirror"), prepare=_project) as sides:
        yield sides


@pytest.fixture
def own(request: pytest.FixtureRequest) -> str:
    """A directory for this test alone (in both folders, once it syncs)."""
    return own_directory(request)


def write(side: Side, path: str, content: bytes) -> None:
    target = side.folder / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)


def save_by_rename(side: Side, path: str, content: bytes) -> None:
    """As editors save: a temp file beside it, fsync, rename over."""
    target = side.folder / path
    temp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    with open(temp, "wb") as out:
        out.write(content)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, target)


def test_the_first_scan_checks_the_project_out_on_the_peer_without_ignored_files(pair: tuple[Side, Side]) -> None:
    alice, bob = pair
    synced = {path: content for path, content in PROJECT.items() if path not in PROJECT_LOCAL_ONLY}

    def project_views() -> dict[str, dict[str, bytes | None]]:
        """The project's paths in each view (the other tests add directories of their own)."""
        views = {"bob disk": bob.disk().files, "alice space": alice.space().files, "bob space": bob.space().files}
        return {name: {p: files[p] for p in PROJECT if p in files} for name, files in views.items()}

    wait_for(project_views, lambda views: all(v == synced for v in views.values()), "the project, without its ignored files, everywhere", 60)
    assert not (bob.folder / GIT_DIR).exists()
    assert not any(p == GIT_DIR or p.startswith(f"{GIT_DIR}/") for p in alice.space().dirs | set(alice.space().files))


def save_by_backup(side: Side, path: str, content: bytes) -> None:
    """As vim saves by default: the old file renamed to a backup (``name~``), a new file written
    in its place (another inode), the backup removed."""
    target = side.folder / path
    backup = target.with_name(target.name + "~")
    os.rename(target, backup)
    with open(target, "wb") as out:
        out.write(content)
        out.flush()
        os.fsync(out.fileno())
    backup.unlink()


@pytest.mark.parametrize("tool", ["plain write", "temp and rename", "sed -i", "backup and rewrite"])
def test_a_file_saved_in_alice_s_folder_appears_in_bob_s_with_the_same_bytes(pair: tuple[Side, Side], own: str, tool: str) -> None:
    alice, bob = pair
    path = f"{own}/notes.txt"
    write(alice, path, b"first line\nsecond line\n")
    wait_file(bob, path, b"first line\nsecond line\n")
    file_id = _file_id(bob, path)
    if tool == "plain write":
        write(alice, path, b"first line\nsecond line, saved\n")
    elif tool == "temp and rename":
        save_by_rename(alice, path, b"first line\nsecond line, saved\n")
    elif tool == "backup and rewrite":
        save_by_backup(alice, path, b"first line\nsecond line, saved\n")
    else:
        subprocess.run(["sed", "-i", "s/second line/second line, saved/", str(alice.folder / path)], check=True, timeout=30)
    wait_file(bob, path, b"first line\nsecond line, saved\n")
    wait_converged([alice, bob], own, expected={"notes.txt": b"first line\nsecond line, saved\n"})
    assert _file_id(bob, path) == file_id, f"a save by {tool} replaced the file instead of editing it"


def test_a_binary_file_arrives_byte_for_byte(pair: tuple[Side, Side], own: str) -> None:
    alice, bob = pair
    content = bytes(range(256)) * 40
    write(alice, f"{own}/image.bin", content)
    wait_converged([alice, bob], own, expected={"image.bin": content})


def test_git_checkout_of_another_branch_lands_in_bob_s_folder(pair: tuple[Side, Side], own: str) -> None:
    alice, bob = pair
    write(alice, f"{own}/app.py", b"print('main')\n")
    write(alice, f"{own}/old.py", b"# only on main\n")
    git(alice.folder, "add", own)
    git(alice.folder, "commit", "-q", "-m", "main's files")
    git(alice.folder, "checkout", "-q", "-b", f"feature-{own}")
    write(alice, f"{own}/app.py", b"print('feature')\n")
    write(alice, f"{own}/lib/new.py", b"# a new module\n")
    os.remove(alice.folder / own / "old.py")
    git(alice.folder, "add", "-A", own)
    git(alice.folder, "commit", "-q", "-m", "the feature")
    feature = {"app.py": b"print('feature')\n", "lib/new.py": b"# a new module\n"}
    main = {"app.py": b"print('main')\n", "old.py": b"# only on main\n"}
    wait_converged([alice, bob], own, expected=feature)
    git(alice.folder, "checkout", "-q", "main")
    wait_converged([alice, bob], own, expected=main)
    git(alice.folder, "checkout", "-q", f"feature-{own}")
    wait_converged([alice, bob], own, expected=feature)
    assert not (bob.folder / GIT_DIR).exists()
    assert not any(part == GIT_DIR for path in alice.space().files for part in path.split("/"))


def test_concurrent_edits_of_different_lines_in_both_folders_merge_on_both_disks(pair: tuple[Side, Side], own: str) -> None:
    alice, bob = pair
    path = f"{own}/lines.txt"
    lines = [f"line {i}\n" for i in range(16)]
    write(alice, path, "".join(lines).encode())
    wait_converged([alice, bob], own, expected={"lines.txt": "".join(lines).encode()})
    alice_saves = [write, save_by_rename, _sed_append, write]
    for round_, alice_save in enumerate(alice_saves):
        ours, theirs = 2 * round_, 2 * round_ + 8
        lines[ours] = lines[ours].replace("\n", f" +alice{round_}\n")
        lines[theirs] = lines[theirs].replace("\n", f" +bob{round_}\n")
        mine = _with_line(alice, path, ours, lines[ours])
        bobs = _with_line(bob, path, theirs, lines[theirs])
        alice_save(alice, path, mine)  # both saved before either can have synced
        write(bob, path, bobs)
        wait_converged([alice, bob], own, expected={"lines.txt": "".join(lines).encode()})
    assert_heads_agree([alice, bob], own)


def _with_line(side: Side, path: str, index: int, line: str) -> bytes:
    lines = (side.folder / path).read_text().splitlines(keepends=True)
    lines[index] = line
    return "".join(lines).encode()


def _sed_append(side: Side, path: str, content: bytes) -> None:
    """``sed -i`` turning the file into ``content`` (one line differs: it is replaced)."""
    old = (side.folder / path).read_bytes().splitlines(keepends=True)
    new = content.splitlines(keepends=True)
    (index,) = [i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
    script = f"{index + 1}s/.*/{new[index].decode().rstrip()}/"
    subprocess.run(["sed", "-i", script, str(side.folder / path)], check=True, timeout=30)


def test_delete_rename_and_directory_moves_propagate_both_ways(pair: tuple[Side, Side], own: str) -> None:
    alice, bob = pair
    files = {"doc.txt": b"a doc\n", "dir/x.txt": b"x\n", "dir/sub/y.txt": b"y\n", "gone.txt": b"soon gone\n"}
    for path, content in files.items():
        write(alice, f"{own}/{path}", content)
    wait_converged([alice, bob], own, expected=files)

    os.remove(alice.folder / own / "gone.txt")
    del files["gone.txt"]
    wait_converged([alice, bob], own, expected=files)

    os.rename(alice.folder / own / "doc.txt", alice.folder / own / "renamed.txt")
    files["renamed.txt"] = files.pop("doc.txt")
    wait_converged([alice, bob], own, expected=files)

    os.rename(alice.folder / own / "dir", alice.folder / own / "moved")
    files = {path.replace("dir/", "moved/"): content for path, content in files.items()}
    wait_converged([alice, bob], own, expected=files)
    assert not (bob.folder / own / "dir").exists(), "the moved directory is still in Bob's folder"

    os.rename(bob.folder / own / "moved" / "sub", bob.folder / own / "sub")  # and from Bob
    os.rename(bob.folder / own / "renamed.txt", bob.folder / own / "moved" / "doc.txt")
    files = {"moved/x.txt": b"x\n", "sub/y.txt": b"y\n", "moved/doc.txt": b"a doc\n"}
    wait_converged([alice, bob], own, expected=files)

    subprocess.run(["rm", "-r", str(bob.folder / own / "moved")], check=True, timeout=30)
    wait_converged([alice, bob], own, expected={"sub/y.txt": b"y\n"})
    assert not (alice.folder / own / "moved").exists()


def test_a_rename_on_disk_is_a_move_in_the_space_so_the_file_keeps_its_identity(pair: tuple[Side, Side], own: str) -> None:
    alice, bob = pair
    write(alice, f"{own}/doc.txt", b"history\n")
    write(alice, f"{own}/dir/inner.txt", b"inner\n")
    wait_converged([alice, bob], own, expected={"doc.txt": b"history\n", "dir/inner.txt": b"inner\n"})
    doc_id, inner_id = _file_id(bob, f"{own}/doc.txt"), _file_id(bob, f"{own}/dir/inner.txt")
    os.rename(alice.folder / own / "doc.txt", alice.folder / own / "renamed.txt")
    os.rename(alice.folder / own / "dir", alice.folder / own / "moved")
    wait_converged([alice, bob], own, expected={"renamed.txt": b"history\n", "moved/inner.txt": b"inner\n"})
    assert _file_id(bob, f"{own}/renamed.txt") == doc_id, "the renamed file is a new file, not the moved one"
    assert _file_id(bob, f"{own}/moved/inner.txt") == inner_id, "the moved directory's file is a new file"
    log = bob.call("history.log", path=f"{own}/renamed.txt")["entries"]
    assert len(log) >= 2, f"the renamed file's history lost its past: {log}"


def test_an_edit_made_while_the_file_is_renamed_elsewhere_follows_the_file(pair: tuple[Side, Side], own: str) -> None:
    alice, bob = pair
    write(alice, f"{own}/doc.txt", b"one\ntwo\n")
    wait_converged([alice, bob], own, expected={"doc.txt": b"one\ntwo\n"})
    os.rename(alice.folder / own / "doc.txt", alice.folder / own / "renamed.txt")
    write(bob, f"{own}/doc.txt", b"one\ntwo\nthree, from bob\n")
    wait_converged([alice, bob], own, expected={"renamed.txt": b"one\ntwo\nthree, from bob\n"})


def test_a_remote_edit_arriving_while_the_local_file_is_written_is_not_lost(pair: tuple[Side, Side], own: str) -> None:
    alice, bob = pair
    path = f"{own}/slow.txt"
    write(alice, path, b"header\n")
    wait_converged([alice, bob], own, expected={"slow.txt": b"header\n"})
    lines, edit_at = 120, {15: 0, 40: 1, 70: 2, 100: 3}
    writer = run_standalone(slow_writer, str(alice.folder / path), "header\n", str(lines), "0.004", stdout=subprocess.PIPE)
    assert writer.stdout is not None
    try:
        for progress in writer.stdout:  # Bob edits through the API at points of Alice's write
            if (edit := edit_at.get(int(progress))) is not None:
                bob.call("fs.splice", path=path, position=0, delete=0, insert=f"bob {edit}\n")
        assert writer.wait(30) == 0
    finally:
        writer.kill()
        writer.wait()
    wanted = [f"bob {i}\n" for i in range(4)] + ["header\n"] + [f"A line {i}\n" for i in range(lines)]

    def has_every_line(views: dict[str, bytes]) -> bool:
        return all(sorted(text.decode().splitlines(keepends=True)) == sorted(wanted) for text in views.values())

    views = wait_for(lambda: _four_views(alice, bob, path), has_every_line, "every line of Alice's write and of Bob's edits, once, everywhere")
    texts = set(views.values())
    assert len(texts) == 1, views
    a_lines = [line for line in texts.pop().decode().splitlines(keepends=True) if line.startswith("A line")]
    assert a_lines == wanted[5:], "Alice's lines out of order"


def _four_views(alice: Side, bob: Side, path: str) -> dict[str, bytes]:
    views: dict[str, bytes] = {}
    for side in (alice, bob):
        views[f"{side.name} disk"] = (side.folder / path).read_bytes() if (side.folder / path).exists() else b""
        views[f"{side.name} space"] = _read(side, path)
    return views


def _read(side: Side, path: str) -> bytes:
    stat = side.stat(path)
    if stat is None:
        return b""
    return side.call("fs.read", path=path).get("text", "").encode()


def test_ignore_rules_hold_for_files_created_while_the_mirror_runs(pair: tuple[Side, Side], own: str) -> None:
    alice, bob = pair
    alice_only = {
        "trace.log": b"*.log, from the root .gitignore\n",
        "build/out.o": b"build/, from the root .gitignore\n",
        "secret.txt": b"from .distspaceignore\n",
        "local/cache.db": b"local/, from this directory's .gitignore\n",
        ".notes.txt.swp": b"an editor's swap file\n",
        "notes.txt~": b"an editor's backup\n",
    }
    synced = {".gitignore": b"local/\n", "notes.txt": b"synced\n"}
    write(alice, f"{own}/.gitignore", synced[".gitignore"])
    wait_file(bob, f"{own}/.gitignore", synced[".gitignore"])
    for path, content in alice_only.items():
        write(alice, f"{own}/{path}", content)
    write(alice, f"{own}/notes.txt", synced["notes.txt"])  # after the ignored ones
    write(bob, f"{own}/secret.txt", b"Bob's own: the synced .distspaceignore holds on his side too\n")
    wait_converged(
        [alice, bob], own, expected=synced, local_only={"alice": set(alice_only), "bob": {"secret.txt"}}
    )
    assert (bob.folder / own / "secret.txt").read_bytes().startswith(b"Bob's own")
    assert not (bob.folder / GIT_DIR).exists()


def test_mirror_status_names_the_folder_and_the_watcher(pair: tuple[Side, Side]) -> None:
    for side in pair:
        status = side.call("mirror.status")
        text = repr(status)
        assert str(side.folder) in text or str(side.folder.resolve()) in text, status
        assert "inotify" in text or "polling" in text, status


def _file_id(side: Side, path: str) -> str:
    stat = side.stat(path)
    assert stat is not None, f"{path} is not in {side.name}'s space"
    return str(stat["file_id"])


def test_a_delete_and_an_unrelated_new_file_in_one_burst_keep_the_new_file_s_bytes(pair: tuple[Side, Side], own: str) -> None:
    """ext4 hands a freed inode to the next file created: same inode is not "renamed" when
    the bytes say otherwise."""
    alice, bob = pair
    write(alice, f"{own}/old.txt", b"the old file\n")
    wait_converged([alice, bob], own, expected={"old.txt": b"the old file\n"})
    os.remove(alice.folder / own / "old.txt")
    write(alice, f"{own}/new.txt", b"a new file, nothing like it\n")
    wait_converged([alice, bob], own, expected={"new.txt": b"a new file, nothing like it\n"})
    assert (alice.folder / own / "new.txt").read_bytes() == b"a new file, nothing like it\n"


def test_a_rename_and_an_edit_in_one_burst_keep_the_edit(pair: tuple[Side, Side], own: str) -> None:
    alice, bob = pair
    write(alice, f"{own}/draft.txt", b"draft\n")
    wait_converged([alice, bob], own, expected={"draft.txt": b"draft\n"})
    os.rename(alice.folder / own / "draft.txt", alice.folder / own / "final.txt")
    with open(alice.folder / own / "final.txt", "ab") as out:
        out.write(b"and its last line\n")
    wait_converged([alice, bob], own, expected={"final.txt": b"draft\nand its last line\n"})
