"""``distspace publish`` and ``distspace join --from-ipfs``: snapshots into IPFS and back
(node/ipfs.py, the ``ipfs.*`` API methods).

With a daemon, both run in it and the command waits for the result through ``ipfs.status``
(bounded by ``--timeout``); without one, the command does the work itself and the API's reply
is final. Either way the IPFS daemon is config.toml's ``ipfs_api`` (``--ipfs-api`` for a
command without a daemon).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli import render
from cli.connect import open_node
from cli.errors import CliError
from node.home import NodeHome

Args = argparse.Namespace
Json = dict[str, Any]

# Publishing a large space (hundreds of MB into kubo) or joining one takes a while.
WAIT_TIMEOUT_S = 600.0
POLL_S = 0.05
PRIVATE_WARNING = "a published snapshot of a private space is readable by whoever fetches its CID: nothing is encrypted"


def add_parsers(command: Callable[..., argparse.ArgumentParser]) -> None:
    """The ``publish`` command (``join --from-ipfs`` is an option of join: ``add_join_options``)."""
    publish_cmd = command("publish", publish, "publish the space's snapshot into IPFS; print its CID")
    publish_cmd.add_argument("--allow-private", action="store_true", help=f"publish a private space anyway: {PRIVATE_WARNING}")
    _add_ipfs_options(publish_cmd)


def add_join_options(join: argparse.ArgumentParser) -> None:
    join.add_argument(
        "--from-ipfs",
        metavar="CID|IPNS",
        help="join from IPFS alone: a pointer CID as distspace publish prints, or an IPNS name (k51...); every block and signature is checked",
    )
    _add_ipfs_options(join)


def _add_ipfs_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ipfs-api", metavar="MULTIADDR", help="the IPFS daemon's RPC API without a running daemon (default: config.toml's ipfs_api)")
    parser.add_argument("--timeout", type=float, default=WAIT_TIMEOUT_S, metavar="S", help=f"wait at most S seconds for a daemon to finish (default {WAIT_TIMEOUT_S:.0f})")


def _until(node: Any, done: Callable[[Json], Json | None], timeout_s: float) -> Json:
    """Poll ``ipfs.status`` until ``done`` picks a result out of it."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = done(node.call("ipfs.status"))
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            raise CliError(f"the daemon did not finish within {timeout_s:g} s; distspace status shows how it went")
        time.sleep(POLL_S)


def publish(args: Args) -> int:
    with open_node_for(args) as node:
        result = node.call("ipfs.publish", space=args.space, allow_private=args.allow_private, ipfs_api=args.ipfs_api)
        if result["status"] == "publishing":
            cid = result["cid"]

            def uploaded(status: Json) -> Json | None:
                entry = next((s for s in status["spaces"] if s["space_id"] == result["space"]), None)
                if entry is None or entry["pending"] == cid:
                    return None
                if entry["cid"] == cid:
                    return {**result, "ipns": entry["ipns"], "status": "published"}
                if entry["error"] is not None:
                    raise CliError(f"publishing {cid} failed: {entry['error']}")
                return None

            result = _until(node, uploaded, args.timeout)
    return render.show(args.json, result, _print_published)


def _print_published(result: Json) -> None:
    render.say(result["cid"])
    render.hint(f"published snapshot {result['seq']} of space {result['space'][:12]}: {result['blocks']} blocks, {result['bytes']} bytes (manifest {result['manifest']})")
    if result["ipns"]:
        render.hint(f"IPNS name {result['ipns']} points at it; join from another node: distspace join --from-ipfs {result['cid']}")


def join_from_ipfs(args: Args) -> int:
    source = args.from_ipfs
    with open_node_for(args) as node:
        result = node.call("ipfs.join", source=source, peers=args.peer, ipfs_api=args.ipfs_api)
        if result["status"] == "fetching":

            def finished(status: Json) -> Json | None:
                join = next((j for j in status["joins"] if j["source"] == source), None)
                return join if join is not None and join["status"] != "fetching" else None

            result = _until(node, finished, args.timeout)
    if result["status"] == "failed":
        raise CliError(f"join from IPFS failed ({result.get('kind')}): {result.get('error')}")
    return render.show(args.json, result, _print_joined)


def _print_joined(result: Json) -> None:
    render.say(f"joined space {result['name']!r} ({result['space_id']}) from IPFS")
    render.hint(f"pointer {result['cid']} (publication {result['seq']}): {result['docs']} docs, {result['changes']} changes stored, every block and signature checked")
    if result["peers"]:
        render.hint(f"the daemon catches up from {', '.join(result['peers'])} when a member is back")


def status_lines(status: Json) -> list[str]:
    """``distspace status``'s IPFS lines: each space's last publication or its error."""
    lines = []
    for space in status["spaces"]:
        if space["cid"]:
            lines.append(f"ipfs      {space['name']}  {space['cid']}  publication {space['seq']}  {space['bytes']} bytes")
        if space["pending"]:
            lines.append(f"ipfs      {space['name']}  uploading {space['pending']}")
        if space["error"]:
            lines.append(f"ipfs      {space['name']}  last publish failed: {space['error']}")
    return lines


def open_node_for(args: Args) -> Any:
    return open_node(NodeHome(Path(args.home)))
