"""The folder mirror's decisions (node/mirror_plan.py), row by row of its table, with no disk."""

from __future__ import annotations

from dataclasses import replace

from node.mirror_plan import (
    DIR,
    FILE,
    Adopt,
    Conflict,
    Create,
    DiskEntry,
    DiskMode,
    DiskMove,
    DiskRemove,
    Forget,
    Ingest,
    Move,
    Observation,
    Record,
    Remove,
    SetMode,
    SpaceEntry,
    WriteOut,
    plan,
)

OLD = (b"o" * 32,)
NEW = (b"n" * 32,)


def disk(sha: bytes = b"v1", inode: int = 7, kind: str = FILE, mtime_ns: int = 100, size: int = 3) -> DiskEntry:
    return DiskEntry(kind, sha if kind == FILE else b"", size, mtime_ns, inode, 0o644)  # type: ignore[arg-type]


def record(path: str, sha: bytes = b"v1", heads: tuple[bytes, ...] = OLD, inode: int = 7, kind: str = FILE, file_id: str = "f1") -> Record:
    return Record(path, kind, file_id, heads if kind == FILE else (), sha if kind == FILE else b"", 3, 100, inode, 0o644)  # type: ignore[arg-type]


def space(heads: tuple[bytes, ...] = OLD, kind: str = FILE, file_id: str = "f1") -> SpaceEntry:
    return SpaceEntry(kind, file_id, heads if kind == FILE else ())  # type: ignore[arg-type]


def one(observation: Observation) -> list[object]:
    return list(plan([observation]))


# ----- disk none -----


def test_nowhere_nothing() -> None:
    assert one(Observation("a", None, None, None)) == []


def test_new_in_space_is_written_out() -> None:
    assert one(Observation("a", None, None, space())) == [WriteOut("a")]


def test_gone_on_both_sides_forgets_the_record() -> None:
    assert one(Observation("a", None, record("a"), None)) == [Forget("a")]


def test_deleted_on_disk_is_removed_from_the_space() -> None:
    assert one(Observation("a", None, record("a"), space())) == [Remove("a", FILE)]


def test_deleted_on_disk_while_edited_in_the_space_comes_back() -> None:
    assert one(Observation("a", None, record("a"), space(NEW))) == [WriteOut("a")]


def test_deleted_directory_is_removed() -> None:
    assert one(Observation("d", None, record("d", kind=DIR), space(kind=DIR))) == [Remove("d", DIR)]


def test_deleted_file_where_the_space_now_has_a_directory_writes_it_out() -> None:
    assert one(Observation("a", None, record("a"), space(kind=DIR))) == [WriteOut("a")]


# ----- no record -----


def test_new_on_disk_is_created() -> None:
    assert one(Observation("a", disk(), None, None)) == [Create("a", FILE)]
    assert one(Observation("d", disk(kind=DIR), None, None)) == [Create("d", DIR)]


def test_on_both_sides_without_a_record_is_ingested_over_the_space() -> None:
    """A first checkout over an existing folder, or lost records: the I/O side adopts equal
    bytes; different ones are written over the space's text (its version stays in history)."""
    assert one(Observation("a", disk(), None, space())) == [Ingest("a", None)]


def test_directory_on_both_sides_without_a_record_is_adopted() -> None:
    assert one(Observation("d", disk(kind=DIR), None, space(kind=DIR))) == [Adopt("d")]


def test_kinds_differ_without_a_record_is_a_conflict() -> None:
    actions = one(Observation("a", disk(kind=DIR), None, space()))
    assert len(actions) == 1 and isinstance(actions[0], Conflict) and actions[0].path == "a"


# ----- record, space gone -----


def test_removed_in_the_space_and_untouched_on_disk_is_removed_from_disk() -> None:
    assert one(Observation("a", disk(), record("a"), None)) == [DiskRemove("a", FILE)]


def test_removed_in_the_space_but_edited_on_disk_is_created_again() -> None:
    assert one(Observation("a", disk(b"v2"), record("a"), None)) == [Create("a", FILE)]


def test_renamed_in_the_space_and_untouched_on_disk_is_renamed_on_disk() -> None:
    assert one(Observation("a", disk(), record("a"), None, moved_to="b")) == [DiskMove("a", "b")]


def test_renamed_in_the_space_onto_a_path_taken_on_disk_is_not_moved() -> None:
    views = [Observation("a", disk(), record("a"), None, moved_to="b"), Observation("b", disk(b"x", inode=9), None, space())]
    assert plan(views) == [Ingest("b", None), DiskRemove("a", FILE)]


def test_renamed_in_the_space_but_edited_on_disk_is_renamed_on_disk_so_the_edit_follows() -> None:
    """Not a copy at the old path: the next look finds the edit at the new one, against the
    carried record, and ingests it at the record's heads."""
    assert one(Observation("a", disk(b"v2"), record("a"), None, moved_to="b")) == [DiskMove("a", "b")]


