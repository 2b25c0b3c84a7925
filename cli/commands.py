"""The ``distspace`` commands: each turns its arguments into API calls and renders the result.

A command works the same with and without a daemon (cli/connect.py decides how to reach the
node). ``--json`` prints the API result itself, one JSON object on stdout, so a script sees
exactly what an API client would; without it a command prints for people (cli/render.py).
"""

from __future__ import annotations

import argparse
import base64
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli import render
from cli.connect import NodeApi, open_node
from cli.errors import CliError, UsageError
from node.home import NodeHome

Args = argparse.Namespace
Json = dict[str, Any]
Command = Callable[[Args], int]


def _home(args: Args) -> NodeHome:
    return NodeHome(Path(args.home))


def _call(args: Args, method: str, **params: Any) -> Json:
    """One call on the node."""
    with open_node(_home(args)) as node:
        return node.call(method, **params)


def _in_space(args: Args, method: str, **params: Any) -> Json:
    """One call of a method that works in a space: the one ``--space`` names, if given."""
    return _call(args, method, space=args.space, **params)


def _show(args: Args, result: Json, human: Callable[[Json], None]) -> int:
    return render.show(args.json, result, human)


def _written(args: Args, result: Json, what: str) -> int:
    return _show(args, result, lambda written: render.say(f"{what} (version {written['version']})"))


# ----- spaces and the node -----


def _first_config(args: Args) -> Callable[[], None]:
    """A home's first init or join writes config.toml (before the call, which adds ``space``
    to it): every interface, a port kept from then on (node/config.py). An existing
    config.toml is left as it is. Returns what to say once the command succeeded."""
    from node.config import write_initial_config

    home = _home(args)
    home.ensure()
    port = write_initial_config(home.config_file)
    if port is None:
        return lambda: None
    return lambda: render.hint(f"this node listens on port {port} (TCP and QUIC) on every interface: {home.config_file}")


def init(args: Args) -> int:
    said = _first_config(args)
    result = _call(args, "space.create", name=args.name, public=args.public)
    said()
    return _show(args, result, _print_created)


def _print_created(result: Json) -> None:
    render.say(result["space_id"])
    if result["private"]:
        render.hint(f"created private space {result['name']!r}: only this node is a member; to let another node in:")
        render.hint("  distspace invite (prints a ticket), then on the other node: distspace join TICKET")
    else:
        render.hint(f"created open space {result['name']!r}; to join it from another node:")
        render.hint(f"  distspace join {result['space_id']} --genesis {result['genesis']}")


TICKET_PREFIX = "dist1"  # protocol/ticket.py's, not imported: the command stays light


def join(args: Args) -> int:
    said = _first_config(args)
    code = _join(args)
    said()
    return code


def _join(args: Args) -> int:
    if args.from_ipfs is not None:
        if args.space_id is not None or args.genesis is not None:
            raise UsageError("--from-ipfs names the space itself: give no TICKET|SPACE_ID or --genesis with it")
        from cli import ipfs

        return ipfs.join_from_ipfs(args)
    if args.space_id is None:
        raise UsageError("give a TICKET or SPACE_ID, or --from-ipfs CID")
    if args.space_id.strip().startswith(TICKET_PREFIX):
        if args.genesis is not None:
            raise UsageError("a ticket carries the genesis: --genesis is for an open space's id")
        result = _call(args, "space.join", ticket=args.space_id.strip(), peers=args.peer)
        return _show(args, result, _print_joined)
    if not args.peer and args.genesis is None:
        raise UsageError("give --peer ADDR (a peer to fetch the space from) or --genesis, or join by a ticket (distspace invite prints one)")
    result = _call(args, "space.join", space_id=args.space_id.lower(), peers=args.peer, genesis=args.genesis)
    return _show(args, result, _print_joined)


