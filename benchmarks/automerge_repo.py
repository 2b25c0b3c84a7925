"""automerge_repo: our node against automerge-repo 2.5.6 on the same workloads, both measured in this run.

automerge-repo (npm ``@automerge/automerge-repo`` 2.5.6, its WebSocket network adapter and its
NodeFS storage, ``@automerge/automerge`` 3.5.0, all pinned in automerge_repo_js/) runs one peer
per Node process (automerge_repo_js/peer.mjs): a Repo storing in a temp dir, a WebSocket server
on 127.0.0.1 and client adapters towards the peers it dials, driven over stdin/stdout JSON lines
so this process timestamps edits and receipts with its one monotonic clock. The document is
``{text}`` edited with ``A.splice``, as our files are. automerge-repo runs with its defaults
(100 ms sync throttle per document, 100 ms save debounce, no fsync). Ours is measured by the
functions of benchmarks/node.py, unchanged, with their parameters. A figure's ``value`` is ours
and its baseline automerge-repo's, so ``ratio`` = ours / automerge-repo: below 1 favours ours
for ms, s and bytes, above 1 for changes/s. Each workload runs in fresh processes, ours first.

Topology: each edge of ``node._mesh_edges`` (a ring plus chords: a pair for two peers; for ten,
degree 3, diameter 3) is dialled by its higher-numbered end, for ours (libp2p TCP) and theirs
(a WebSocket client adapter of the dialler towards the other's server adapter; automerge-repo
forwards sync to its other peers, so edits cross the same hops). Their natural deployment, one
peer as the server and the others its clients (diameter 2), is printed too as ``anchor_hub.*``
for ten peers, with no ours beside it.

1. ``edit_to_visible``: two peers; open-loop splices of a ``<000123>`` marker at position 0 at
   ``node.PAIR_RATE_PER_S`` from a random peer; latency from sending the edit to the author's
   process until the other process reports that marker. Ours: ``node.daemon_mesh`` with two
   ``distspace up`` daemons (an API ``fs.splice`` until the other's ``file.changed``);
   theirs: a ``splice`` line to the author's stdin until a ``change`` line (patches holding
   the marker) from the other's stdout.
2. ``mesh10``: the same with ten peers at ``node.MESH_RATE_PER_S`` edits/s in total, latency
   until the last other peer reports the edit. An automerge-repo peer spent about 9 ms of CPU
   per edit received (a pair at 20 edits/s, measured here while writing this), so ten of them
   at 50 edits/s want more than two cores: on this machine its figure is mostly a backlog.
3. ``reconnect``: two peers share the text, part, each types N random letters at random
   places offline (one change each), and the dialler reconnects. Stopping rule, both sides:
   the time from the dialler's network starting until both peers hold the same heads (ours:
   ``node.reconnect`` compares both stores' heads every millisecond, in one process; theirs:
   the time of the later heads report once both peers' last reported heads are equal), and
   the bytes each way counted 100 ms after that point (ours: sync-protocol frames, no
   Noise/yamux; theirs: CBOR-encoded repo messages handed to WebSocket send, no WebSocket
   framing or TCP).
4. ``throughput``: the listener makes N single-letter changes as fast as it can, yielding
   every ``node.SENDER_BURST``; changes/s from the start until the dialler holds the
   listener's heads. Ours: ``node.daemon_throughput`` (the sender in the workload process, a
   durable group of SENDER_BURST changes per fsync; the receiver a daemon, polled through its
   API every 20 ms); theirs: two Node peers, the sender's changes saved by NodeFS, no fsync.
   Both start from fresh processes (``throughput_live``). V8 compiles Automerge's wasm and the
   repo's JS as they run, so a cold automerge-repo is several times slower over the first
   thousands of changes: ``throughput_live_vs_warm_anchor`` puts ours (cold, as above) beside
   automerge-repo after N warm-up changes to another document, synced first.

Not comparable, and why: ours signs every change and fsyncs (groups), theirs neither; ours
runs libp2p with Noise and yamux, theirs plain WebSocket; ``reconnect`` for ours runs both
nodes in one process (one core, ``node.reconnect``) against their two processes; ours' edit
path goes through the local API over a Unix socket, theirs through a pipe; the ``throughput``
receiver is polled every 20 ms for ours and reports each change for theirs; ours gets no
warm-up (node.daemon_throughput has no hook for one; CPython and our Rust code do not JIT).

Needs ``npm ci --prefix benchmarks/automerge_repo_js`` first (CI does not run this benchmark).
"""

from __future__ import annotations

import functools
import json
import queue
import random
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchmarks import node as ours
from benchmarks.measure import log, run_python_workload
from benchmarks.registry import BenchmarkError, Figure, RunOptions, benchmark

