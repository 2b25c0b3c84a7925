"""The ``distspace`` command: a thin front over the node's local API (node/api_methods.py).

Exit codes: 0 ok, 1 user error (one line on stderr, no traceback), 2 usage. Every command takes
``--json``, ``--home`` and ``--space``, before or after its name. A closed stdout (``| head``)
ends a command quietly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from cli import commands, git, ipfs
from cli.connect import NodeBusy
from cli.errors import CliError, UsageError
from node.api_client import ApiUnavailable
from node.errors import NodeError
from node.home import default_home, make_files_private
from node.rpc import RpcError
from protocol.errors import ProtocolError
from store.errors import StoreError

# The store words its advice in its Python API's terms; on the command line the same advice is a flag.
CLI_WORDING = {"pass recursive=True": "use -r", "pass parents=True": "use -p"}

EPILOG = """\
examples:
  distspace init notes                  create a private space (prints its id)
  distspace invite --role write         a ticket for another node: distspace join TICKET there
  distspace write todo.md todo.txt      put a file into the space (- or nothing: stdin)
  distspace cat todo.md --at 3          the file as it was at version 3
  distspace log todo.md                 who changed it, and when
  distspace up --json                   run the daemon; editors and agents connect to its API
  distspace up --folder ~/notes         ... and mirror the space into ~/notes, both ways
  distspace clone SPACE_ID DIR --peer A join a space and check it out into DIR

Every command works with or without a running daemon: with one it goes through the daemon's
API (HOME/api.sock), without one it opens the store directly. The home is --home, else
$DISTSPACE_HOME, else $XDG_DATA_HOME/distspace; the space is --space (a name or id), else
$DISTSPACE_SPACE, else the node's default (the first it created or joined: "space" in
HOME/config.toml).
"""

CLONE_DESCRIPTION = """\
Join a space and check it out into a folder.

With a daemon running (distspace up), clone joins the space, waits until the daemon
has fetched it from its peers (--timeout bounds the wait; progress goes to stderr),
and asks the daemon to mirror DIR: the space's files appear in DIR and the folder
stays mirrored both ways, edits on disk going into the space and the space's into
DIR. config.toml remembers the folder when it names none, so the daemon mirrors it
again when it restarts.