def _print_joined(result: Json) -> None:
    if result["status"] != "joined":
        render.say(f"recorded: space {result['space_id']} will be fetched from {', '.join(result['peers'])} when the daemon runs")
        return
    render.say(f"joined space {result['name']!r} ({result['space_id']})")
    member = result["member"]
    if member["private"] and member["role"] is None:
        render.hint("it is a private space and this node is not a member: ask a member for a ticket (distspace invite), then distspace join TICKET")
    elif member["private"]:
        render.hint(f"as a member: {_grant_text(member)}")
    if member["private"] and member["role"] is not None:
        where = ", ".join(result["peers"]) or "no address (give --peer ADDR)"
        render.hint(f"the daemon fetches it from {where}; the inviter's node checks the ticket when they connect")


def _grant_text(grant: Json) -> str:
    """"write src/* until 2026-12-10 18:00", "admin of everything"."""
    text = f"{grant['role']} {' '.join(grant['paths'])}" if grant["paths"] else f"{grant['role']} of everything"
    return text + ("" if grant["expires_ms"] is None else f" until {render.when(grant['expires_ms'])}")


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def invite(args: Args) -> int:
    result = _in_space(args, "space.invite", role=args.role, paths=args.path, expires_s=args.expires, uses=args.uses)
    return _show(args, result, _print_invite)


def _print_invite(result: Json) -> None:
    render.say(result["ticket"])
    uses = "once" if result["uses"] == 1 else f"{result['uses']} times"
    render.hint(f"a ticket to space {result['name']!r} as {_grant_text(result)}, usable {uses}; on the other node: distspace join TICKET")
    if not result["addrs"]:
        render.hint("no daemon runs here, so the ticket holds no address: start one (distspace up), or the joiner gives --peer ADDR")
    render.hint(f"to withdraw it: distspace revoke {result['invitation']}")


def members(args: Args) -> int:
    return _show(args, _in_space(args, "space.members"), _print_members)


def _print_members(result: Json) -> None:
    if not result["private"]:
        render.say(f"space {result['name']!r} is open: every peer that knows its id may read and write it")
        return
    rows = []
    for member in result["members"]:
        standing = "root" if member["root"] else "invitation" if member["invitation"] else "member"
        scope = " ".join(member["paths"]) or "everything"
        expires = "never" if member["expires_ms"] is None else render.when(member["expires_ms"])
        who = [member["name"] or "?", member["kind"] or "?"]  # its own peer record's, "?" until it reaches us
        rows.append([member["peer_id"], *who, member["role"], scope, expires, standing + (" (revoked)" if member["revoked"] else "")])
    render.table(["peer", "name", "kind", "role", "paths", "expires", "standing"], rows)


def revoke(args: Args) -> int:
    subject: str = args.subject.strip()
    is_key = len(subject) == SPACE_ID_HEX_CHARS and all(c in "0123456789abcdefABCDEF" for c in subject)
    result = _in_space(args, "space.revoke", **({"key": subject.lower()} if is_key else {"peer_id": subject}))
    return _show(args, result, lambda r: render.say(f"revoked {r['peer_id']} in the space: its changes after the {r['docs_seen']} doc(s) seen here are refused"))


def up(args: Args) -> int:
    # Imported here: only the daemon needs trio and libp2p.
    from node import daemon
    from node.wiring import run_mirrors, run_network

    daemon.main(
        _home(args),
        listen=args.listen,
        peers=args.peer,
        relay=args.relay,
        mdns=args.mdns,
        json_ready=args.json,
        folder=None if args.folder is None else Path(args.folder),
        folder_space=args.space,
        network=run_network,
        mirrors=run_mirrors,
    )
    return 0


# A clone waits this long at most for the daemon to fetch the space (a peer on another continent,
# a space of a few thousand files); past it the join stays recorded and the user can retry.
CLONE_TIMEOUT_S = 120.0
# Nothing in the sync protocol says "you now hold all a peer has", so a clone takes the space as
# fetched once a session with a peer is open and the space's version has not moved for this
# long. With a daemon that is only what clone prints: the mirror writes what comes later too.
CLONE_QUIET_S = 1.0
CLONE_POLL_S = 0.05
SPACE_ID_HEX_CHARS = 64