JS_DIR = Path(__file__).with_name("automerge_repo_js")
PEER_SCRIPT = JS_DIR / "peer.mjs"
INSTALL_COMMAND = "npm ci --prefix benchmarks/automerge_repo_js"
ANCHOR = "automerge-repo 2.5.6 (measured, same run)"
REPLY_TIMEOUT_S = 120.0
CONVERGE_TIMEOUT_S = 120.0


class AutomergeRepoMissing(BenchmarkError):
    """Node or the pinned automerge-repo packages are not installed."""


class PeerFailed(BenchmarkError):
    """An automerge-repo peer process died or did not answer."""


def _require_installed() -> None:
    if shutil.which("node") is None:
        raise AutomergeRepoMissing("automerge_repo needs Node.js (`node` on PATH)")
    if not (JS_DIR / "node_modules" / "@automerge" / "automerge-repo").is_dir():
        raise AutomergeRepoMissing(f"automerge-repo is not installed: run `{INSTALL_COMMAND}` first")


class _Peer:
    """One peer.mjs process: commands in, replies and events out; its last heads and the time
    (time.monotonic) each marker first reached it, updated by a reader thread under ``changed``."""

    def __init__(self, directory: Path, changed: threading.Condition) -> None:
        self.changed = changed
        self.heads: list[str] = []
        self.heads_at = 0.0
        self.tokens: dict[int, float] = {}
        self.peers: set[str] = set()
        self.gone = False
        self._replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.process = subprocess.Popen(
            ["node", str(PEER_SCRIPT), "--dir", str(directory)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        threading.Thread(target=self._read, daemon=True).start()
        self.port = self._next_reply("ready")["port"]

    def _read(self) -> None:
        assert self.process.stdout is not None
        try:
            for line in self.process.stdout:
                self._take(json.loads(line), time.monotonic())
        finally:
            with self.changed:
                self.gone = True  # the process exited or spoke out of protocol: waiters give up
                self.changed.notify_all()
            self._replies.put(None)

    def _take(self, message: dict[str, Any], now: float) -> None:
        event = message.get("ev")
        if event in (None, "ready"):
            self._replies.put(message)
            return
        with self.changed:
            if event == "change":
                self.heads, self.heads_at = message["heads"], now
                for token in message.get("tokens", ()):
                    self.tokens.setdefault(token, now)
            elif event == "peer":
                self.peers.add(message["peer"])
            elif event == "peer-disconnected":
                self.peers.discard(message["peer"])
            self.changed.notify_all()

    def _next_reply(self, op: str) -> dict[str, Any]:
        try:
            message = self._replies.get(timeout=REPLY_TIMEOUT_S)
        except queue.Empty:
            raise PeerFailed(f"an automerge-repo peer did not answer {op!r}") from None
        if message is None:
            raise PeerFailed(f"an automerge-repo peer exited before answering {op!r}")
        if message.get("op", message.get("ev")) != op:
            raise PeerFailed(f"an automerge-repo peer answered {message} to {op!r}")
        return message

    def send(self, op: str, **fields: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.process.stdin.flush()

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        self.send(op, **fields)
        return self.reply(op)

    def reply(self, op: str) -> dict[str, Any]:
        """The answer to the oldest command not yet answered, which must be ``op``."""
        reply = self._next_reply(op)
        if "heads" in reply and reply.get("doc", "main") == "main":
            with self.changed:
                self.heads, self.heads_at = reply["heads"], time.monotonic()
        return reply

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.call("quit")
                self.process.wait(20)
            except (PeerFailed, OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


class _Peers:
    """automerge-repo peers in a temp dir; each edge (low, high) dialled by ``high``."""

    def __init__(self, stack: ExitStack, count: int, edges: set[tuple[int, int]]) -> None:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="automerge-repo-bench-")))
        self.changed = threading.Condition()
        self.peers: list[_Peer] = []
        stack.callback(self._stop)
        for i in range(count):
            self.peers.append(_Peer(root / f"n{i}", self.changed))
        made = self.peers[0].call("create", text="x")
        for i, peer in enumerate(self.peers[1:], start=1):
            lows = [low for low, high in edges if high == i]
            for low in lows:
                peer.call("dial", port=self.peers[low].port)
            self.wait(functools.partial(_connected, peer, len(lows)), "connected")
            peer.call("open", url=made["url"])
        self.wait(self.converged, "the same heads")

    def _stop(self) -> None:
        for peer in self.peers:
            peer.stop()

    def wait(self, predicate: Callable[[], bool], what: str, timeout_s: float = CONVERGE_TIMEOUT_S) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: predicate() or any(peer.gone for peer in self.peers), timeout_s):
                raise PeerFailed(f"automerge-repo peers did not reach {what} within {timeout_s} s")
            if not predicate():
                raise PeerFailed("an automerge-repo peer exited or wrote a line that is not JSON")

    def converged(self) -> bool:
        """Every peer's last reported heads are the same."""
        return all(peer.heads == self.peers[0].heads for peer in self.peers)


