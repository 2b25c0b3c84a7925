"""The local API's methods: JSON params in, JSON results out, one function each.

``dispatch`` is the one entry: it checks the params against ``node/api_schema.json``, runs the
handler, and turns every refusal of the store into an ``RpcError`` with a code and the store's
own message. The daemon calls it for each request of each connection; a CLI command run without
a daemon calls it in-process on the store it opened, so both paths behave the same.

A connection authenticated with a scoped token (``token.create``) carries its scope in the
``Call``; ``dispatch`` refuses what the scope does not allow before the handler runs
(node/api_scopes.py). Private spaces' methods (``space.invite``, ``space.join`` by ticket,
``space.members``, ``space.revoke``) read and extend the space's capability log
(protocol/capabilities.py) through the repo.

Conventions (also in the schema): paths are relative to the space root (``src/main.py``; the
root is ``""``); ``space`` is a space's name, id or unique id prefix (optional: the node's default
space, else its only one); versions are the node's local version numbers; hashes and ids are hex; peers and
authors are libp2p peer ids; text positions count Unicode code points; content is ``text`` (a
UTF-8 string) or ``base64`` (bytes). Every write returns the version it made, and a write of a
file (``fs.write``, ``fs.splice``, ``fs.edit``) its doc's new ``heads`` too. ``fs.read`` and
``fs.stat`` give a file's ``heads``; ``fs.edit``, ``fs.splice`` and ``fs.write`` with those as
``base`` count their positions in (or diff against) the text that was read, so an edit that
arrived in between does not move them. Bad edits or an unknown base are invalid params
(-32602), the message naming the param; nothing is applied.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import native
from node import api_scopes, editor, presence_anchors
from node.api_json import content_json, peer_json, stat_json
from node.api_schema import schema
from node.api_scopes import TokenScope
from node.config import FolderRefused, check_folder
from node.errors import LocalNodeError
from node.events import JoinRequest, Presence
from node.home import TOKEN_ID_CHARS, write_atomically
from node.rpc import DAEMON_REQUIRED, INTERNAL_ERROR, INVALID_PARAMS, METHOD_NOT_FOUND, RpcError, invalid_params
from node.services import NodeServices
from protocol.errors import BadSignature, InvalidSpaceName, WireError
from protocol.identity import peer_id_of
from protocol.space import Genesis
from store.batch import run_steps
from store.blocks import cid_text
from store.errors import (
    ClosedError,
    CorruptionError,
    GitError,
    InvalidInput,
    NotARepository,
    NotAuthorised,
    SchemaError,
    StorageError,
    StoreError,
    UnknownBlock,
    UnknownDoc,
    UnknownRef,
    UnknownSnapshot,
    UnknownSpace,
)
from store.workspace import Content, Edit, Workspace
from store.workspace_errors import (
    AlreadyExists,
    BatchConflict,
    ContentTooLarge,
    ContentUnavailable,
    DirectoryNotEmpty,
    InvalidEdit,
    InvalidMove,
    IsADirectory,
    NotADirectory,
    NotFound,
    NotText,
    PathError,
    UnknownBase,
    UnknownVersion,
)

if TYPE_CHECKING:  # not loaded by a command on the store that does not use them
    from node.subscriptions import Sink, Subscriptions
    from protocol.capabilities import Record
    from store.history import History
    from store.verify import Problem

Json = dict[str, Any]

# Error codes of store refusals; a class not listed takes the code of its nearest listed base.
STORE_ERROR_CODES: dict[type[StoreError], int] = {
    StoreError: 1000,
    InvalidInput: 1001,
    PathError: 1002,
    NotFound: 1003,
    UnknownSpace: 1004,
    UnknownDoc: 1003,
    UnknownBlock: 1003,
    UnknownSnapshot: 1003,
    UnknownVersion: 1005,
    UnknownBase: INVALID_PARAMS,  # bad params of fs.edit/splice/write: the message names them
    InvalidEdit: INVALID_PARAMS,
    AlreadyExists: 1006,
    NotADirectory: 1007,
    IsADirectory: 1008,
    DirectoryNotEmpty: 1009,
    InvalidMove: 1010,
    NotText: 1011,
    ContentTooLarge: 1012,
    ContentUnavailable: 1013,
    BatchConflict: 1014,  # fs.batch, git.import in steps: the tree moved under them; it is as it was
    NotAuthorised: 1030,  # the space's capability log refuses this node's own write
    GitError: 1040,  # the git bridge (node/api_git.py): nothing was changed
    NotARepository: 1041,
    UnknownRef: 1042,
    CorruptionError: 1020,
    StorageError: 1021,
    SchemaError: 1021,
    ClosedError: 1021,
}


@dataclass(slots=True)
class Call:
    """The context of a call: the node, and inside a daemon the subscriptions, the caller, the
    API server's counters, and the scope of the caller's token (None: the full token)."""

    services: NodeServices
    subscriptions: Subscriptions | None = None
    sink: Sink | None = None
    api_stats: Callable[[], dict[str, int]] | None = None
    scope: TokenScope | None = None

    def space(self, params: Json) -> bytes:
        """The space the ``space`` param names (a scoped token's own, else the default, if none)."""
        spec = params.get("space")
        if spec is None and self.scope is not None and self.scope.space is not None:
            return self.scope.space
        return self.services.space_id(spec)

    def workspace(self, params: Json) -> Workspace:
        return self.services.workspace(self.space(params))

    def history(self, params: Json) -> History:
        return self.services.history(self.space(params))

    def live(self) -> tuple[Subscriptions, Sink]:
        if self.subscriptions is None or self.sink is None:
            raise RpcError(DAEMON_REQUIRED, "this needs a running daemon (distspace up)", "DaemonRequired")
        return self.subscriptions, self.sink


# A long method (git.import, a big fs.batch) is a generator: each ``next`` runs one step of
# its work, and what it returns is the result. The daemon serves its other clients between the
# steps (node/api.py); a command on the store runs them all at once (``dispatch``).
Steps = Generator[None, None, Json]
Handler = Callable[[Call, Json], Json | Steps]
HANDLERS: dict[str, Handler] = {}


def method(name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        HANDLERS[name] = handler
        return handler

    return register


def dispatch(call: Call, name: str, params: Json) -> Json:
    """Run one method, every step of it at once.

    Raises:
        RpcError: unknown method, invalid params, or the store refused (nothing was changed).
        Anything else is a bug, for the caller to log (the daemon) or show (the CLI).
    """
    return run_steps(dispatch_steps(call, name, params))


def dispatch_steps(call: Call, name: str, params: Json) -> Steps:
    """``dispatch`` a step at a time: yields between the steps of a long method (never for the
    others) and returns the result; each error is raised by the step that meets it."""
    handler = HANDLERS.get(name)
    if handler is None:
        raise RpcError(METHOD_NOT_FOUND, f"no method {name!r} (see node/api_schema.json)", "MethodNotFound")
    checked = schema().check_params(name, params)
    try:
        if call.scope is not None:
            if call.scope.token_id in call.services.revoked_tokens:
                raise RpcError(api_scopes.TOKEN_EXPIRED, "the token was revoked (token.revoke)", "Unauthorized")
            api_scopes.check(
                call.scope, name, checked, space=lambda: call.space(checked), workspace=lambda: call.workspace(checked), now_ms=call.services.clock()
            )
        result = handler(call, checked)
        if isinstance(result, Generator):
            result = yield from result
        return result
    except StoreError as error:
        raise store_error(error) from error
    except native.AutomergeError as error:  # a stored doc Automerge refuses: the store's damage, not a bug of ours
        raise RpcError(STORE_ERROR_CODES[CorruptionError], f"{name}: a document cannot be read ({error})", "CorruptionError") from error


def store_error(error: StoreError) -> RpcError:
    if isinstance(error, NotAuthorised):  # the log's reason speaks of "the author": here, this node
        return RpcError(STORE_ERROR_CODES[NotAuthorised], f"the space's members have not let this node write that: {error}", "NotAuthorised")
    for kind in type(error).__mro__:
        if kind in STORE_ERROR_CODES:
            return RpcError(STORE_ERROR_CODES[kind], str(error), type(error).__name__)
    return RpcError(INTERNAL_ERROR, str(error), type(error).__name__)  # unreachable: StoreError is listed


# ----- the tree -----


@method("fs.ls")
def fs_ls(call: Call, params: Json) -> Json:
    ws = call.workspace(params)
    version = ws.check_version(params.get("version"))
    entries = ws.ls(params["path"], version)
    return {"space": ws.space.hex(), "version": version, "path": params["path"], "entries": [stat_json(s) for s in entries]}


@method("fs.stat")
def fs_stat(call: Call, params: Json) -> Json:
    ws = call.workspace(params)
    version = ws.check_version(params.get("version"))
    return {"space": ws.space.hex(), "version": version, **stat_json(ws.stat(params["path"], version))}


@method("fs.read")
def fs_read(call: Call, params: Json) -> Json:
    ws = call.workspace(params)
    version = ws.check_version(params.get("version"))
    content, heads = ws.read_with_heads(params["path"], version)
    return {"space": ws.space.hex(), "version": version, "path": params["path"], **content_json(content), "heads": [h.hex() for h in heads]}


@method("fs.write")
def fs_write(call: Call, params: Json) -> Json:
    ws = call.workspace(params)
    content, now_ms, message, path = _content(params), call.services.clock(), params.get("message"), params["path"]
    version = ws.write(path, content, now_ms=now_ms, message=message, parents=params["parents"], base=_base(params))
    return {"version": version, "heads": _file_heads(ws, path)}


@method("fs.splice")
def fs_splice(call: Call, params: Json) -> Json:
    ws = call.workspace(params)
    now_ms, message, path = call.services.clock(), params.get("message"), params["path"]
    version = ws.splice(path, params["position"], params["delete"], params["insert"], now_ms=now_ms, message=message, base=_base(params))
    return {"version": version, "heads": _file_heads(ws, path)}


@method("fs.edit")
def fs_edit(call: Call, params: Json) -> Json:
    ws = call.workspace(params)
    edits = [Edit(each["position"], each.get("delete", 0), each.get("insert", "")) for each in params["edits"]]
    result = ws.edit(params["path"], edits, base=_base(params), now_ms=call.services.clock(), message=params.get("message"))
    change = None if result.change is None else result.change.hex()
    return {"version": ws.version(), "heads": [head.hex() for head in result.heads], "change": change}


@method("fs.mkdir")
def fs_mkdir(call: Call, params: Json) -> Json:
    ws = call.workspace(params)
    version = ws.mkdir(params["path"], now_ms=call.services.clock(), message=params.get("message"), parents=params["parents"])
    return {"version": version}


@method("fs.rm")
def fs_rm(call: Call, params: Json) -> Json:
    ws = call.workspace(params)
    version = ws.rm(params["path"], now_ms=call.services.clock(), message=params.get("message"), recursive=params["recursive"])
    return {"version": version}


@method("fs.mv")
def fs_mv(call: Call, params: Json) -> Json:
    ws = call.workspace(params)
    version = ws.mv(params["source"], params["target"], now_ms=call.services.clock(), message=params.get("message"))
    return {"version": version}


def _base(params: Json) -> list[bytes] | None:
    hex_base: list[str] | None = params.get("base")
    return None if hex_base is None else [bytes.fromhex(head) for head in hex_base]  # hex: the schema checked


def _file_heads(ws: Workspace, path: str) -> list[str]:
    """A file doc's heads, hex; not by stat, whose size would read the whole text."""
    return [head.hex() for head in ws.repo.heads(ws.space, ws.node(path).doc_id)]


def _content(params: Json) -> Content:
    text: str | None = params.get("text")
    encoded: str | None = params.get("base64")
    if text is not None and encoded is None:
        return text
    if text is not None or encoded is None:
        raise invalid_params("fs.write: give the content as exactly one of text (a string) or base64 (bytes)")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise invalid_params(f"fs.write: params.base64 is not base64 ({error})") from error


# ----- history -----

# The most entries one history.log call returns (node/api_schema.json says the same): ~300 bytes
# of JSON each, 3 MB in all, under MAX_MESSAGE_BYTES; a longer history is paged with since/until.
MAX_LOG_LIMIT = 10_000


def _who(services: NodeServices, space: bytes) -> Callable[[bytes], tuple[str | None, str | None]]:
    """(name, kind) of a key as its own peer record in the space says (node/peer_records.py),
    (None, None) for a key whose record has not reached us: never a local label."""
    services.publish_own_record(space)  # a space stored before peer records, on a node not started since
    records = services.peer_records

    def who(key: bytes) -> tuple[str | None, str | None]:
        record = records.get(space, key)
        return (None, None) if record is None else (record.name, record.kind.value)

    return who


def _change_by(who: Callable[[bytes], tuple[str | None, str | None]], change: bytes, doc: bytes, author: bytes) -> Json:
    """A log entry's change, doc and author (peer id, and name and kind from its own record)."""
    name, kind = who(author)
    return {"change": change.hex(), "doc": doc.hex(), "author": peer_id_of(author), "author_name": name, "author_kind": kind}


@method("history.log")
def history_log(call: Call, params: Json) -> Json:
    history = call.history(params)
    if params.get("refused"):
        return _refused_log(call, history, params)
    entries = history.log(params.get("path"), since=params["since"], until=params.get("until"), limit=params["limit"])
    who = _who(call.services, history.ws.space)
    return {
        "space": history.ws.space.hex(),
        "version": history.ws.version(),
        "entries": [
            {
                "version": entry.version,
                **_change_by(who, entry.change, entry.doc, entry.author),
                "time_ms": entry.time_ms,
                "message": entry.message,
                "paths": list(entry.paths),
                "origin": entry.origin,
            }
            for entry in entries
        ],
    }


def _refused_log(call: Call, history: History, params: Json) -> Json:
    """``history.log {refused: true}``: the changes refused at ingest as unauthorised
    (store/refused.py), newest first, instead of the log's entries."""
    refused = history.refused(params.get("path"), limit=params["limit"])
    who = _who(call.services, history.ws.space)
    return {
        "space": history.ws.space.hex(),
        "version": history.ws.version(),
        "entries": [],
        "refused": [
            {
                **_change_by(who, entry.change, entry.doc, entry.author),
                "seq": entry.seq,
                "time_ms": entry.time_ms,
                "reason": entry.reason,
                "refused_ms": entry.refused_ms,
                "paths": None if entry.paths is None else list(entry.paths),
            }
            for entry in refused
        ],
    }


@method("history.diff")
def history_diff(call: Call, params: Json) -> Json:
    history = call.history(params)
    new = history.ws.check_version(params.get("new"))
    diffs = history.diff(params["old"], new, params.get("path"))
    return {
        "space": history.ws.space.hex(),
        "old": params["old"],
        "new": new,
        "files": [
            {
                "file_id": diff.file_id,
                "status": diff.status,
                "old_path": diff.old_path,
                "new_path": diff.new_path,
                "unified": diff.unified,
            }
            for diff in diffs
        ],
    }


@method("history.blame")
def history_blame(call: Call, params: Json) -> Json:
    history = call.history(params)
    version = history.ws.check_version(params.get("version"))
    lines = history.blame(params["path"], version)
    who = _who(call.services, history.ws.space)
    return {
        "space": history.ws.space.hex(),
        "version": version,
        "path": params["path"],
        "lines": [
            {
                "number": line.number,
                "text": line.text,
                "author": peer_id_of(line.author),
                "author_name": who(line.author)[0],
                "author_kind": who(line.author)[1],
                "change": line.change.hex(),
                "time_ms": line.time_ms,
            }
            for line in lines
        ],
    }


@method("history.revert")
def history_revert(call: Call, params: Json) -> Json:
    history = call.history(params)
    now_ms, message, path = call.services.clock(), params.get("message"), params.get("path")
    if path is None:
        version = history.revert(params["version"], now_ms=now_ms, message=message)
    else:
        version = history.revert_file(path, params["version"], now_ms=now_ms, message=message)
    return {"version": version}


# ----- subscriptions and presence -----


@method("subscribe.file")
def subscribe_file(call: Call, params: Json) -> Json:
    subscriptions, sink = call.live()
    return subscriptions.file(sink, call.workspace(params), params["path"])


@method("subscribe.tree")
def subscribe_tree(call: Call, params: Json) -> Json:
    subscriptions, sink = call.live()
    return subscriptions.tree(sink, call.workspace(params))


@method("subscribe.peers")
def subscribe_peers(call: Call, params: Json) -> Json:
    subscriptions, sink = call.live()
    return subscriptions.peers(sink)


@method("subscribe.presence")
def subscribe_presence(call: Call, params: Json) -> Json:
    subscriptions, sink = call.live()
    return subscriptions.presence(sink, call.space(params))


@method("unsubscribe")
def unsubscribe(call: Call, params: Json) -> Json:
    subscriptions, sink = call.live()
    return {"removed": subscriptions.cancel(sink, params["subscription"])}


@method("presence.set")
def presence_set(call: Call, params: Json) -> Json:
    subscriptions, sink = call.live()
    ws, path = call.workspace(params), params.get("path")
    cursor, selection = presence_anchors.anchors(subscriptions, sink, ws, path, params.get("cursor"), params.get("selection"), params.get("base"))
    presence = Presence(ws.space, call.services.identity.peer_id, params["client"], path, cursor, selection, params.get("name"), call.services.clock())
    subscriptions.set_presence(sink, presence)
    return subscriptions.presence_view(sink, presence)


@method("presence.clear")
def presence_clear(call: Call, params: Json) -> Json:
    subscriptions, sink = call.live()
    space = call.space(params)
    return {"removed": subscriptions.clear_presence(sink, (space, call.services.identity.peer_id, params["client"]))}


@method("presence.list")
def presence_list(call: Call, params: Json) -> Json:
    subscriptions, sink = call.live()
    space = call.space(params)
    return {"space": space.hex(), "presence": [subscriptions.presence_view(sink, p) for p in call.services.presence.entries(space)]}


# ----- the editor protocol (node/editor.py) -----


@method("doc.open")
def doc_open(call: Call, params: Json) -> Json:
    subscriptions, sink = call.live()
    return editor.open_doc(subscriptions, sink, call.workspace(params), params["path"], params["encoding"])


@method("doc.edit")
def doc_edit(call: Call, params: Json) -> Json:
    subscriptions, sink = call.live()
    ws, now_ms, message = call.workspace(params), call.services.clock(), params.get("message")
    return editor.edit_doc(subscriptions, sink, ws, params["path"], params["base"], params["edits"], now_ms=now_ms, message=message)


@method("doc.undo")
def doc_undo(call: Call, params: Json) -> Json:
    subscriptions, sink = call.live()
    return editor.undo_doc(subscriptions, sink, call.workspace(params), params["path"], now_ms=call.services.clock())


@method("doc.redo")
def doc_redo(call: Call, params: Json) -> Json:
    subscriptions, sink = call.live()
    return editor.undo_doc(subscriptions, sink, call.workspace(params), params["path"], now_ms=call.services.clock(), redo=True)


@method("doc.close")
def doc_close(call: Call, params: Json) -> Json:
    subscriptions, sink = call.live()
    return editor.close_doc(subscriptions, sink, call.space(params), params["path"])


# ----- the node and its spaces -----


@method("node.status")
def node_status(call: Call, params: Json) -> Json:
    from node.config import dialable_elsewhere, loopback_warning

    services = call.services
    repo = services.repo
    addrs = services.addrs()
    return {
        "peer_id": services.identity.peer_id,
        "public_key": services.identity.public_key.hex(),
        "name": services.config.name,
        "kind": services.config.kind.value,
        "home": str(services.home.path),
        "daemon": services.daemon,
        "uptime_s": round((services.clock() - services.started_ms) / 1000, 3) if services.daemon else None,
        "api": services.api,
        "network": services.network is not None,
        "addrs": addrs,
        "reachable": [addr for addr in addrs if dialable_elsewhere(addr)],
        "warning": loopback_warning(addrs),
        "peers": len(services.peers.list()),
        "spaces": [{"space_id": g.space_id.hex(), "name": g.name, "version": repo.version(g.space_id)} for g in repo.spaces()],
        "pending_joins": len(_pending(services)),
    }


@method("node.peers")
def node_peers(call: Call, params: Json) -> Json:
    return {"daemon": call.services.daemon, "peers": [peer_json(p) for p in call.services.peers.list()]}


@method("node.stats")
def node_stats(call: Call, params: Json) -> Json:
    services = call.services
    repo = services.repo
    spaces = []
    for genesis in repo.spaces():
        rows = repo.backend.docs(genesis.space_id)
        latest = repo.latest_snapshot(genesis.space_id)
        spaces.append(
            {
                "space_id": genesis.space_id.hex(),
                "name": genesis.name,
                "docs": len(rows),
                "changes": sum(row.change_count for row in rows),
                "version": repo.version(genesis.space_id),
                "snapshot_version": latest.version if latest is not None else None,
            }
        )
    files = [services.home.database, services.home.database.with_name(services.home.database.name + "-wal")]
    return {
        "spaces": spaces,
        "database_bytes": sum(path.stat().st_size for path in files if path.exists()),
        "subscriptions": len(call.subscriptions) if call.subscriptions is not None else 0,
        "peers": len(services.peers.list()),
        "api": call.api_stats() if call.api_stats is not None else None,
    }


@method("node.verify")
def node_verify(call: Call, params: Json) -> Json:
    """``problems``: damage; ``kept``: changes kept and explained, never materialised (a
    revocation took them out, or ingest refused them as unauthorised), which ``ok`` ignores."""
    found = call.services.repo.verify()

    def problem_json(problem: Problem) -> Json:
        return {
            "kind": problem.kind.value,
            "space": problem.space.hex() if problem.space is not None else None,
            "doc": problem.doc.hex() if problem.doc is not None else None,
            "subject": problem.subject.hex(),
            "detail": problem.detail,
        }

    problems = [problem_json(problem) for problem in found if not problem.expected]
    return {"ok": not problems, "problems": problems, "kept": [problem_json(p) for p in found if p.expected]}


@method("space.list")
def space_list(call: Call, params: Json) -> Json:
    repo = call.services.repo
    return {
        "spaces": [
            {
                "space_id": g.space_id.hex(),
                "name": g.name,
                "creator": peer_id_of(g.creator),
                "created_ms": g.created_ms,
                "version": repo.version(g.space_id),
                "private": g.private,
            }
            for g in repo.spaces()
        ],
        "pending": [{"space_id": r.space.hex(), "peers": list(r.peers)} for r in _pending(call.services)],
    }


@method("space.create")
def space_create(call: Call, params: Json) -> Json:
    """A private space by default: only its creator is a member until it invites others."""
    services = call.services
    try:
        genesis = Genesis.create(services.identity, params["name"], services.clock(), private=not params["public"])
    except InvalidSpaceName as error:
        raise InvalidInput(str(error)) from error
    services.repo.add_space(genesis)
    services.adopt_default_space(genesis.space_id)
    return _space_json(genesis)


@method("space.join")
def space_join(call: Call, params: Json) -> Json:
    """Add a space created elsewhere: by a ticket (a private space's invitation, or an open
    one's), at once if its genesis is given, else when a peer sends it."""
    services = call.services
    if params.get("ticket") is not None:
        return _join_by_ticket(call, params["ticket"], tuple(params["peers"]))
    if params.get("space_id") is None:
        raise invalid_params("space.join: give a ticket (distspace invite prints one), or the space_id of an open space")
    space = bytes.fromhex(params["space_id"])
    peers = tuple(params["peers"])
    if params.get("genesis") is None and not peers:
        raise invalid_params("space.join: give a peer to fetch the space from, or its genesis")
    if params.get("genesis") is not None:
        genesis = _genesis(params["genesis"], space)
        services.repo.add_space(genesis)
    if peers:
        services.request_join(space, peers)
    services.adopt_default_space(space)
    held = {g.space_id: g for g in services.repo.spaces()}
    return {
        "space_id": space.hex(),
        "name": held[space].name if space in held else None,
        "status": "joined" if space in held else "pending",
        "peers": list(peers),
        "member": _member_json(services, space) if space in held else None,
    }


def _join_by_ticket(call: Call, text: str, peers: tuple[str, ...]) -> Json:
    """Redeem the ticket with this node's key, store the space and the proof, and ask the
    network to dial the ticket's addresses: it opens its sessions with the proof.

    A node the space's log admits already (it joined before) redeems nothing: a redemption
    spends one of the invitation's uses.
    """
    from protocol.errors import CapabilityError, TicketError
    from protocol.ticket import Ticket, redeem

    services = call.services
    now_ms = services.clock()
    try:
        ticket = Ticket.decode(text)
    except TicketError as error:
        raise RpcError(TICKET_REFUSED, f"ticket: {error}", "TicketError") from error
    genesis = ticket.genesis
    space = genesis.space_id
    held = any(g.space_id == space for g in services.repo.spaces())
    if held and services.repo.capability_log(space).admits(services.identity.public_key, now_ms):
        records = []
    else:
        try:
            records = redeem(ticket, services.identity, now_ms)
        except TicketError as error:
            raise RpcError(TICKET_REFUSED, f"ticket: {error}", "TicketError") from error
    addrs = tuple(dict.fromkeys([*ticket.addrs, *peers]))
    try:
        with services.repo.group(durable=True):  # genesis and proof heard together: no session opens without the proof
            services.repo.add_space(genesis)
            services.repo.add_capability_records(space, [record.encode() for record in records])
    except CapabilityError as error:
        raise RpcError(TICKET_REFUSED, f"ticket: its records are refused ({error})", "TicketError") from error
    if addrs:
        services.request_join(space, addrs)
    services.adopt_default_space(space)
    return {"space_id": space.hex(), "name": genesis.name, "status": "joined", "peers": list(addrs), "member": _member_json(services, space)}


def _member_json(services: NodeServices, space: bytes) -> Json:
    """This node's standing in a space: its role now (None: not a member), for the joiner to see."""
    genesis = services.repo.genesis(space)
    if not genesis.private:
        return {"private": False, "role": "write", "paths": [], "expires_ms": None}
    log = services.repo.capability_log(space)
    now_ms = services.clock()
    own = [m for m in log.members(now_ms) if m.key == services.identity.public_key and not m.revoked and not m.invitation]
    best = max(own, key=lambda m: (m.role, not m.paths), default=None)
    if best is None:
        return {"private": True, "role": None, "paths": [], "expires_ms": None}
    return {"private": True, "role": best.role.label, "paths": list(best.paths), "expires_ms": best.expires_ms}


# ----- private spaces: invitations, members, revocation (protocol/capabilities.py) -----

# A refusal by the space's capability log (this node may not do that there), and a ticket that
# cannot be used (damaged, expired by our clock, for another key).
NOT_AUTHORISED = STORE_ERROR_CODES[NotAuthorised]
TICKET_REFUSED = 1032


@method("space.invite")
def space_invite(call: Call, params: Json) -> Json:
    """A ticket for a fresh invitation key: ``uses`` joiners each get ``role`` over ``paths``
    until ``expires_s`` (the membership it gives ends then too: the joiner's grant is the
    invitation's rights, no more). The grant is stored here first, so it reaches the space's
    other members, who can then check the joiners' grants too."""
    from protocol.capabilities import Role
    from protocol.errors import CapabilityError
    from protocol.ticket import MAX_ADDR_CHARS, MAX_TICKET_ADDRS, invite

    services = call.services
    space = call.space(params)
    genesis = services.repo.genesis(space)
    if not genesis.private:
        raise invalid_params(
            f"space.invite: {genesis.name!r} is an open space: any peer that knows its id joins it (distspace join {space.hex()} --peer ADDR)"
        )
    paths = tuple(params["paths"])
    _check_globs(paths, "space.invite")
    now_ms = services.clock()
    expires_s: int | None = params.get("expires_s")
    addrs = tuple(addr for addr in services.addrs() if len(addr) <= MAX_ADDR_CHARS)[:MAX_TICKET_ADDRS]
    log = services.repo.capability_log(space)
    try:
        ticket = invite(
            log,
            services.identity,
            role=Role.parse(params["role"]),
            paths=paths,
            expires_ms=None if expires_s is None else now_ms + expires_s * 1000,
            uses=params["uses"],
            issued_ms=now_ms,
            addrs=addrs,
        )
    except CapabilityError as error:
        raise invalid_params(f"space.invite: {error}") from error
    _issue(services, space, ticket.grant, "invite to")
    grant = ticket.grant
    return {
        "space": space.hex(),
        "name": genesis.name,
        "ticket": ticket.encode(),
        "role": grant.role.label,
        "paths": list(grant.paths),
        "expires_ms": grant.expires_ms,
        "uses": grant.uses,
        "invitation": grant.subject.hex(),
        "addrs": list(ticket.addrs),
    }


@method("space.members")
def space_members(call: Call, params: Json) -> Json:
    services = call.services
    space = call.space(params)
    genesis = services.repo.genesis(space)
    if not genesis.private:
        return {"space": space.hex(), "name": genesis.name, "private": False, "members": []}
    log = services.repo.capability_log(space)
    who = _who(services, space)
    return {
        "space": space.hex(),
        "name": genesis.name,
        "private": True,
        "members": [
            {
                "key": member.key.hex(),
                "peer_id": peer_id_of(member.key),
                "name": who(member.key)[0],
                "kind": who(member.key)[1],
                "role": member.role.label,
                "paths": list(member.paths),
                "expires_ms": member.expires_ms,
                "revoked": member.revoked,
                "invitation": member.invitation,
                "root": member.key == log.root,
                "grant": member.grant.hex(),
            }
            for member in log.members(services.clock())
        ],
    }


@method("space.revoke")
def space_revoke(call: Call, params: Json) -> Json:
    """Revoke a key: its grants stop, its changes after what this node holds of it are refused
    on every member's node (``seen``: its highest seq per doc here)."""
    from protocol.capabilities import Grant, Revocation

    services = call.services
    space = call.space(params)
    genesis = services.repo.genesis(space)
    if not genesis.private:
        raise invalid_params(f"space.revoke: {genesis.name!r} is an open space: every key may write it, none can be revoked")
    log = services.repo.capability_log(space)
    subject = _subject(params, {log.root, *(r.subject for r in log.records() if isinstance(r, Grant))})
    if subject == log.root:
        raise RpcError(NOT_AUTHORISED, "space.revoke: the space's creator is its root admin and cannot be revoked", "NotAuthorised")
    repo = services.repo
    seen = [(row.doc, seq) for row in repo.backend.docs(space) if (seq := repo.author_seq(space, row.doc, subject)) > 0]
    revocation = Revocation.issue(services.identity, space=space, subject=subject, seen=seen, issued_ms=services.clock(), parents=log.heads)
    _issue(services, space, revocation, "revoke in")
    return {
        "space": space.hex(),
        "key": subject.hex(),
        "peer_id": peer_id_of(subject),
        "revocation": revocation.hash.hex(),
        "docs_seen": len(revocation.seen),
    }


def _subject(params: Json, known: set[bytes]) -> bytes:
    """The key ``key`` (hex) or ``peer_id`` names, among the keys the log has granted to."""
    key: str | None = params.get("key")
    peer: str | None = params.get("peer_id")
    if (key is None) == (peer is None):
        raise invalid_params("space.revoke: give exactly one of key (64 hex digits) or peer_id")
    if key is not None:
        subject = bytes.fromhex(key)  # the schema checked the hex
        if subject not in known:
            raise invalid_params(f"space.revoke: key {key} holds no grant in this space (distspace members)")
        return subject
    found = [each for each in known if peer_id_of(each) == peer]
    if not found:
        raise invalid_params(f"space.revoke: peer {peer} holds no grant in this space (distspace members)")
    return found[0]


def _issue(services: NodeServices, space: bytes, record: Record, doing: str) -> None:
    """Store a record signed here once a trial log says it is valid; refused with its reason.

    Raises:
        RpcError: NOT_AUTHORISED, the log's reason (this node is not an admin, its grant does
            not reach that far...).
    """
    from protocol.capabilities import CapabilityLog

    log = services.repo.capability_log(space)
    trial = CapabilityLog(services.repo.genesis(space), log.records())
    trial.add(record)
    reason = trial.verdict(record.hash)
    if reason is not None:
        name = services.repo.genesis(space).name
        raise RpcError(NOT_AUTHORISED, f"this node cannot {doing} space {name!r}: {reason}", "NotAuthorised")
    services.repo.issue_capability(space, record.encode())


@method("space.snapshot")
def space_snapshot(call: Call, params: Json) -> Json:
    space = call.space(params)
    repo = call.services.repo
    snapshot = repo.snapshot(space, call.services.clock())
    return {
        "space": space.hex(),
        "version": repo.version(space),
        "manifest": cid_text(snapshot.manifest_cid) if snapshot is not None else None,
        "docs": len(repo.backend.doc_snapshots(space)),
    }


def _genesis(encoded: str, space: bytes) -> Genesis:
    try:
        genesis = Genesis.decode(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError, WireError, BadSignature) as error:
        raise invalid_params(f"space.join: params.genesis is not a valid genesis record ({error})") from error
    if genesis.space_id != space:
        raise invalid_params(f"space.join: the genesis is of space {genesis.space_id.hex()}, not {space.hex()}")
    return genesis


def _space_json(genesis: Genesis) -> Json:
    return {
        "space_id": genesis.space_id.hex(),
        "name": genesis.name,
        "private": genesis.private,
        "genesis": base64.b64encode(genesis.encode()).decode("ascii"),
    }


def _pending(services: NodeServices) -> list[JoinRequest]:
    held = {g.space_id for g in services.repo.spaces()}
    return [request for request in services.joins() if request.space not in held]


# ----- scoped API tokens (node/api_scopes.py) -----

TOKEN_TABLE_ERROR = 1040


@method("token.create")
def token_create(call: Call, params: Json) -> Json:
    services = call.services
    paths = tuple(params["paths"])
    _check_globs(paths, "token.create")
    space = None if params["any_space"] else call.space(params).hex()
    expires_s: int | None = params.get("expires_s")
    now_ms = services.clock()
    try:
        token, row = services.home.add_scoped_token(
            role=params["role"], paths=paths, space=space, expires_ms=None if expires_s is None else now_ms + expires_s * 1000, now_ms=now_ms
        )
    except LocalNodeError as error:
        raise RpcError(TOKEN_TABLE_ERROR, str(error), type(error).__name__) from error
    return {"token": token, "scope": TokenScope.of(row).to_json()}


@method("token.list")
def token_list(call: Call, params: Json) -> Json:
    services = call.services
    try:
        rows = services.home.scoped_tokens()
    except LocalNodeError as error:
        raise RpcError(TOKEN_TABLE_ERROR, str(error), type(error).__name__) from error
    now_ms = services.clock()
    return {
        "tokens": [
            {"scope": TokenScope.of(row).to_json(), "created_ms": row.created_ms, "expired": row.expires_ms is not None and now_ms >= row.expires_ms}
            for row in rows
        ]
    }


@method("token.revoke")
def token_revoke(call: Call, params: Json) -> Json:
    services = call.services
    token_id: str = params["id"]
    try:
        removed = services.home.remove_scoped_token(token_id)
    except LocalNodeError as error:
        raise RpcError(TOKEN_TABLE_ERROR, str(error), type(error).__name__) from error
    services.revoked_tokens.add(token_id[:TOKEN_ID_CHARS])
    return {"removed": removed}


def _check_globs(paths: tuple[str, ...], method_name: str) -> None:
    """Path globs a token or a grant can hold (protocol/capability_records.py's rules)."""
    from protocol.capability_records import MAX_PATHS_PER_GRANT, glob_problem

    if len(paths) > MAX_PATHS_PER_GRANT:
        raise invalid_params(f"{method_name}: at most {MAX_PATHS_PER_GRANT} paths, not {len(paths)}")
    for index, glob in enumerate(paths):
        if (problem := glob_problem(glob)) is not None:
            raise invalid_params(f"{method_name}: params.paths[{index}]: {problem}")


# ----- folder mirrors -----


@method("mirror.status")
def mirror_status(call: Call, params: Json) -> Json:
    services = call.services
    configured = services.config.folder_path()
    return {
        "daemon": services.daemon,
        "configured": None if configured is None else {"folder": str(configured), "space": services.config.folder_space},
        "mirrors": services.mirrors.status() if services.mirrors is not None else [],
    }


@method("mirror.start")
def mirror_start(call: Call, params: Json) -> Json:
    """Mirror a space into a folder from now on; the first checkout runs in the background
    (``mirror.status`` tells when it is done). The folder goes into config.toml if it names none,
    so the daemon mirrors it again when it restarts."""
    services = call.services
    if services.mirrors is None:
        raise RpcError(DAEMON_REQUIRED, "mirroring a folder needs a running daemon (distspace up)", "DaemonRequired")
    space = call.space(params)
    try:
        folder = services.mirrors.start_soon(space, _folder(params))
    except FolderRefused as error:
        raise invalid_params(f"folder: {error}") from error
    saved = services.config.folder is None
    if saved:
        _remember_folder(services, space, folder)
    return {"space": space.hex(), "folder": str(folder), "state": "starting", "saved": saved}


@method("mirror.checkout")
def mirror_checkout(call: Call, params: Json) -> Json:
    """A one-shot checkout: the space's files written into a folder, nothing mirrored after."""
    from node.mirror import checkout  # pathspec: only a checkout needs it

    services = call.services
    space = call.space(params)
    try:
        folder = check_folder(_folder(params), services.home.path)
    except FolderRefused as error:
        raise invalid_params(f"folder: {error}") from error
    # The mirror keeps its records for one folder per space: a checkout elsewhere would drop them.
    mirrored = [Path(m["folder"]) for m in (services.mirrors.status() if services.mirrors is not None else []) if m["space"] == space.hex()]
    configured = services.config.folder_path()
    if configured is not None and _is_space(services, services.config.folder_space, space):
        mirrored.append(configured)
    if any(other != folder for other in mirrored):
        raise invalid_params(f"folder: the space is mirrored into {mirrored[0]} (one folder per space); check it out there, or stop mirroring it")
    return {"space": space.hex(), "folder": str(folder), "actions": checkout(services, space, folder)}


def _folder(params: Json) -> Path:
    folder = Path(params["folder"])
    if not folder.is_absolute():
        raise invalid_params(f"folder: {folder} is not an absolute path")
    return folder


def _is_space(services: NodeServices, spec: str | None, space: bytes) -> bool:
    try:
        return services.space_id(spec) == space
    except StoreError:  # not on this node (yet), or ambiguous: not this one
        return False


def _remember_folder(services: NodeServices, space: bytes, folder: Path) -> None:
    """``folder`` and ``folder_space`` in config.toml, first (where top-level keys belong)."""
    config_file = services.home.config_file
    rest = config_file.read_text() if config_file.exists() else ""
    lines = f"folder = {json.dumps(str(folder))}\nfolder_space = \"{space.hex()}\"\n"  # a JSON string is a TOML basic string
    write_atomically(config_file, lines + rest)
    services.config = dataclasses.replace(services.config, folder=str(folder), folder_space=space.hex())


# The bulk write and git methods (node/api_git.py) register themselves with ``method``: importing them is enough.
import node.api_git  # noqa: E402, F401

# The IPFS methods live in a module of their own; importing it registers them.
from node import ipfs_api  # noqa: E402, F401