def clone(args: Args) -> int:
    """Join + wait until fetched + first checkout; with a daemon, mirrored from then on."""
    from node.config import check_folder

    home = _home(args)
    folder = check_folder(Path(args.folder), home.path)
    if folder.exists() and any(folder.iterdir()):
        raise CliError(
            f"{folder} is not empty: clone checks out into a new or empty folder (to mirror a folder that has files: distspace up --folder {folder})"
        )
    with open_node(home) as node:
        daemon = bool(node.call("node.status")["daemon"])
        space = _clone_join(args, node, daemon=daemon)
        if daemon:
            if args.peer or args.space_id.strip().startswith(TICKET_PREFIX):
                _wait_fetched(node, space, args.timeout)
            result = _mirror_started(node, space, folder, args.timeout)
        else:
            result = {**node.call("mirror.checkout", space=space, folder=str(folder)), "mirroring": False, "saved": False}
    return _show(args, {**result, **_written_files(folder)}, _print_cloned)


def _clone_join(args: Args, node: NodeApi, *, daemon: bool) -> str:
    """The space to clone, joined first if it is a space id this node does not hold."""
    spec: str = args.space_id
    if spec.strip().startswith(TICKET_PREFIX):
        joined = node.call("space.join", ticket=spec.strip(), peers=args.peer)
        if not daemon:
            raise CliError(f"space {joined['space_id']} is joined; fetching it needs the daemon: start it (distspace up), then clone {joined['space_id']} {args.folder}")
        return str(joined["space_id"])
    held = {s["space_id"] for s in node.call("space.list")["spaces"]}
    full_id = len(spec) == SPACE_ID_HEX_CHARS and all(c in "0123456789abcdefABCDEF" for c in spec)
    if not full_id or spec.lower() in held:
        if args.peer or args.genesis is not None:
            render.hint(f"{spec} is on this node already: --peer and --genesis are not needed")
        return spec
    if not args.peer and args.genesis is None:
        raise UsageError(f"{spec} is not on this node: give --peer ADDR (a peer to fetch it from) or --genesis")
    joined = node.call("space.join", space_id=spec.lower(), peers=args.peer, genesis=args.genesis)
    if joined["status"] != "joined" and not daemon:
        raise CliError(
            f"space {spec} is recorded and will be fetched from {', '.join(args.peer)} when the daemon runs;"
            " fetching needs it: start it (distspace up), then run this clone again"
        )
    return spec.lower()


def _wait_fetched(node: NodeApi, space: str, timeout_s: float) -> None:
    """Until the daemon holds the space, syncs it with a peer and its version stays put for
    CLONE_QUIET_S; progress on stderr.

    Raises:
        CliError: not within ``timeout_s`` (the join stays recorded).
    """
    deadline = time.monotonic() + timeout_s
    said: set[str] = set()

    def progress(stage: str, text: str) -> None:
        if stage not in said:
            said.add(stage)
            render.hint(text)

    version, still_since = None, time.monotonic()
    while time.monotonic() < deadline:
        spaces = {s["space_id"]: s for s in node.call("space.list")["spaces"]}
        syncing = any(space in peer["spaces"] for peer in node.call("node.peers")["peers"])
        if space not in spaces:
            progress("genesis", "waiting for the space from its peers...")
        elif not syncing:
            progress("session", f"space {spaces[space]['name']!r} is here; waiting for a peer to sync it with...")
        else:
            now = spaces[space]["version"]
            if now != version:
                version, still_since = now, time.monotonic()
                render.hint(f"fetching: version {now}")
            elif time.monotonic() - still_since >= CLONE_QUIET_S:
                return
        time.sleep(CLONE_POLL_S)
    raise CliError(
        f"the space was not fetched within {timeout_s:.0f} s (is a peer reachable?); the join stays recorded:"
        " the daemon fetches it when a peer is, and clone can be run again"
    )


def _mirror_started(node: NodeApi, space: str, folder: Path, timeout_s: float) -> Json:
    """Ask the daemon to mirror ``folder`` and wait until its first checkout is done.

    Raises:
        CliError: the mirror failed, or was still starting after ``timeout_s``.
    """
    started = node.call("mirror.start", space=space, folder=str(folder))
    deadline = time.monotonic() + timeout_s
    with render.busy(f"checking out into {folder}"):
        while time.monotonic() < deadline:
            mirror = next(m for m in node.call("mirror.status")["mirrors"] if m["space"] == started["space"])
            if mirror["state"] == "failed":
                raise CliError(f"the daemon could not mirror {folder}: {mirror['error']}")
            if mirror["state"] == "running":
                return {"space": started["space"], "folder": started["folder"], "mirroring": True, "saved": started["saved"]}
            time.sleep(CLONE_POLL_S)
    raise CliError(f"the daemon's first checkout into {folder} was not done within {timeout_s:.0f} s; distspace status shows how it goes")


