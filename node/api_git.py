"""The local API's bulk write and git methods: ``fs.batch``, ``git.import``, ``git.promote``, ``git.log``.

``fs.batch`` is ``Workspace.apply_batch`` over JSON: many creates, writes, deletes, mkdirs and
mode changes checked together and written as one tree change plus one change per content doc
(store/batch.py), so an agent or a tool writing hundreds of files pays a few transactions, not
hundreds. ``git.*`` run the git bridge (store/git_bridge.py) on a repository on this machine:
the daemon (or the command on the store) opens it by path, so they need the full token, as the
mirror's methods do. The map between versions and commits is HOME/git.sqlite.

pygit2 is imported when a git method runs, not before: ``distspace cat`` never pays for it.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import TYPE_CHECKING, Any

from node.api_methods import Call, method
from node.rpc import invalid_params
from protocol.errors import InvalidSpaceName
from protocol.space import Genesis
from store.batch import BatchOp
from store.errors import InvalidInput, UnknownSpace
from store.workspace import Content

if TYPE_CHECKING:
    from store.git_bridge import GitLinks, ImportResult

Json = dict[str, Any]

LINKS_FILE = "git.sqlite"  # in the node home: the version <-> commit map (store/git_bridge.py GitLinks)
# The most ops one fs.batch takes (node/api_schema.json says the same): a call's JSON is bounded
# by the API's message limit anyway (node/api.py MAX_MESSAGE_BYTES, 8 MB); this bounds the work.
MAX_BATCH_OPS = 50_000


# ----- bulk writes -----


@method("fs.batch")
def fs_batch(call: Call, params: Json) -> Json:
    ws = call.workspace(params)
    ops = [_op(index, each) for index, each in enumerate(params["ops"])]
    result = ws.apply_batch(ops, now_ms=call.services.clock(), message=params.get("message"))
    return {
        "version": result.version,
        "changes": result.changes,
        "files": [{"path": path, "heads": [head.hex() for head in heads]} for path, heads in result.heads.items()],
    }


def _op(index: int, each: Json) -> BatchOp:
    kind = each["op"]
    content: Content | None = None
    text: str | None = each.get("text")
    encoded: str | None = each.get("base64")
    if kind in ("create", "write"):
        if (text is None) == (encoded is None):
            raise invalid_params(f"fs.batch: params.ops[{index}]: give the content as exactly one of text or base64")
        if text is not None:
            content = text
        else:
            assert encoded is not None
            try:
                content = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError) as error:
                raise invalid_params(f"fs.batch: params.ops[{index}].base64 is not base64 ({error})") from error
    elif text is not None or encoded is not None:
        raise invalid_params(f"fs.batch: params.ops[{index}]: a {kind} takes no content")
    if kind == "mode" and each.get("executable") is None:
        raise invalid_params(f"fs.batch: params.ops[{index}]: a mode op needs executable (true or false)")
    return BatchOp(kind, each["path"], content, each.get("executable"), each.get("recursive", False))


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
def git_import(call: Call, params: Json) -> Json:
    """A commit's tree into a space, or the last ``history`` commits in order (store/git_bridge.py)."""
    from store.git_bridge import import_history, open_repository, resolve

    repo = _repo_path(params["repo"])
    repository = open_repository(repo)  # NotARepository, UnknownRef before any space is made
    resolve(repository, params["ref"])
    space, created = _import_space(call, params, repo)
    ws = call.services.workspace(space)
    links = _links(call)
    try:
        results = import_history(ws, repository, params["ref"], links, history=params["history"], now_ms=call.services.clock)
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
