"""Errors of the workspace (files and folders) and of history, so callers catch what they mean.

They mirror the POSIX errors an editor or a shell already knows (ENOENT, EEXIST, ENOTDIR,
EISDIR, ENOTEMPTY), plus the few that only a replicated workspace has: a file whose content
has not arrived from its peers yet, and a version number this node never reached. Every one
is raised before anything is changed.
"""

from __future__ import annotations

from store.errors import InvalidInput, StoreError


class WorkspaceError(StoreError):
    """Base class of every workspace and history error."""


class PathError(WorkspaceError, InvalidInput):
    """A path is malformed: absolute, not normalised, `..`, NUL, too long, not NFC."""


class NotFound(WorkspaceError):
    """Nothing lives at this path (at this version)."""


class AlreadyExists(WorkspaceError):
    """Something already lives at the path an operation wants to create."""


class NotADirectory(WorkspaceError):
    """A path goes through, or names, a file where a directory is needed."""


class IsADirectory(WorkspaceError):
    """A file operation (read, write, splice) was given a directory."""


class DirectoryNotEmpty(WorkspaceError):
    """A non-recursive rm of a directory that still holds entries."""


class InvalidMove(WorkspaceError, InvalidInput):
    """A move that cannot be: a directory into itself or one of its descendants."""


class NotText(WorkspaceError, InvalidInput):
    """Text was asked of binary content: a splice of a binary file, or non-UTF-8 bytes for a text file."""


class ContentTooLarge(WorkspaceError, InvalidInput):
    """One write or splice carries more than MAX_WRITE_BYTES: as one change it could not reach peers."""


class ContentUnavailable(WorkspaceError):
    """The tree names a file whose document has not arrived from its peers yet; sync, then retry."""


class UnknownVersion(WorkspaceError, InvalidInput):
    """A version number this node has not reached (versions run from 0 to Repo.version())."""


class UnknownBase(UnknownVersion):
    """A base-relative edit named heads this node does not hold (not yet synced, or not of this
    file): nothing is applied; read the file again, or wait for sync. The message starts with
    the param, ``base:``."""


class InvalidEdit(WorkspaceError, InvalidInput):
    """Edits that do not fit the text at their base: overlapping, or outside it. The message
    starts with the param at fault (``edits:``, ``edits[2]:``); nothing is applied."""


class BatchConflict(WorkspaceError):
    """The tree moved while a batch written in steps (``Workspace.batch_steps``) wrote its
    contents, so that the batch would now create or write other files than it checked: the tree
    is left as it was; run the batch (the import) again."""
