"""Path validation: one spelling per path, refused rather than repaired, with errors that say why."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store.errors import InvalidInput
from store.paths import (
    MAX_NAME_BYTES,
    MAX_PATH_BYTES,
    ROOT,
    check_path,
    is_within,
    join,
    name_of,
    name_problem,
    parent_of,
    split_path,
)
from store.workspace_errors import PathError


def test_a_relative_normalised_path_splits_into_its_names() -> None:
    assert split_path("src/main.py") == ("src", "main.py")
    assert split_path("README") == ("README",)
    assert split_path(ROOT) == ()
    assert split_path("dir with spaces/ünïcode ✓.txt") == ("dir with spaces", "ünïcode ✓.txt")


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/etc/passwd", "relative"),
        ("a//b", "empty name"),
        ("a/", "empty name"),
        ("./a", "'.' is not allowed"),
        ("a/../b", "'..' is not allowed"),
        ("..", "'..' is not allowed"),
        ("a\x00b", "NUL"),
        ("a\nb", "control"),
        ("e\u0301", "NFC"),
        ("x" * (MAX_NAME_BYTES + 1), f"longer than {MAX_NAME_BYTES} bytes"),
        ("/".join(["d" * 100] * 40), f"longer than {MAX_PATH_BYTES} bytes"),
    ],
)
def test_a_malformed_path_is_refused_with_the_reason(path: str, why: str) -> None:
    with pytest.raises(PathError, match=why):
        split_path(path)


def test_a_path_error_is_an_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="a path is a str, not bytes"):
        split_path(b"a")


def test_operations_on_the_root_itself_are_refused() -> None:
    with pytest.raises(PathError, match="root"):
        check_path(ROOT)
    assert check_path("a/b") == "a/b"


def test_the_longest_name_fits_in_bytes_not_characters() -> None:
    assert name_problem("é" * (MAX_NAME_BYTES // 2)) is None
    assert name_problem("é" * (MAX_NAME_BYTES // 2 + 1)) is not None


def test_join_parent_name_and_containment_agree() -> None:
    assert join(ROOT, "a") == "a"
    assert join("a", "b") == "a/b"
    assert (parent_of("a/b/c"), name_of("a/b/c")) == ("a/b", "c")
    assert (parent_of("a"), name_of("a")) == (ROOT, "a")
    assert is_within("a/b", "a") and is_within("a", "a") and is_within("a", ROOT)
    assert not is_within("ab", "a")


names = st.text(st.characters(codec="utf-8", min_codepoint=0x20), min_size=1, max_size=12).filter(
    lambda name: name_problem(name) is None
)


@settings(max_examples=100, deadline=None)
@given(st.lists(names, min_size=1, max_size=6))
def test_every_valid_path_round_trips(segments: list[str]) -> None:
    path = "/".join(segments)
    assert split_path(path) == tuple(segments)
    assert join(parent_of(path), name_of(path)) == path


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=30))
def test_validation_never_accepts_a_path_it_would_spell_differently(path: str) -> None:
    try:
        segments = split_path(path)
    except PathError:
        return
    assert "/".join(segments) == path
    assert unicodedata.normalize("NFC", path) == path
    assert ".." not in segments and "\x00" not in path
