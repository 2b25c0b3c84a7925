"""Workspace paths: one spelling per file, so every peer and every mirror names it the same way.

A path is relative to the root of the space, segments joined by ``/``: ``src/main.py``. The
root itself is the empty string. Paths are validated, never silently repaired: ``./a``,
``a//b``, ``a/`` and ``/a`` are refused rather than rewritten, because a path that two peers
spell differently would name two different entries. Names are NFC (macOS hands out NFD; two
spellings of ``é`` would look like one name and be two), carry no control characters (they
break terminals and folder mirrors) and fit the file systems a space is mirrored to.
"""

from __future__ import annotations

import unicodedata

from store.workspace_errors import PathError

ROOT = ""
SEPARATOR = "/"
# NAME_MAX of Linux and macOS file systems, in UTF-8 bytes: every name must be mirrorable.
MAX_NAME_BYTES = 255
# PATH_MAX on Linux is 4096; keep 1 KiB of it for the folder a mirror of the space lives in.
MAX_PATH_BYTES = 3072
_RESERVED_NAMES = frozenset({".", ".."})


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be one segment of a path, or None if it can.

    Also used on names that arrive from peers in the index doc, which must never raise.
    """
    if not isinstance(name, str):
        return f"a name is a str, not {type(name).__name__}"
    if not name:
        return "empty name (a doubled or trailing '/')"
    if name in _RESERVED_NAMES:
        return f"{name!r} is not allowed as a name"
    if SEPARATOR in name:
        return f"{name!r} contains '/'"
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in name):
        return f"{name!r} contains a NUL or control character"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"name {name[:40]!r}... is longer than {MAX_NAME_BYTES} bytes"
    if unicodedata.normalize("NFC", name) != name:
        return f"{name!r} is not NFC-normalised"
    return None


def split_path(path: object) -> tuple[str, ...]:
    """The segments of a validated path; ``()`` for the root.

    Raises:
        PathError: the path is not a str, is absolute, not normalised, or too long.
    """
    if not isinstance(path, str):
        raise PathError(f"a path is a str, not {type(path).__name__}")
    if path == ROOT:
        return ()
    if path.startswith(SEPARATOR):
        raise PathError(f"{path!r}: paths are relative to the space root; drop the leading '/'")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise PathError(f"path {path[:40]!r}... is longer than {MAX_PATH_BYTES} bytes")
    segments = tuple(path.split(SEPARATOR))
    for segment in segments:
        problem = name_problem(segment)
        if problem is not None:
            raise PathError(f"{path!r}: {problem}")
    return segments


def check_path(path: object) -> str:
    """``path`` itself if it is a valid path other than the root."""
    segments = split_path(path)
    if not segments:
        raise PathError("the root of the space cannot be the target of this operation")
    return SEPARATOR.join(segments)


def parent_of(path: str) -> str:
    return path.rpartition(SEPARATOR)[0]


def name_of(path: str) -> str:
    return path.rpartition(SEPARATOR)[2]


def join(parent: str, name: str) -> str:
    return f"{parent}{SEPARATOR}{name}" if parent else name


def is_within(path: str, ancestor: str) -> bool:
    """Whether ``path`` is ``ancestor`` or lies below it (the root contains everything)."""
    return ancestor == ROOT or path == ancestor or path.startswith(ancestor + SEPARATOR)
