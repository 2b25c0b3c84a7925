"""The local API's bulk write and git methods: ``fs.batch``, ``git.import``, ``git.promote``, ``git.log``.

``fs.batch`` is ``Workspace.apply_batch`` over JSON: many creates, writes, deletes, mkdirs and
mode changes checked together and written as one tree change plus one change per content doc
(store/batch.py), so an agent or a tool writing hundreds of files pays a few transactions, not
hundreds. ``git.*`` run the git bridge (store/git_bridge.py) on a repository on this machine:
the daemon (or the command on the store) opens it by path, so they need the full token, as the
mirror's methods do. The map between versions and commits is HOME/git.sqlite.

Both run in steps (``Workspace.batch_steps``, ``git_bridge.import_history_steps``: content docs
BATCH_DOCS_PER_STEP a durable group, the tree moved at the last step only): the daemon serves its
other clients, sync and presence between steps instead of stalling for a whole import (8 s for
2,000 files under load), and with ``progress: true`` the caller gets a call.progress notification
a step (files done of total), as the log gets a line. A reader between steps sees the tree as
before the call; a crash mid-way leaves it so too (content written over stays written, and
importing again finishes the rest: store/git_bridge.py). A tree moved by someone else meanwhile
is checked again at the last step (BatchConflict if the batch now means other files).

pygit2 is imported when a git method runs, not before: ``distspace cat`` never pays for it.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from node.api_methods import Call, Steps, method
from node.logs import event
from node.rpc import invalid_params
from protocol.errors import InvalidSpaceName
from protocol.space import Genesis
from store.batch import BATCH_DOCS_PER_STEP, BatchOp
from store.errors import InvalidInput, UnknownSpace
from store.workspace import Content

if TYPE_CHECKING:
    from store.git_bridge import GitLinks, ImportProgress, ImportResult

Json = dict[str, Any]
P = TypeVar("P")
R = TypeVar("R")
log = logging.getLogger("distspace.api")

LINKS_FILE = "git.sqlite"  # in the node home: the version <-> commit map (store/git_bridge.py GitLinks)
# What one fs.batch may ask (hostile or mistaken input is refused before any work, -32602 naming
# the param). A call's JSON is bounded by the API's message limit too (node/api.py
# MAX_MESSAGE_BYTES, 8 MiB), but a command on the store has none, and small ops are cheap to send:
# the ops (node/api_schema.json's maxItems says the same) ...
MAX_BATCH_OPS = 50_000
# ... the content they carry, text as UTF-8 and base64 decoded (the message limit's worth) ...
MAX_BATCH_BYTES = 8 * 1024 * 1024
# ... and the directories their paths go through, each one the batch may create: a path is up
# to 3 KB deep in 1,500 directories, so 8 MiB of paths could ask 4 million of them. A real tree
# of 70,000 files (Linux) has ~5,000.
MAX_BATCH_DIRS = 20_000
PROGRESS_NOTIFICATION = "call.progress"  # to the caller of fs.batch or git.import with progress: true


# ----- bulk writes -----


@method("fs.batch")
def fs_batch(call: Call, params: Json) -> Steps:
    ws = call.workspace(params)
    raw = params["ops"]
    if len(raw) > MAX_BATCH_OPS:
        raise invalid_params(f"fs.batch: params.ops: at most {MAX_BATCH_OPS} ops a call, not {len(raw)}: split the batch")
    budget = _Budget()
    ops = [_op(index, each, budget) for index, each in enumerate(raw)]
    steps = ws.batch_steps(ops, now_ms=call.services.clock(), message=params.get("message"), docs_per_step=BATCH_DOCS_PER_STEP)
    result = yield from _reported(call, "fs.batch", params["progress"], steps, lambda step: {"phase": step.phase, "done": step.done, "total": step.total})
    return {
        "version": result.version,
        "changes": result.changes,
        "files": [{"path": path, "heads": [head.hex() for head in heads]} for path, heads in result.heads.items()],
    }


class _Budget:
    """What a batch's ops have taken of MAX_BATCH_BYTES and MAX_BATCH_DIRS so far."""

    def __init__(self) -> None:
        self.bytes = 0
        self.dirs: set[str] = set()

    def content(self, index: int, size: int) -> None:
        self.bytes += size
        if self.bytes > MAX_BATCH_BYTES:
            raise invalid_params(f"fs.batch: params.ops[{index}]: the ops carry more than {MAX_BATCH_BYTES} bytes of content a call: split the batch")

    def path(self, index: int, path: object) -> None:
        """Count the directories above ``path``, each once: from the deepest up to the first already
        counted, so the work is the directories', not every path's depth."""
        if not isinstance(path, str):
            return  # the store refuses it
        end = path.rfind("/")
        while end > 0 and (parent := path[:end]) not in self.dirs:
            self.dirs.add(parent)
            if len(self.dirs) > MAX_BATCH_DIRS:
                raise invalid_params(f"fs.batch: params.ops[{index}].path: the ops' paths go through more than {MAX_BATCH_DIRS} directories: split the batch")
            end = path.rfind("/", 0, end)