def _written_files(folder: Path) -> Json:
    """What the checkout put into ``folder`` (it was new or empty)."""
    paths = sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
    return {"files": len(paths), "bytes": sum((folder / path).stat().st_size for path in paths), "paths": paths}


def _print_cloned(result: Json) -> None:
    render.say(f"checked out {result['files']} file(s), {result['bytes']} bytes, into {result['folder']}")
    if result["mirroring"]:
        kept = "config.toml names it: the daemon mirrors it again when it restarts" if result["saved"] else "until the daemon stops"
        render.hint(f"the daemon keeps it mirrored both ways ({kept}); distspace status shows it")
    else:
        render.hint(f"a one-shot checkout (no daemon runs); to keep it live: distspace up --folder {result['folder']} --space {result['space']}")


def identity(args: Args) -> int:
    own = _home(args).identity()
    result = {"peer_id": own.peer_id, "public_key": own.public_key.hex()}
    return _show(args, result, lambda r: render.say(f"peer id     {r['peer_id']}\npublic key  {r['public_key']}"))


def status(args: Args) -> int:
    """``node.status``, with ``mirror.status`` as its ``mirror``."""
    with open_node(_home(args)) as node:
        result = {**node.call("node.status"), "mirror": node.call("mirror.status"), "ipfs": node.call("ipfs.status")}
    return _show(args, result, _print_status)


def _print_status(result: Json) -> None:
    if result["daemon"]:
        daemon = f"running for {result['uptime_s']:.0f} s"
        api = f"{result['api']['websocket']}  {result['api']['unix']}"
    else:
        daemon, api = "not running (start it: distspace up)", "-"
    network = ", ".join(result["addrs"]) or ("listening" if result["network"] else "not running")
    lines = [
        f"peer id   {result['peer_id']} ({result['name']}, {result['kind']})",
        f"home      {result['home']}",
        f"daemon    {daemon}",
        f"api       {api}",
        f"network   {network}",
    ]
    if result["reachable"]:
        lines.append(f"dial me   {'  '.join(result['reachable'])}")
    if result["warning"]:
        lines.append(f"warning   {result['warning']}")
    lines += [f"peers     {result['peers']}"]
    lines += [f"space     {s['name']}  {s['space_id']}  version {s['version']}" for s in result["spaces"]]
    if result["pending_joins"]:
        lines.append(f"pending   {result['pending_joins']} space(s) to fetch")
    lines += [f"folder    {_mirror_line(mirror)}" for mirror in result["mirror"]["mirrors"]]
    configured = result["mirror"]["configured"]
    if configured is not None and configured["folder"] not in {mirror["folder"] for mirror in result["mirror"]["mirrors"]}:
        lines.append(f"folder    {configured['folder']}  (config.toml; mirrored while the daemon runs: distspace up)")
    from cli.ipfs import status_lines

    lines += status_lines(result["ipfs"])
    render.say("\n".join(lines))


def _mirror_line(mirror: Json) -> str:
    where = f"{mirror['folder']}  space {mirror['space'][:12]}"
    if mirror["state"] == "failed":
        return f"{where}  failed: {mirror['error']}"
    scan = mirror.get("scan")
    scanning = "" if scan is None else f"{scan['done']} paths found" if scan["total"] is None else f"{scan['done']} of {scan['total']} synced"
    if mirror["state"] == "starting":
        return f"{where}  starting (first checkout and scan{': ' + scanning if scanning else ''})"
    synced = "never" if mirror["last_sync_ms"] is None else render.when(mirror["last_sync_ms"])
    line = f"{where}  {mirror['files']} files, {mirror['pending']} pending, {mirror['watcher']}, last sync {synced}"
    line += f", scanning ({scanning})" if scanning else ""
    return line + (f"\n          last error: {mirror['last_error']}" if mirror["last_error"] else "")