def test_renamed_and_edited_in_the_space_is_only_renamed_on_disk_in_that_batch() -> None:
    """No write-out to the new path beside the rename: it would find the old bytes there with
    no record and take them for a user's file (the edit lost); the next look writes it out."""
    views = [Observation("a", disk(), record("a"), None, moved_to="b"), Observation("b", None, None, space(NEW))]
    assert plan(views) == [DiskMove("a", "b")]


def test_directory_renamed_in_the_space_is_one_disk_move_and_nothing_below_it() -> None:
    views = [
        Observation("d", disk(kind=DIR, inode=5), record("d", kind=DIR, inode=5, file_id="d1"), None, moved_to="e"),
        Observation("d/x", disk(), record("d/x"), None, moved_to="e/x"),
        Observation("d/new", disk(b"n", inode=9), None, None),
        Observation("e", None, None, space(kind=DIR, file_id="d1")),
        Observation("e/x", None, None, space(NEW)),
    ]
    assert plan(views) == [DiskMove("d", "e")]


def test_renamed_in_the_space_where_disk_has_a_directory_now_is_not_moved() -> None:
    assert one(Observation("a", disk(kind=DIR), record("a"), None, moved_to="b")) == [Create("a", DIR)]


# ----- record and space -----


def test_in_sync_nothing() -> None:
    assert one(Observation("a", disk(), record("a"), space())) == []
    assert one(Observation("d", disk(kind=DIR), record("d", kind=DIR), space(kind=DIR))) == []


def test_edited_on_disk_is_ingested_at_the_record_heads() -> None:
    assert one(Observation("a", disk(b"v2", mtime_ns=200), record("a"), space())) == [Ingest("a", OLD)]


def test_edited_on_both_sides_is_ingested_at_the_record_heads() -> None:
    """The three-way write merges; the I/O side then writes the merge out."""
    assert one(Observation("a", disk(b"v2", mtime_ns=200), record("a"), space(NEW))) == [Ingest("a", OLD)]


def test_edited_in_the_space_is_written_out() -> None:
    assert one(Observation("a", disk(), record("a"), space(NEW))) == [WriteOut("a")]


def test_another_file_at_the_path_in_the_space_is_written_out() -> None:
    assert one(Observation("a", disk(), record("a"), space(file_id="f2"))) == [WriteOut("a")]


def test_edited_on_disk_over_another_file_of_the_space_is_ingested_without_base() -> None:
    assert one(Observation("a", disk(b"v2", mtime_ns=200), record("a"), space(file_id="f2"))) == [Ingest("a", None)]


def test_file_on_disk_where_the_space_has_a_directory_is_a_conflict() -> None:
    actions = one(Observation("a", disk(), record("a"), space(kind=DIR)))
    assert [type(a) for a in actions] == [Conflict]


# ----- renames -----


def test_rename_on_disk_by_inode_is_a_move() -> None:
    """Same inode, size and mtime as the record: renamed (and written in the same tick)."""
    views = [Observation("a", None, record("a", inode=7), space()), Observation("b", disk(b"v2", inode=7), None, None)]
    assert plan(views) == [Move("a", "b"), Ingest("b", OLD)]


def test_rename_on_disk_by_bytes_is_a_move() -> None:
    """A copy and delete (another inode, same bytes) is a rename as well."""
    views = [Observation("a", None, record("a", inode=7), space()), Observation("b", disk(inode=8), None, None)]
    assert plan(views) == [Move("a", "b")]


def test_a_new_file_on_a_freed_inode_is_not_the_deleted_one() -> None:
    """ext4 reuses a freed inode at once: other bytes, size and mtime make it a new file."""
    views = [Observation("a", None, record("a", inode=7), space()), Observation("b", disk(b"v2", inode=7, mtime_ns=200, size=9), None, None)]
    assert plan(views) == [Create("b", FILE), Remove("a", FILE)]


def test_a_freed_inode_does_not_hide_the_copy_holding_the_bytes() -> None:
    views = [
        Observation("a", None, record("a", inode=7), space()),
        Observation("b", disk(b"v2", inode=7, mtime_ns=200, size=9), None, None),
        Observation("c", disk(inode=8, mtime_ns=300), None, None),
    ]
    assert plan(views) == [Move("a", "c"), Create("b", FILE)]


def test_delete_and_create_of_different_files_stay_apart() -> None:
    views = [Observation("a", None, record("a", inode=7), space()), Observation("b", disk(b"v2", inode=8), None, None)]
    assert plan(views) == [Create("b", FILE), Remove("a", FILE)]


