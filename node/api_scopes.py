"""What a connection authenticated with a scoped token may do (``distspace token``).

The full token (HOME/api.token) may do anything. A scoped token (HOME/api.tokens) is for a local
agent that should only do part of it: its ``role`` is ``read`` or ``write``, its ``paths``
(gitignore globs, read as a capability grant's: ``src/*`` is everything under src; none = every path) bound where it may write, and
``space`` the one space it may touch (calls that name no space go to it). Enforced here, at the
API boundary, before a handler runs: a refusal is a JSON-RPC error (OUT_OF_SCOPE) whose message
names the scope and what fell outside it, and nothing is applied.

Every method is classed in METHOD_ACCESS; one that is not (a method added without thought) needs
the full token. READ methods are allowed to any scoped token (reads are of the whole space, as a
member's read scope is not enforced in phase 1). WRITE methods need role ``write`` and every path
they touch inside the globs: a file write its path (and the parents it creates), a removal or a
move every path below it (a move: before and after), a file's revert its path now and then. FULL
methods (space membership, invitations, tokens, mirrors writing to disk) need the full token.

A scoped token is not a sandbox on its own: a process of the same user can read HOME/api.token
or open the store. It bounds an agent that is given only the scoped token (its environment, a
container with the socket forwarded) and not the home.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from node.rpc import RpcError
from store.errors import StoreError

if TYPE_CHECKING:
    from node.home import ScopedToken
    from store.workspace import Workspace

Json = dict[str, Any]

# A refusal by the token's scope: in the store's range of codes, beside NotAuthorised (1030),
# the capability log's refusal of this node's own write.
OUT_OF_SCOPE = 1031
TOKEN_EXPIRED = -32001  # as a wrong token: the connection must authenticate again
ROLES = ("read", "write")


class Access(enum.Enum):
    READ = "read"
    WRITE = "write"
    FULL = "full"


@dataclass(frozen=True, slots=True)
class TokenScope:
    """The scope a connection authenticated with a scoped token works in."""

    token_id: str
    role: str  # "read" or "write"
    paths: tuple[str, ...]
    space: bytes | None
    expires_ms: int | None

    @classmethod
    def of(cls, token: ScopedToken) -> TokenScope:
        return cls(token.token_id, token.role, token.paths, None if token.space is None else bytes.fromhex(token.space), token.expires_ms)

    def describe(self) -> str:
        """"write src/*", "read", "write every path in space 1a2b3c4d"."""
        text = f"{self.role} {' '.join(self.paths)}" if self.paths else self.role if self.role == "read" else f"{self.role} every path"
        return text if self.space is None else f"{text} in space {self.space.hex()[:8]}"

    def to_json(self) -> Json:
        return {
            "id": self.token_id,
            "role": self.role,
            "paths": list(self.paths),
            "space": None if self.space is None else self.space.hex(),
            "expires_ms": self.expires_ms,
        }

    def covers(self, path: str) -> bool:
        """Whether ``path`` is inside the globs, read as a capability grant's (git's semantics)."""
        from protocol.capability_records import compile_globs  # pathspec: only a scoped write pays for it

        return not self.paths or compile_globs(self.paths).match_file(path)


def refused(scope: TokenScope, why: str) -> RpcError:
    return RpcError(OUT_OF_SCOPE, f"token is scoped to {scope.describe()}: {why}", "OutOfScope")


# ----- what each method touches -----

Touched = Callable[["Workspace", Json], Sequence[str] | None]  # None: the whole space


def _path(ws: Workspace, params: Json) -> list[str]:
    return [params["path"]]


def _with_parents(ws: Workspace, params: Json) -> list[str]:
    """The path, and with ``parents`` each missing ancestor it creates."""
    path: str = params["path"]
    touched = [path]
    if params.get("parents"):
        tree = ws.tree()
        parts = path.split("/")
        touched += [ancestor for ancestor in ("/".join(parts[:i]) for i in range(1, len(parts))) if tree.get(ancestor) is None]
    return touched


def _subtree(ws: Workspace, path: str) -> list[str]:
    tree = ws.tree()
    node = tree.get(path)
    return [path] if node is None else [path, *(below.path for below in tree.walk(path))]


def _removed(ws: Workspace, params: Json) -> list[str]:
    return _subtree(ws, params["path"])


def _moved(ws: Workspace, params: Json) -> list[str]:
    source: str = params["source"]
    target: str = params["target"]
    before = _subtree(ws, source)
    return [*before, *(target + path[len(source) :] for path in before)]


def _reverted(ws: Workspace, params: Json) -> list[str] | None:
    """A file's revert touches its path then and where it is now; a whole-space revert, all."""
    path: str | None = params.get("path")
    if path is None:
        return None
    then = ws.tree(ws.check_version(params["version"])).get(path)
    now = None if then is None else ws.tree().path_of(then.file_id)
    return [path] if now is None or now == path else [path, now]