def peers(args: Args) -> int:
    return _show(args, _call(args, "node.peers"), _print_peers)


def _print_peers(result: Json) -> None:
    if not result["peers"]:
        render.say("no peers connected" + ("" if result["daemon"] else " (no daemon running: distspace up)"))
        return
    rows = [[p["peer_id"], " ".join(p["addrs"]), len(p["spaces"]), render.when(p["connected_ms"])] for p in result["peers"]]
    render.table(["peer", "addresses", "spaces", "since"], rows)


def spaces(args: Args) -> int:
    return _show(args, _call(args, "space.list"), _print_spaces)


def _print_spaces(result: Json) -> None:
    rows = [[s["name"], s["space_id"], s["version"], render.short_peer(s["creator"]), "private" if s["private"] else "open"] for s in result["spaces"]]
    rows += [["(pending)", p["space_id"], "", "", ""] for p in result["pending"]]
    if not rows:
        render.say("no spaces yet: distspace init NAME, or distspace join TICKET")
    else:
        render.table(["name", "id", "version", "creator", "kind"], rows)


def snapshot(args: Args) -> int:
    with render.busy("taking a snapshot"):
        result = _in_space(args, "space.snapshot")
    return _show(args, result, _print_snapshot)


def _print_snapshot(result: Json) -> None:
    if result["manifest"] is None:
        render.say("the space is empty: nothing to snapshot")
    else:
        render.say(f"snapshot at version {result['version']}: {result['docs']} doc(s), manifest {result['manifest']}")


# The problems ``doctor --repair`` fixes (store/repair.py): changes that keep a doc from loading.
REPAIRABLE_KINDS = frozenset({"author-chain-forked", "author-chain-broken", "doc-unloadable"})


def verify(args: Args) -> int:
    """``verify`` and ``doctor``: check the store; with ``--repair``, repair it first."""
    if args.repair:
        return _repair(args)
    with render.busy("verifying every change, signature, snapshot and block"):
        result = _call(args, "node.verify")
    _show(args, result, _print_problems)
    if not result["ok"]:
        repairable = any(problem["kind"] in REPAIRABLE_KINDS for problem in result["problems"])
        advice = "; distspace doctor --repair quarantines the changes that break a doc" if repairable else ""
        raise CliError(f"{len(result['problems'])} problem(s) found in the store{advice}")
    return 0


def _repair(args: Args) -> int:
    """Quarantine what breaks a doc, on the store itself (never while a daemon runs), then verify."""
    from cli.connect import open_store
    from store.repo import wall_clock_ms

    with render.busy("repairing the store"), open_store(_home(args)) as node:
        report = node.repo.repair(wall_clock_ms())
        verified = node.call("node.verify")
    repaired = [
        {
            "space": doc.space.hex(),
            "doc": doc.doc.hex(),
            "quarantined": [change_hash.hex() for change_hash in doc.changes],
            "tips_quarantined": [author.hex() for author in doc.tips],
            "reasons": list(doc.reasons),
            "loads": doc.loads,
            "note": doc.note,
        }
        for doc in report.docs
    ]
    result = {"repaired": repaired, "quarantined": report.quarantined, **verified}
    _show(args, result, _print_repair)
    if not verified["ok"]:
        raise CliError(f"{len(verified['problems'])} problem(s) remain in the store after repair")
    return 0


def _print_repair(result: Json) -> None:
    if not result["repaired"]:
        render.say("nothing to repair: every doc loads and every author chain is whole")
    for doc in result["repaired"]:
        done = f"quarantined {len(doc['quarantined'])} change(s) and {len(doc['tips_quarantined'])} tip(s)"
        render.say(f"doc {doc['doc']} of space {doc['space'][:12]}: {doc['note'] or done}")
        for reason in doc["reasons"]:
            render.say(f"  {reason}")
    _print_problems(result)