def _connected(peer: _Peer, count: int) -> bool:
    return len(peer.peers) >= count


def _all_hold(peers: list[_Peer], token: int) -> bool:
    return all(token in peer.tokens for peer in peers)


def _hub_edges(count: int) -> set[tuple[int, int]]:
    """Peer 0 the server, every other peer its client."""
    return {(0, i) for i in range(1, count)}


# ----- automerge-repo workloads (each in a fresh process) -----


def automerge_edits(nodes_count: int, rate_per_s: float, seconds: float, topology: str = "mesh") -> dict[str, Any]:
    """As ``node.daemon_mesh``: open-loop marker splices from random peers, latency until every
    other peer reports the marker; the same seed, rate and count."""
    edges = ours._mesh_edges(nodes_count) if topology == "mesh" else _hub_edges(nodes_count)
    with ExitStack() as stack:
        group = _Peers(stack, nodes_count, edges)
        peers = group.peers
        rng = random.Random(11)
        sent: dict[int, tuple[int, float]] = {}
        start = time.monotonic() + 0.1
        for k in range(int(rate_per_s * seconds)):
            time.sleep(max(0.0, start + k / rate_per_s - time.monotonic()))
            author = rng.randrange(nodes_count)
            sent[k] = (author, time.monotonic())
            peers[author].send("splice", position=0, text=f"<{k:06d}>")
        latencies = []
        for k, (author, began) in sent.items():
            others = [peer for j, peer in enumerate(peers) if j != author]
            group.wait(functools.partial(_all_hold, others, k), f"edit {k} everywhere", 60)
            latencies.append((max(peer.tokens[k] for peer in others) - began) * 1000)
    return {"p50_ms": statistics.median(latencies), "p99_ms": ours._p(latencies, 0.99), "edits": len(latencies)}


def automerge_reconnect(divergent: int) -> dict[str, Any]:
    """As ``node.reconnect``: part, N random-place letters on each side, the dialler dials again;
    time until both report the same heads, bytes sent by each 100 ms after that."""
    with ExitStack() as stack:
        group = _Peers(stack, 2, {(0, 1)})
        alice, bob = group.peers
        bob.call("hangup")
        group.wait(lambda: not alice.peers and not bob.peers, "parted")
        for peer in (alice, bob):
            peer.call("report", on=False)
        alice.send("type", count=divergent, seed=12)
        bob.send("type", count=divergent, seed=13)
        for peer in (alice, bob):
            peer.reply("type")
            peer.call("report", on=True)
        if group.converged():
            raise PeerFailed("the offline changes did not diverge")
        sent_before = [peer.call("bytes")["sent"] for peer in (alice, bob)]
        started = time.monotonic()
        bob.call("dial", port=alice.port)
        group.wait(group.converged, "the same heads")
        elapsed = max(alice.heads_at, bob.heads_at) - started
        time.sleep(0.1)  # as node.reconnect: the last acknowledgements, for the byte counts
        to_bob, to_alice = (peer.call("bytes")["sent"] - before for peer, before in zip((alice, bob), sent_before, strict=True))
    return {"time_s": elapsed, "bytes_to_bob": to_bob, "bytes_to_alice": to_alice}


def automerge_throughput(changes: int, warmup: int = 0) -> dict[str, Any]:
    """As ``node.daemon_throughput``: the listener's changes as fast as it makes them, until the
    dialler reports the listener's heads. ``warmup``: as many changes to another document first,
    synced, so that V8 has compiled the hot paths (Automerge's wasm, the repo's JS)."""
    with ExitStack() as stack:
        group = _Peers(stack, 2, {(0, 1)})
        alice, bob = group.peers
        if warmup:
            made = alice.call("create", text="x", doc="warmup")
            bob.call("open", url=made["url"], doc="warmup")
            want = alice.call("burst", count=warmup, group=ours.SENDER_BURST, doc="warmup")["heads"]
            deadline = time.monotonic() + CONVERGE_TIMEOUT_S
            while bob.call("heads", doc="warmup")["heads"] != want:  # not measured: a poll will do
                if time.monotonic() > deadline:
                    raise PeerFailed("the warm-up changes did not reach the dialler")
                time.sleep(0.05)
        alice.call("report", on=False)
        started = time.monotonic()
        done = alice.call("burst", count=changes, group=ours.SENDER_BURST)
        group.wait(lambda: bob.heads == done["heads"], "the sender's heads")
        live_s = bob.heads_at - started
    return {"changes": changes, "sender_commits_per_s": changes / done["commit_s"], "live_per_s": changes / live_s}


