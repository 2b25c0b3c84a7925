"""Conflict naming stays near-linear (issue 12: 4,000 same-name files took 8.4 s per tree build)
and names exactly as before: the old algorithm, kept here as the reference, on random inputs."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from store.paths import join
from store.tree import FILE, ROOT_ID, Entry, conflict_name, materialize

ALICE, BOB = "a1" * 32, "b0" * 32
SAME_NAME_FILES = 4_000


def reference_names(entries: list[Entry]) -> dict[str, str]:
    """The old naming of one directory's files (rule 1): every loser counted from attempt 1."""
    by_name: dict[str, list[Entry]] = {}
    for entry in sorted(entries, key=lambda entry: entry.claim):
        by_name.setdefault(entry.name, []).append(entry)
    names = {claims[0].file_id: name for name, claims in by_name.items()}
    taken = set(by_name)
    losers = [entry for claims in by_name.values() for entry in claims[1:]]
    for entry in sorted(losers, key=lambda entry: entry.claim):
        attempt = 1
        while (name := conflict_name(entry.name, entry.claimant, attempt)) in taken:
            attempt += 1
        taken.add(name)
        names[entry.file_id] = name
    return names


def file_entry(number: int, name: str, claim: int, claimant: str) -> Entry:
    return Entry(f"{number:032x}", FILE, "text", ROOT_ID, name, (claim, claimant), None)


def shown_names(entries: list[Entry]) -> dict[str, str]:
    tree = materialize({e.file_id: e for e in entries}, lambda file_id, seen: True)
    return {node.file_id: node.path for node in tree.walk()}


# Names drawn so that collisions with generated conflict names happen too.
NAMES = st.sampled_from(["a.txt", "a", "a (conflict b0b0b0b0).txt", "a (conflict a1a1a1a1 2).txt", "b.py", ".rc"])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(NAMES, st.integers(0, 50), st.sampled_from([ALICE, BOB])),
        min_size=1,
        max_size=40,
        unique_by=lambda drawn: drawn[1:],  # a Lamport stamp names one op
    )
)
def test_conflict_names_are_those_of_the_old_algorithm(drawn: list[tuple[str, int, str]]) -> None:
    entries = [file_entry(number, name, claim, claimant) for number, (name, claim, claimant) in enumerate(drawn)]
    assert shown_names(entries) == {file_id: join("", name) for file_id, name in reference_names(entries).items()}


def test_four_thousand_files_of_one_name_by_one_author_each_get_a_name_of_their_own() -> None:
    entries = [file_entry(number, "notes.md", claim=number, claimant=BOB) for number in range(SAME_NAME_FILES)]
    shown = shown_names(entries)
    assert len(set(shown.values())) == SAME_NAME_FILES
    assert shown[f"{0:032x}"] == "notes.md"
    assert shown[f"{SAME_NAME_FILES - 1:032x}"] == f"notes (conflict b0b0b0b0 {SAME_NAME_FILES - 1}).md"