def _print_problems(result: Json) -> None:
    if result["ok"]:
        render.say("the store verifies: every hash, signature, snapshot and block checks out")
    for problem in result["problems"]:
        render.say(f"{problem['kind']}: {problem['detail']}")
    kept = result.get("kept", [])
    if kept:
        render.say(f"{len(kept)} change(s) kept, never materialised (expected in a private space, not damage):")
        for change in kept:
            render.say(f"  {change['kind']} {render.short_hash(change['subject'])}: {change['detail']}")


# ----- files -----


def ls(args: Args) -> int:
    return _show(args, _in_space(args, "fs.ls", path=args.path, version=args.at), _print_listing)


def _print_listing(result: Json) -> None:
    rows = []
    for entry in result["entries"]:
        name = entry["path"].rpartition("/")[2]
        if entry["kind"] == "dir":
            rows.append([name + "/", "dir", ""])
        else:
            shown = name + "*" if entry["executable"] else name  # as ls -F marks an executable
            rows.append([shown, entry["encoding"], "?" if entry["size"] is None else entry["size"]])
    render.table(["name", "type", "size"], rows)


def cat(args: Args) -> int:
    return _show(args, _in_space(args, "fs.read", path=args.path, version=args.at), _write_content)


def _write_content(result: Json) -> None:
    render.write_bytes(result["text"].encode() if result["encoding"] == "text" else base64.b64decode(result["base64"]))


def write(args: Args) -> int:
    data = _read_input(args.file)  # before taking the node: never hold the lock while stdin waits
    content = {"text": data.decode()} if _is_text(data) else {"base64": base64.b64encode(data).decode("ascii")}
    result = _in_space(args, "fs.write", path=args.path, parents=args.parents, message=args.message, **content)
    return _written(args, result, f"wrote {args.path}")


def rm(args: Args) -> int:
    result = _in_space(args, "fs.rm", path=args.path, recursive=args.recursive, message=args.message)
    return _written(args, result, f"removed {args.path}")


def mv(args: Args) -> int:
    result = _in_space(args, "fs.mv", source=args.source, target=args.target, message=args.message)
    return _written(args, result, f"moved {args.source} to {args.target}")


def mkdir(args: Args) -> int:
    result = _in_space(args, "fs.mkdir", path=args.path, parents=args.parents, message=args.message)
    return _written(args, result, f"created {args.path}/")


def _read_input(file: str | None) -> bytes:
    if file is None or file == "-":
        if sys.stdin.isatty():
            render.hint("reading the content from stdin; end it with Ctrl-D")
        return sys.stdin.buffer.read()
    try:
        return Path(file).read_bytes()
    except OSError as error:
        raise CliError(f"cannot read {file}: {error.strerror}") from error


def _is_text(data: bytes) -> bool:
    """UTF-8 without NUL bytes is text (as git judges), anything else binary."""
    if b"\x00" in data:
        return False
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


# ----- history -----


def log(args: Args) -> int:
    if getattr(args, "refused", False):
        return _show(args, _in_space(args, "history.log", path=args.path, limit=args.limit, refused=True), _print_refused)
    return _show(args, _in_space(args, "history.log", path=args.path, limit=args.limit), _print_log)


def _print_refused(result: Json) -> None:
    """Changes refused at ingest as unauthorised: kept, never materialised (store/refused.py)."""
    if not result["refused"]:
        render.say("no change was refused: every change received was allowed")
        return
    rows = [
        [
            render.short_hash(e["change"]),
            render.author(e),
            " ".join(e["paths"]) if e["paths"] is not None else f"(doc {e['doc'][:12]})",
            render.when(e["refused_ms"]),
            e["reason"],
        ]
        for e in result["refused"]
    ]
    render.table(["change", "author", "paths", "refused", "reason"], rows)


def _print_log(result: Json) -> None:
    rows = [
        [e["version"], render.short_hash(e["change"]), render.author(e), render.when(e["time_ms"]), e["message"] or "", " ".join(e["paths"])]
        for e in result["entries"]
    ]
    render.table(["version", "change", "author", "time", "message", "paths"], rows)


def diff(args: Args) -> int:
    new, path = _diff_operands(args.rest)
    result = _in_space(args, "history.diff", old=args.old, new=new, path=path)
    return _show(args, result, _print_diff)


def _print_diff(result: Json) -> None:
    sys.stdout.write(render.diff_text("".join(file["unified"] for file in result["files"])))


