"""The tree rules of store/tree.py on hand-made entries: the cases peers rarely produce."""

from __future__ import annotations

from store.paths import MAX_NAME_BYTES, name_problem
from store.tree import DIR, FILE, ROOT_ID, Entry, Kind, conflict_name, materialize, stored_path

ALICE, BOB = "a1" * 32, "b0" * 32


def entry(number: int, kind: Kind, parent: int | None, name: str, claim: int, claimant: str = ALICE) -> Entry:
    """Entry ``number`` (its id is the number in hex) below entry ``parent`` (None: the root)."""
    parent_id = ROOT_ID if parent is None else f"{parent:032x}"
    return Entry(f"{number:032x}", kind, "text" if kind == FILE else None, parent_id, name, (claim, claimant), None)


def paths(*entries: Entry) -> list[str]:
    tree = materialize({e.file_id: e for e in entries}, lambda file_id, seen: True)
    return [node.path for node in tree.walk()]


def test_a_conflict_name_keeps_the_extension_and_stays_a_valid_name() -> None:
    assert conflict_name("main.py", BOB, 1) == "main (conflict b0b0b0b0).py"
    assert conflict_name("Makefile", BOB, 2) == "Makefile (conflict b0b0b0b0 2)"
    assert conflict_name(".bashrc", BOB, 1) == ".bashrc (conflict b0b0b0b0)"
    long_name = "é" * (MAX_NAME_BYTES // 2) + ".txt"
    assert name_problem(conflict_name(long_name, BOB, 1)) is None


def test_a_name_already_taken_by_a_conflict_name_gets_a_counter() -> None:
    assert paths(
        entry(1, FILE, None, "a.txt", claim=1),
        entry(2, FILE, None, "a (conflict b0b0b0b0).txt", claim=2),
        entry(3, FILE, None, "a.txt", claim=3, claimant=BOB),
    ) == ["a (conflict b0b0b0b0 2).txt", "a (conflict b0b0b0b0).txt", "a.txt"]


def test_a_three_way_move_cycle_ignores_the_latest_move() -> None:
    # x in z, y in x, z in y: z's claim is the latest, so z shows at the root
    assert paths(
        entry(1, DIR, 3, "x", claim=5),
        entry(2, DIR, 1, "y", claim=6),
        entry(3, DIR, 2, "z", claim=7),
        entry(4, FILE, 2, "f", claim=1),
    ) == ["z", "z/x", "z/x/y", "z/x/y/f"]


def test_entries_below_a_file_or_a_missing_parent_show_at_the_root() -> None:
    assert paths(entry(1, FILE, None, "f", claim=1), entry(2, FILE, 1, "g", claim=2), entry(3, DIR, 99, "d", claim=3)) == [
        "d",
        "f",
        "g",
    ]


def test_history_names_an_entry_by_its_stored_path_even_on_a_cycle() -> None:
    looped = {e.file_id: e for e in (entry(1, DIR, 2, "x", claim=1), entry(2, DIR, 1, "y", claim=2))}
    assert stored_path(looped, f"{1:032x}") == "y/x"
    assert stored_path(looped, "missing") == ""