# ----- the benchmark -----


def _both(mine: Callable[..., dict[str, Any]], theirs: Callable[..., dict[str, Any]], **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Our workload and automerge-repo's with the same arguments, each in a fresh process."""
    return run_python_workload(mine, **kwargs), run_python_workload(theirs, **kwargs)


def _latency_figures(name: str, mine: dict[str, Any], theirs: dict[str, Any]) -> Iterator[Figure]:
    log(
        f"automerge_repo: {name} ours p50 {mine['p50_ms']:.1f} / p99 {mine['p99_ms']:.1f} ms, "
        f"automerge-repo p50 {theirs['p50_ms']:.1f} / p99 {theirs['p99_ms']:.1f} ms"
    )
    for q in ("p50", "p99"):
        yield Figure(f"{name}_{q}", round(mine[f"{q}_ms"], 2), "ms", ANCHOR, round(theirs[f"{q}_ms"], 2))


def _measured(name: str, unit: str, mine: dict[str, Any], theirs: dict[str, Any], pairs: dict[str, str]) -> Iterator[Figure]:
    """One figure per ``suffix: key`` of ``pairs``, ours beside automerge-repo's."""
    log(f"automerge_repo: {name} ours " + ", ".join(f"{s} {mine[k]:.4g}" for s, k in pairs.items())
        + "; automerge-repo " + ", ".join(f"{s} {theirs[k]:.4g}" for s, k in pairs.items()) + f" ({unit})")
    for suffix, key in pairs.items():
        yield Figure(f"{name}_{suffix}", round(mine[key], 3 if unit == "s" else None), unit, ANCHOR, round(theirs[key], 3 if unit == "s" else None))


@benchmark("automerge_repo")
def automerge_repo(options: RunOptions) -> Iterator[Figure]:
    _require_installed()
    quick = options.quick
    seconds = ours.QUICK_DAEMON_SECONDS if quick else ours.DAEMON_SECONDS

    rate = ours.PAIR_RATE_PER_S
    log(f"automerge_repo: edit to the other peer, two peers, {rate} edits/s for {seconds} s")
    mine, theirs = _both(ours.daemon_mesh, automerge_edits, nodes_count=2, rate_per_s=rate, seconds=seconds)
    yield from _latency_figures("daemons.edit_to_visible", mine, theirs)

    count, rate = ours.MESH_NODES, ours.MESH_RATE_PER_S
    log(f"automerge_repo: {count} peers, ring with chords, {rate} edits/s in total for {seconds} s")
    mine, theirs = _both(ours.daemon_mesh, automerge_edits, nodes_count=count, rate_per_s=rate, seconds=seconds)
    yield from _latency_figures(f"daemons.mesh{count}_{rate}_per_s", mine, theirs)
    hub = run_python_workload(automerge_edits, nodes_count=count, rate_per_s=rate, seconds=seconds, topology="hub")
    log(f"automerge_repo: {count} automerge-repo peers, one server: p50 {hub['p50_ms']:.1f} / p99 {hub['p99_ms']:.1f} ms")
    for q in ("p50", "p99"):
        yield Figure(f"anchor_hub.mesh{count}_{rate}_per_s_{q}", round(hub[f"{q}_ms"], 2), "ms")

    divergent = ours.QUICK_DIVERGENT if quick else ours.DIVERGENT
    log(f"automerge_repo: reconnect after {divergent} offline changes on each side")
    mine, theirs = _both(ours.reconnect, automerge_reconnect, divergent=divergent)
    name = f"in_process.reconnect_{divergent}_each"
    yield from _measured(name, "s", mine, theirs, {"time": "time_s"})
    yield from _measured(name, "bytes", mine, theirs, {"bytes_to_dialer": "bytes_to_bob", "bytes_to_listener": "bytes_to_alice"})

    changes = ours.QUICK_THROUGHPUT_CHANGES if quick else ours.THROUGHPUT_CHANGES
    log(f"automerge_repo: sustained changes/s, {changes} single-change edits between two peers")
    mine, theirs = _both(ours.daemon_throughput, automerge_throughput, changes=changes)
    yield from _measured("daemons.throughput", "changes/s", mine, theirs, {"live": "live_per_s", "sender_commits": "sender_commits_per_s"})
    warm = run_python_workload(automerge_throughput, changes=changes, warmup=changes)
    log(f"automerge_repo: automerge-repo after {changes} warm-up changes: {warm['live_per_s']:.0f}/s (sender {warm['sender_commits_per_s']:.0f}/s)")
    warm_anchor = f"automerge-repo 2.5.6 after {changes} warm-up changes (measured, same run)"
    yield Figure("daemons.throughput_live_vs_warm_anchor", round(mine["live_per_s"]), "changes/s", warm_anchor, round(warm["live_per_s"]))