def _diff_operands(rest: list[str]) -> tuple[int | None, str | None]:
    """``[V2] [PATH]``: a lone operand is V2 if it is a number, else PATH."""
    if len(rest) > 2:
        raise UsageError("diff takes V1 [V2] [PATH]")
    if len(rest) == 2:
        if not rest[0].isdigit():
            raise UsageError(f"V2 is a version number, not {rest[0]!r}")
        return int(rest[0]), rest[1]
    if len(rest) == 1:
        return (int(rest[0]), None) if rest[0].isdigit() else (None, rest[0])
    return None, None


def blame(args: Args) -> int:
    return _show(args, _in_space(args, "history.blame", path=args.path, version=args.at), _print_blame)


def _print_blame(result: Json) -> None:
    width = len(str(len(result["lines"])))
    for line in result["lines"]:
        who = f"{render.short_hash(line['change'])} {render.author(line)} {render.when(line['time_ms'])}"
        render.say(f"{who} {line['number']:>{width}}) {line['text']}")


def revert(args: Args) -> int:
    with render.busy(f"reverting to version {args.to}"):
        result = _in_space(args, "history.revert", version=args.to, path=args.path, message=args.message)
    return _written(args, result, f"reverted {args.path or 'the space'} to version {args.to}")


# ----- scoped API tokens -----

DURATION_UNITS_S = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}


def duration_s(text: str) -> int:
    """``90``, ``45s``, ``30m``, ``8h``, ``7d``, ``2w``: a whole number of seconds, at least 1.

    Raises:
        argparse.ArgumentTypeError: anything else (argparse shows it as a usage error).
    """
    unit = text[-1:].lower() if text[-1:].isalpha() else "s"
    number = text[:-1] if text[-1:].isalpha() else text
    if unit not in DURATION_UNITS_S or not number.isdigit() or int(number) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration: a positive number with s, m, h, d or w (7d, 8h, 90s)")
    return int(number) * DURATION_UNITS_S[unit]


def token(args: Args) -> int:
    """Make (or with --list, --revoke: list, forget) a scoped API token."""
    if args.list:
        return _show(args, _call(args, "token.list"), _print_tokens)
    if args.revoke is not None:
        result = _call(args, "token.revoke", id=args.revoke.lower())
        if not result["removed"]:
            raise CliError(f"no scoped token {args.revoke} on this node (distspace token --list)")
        return _show(args, result, lambda _: render.say(f"token {args.revoke} revoked: it authenticates no connection from now on"))
    params: Json = {"role": args.role, "paths": args.path, "expires_s": args.expires, "any_space": args.any_space}
    result = _call(args, "token.create", **params) if args.any_space else _in_space(args, "token.create", **params)
    return _show(args, result, _print_token)


def _print_token(result: Json) -> None:
    render.say(result["token"])
    render.hint(f"a token scoped to {_scope_text(result['scope'])}; id {result['scope']['id']} (revoke: distspace token --revoke ID)")
    render.hint("give it to the agent, not the home: DISTSPACE_TOKEN=TOKEN distspace ..., or auth with it on HOME/api.sock")


def _scope_text(scope: Json) -> str:
    role = scope["role"]
    text = f"{role} {' '.join(scope['paths'])}" if scope["paths"] else role if role == "read" else f"{role} every path"
    text += f" in space {scope['space'][:12]}" if scope["space"] else " in every space"
    return text + ("" if scope["expires_ms"] is None else f", until {render.when(scope['expires_ms'])}")


def _print_tokens(result: Json) -> None:
    if not result["tokens"]:
        render.say("no scoped tokens (make one: distspace token --role write --path 'src/*')")
        return
    rows = [
        [t["scope"]["id"], _scope_text(t["scope"]), render.when(t["created_ms"]), "expired" if t["expired"] else ""] for t in result["tokens"]
    ]
    render.table(["id", "scope", "created", ""], rows)


def run_demo(args: Args) -> int:
    from cli import demo  # rich and the daemons' processes: only the demo needs them

    result = demo.run(json_output=args.json)
    if args.json:
        render.emit_json(result)  # people saw it all as it happened
    return 0