def _batched(ws: Workspace, params: Json) -> list[str]:
    """Every path a batch touches: each op's path, a created file's missing parents, a
    delete's whole subtree."""
    touched: list[str] = []
    for op in params["ops"]:
        if op["op"] == "delete":
            touched += _subtree(ws, op["path"])
        elif op["op"] in ("create", "write", "mkdir"):
            touched += _with_parents(ws, {"path": op["path"], "parents": True})
        else:
            touched.append(op["path"])
    return touched


def _nothing(ws: Workspace, params: Json) -> list[str]:
    return []


READ_METHODS = (
    "fs.ls",
    "fs.stat",
    "fs.read",
    "history.log",
    "history.diff",
    "history.blame",
    "subscribe.file",
    "subscribe.tree",
    "subscribe.peers",
    "subscribe.presence",
    "unsubscribe",
    "presence.set",  # a cursor: ephemeral, never stored, and a reader's is as useful as a writer's
    "presence.clear",
    "presence.list",
    "doc.open",
    "doc.close",
    "node.status",
    "node.peers",
    "node.stats",
    "node.verify",
    "space.list",
    "space.members",
    "mirror.status",
    "git.log",
    "ipfs.status",  # what was published (CIDs anyone may fetch) and any error
)
WRITE_METHODS: dict[str, Touched] = {
    "fs.write": _with_parents,
    "fs.splice": _path,
    "fs.edit": _path,
    "fs.mkdir": _with_parents,
    "fs.rm": _removed,
    "fs.mv": _moved,
    "fs.batch": _batched,
    "doc.edit": _path,
    "doc.undo": _path,
    "doc.redo": _path,
    "history.revert": _reverted,
    "space.snapshot": _nothing,  # no content, but it writes the store
}
FULL_METHODS = (
    "space.create",
    "space.join",
    "space.invite",
    "space.revoke",
    "token.create",
    "token.list",
    "token.revoke",
    "mirror.start",
    "mirror.checkout",
    "git.import",  # it reads a repository at any path of this machine, and may make a space
    "git.promote",  # it writes into a repository on this machine
    "ipfs.publish",  # it hands the whole space to whoever fetches the CID
    "ipfs.join",  # it adds a space
)
METHOD_ACCESS: dict[str, Access] = {
    **dict.fromkeys(READ_METHODS, Access.READ),
    **dict.fromkeys(WRITE_METHODS, Access.WRITE),
    **dict.fromkeys(FULL_METHODS, Access.FULL),
}


def check(scope: TokenScope, method: str, params: Json, *, space: Callable[[], bytes], workspace: Callable[[], Workspace], now_ms: int) -> None:
    """Refuse a call the scope does not allow.

    Raises:
        RpcError: OUT_OF_SCOPE naming the scope; TOKEN_EXPIRED once the token has expired.
        StoreError: while working out what a write touches (a malformed path, an unknown space):
            the caller maps it as the handler's own would be.
    """
    if scope.expires_ms is not None and now_ms >= scope.expires_ms:
        raise RpcError(TOKEN_EXPIRED, "the token has expired: make a new one (distspace token)", "Unauthorized")
    access = METHOD_ACCESS.get(method, Access.FULL)
    if access is Access.FULL:
        raise refused(scope, f"{method} needs the full token (HOME/api.token)")
    if scope.space is not None and ("space" in params or access is Access.WRITE):
        try:
            named = space()
        except StoreError:
            named = None  # let the handler say the space is unknown, unless it is plainly not ours
        if named is not None and named != scope.space:
            raise refused(scope, f"space {named.hex()[:8]} is outside it")
    if access is Access.READ:
        return
    if scope.role != "write":
        raise refused(scope, f"{method} writes")
    touched = WRITE_METHODS[method](workspace(), params)
    if touched is None:
        if scope.paths:
            raise refused(scope, f"{method} of the whole space touches every path; name one")
        return
    outside = [path for path in touched if not scope.covers(path)]
    if outside:
        raise refused(scope, f"{outside[0]} is outside it")


__all__ = ["METHOD_ACCESS", "OUT_OF_SCOPE", "ROLES", "Access", "TokenScope", "check", "refused"]