def test_a_rename_on_disk_while_edited_in_the_space_moves_and_writes_the_edit_out_there() -> None:
    """Renamed locally while edited remotely: the edit follows the file, no copy at the old path."""
    views = [Observation("a", None, record("a", inode=7), space(NEW)), Observation("b", disk(inode=7), None, None)]
    assert plan(views) == [Move("a", "b"), WriteOut("b")]


def test_a_rename_on_disk_while_edited_on_both_sides_moves_and_merges() -> None:
    views = [Observation("a", None, record("a", inode=7), space(NEW)), Observation("b", disk(b"v2", inode=7), None, None)]
    assert plan(views) == [Move("a", "b"), Ingest("b", OLD)]


def test_deleted_on_disk_while_edited_in_the_space_comes_back_beside_an_unrelated_new_file() -> None:
    views = [Observation("a", None, record("a", inode=7), space(NEW)), Observation("b", disk(b"v2", inode=8), None, None)]
    assert plan(views) == [Create("b", FILE), WriteOut("a")]


def test_directory_rename_carries_its_records() -> None:
    views = [
        Observation("d", None, record("d", kind=DIR, inode=5, file_id="d1"), space(kind=DIR, file_id="d1")),
        Observation("d/x", None, record("d/x", inode=6), space()),
        Observation("d/y", None, record("d/y", sha=b"y1", inode=7, file_id="f2"), space(file_id="f2")),
        Observation("e", disk(kind=DIR, inode=5), None, None),
        Observation("e/x", disk(inode=6), None, None),
        Observation("e/y", disk(b"y2", inode=7, mtime_ns=300), None, None),
    ]
    assert plan(views) == [Move("d", "e"), Ingest("e/y", OLD)]


def test_actions_are_ordered_parents_first_and_removals_children_first() -> None:
    views = [
        Observation("n/m/f", disk(b"q", inode=30), None, None),
        Observation("n", disk(kind=DIR, inode=31), None, None),
        Observation("n/m", disk(kind=DIR, inode=32), None, None),
        Observation("r", None, record("r", kind=DIR, inode=40, file_id="r"), space(kind=DIR, file_id="r")),
        Observation("r/f", None, record("r/f", sha=b"z", inode=41, file_id="rf"), space(file_id="rf")),
        Observation("w", None, None, space(file_id="w")),
    ]
    assert plan(views) == [Create("n", DIR), Create("n/m", DIR), Create("n/m/f", FILE), Remove("r/f", FILE), Remove("r", DIR), WriteOut("w")]


# ----- the executable bit -----


def test_a_chmod_on_disk_sets_the_bit_in_the_space() -> None:
    made_executable = Observation("a", replace(disk(), mode=0o755), record("a"), space())
    assert one(made_executable) == [SetMode("a", True)]
    made_plain = Observation("a", disk(), replace(record("a"), mode=0o755), replace(space(), executable=True))
    assert one(made_plain) == [SetMode("a", False)]


def test_a_chmod_in_the_space_sets_the_x_bits_on_disk() -> None:
    assert one(Observation("a", disk(), record("a"), replace(space(), executable=True))) == [DiskMode("a", True)]
    assert one(Observation("a", replace(disk(), mode=0o700), replace(record("a"), mode=0o700), space())) == [DiskMode("a", False)]


def test_both_sides_made_it_executable_nothing_to_do() -> None:
    assert one(Observation("a", replace(disk(), mode=0o755), record("a"), replace(space(), executable=True))) == []


def test_the_disks_chmod_wins_over_the_spaces() -> None:
    both = Observation("a", replace(disk(), mode=0o755), replace(record("a"), mode=0o644), replace(space(), executable=False))
    assert one(both) == [SetMode("a", True)]
    undone = Observation("a", disk(), replace(record("a"), mode=0o755), replace(space(), executable=True))
    assert one(undone) == [SetMode("a", False)], "chmod -x on disk while the space kept the bit"


def test_a_chmod_comes_with_an_edit_on_either_side() -> None:
    saved = Observation("a", replace(disk(b"v2"), mode=0o755), record("a"), space())
    assert one(saved) == [Ingest("a", OLD), SetMode("a", True)]
    remote = Observation("a", disk(), record("a"), replace(space(NEW), executable=True))
    assert one(remote) == [WriteOut("a")], "the write-out sets the space's bit"
    local_chmod_remote_edit = Observation("a", replace(disk(), mode=0o755), record("a"), space(NEW))
    assert one(local_chmod_remote_edit) == [SetMode("a", True), WriteOut("a")]
    saved_while_remote_chmod = Observation("a", disk(b"v2"), record("a"), replace(space(), executable=True))
    assert one(saved_while_remote_chmod) == [Ingest("a", OLD), DiskMode("a", True)]


def test_a_directorys_mode_is_not_a_files_bit() -> None:
    assert one(Observation("d", replace(disk(kind=DIR), mode=0o755), replace(record("d", kind=DIR), mode=0o700), space(kind=DIR))) == []