def _op(index: int, each: Json, budget: _Budget) -> BatchOp:
    kind = each["op"]
    content: Content | None = None
    text: str | None = each.get("text")
    encoded: str | None = each.get("base64")
    budget.path(index, each["path"])
    if kind in ("create", "write"):
        if (text is None) == (encoded is None):
            raise invalid_params(f"fs.batch: params.ops[{index}]: give the content as exactly one of text or base64")
        if text is not None:
            budget.content(index, len(text.encode("utf-8", "surrogatepass")))
            content = text
        else:
            assert encoded is not None
            budget.content(index, len(encoded) * 3 // 4)  # before decoding it
            try:
                content = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError) as error:
                raise invalid_params(f"fs.batch: params.ops[{index}].base64 is not base64 ({error})") from error
    elif text is not None or encoded is not None:
        raise invalid_params(f"fs.batch: params.ops[{index}]: a {kind} takes no content")
    if kind == "mode" and each.get("executable") is None:
        raise invalid_params(f"fs.batch: params.ops[{index}]: a mode op needs executable (true or false)")
    return BatchOp(kind, each["path"], content, each.get("executable"), each.get("recursive", False))


def _reported(call: Call, name: str, notify: bool, steps: Generator[P, None, R], where: Callable[[P], Json]) -> Generator[None, None, R]:
    """Run ``steps`` for the daemon (node/api.py serves others at each yield), telling each
    step's progress in the log and, if the caller asked, in a call.progress notification."""
    while True:
        try:
            step = next(steps)
        except StopIteration as done:
            result: R = done.value
            return result
        fields = where(step)
        event(log, f"{name}.progress", logging.INFO if name == "git.import" else logging.DEBUG, **fields)
        if notify and call.sink is not None:
            call.sink.notify(PROGRESS_NOTIFICATION, {"method": name, **fields})
        yield None


# ----- git -----


def _links(call: Call) -> GitLinks:
    from store.git_bridge import GitLinks

    return GitLinks(call.services.home.path / LINKS_FILE)


def _import_space(call: Call, params: Json, repo: Path) -> tuple[bytes, bool]:
    """The space to import into: the one ``space`` names, else a new one of that name (the
    repository's folder name by default); True if it is new."""
    services = call.services
    name: str = params.get("space") or repo.resolve().name.removesuffix(".git") or "repo"
    try:
        return services.space_id(name), False
    except UnknownSpace:
        pass
    try:
        genesis = Genesis.create(services.identity, name, services.clock(), private=not params["public"])
    except InvalidSpaceName as error:
        raise InvalidInput(str(error)) from error
    services.repo.add_space(genesis)
    services.adopt_default_space(genesis.space_id)
    return genesis.space_id, True


@method("git.import")
def git_import(call: Call, params: Json) -> Steps:
    """A commit's tree into a space, or the last ``history`` commits in order (store/git_bridge.py),
    in steps (``import_history_steps``): the daemon serves others between them."""
    from store.git_bridge import import_history_steps, open_repository, resolve

    repo = _repo_path(params["repo"])
    repository = open_repository(repo)  # NotARepository, UnknownRef before any space is made
    resolve(repository, params["ref"])
    space, created = _import_space(call, params, repo)
    ws = call.services.workspace(space)
    links = _links(call)
    try:
        steps = import_history_steps(ws, repository, params["ref"], links, history=params["history"], now_ms=call.services.clock)
        results = yield from _reported(call, "git.import", params["progress"], steps, _import_progress)
    finally:
        links.close()
    return {
        "space": space.hex(),
        "name": ws.repo.genesis(space).name,
        "created": created,
        "version": ws.version(),
        "commit": results[-1].commit,
        "imports": [_import_json(result) for result in results],
    }


def _import_progress(step: ImportProgress) -> Json:
    return {"phase": step.phase, "done": step.done, "total": step.total, "commit": step.commit, "number": step.number, "commits": step.commits}


def _import_json(result: ImportResult) -> Json:
    return {
        "commit": result.commit,
        "version": result.version,
        "added": result.added,
        "modified": result.modified,
        "deleted": result.deleted,
        "changes": result.changes,
        "skipped": list(result.skipped),
    }


@method("git.promote")
def git_promote(call: Call, params: Json) -> Json:
    """The space at a version as a commit onto a ref of a repository (by default the one the
    space's newest link names)."""
    from store.git_bridge import open_repository, promote

    ws = call.workspace(params)
    links = _links(call)
    try:
        repo_param: str | None = params.get("repo")
        if repo_param is None:
            known = links.links(ws.space)
            if not known:
                raise invalid_params("git.promote: the space was never imported from a repository here: give repo")
            repo_param = known[-1].repo
        repository = open_repository(_repo_path(repo_param))
        result = promote(ws, repository, links, version=params.get("version"), branch=params["branch"], now_ms=call.services.clock())
    finally:
        links.close()
    return {
        "space": ws.space.hex(),
        "version": result.version,
        "commit": result.commit,
        "ref": result.ref,
        "parent": result.parent,
        "created": result.created,
        "repo": str(Path(repository.workdir or repository.path)),
    }


@method("git.log")
def git_log(call: Call, params: Json) -> Json:
    """The versions of the space and the commits imported or promoted at them, newest first."""
    ws = call.workspace(params)
    links = _links(call)
    try:
        rows = links.links(ws.space)
    finally:
        links.close()
    rows = rows[::-1][: params["limit"]]
    return {
        "space": ws.space.hex(),
        "version": ws.version(),
        "links": [
            {"version": link.version, "commit": link.commit, "kind": link.kind, "ref": link.ref, "repo": link.repo, "time_ms": link.time_ms}
            for link in rows
        ],
    }


def _repo_path(text: str) -> Path:
    path = Path(text)
    if not path.is_absolute():
        raise invalid_params(f"repo: {text} is not an absolute path (the daemon's working directory is not the caller's)")
    return path