Without a daemon, clone is a one-shot checkout of a space this node already holds
(fetching needs the daemon's network): DIR gets the files as they are now, and
nothing more. To keep it live: distspace up --folder DIR --space SPACE.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="distspace",
        description="Dist-Space: a live, shared, offline-first code workspace with no server.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(parser, top=True)
    sub = parser.add_subparsers(title="commands", dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: commands.Command, summary: str) -> argparse.ArgumentParser:
        child = sub.add_parser(name, help=summary, description=summary[:1].upper() + summary[1:] + ".")
        _add_common(child, top=False)
        child.set_defaults(run=run, parser=child)
        return child

    for name, summary in (("init", "create a space signed by this node and print its id"), ("create", "the same as init")):
        init = command(name, commands.init, summary)
        init.add_argument("name", help="a human name for the space")
        init.add_argument("--public", action="store_true", help="an open space: any peer that knows its id may read and write (default: private, members only)")

    join = command("join", commands.join, "join a space by its ticket, or an open one by its id")
    join.add_argument("space_id", nargs="?", metavar="TICKET|SPACE_ID", help="a ticket (dist1...), or an open space's id (64 hex digits)")
    join.add_argument("--peer", action="append", default=[], metavar="ADDR", help="a peer's multiaddr to fetch it from (repeatable)")
    join.add_argument("--genesis", metavar="B64", help="an open space's genesis record, as printed by init: adds it at once")
    ipfs.add_join_options(join)

    invite = command("invite", commands.invite, "print a ticket that lets another node join the space")
    invite.add_argument("--role", choices=["relay", "read", "write", "admin"], default="write", help="what the joiner may do (default write); relay: store and forward the space for its members, and note that a relay CAN READ every file of it (spaces are not end-to-end encrypted yet)")
    invite.add_argument("--path", action="append", default=[], metavar="GLOB", help="a gitignore glob its writes must stay in (repeatable; none: all)")
    invite.add_argument("--expires", type=commands.duration_s, metavar="DURATION", help="the ticket and the membership end after DURATION (7d, 8h)")
    invite.add_argument("--uses", type=commands.positive, default=1, metavar="N", help="how many nodes may join with it (default 1)")

    command("members", commands.members, "who may do what: keys, names, kinds, roles, scopes, expiry")
    revoke = command("revoke", commands.revoke, "revoke a member (or a ticket's invitation key) in the space")
    revoke.add_argument("subject", metavar="PEER_ID|KEY", help="its peer id, or its key (64 hex digits), as distspace members lists them")

    up = command("up", commands.up, "run the daemon in the foreground (Ctrl-C or SIGTERM stops it)")
    up.add_argument("--listen", action="append", default=[], metavar="MULTIADDR", help="listen address (repeatable; default from config)")
    up.add_argument("--peer", action="append", default=[], metavar="MULTIADDR", help="a peer to connect to (repeatable)")
    up.add_argument("--relay", action="store_true", default=None, help="also serve as a circuit relay, to members of this node's spaces (anyone, if it holds an open space)")
    up.add_argument("--no-mdns", dest="mdns", action="store_false", default=None, help="do not discover peers on the local network")
    up.add_argument(
        "--folder",
        metavar="DIR",
        help="mirror the space (--space, else config.toml's folder_space, else the default) into DIR, both ways (default: config.toml's folder)",
    )

    clone = command(
        "clone",
        commands.clone,
        "join a space into a folder; a daemon keeps it mirrored",
    )
    clone.description = CLONE_DESCRIPTION
    clone.formatter_class = argparse.RawDescriptionHelpFormatter
    clone.add_argument("space_id", metavar="TICKET|SPACE", help="a ticket, an open space's id, or the name or id of a space this node holds")
    clone.add_argument("folder", metavar="DIR", help="the folder to check it out into: new or empty")
    clone.add_argument("--peer", action="append", default=[], metavar="ADDR", help="a peer's multiaddr to fetch it from (repeatable)")
    clone.add_argument("--genesis", metavar="B64", help="the space's genesis record, as printed by init")
    clone.add_argument(
        "--timeout",
        type=float,
        default=commands.CLONE_TIMEOUT_S,
        metavar="S",
        help=f"give up fetching after S seconds (default {commands.CLONE_TIMEOUT_S:.0f})",
    )

    command("id", commands.identity, "print this node's peer id and public key")
    command("status", commands.status, "the node: daemon, API, network, peers, spaces")
    command("peers", commands.peers, "the peers connected now")
    command("spaces", commands.spaces, "the spaces this node holds")

    ls = command("ls", commands.ls, "list a directory of the space")
    ls.add_argument("path", nargs="?", default="", metavar="PATH", help="the directory (default: the root)")
    _add_at(ls)

    cat = command("cat", commands.cat, "print a file's content (raw bytes)")
    cat.add_argument("path", metavar="PATH")
    _add_at(cat)

    write = command("write", commands.write, "create or overwrite a file")
    write.add_argument("path", metavar="PATH", help="where in the space")
    write.add_argument("file", nargs="?", metavar="FILE|-", help="the content's source (default: stdin)")
    write.add_argument("-p", "--parents", action="store_true", help="create missing parent directories")
    _add_message(write)

    rm = command("rm", commands.rm, "remove a file or directory")
    rm.add_argument("path", metavar="PATH")
    rm.add_argument("-r", "--recursive", action="store_true", help="remove a directory and everything in it")
    _add_message(rm)

    mv = command("mv", commands.mv, "move or rename a file or directory")
    mv.add_argument("source", metavar="SOURCE")
    mv.add_argument("target", metavar="TARGET")
    _add_message(mv)

    mkdir = command("mkdir", commands.mkdir, "create a directory")
    mkdir.add_argument("path", metavar="PATH")
    mkdir.add_argument("-p", "--parents", action="store_true", help="create missing parents; no error if it exists")
    _add_message(mkdir)

    log = command("log", commands.log, "changes of the space or of one path, newest first")
    log.add_argument("path", nargs="?", metavar="PATH")
    log.add_argument("-n", "--limit", type=int, default=100, metavar="N", help="at most N changes (default 100)")
    log.add_argument(
        "--refused", action="store_true", help="the changes refused as unauthorised instead (kept, never applied), with the reason"
    )

    diff = command("diff", commands.diff, "what changed between two versions (V2 defaults to now)")
    diff.add_argument("old", type=int, metavar="V1")
    diff.add_argument("rest", nargs="*", metavar="[V2] [PATH]", help="a number is V2, anything else a path")

    blame = command("blame", commands.blame, "who wrote each line of a text file")
    blame.add_argument("path", metavar="PATH")
    _add_at(blame)

    revert = command("revert", commands.revert, "put the space (or one file) back as it was, with new changes")
    revert.add_argument("--to", type=int, required=True, metavar="VERSION", help="the version to go back to")
    revert.add_argument("path", nargs="?", metavar="PATH", help="only this file")
    _add_message(revert)

    token = command("token", commands.token, "make a scoped API token for a local agent and print it")
    token.add_argument("--role", choices=["read", "write"], default="write", help="read only, or also write (default write)")
    token.add_argument("--path", action="append", default=[], metavar="GLOB", help="a gitignore glob its writes must stay in (repeatable; none: every path)")
    token.add_argument("--expires", type=commands.duration_s, metavar="DURATION", help="expire after DURATION (90s, 30m, 8h, 7d); default never")
    token.add_argument("--any-space", action="store_true", help="let it touch every space of the node (default: --space's only)")
    token.add_argument("--list", action="store_true", help="list the scoped tokens instead")
    token.add_argument("--revoke", metavar="ID", help="forget the token with this id instead")

    command("snapshot", commands.snapshot, "snapshot every doc of the space and sign a new manifest")
    git.add_parsers(command, lambda child: _add_common(child, top=False))
    ipfs.add_parsers(command)
    for name, summary in (
        ("verify", "check every hash, signature and snapshot in the store"),
        ("doctor", "find (--repair: quarantine) changes that break a doc"),
    ):
        check = command(name, commands.verify, summary)
        check.add_argument(
            "--repair",
            action="store_true",
            help="quarantine the changes that keep a doc from loading (kept in the store, never deleted); needs the daemon stopped",
        )
    command("demo", commands.run_demo, "three local daemons edit at once and apart, then converge")
    return parser


def _add_common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The options every command takes, before or after its name: a command's copy defaults to
    SUPPRESS, so it only overrides the top-level value when given."""

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    parser.add_argument("--json", action="store_true", default=default(False), help="print machine-readable JSON")
    parser.add_argument("--home", metavar="DIR", default=default(str(default_home())), help="the node home")
    parser.add_argument(
        "--space", metavar="SPACE", default=default(os.environ.get("DISTSPACE_SPACE")), help="the space: a name or id (default: the node's first)"
    )


def _add_at(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--at", type=int, metavar="VERSION", help="as it was at this version")


def _add_message(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--message", metavar="TEXT", help="the change message")


def main(argv: Sequence[str] | None = None) -> int:
    make_files_private()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status: int = args.run(args)
        return status
    except UsageError as error:
        command: argparse.ArgumentParser = args.parser
        command.error(str(error))  # exits 2
    except RpcError as error:
        message = error.message
        for api_words, cli_words in CLI_WORDING.items():
            message = message.replace(api_words, cli_words)
        return _fail(message)
    except (CliError, NodeBusy, ApiUnavailable, NodeError, ProtocolError, StoreError) as error:
        return _fail(str(error))
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush does not fail again
        return 0
    except KeyboardInterrupt:
        return 130


def _fail(message: str) -> int:
    print(f"distspace: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
