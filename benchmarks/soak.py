"""soak: real daemons for N minutes under edits, churn, restarts and a hostile peer — does anything grow?

``python -m benchmarks soak [--minutes N]`` (default 30; ``--quick`` is 1). Alice, Bob and Carol
are ``distspace up`` processes (cli/demo.py's ``Peer``: a temporary home each, 127.0.0.1 only)
sharing one space of a few files. Through their local APIs, random edits land on random daemons
at EDIT_RATE_PER_S. Dave, a fourth daemon, joins the space, then stops and comes back every few
intervals; Bob and Carol take turns being restarted; Alice runs throughout, so her process
series are one lifetime long. Mallory (benchmarks/mallory: frames built with the
project's own encoders) attacks a random daemon with a fresh key each time, one attack after
another (ATTACKS_IN_FLIGHT at once), during every second interval, one kind of attack per
interval in turn: the intervals in between are the same run's baseline. The kinds are
mallory's ATTACKS (garbage, a forged tip, a ping flood) and well-formed ones from its
builders (a self-forked author chain, a status naming random docs, a burst of wants, unsigned
changes that wait for a tip).

Every SAMPLE_INTERVAL_S each running daemon's RSS (/proc/PID/status), open fds (/proc/PID/fd),
database bytes (store.sqlite + -wal), store rows (changes, versions, sync states and the peer
keys they belong to: SQLite opened read-only), connected peers (``node.peers``), and sessions,
send queue bytes and contained internal failures (its metrics page, config ``metrics_port``)
are printed as figures named ``DAEMON.SERIES@Ts``, and so is the honest edit latency of the
previous interval: from an ``fs.splice`` on one daemon until each other running daemon's
``file.changed`` notification carries it (``edit_latency_p99_ms.PHASE@Ts``; PHASE is
``quiet`` or the kind of attack).

At the end: each series' slope per hour by least squares over the samples after the first
third (warm-up); process series (RSS, fds, peers, sessions...) over the process's latest
lifetime only. Store series are printed beside the writes per hour in the same window (ratio:
rows or bytes per write; a write — an honest edit, or the valid first half of a self-fork — is
one change and one version on every daemon), sync states beside the keys Mallory threw away per
hour (ratio: rows or peers left per throwaway key; near 0 when a stranger's state is dropped,
but for the states honest peers keep of each self-fork's doc), process series beside their own
mean after warm-up (ratio: growth per hour as a fraction). Then the honest edit latency p50/p99
under attack (all kinds, and each kind) beside the same figure without it, edits lost (never
arrived though the watcher stayed up), daemons that died, and each daemon's contained internal
failures (its metrics page) and level=error lines in its log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import random
import re
import socket
import sqlite3
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks.measure import log
from benchmarks.node import _p, _quiet_logs
from benchmarks.registry import BenchmarkError, Figure, RunOptions, benchmark

DEFAULT_MINUTES = 30.0  # issue 12's target: slope ~ 0 after warm-up over 30 minutes
QUICK_MINUTES = 1.0
SAMPLE_INTERVAL_S = 10.0
# Samples before this fraction of the run are warm-up: caches, first sync states, first bans.
WARM_UP_FRACTION = 1 / 3
# A slope through fewer points than this says nothing.
MIN_SLOPE_SAMPLES = 3
# Edits per second over all daemons: a few people typing, so latency is not a queueing figure.
EDIT_RATE_PER_S = 5.0
# Behind schedule by more than this (a stalled call), the editor starts over instead of bursting.
EDIT_MAX_LAG_S = 1.0
FILES = ("main.py", "notes.md", "todo.txt", "log.txt")
SEED_TEXT = "seed\n"
# An edit whose notification has not come this long after it was made, to a daemon that stayed
# up all along, is lost: ten times a slow catch-up after a restart.
ARRIVAL_TIMEOUT_S = 30.0
# Churn, counted in sampling intervals: Dave joins in interval DAVE_JOINS_AT, and from then on
# is stopped at the start of every DAVE_CYCLE-th interval and started again one interval later;
# one of Bob and Carol (in turn) is restarted at the start of every RESTART_EVERY-th interval.
DAVE_JOINS_AT = 1
DAVE_CYCLE = 4
RESTART_EVERY = 5
# A joining or restarted daemon has fetched the space within this (libp2p import ~1 s, redial).
JOIN_TIMEOUT_S = 60.0
# How often a wait for a fetched file re-checks (a fetched space announces nothing to wait on).
POLL_S = 0.05
# A watcher's read wakes this often to see whether it should stop.
WATCH_WAKE_S = 0.2
# Mallory looks this often whether it is her phase and a daemon is up to attack.
ATTACK_REST_S = 0.5
# After an attack she waits this long for the victim to cut her off, then leaves herself: an
# attack a victim rightly answers without a ban (junk status, wants) must not stall her for
# mallory.STEP_TIMEOUT_S. She has this many attacks in flight at once, as one attacker
# with a few connections would.
ATTACK_LINGER_S = 3.0
ATTACKS_IN_FLIGHT = 4
# The well-formed attacks' sizes: a junk status of random docs (a tenth of what a session may
# name, MAX_UNHELD_DOCS_PER_SESSION: held while she stays, never persisted); a 23-byte want for
# the index doc in a burst; unsigned changes enough to be worth parking, for a tip never sent.
JUNK_STATUS_DOCS = 2_000
REPEATED_WANTS = 50
UNSIGNED_CHANGES = 500
# Her last attack may wait mallory.STEP_TIMEOUT_S (20 s) to be cut off; a daemon's start
# (the churn thread's last task) takes cli.demo.STEP_TIMEOUT_S (30 s) at most.
THREAD_STOP_TIMEOUT_S = 30.0
# What is counted in each store, and the rate (per hour, same run) each count is judged by: an
# honest edit is one change and one version on every daemon; a sync state is kept per peer key
# and doc, so states of Mallory's throwaway keys grow with her attacks unless they are dropped.
STORE_QUERIES = {
    "changes_rows": "SELECT COUNT(*) FROM changes",
    "versions_rows": "SELECT COUNT(*) FROM versions",
    "sync_states_rows": "SELECT COUNT(*) FROM sync_states",
    "sync_state_peers": "SELECT COUNT(DISTINCT peer) FROM sync_states",
}
# Writes are the honest edits plus the valid first halves of Mallory's self-forks (hers to write).
HONEST_RATE, WRITE_RATE, HOSTILE_RATE = "honest_edits_per_h", "writes_per_h", "hostile_keys_per_h"
RATE_UNITS = {HONEST_RATE: "edits/h", WRITE_RATE: "changes/h", HOSTILE_RATE: "keys/h"}
RATE_OF_SERIES = {"sync_states_rows": HOSTILE_RATE, "sync_state_peers": HOSTILE_RATE}
# From each daemon's Prometheus page (config metrics_port): gauges sampled as series, and the
# counters of failures of its own code that it contained (issue 12: each must be counted).
METRIC_GAUGES = {"sessions": "distspace_sessions_open", "send_queue_bytes": "distspace_send_queue_bytes"}
INTERNAL_FAILURES_SUFFIX = "internal_failures_total"
METRICS_TIMEOUT_S = 5.0
PROCESS_SERIES = ("rss_mb", "open_fds", "peers", "sessions", "send_queue_bytes", "internal_failures")
UNITS = {
    "rss_mb": "MB", "open_fds": "fds", "peers": "peers", "sessions": "sessions", "sync_state_peers": "peers",
    "db_bytes": "bytes", "wal_bytes": "bytes", "send_queue_bytes": "bytes", "internal_failures": "failures",
}  # else rows
# SQLite read-only opens wait this long for the daemon's write lock (a checkpoint, a group commit).
SQLITE_BUSY_S = 5.0
TOKEN = re.compile(r"<(\d+)>")
QUIET = "quiet"  # the phase of the even intervals; in the odd ones Mallory makes one kind of attack
NAMES = ("alice", "bob", "carol", "dave")
ALWAYS_UP = "alice"
RESTARTED = ("bob", "carol")
# Mallory's frame builders and attacks live with the attack tests, in a directory that is not a
# package: it goes on the path when she starts, to import them as the tests do.


class SoakFailed(BenchmarkError):
    """A daemon could not be started or reached, or the space never reached a joining daemon."""


class ProcessGone(SoakFailed):
    """The daemon's process exited (or is a zombie)."""


# ----- the daemons -----


@dataclass
class _Edit:
    token: int
    author: str
    made_s: float
    phase: str  # QUIET, or the kind of attack Mallory was making
    waiting: dict[str, int]  # daemon -> its lifetime when the edit was made, until it arrives there


@dataclass
class _Daemon:
    """One daemon of the soak while it runs: its process, an editing and a watching API client."""

    peer: Any  # cli.demo.Peer
    lifetime: int = 0
    pid: int = 0
    editor: Any = None  # node.api_client.ApiClient
    watcher: threading.Thread | None = None
    stop_watching: threading.Event = field(default_factory=threading.Event)
    floor: dict[str, int] = field(default_factory=dict)  # file -> characters it surely holds


class _Soak:
    """The daemons, their state and what was measured; see the module docstring."""

    def __init__(self, root: Path, seed: int) -> None:
        from cli.demo import Peer

        self.seed = seed
        self.rng = random.Random(seed)
        self.peers = {name: Peer(name, "agent", root) for name in NAMES}
        self.metrics_ports = {name: _free_port() for name in NAMES}
        for name, peer in self.peers.items():  # Peer writes top-level keys only: one more goes at the end
            config = peer.home.config_file
            config.write_text(config.read_text() + f"metrics_port = {self.metrics_ports[name]}\n")
        self.running: dict[str, _Daemon] = {}
        self.dead: set[str] = set()  # running, but found dead: awaiting their restart
        self.lifetimes: Counter[str] = Counter()
        self.lock = threading.Lock()  # guards running and each daemon's API clients
        self.space = ""
        self.arrivals: dict[int, dict[str, float]] = {}  # token -> daemon -> when it was notified
        self.counts: Counter[str] = Counter()
        self.phase = QUIET  # or the kind of attack Mallory makes now (set by the main thread only)
        self.stopping = threading.Event()
        self.churn: queue.Queue[tuple[str, str]] = queue.Queue()

    # --- starting and stopping ---

    def start(self, name: str, *, join: bool = False) -> None:
        """Start ``name`` dialling every running daemon (joining the space first with ``join``);
        once it holds every file, edit and watch it.

        Raises:
            SoakFailed: it did not start, or did not receive the files within JOIN_TIMEOUT_S.
        """
        from cli.demo import DemoFailed

        with self.lock:
            others = [addr for daemon in self.running.values() for addr in daemon.peer.addrs]
        peer = self.peers[name]
        try:
            peer.start(others)
            if join:
                peer.call("space.join", space_id=self.space, peers=others)
            self._wait_for_files(peer)
        except DemoFailed as error:
            peer.stop()
            raise SoakFailed(f"{name}: {error}") from error
        self.adopt(name)

    def adopt(self, name: str) -> None:
        """Edit and watch a started daemon that holds every file."""
        peer = self.peers[name]
        self.lifetimes[name] += 1
        daemon = _Daemon(peer, self.lifetimes[name], json.loads(peer.home.daemon_file.read_text())["pid"])
        daemon.editor = self._client(peer)
        daemon.floor = {path: len(SEED_TEXT) for path in FILES}  # at least the seed and its own edits
        watching = self._client(peer)
        for path in FILES:
            watching.call("subscribe.file", path=path)
        daemon.watcher = threading.Thread(target=self._watch, args=(name, daemon, watching), daemon=True)
        daemon.watcher.start()
        with self.lock:
            self.running[name] = daemon
            self.dead.discard(name)

    def stop(self, name: str) -> None:
        with self.lock:
            daemon = self.running.pop(name, None)
        if daemon is None:
            return
        daemon.stop_watching.set()
        if daemon.watcher is not None:
            daemon.watcher.join()
        daemon.editor.close()
        daemon.peer.stop()

    def stop_all(self) -> None:
        self.stopping.set()
        for name in list(self.running):
            self.stop(name)
        for peer in self.peers.values():
            peer.stop()  # one that started but was never adopted (a failed set-up)

    def _client(self, peer: Any) -> Any:
        from node.api_client import ApiClient

        return ApiClient.connect(peer.home.api_socket, peer.home.token_file.read_text())

    def _wait_for_files(self, peer: Any) -> None:
        """Poll until ``peer`` holds every file (a fetched space announces nothing to wait on)."""
        from cli.demo import DemoFailed
        from node.rpc import RpcError

        deadline = time.monotonic() + JOIN_TIMEOUT_S
        for path in FILES:
            while True:
                try:
                    peer.call("fs.stat", path=path)
                    break
                except DemoFailed as error:
                    if time.monotonic() > deadline or not isinstance(error.__cause__, RpcError):
                        raise SoakFailed(f"{peer.name} did not receive {path}: {error}") from error
                    time.sleep(POLL_S)

    def _watch(self, name: str, daemon: _Daemon, client: Any) -> None:
        """Note when each edit's token first reaches this daemon's file subscribers."""
        from node.api_client import ApiUnavailable

        with closing(client):
            while not daemon.stop_watching.is_set():
                try:
                    message = client.next_notification(timeout=WATCH_WAKE_S)
                except TimeoutError:
                    continue
                except ApiUnavailable:
                    return  # the daemon is stopping or died; the sampler notices a death
                now = time.monotonic()
                params = message.get("params", {})
                texts = [edit.get("insert", "") for edit in params.get("edits", [])] + [params.get("text") or ""]
                for token in TOKEN.findall("".join(texts)):
                    self.arrivals.setdefault(int(token), {}).setdefault(name, now)

    # --- the churn thread ---

    def churn_worker(self) -> None:
        """Carry out ("start" | "stop" | "restart", name) requests one at a time, off the editor's thread."""
        while True:
            action, name = self.churn.get()
            if action == "quit":
                return
            began = time.monotonic()
            try:
                if action in ("stop", "restart"):
                    self.stop(name)
                if action in ("start", "restart") and not self.stopping.is_set():
                    self.start(name, join=self.lifetimes[name] == 0)
                self.counts[f"churn_{action}"] += 1
                log(f"soak: {action} {name}: {time.monotonic() - began:.1f} s")
            except SoakFailed as error:
                self.counts["churn_failures"] += 1
                log(f"soak: {action} {name} failed: {error}")

    # --- editing ---

    def edit(self, token: int) -> _Edit | None:
        """One splice with ``token`` at a random place of a random file on a random running daemon."""
        from node.api_client import ApiUnavailable
        from node.rpc import RpcError

        with self.lock:
            alive = sorted(set(self.running) - self.dead)
            if not alive:
                return None
            author = self.rng.choice(alive)
            daemon = self.running[author]
            path = self.rng.choice(FILES)
            insert = f"<{token}>"
            waiting = {name: self.running[name].lifetime for name in alive if name != author}
            made_s = time.monotonic()
            try:
                position = self.rng.randint(0, daemon.floor[path])
                daemon.editor.call("fs.splice", path=path, position=position, delete=0, insert=insert)
            except (ApiUnavailable, RpcError) as error:
                self.counts["edit_failures"] += 1
                log(f"soak: edit on {author} failed: {error}")
                return None
            daemon.floor[path] += len(insert)
        self.counts["edits"] += 1
        return _Edit(token, author, made_s, self.phase, waiting)

    def settle(self, edits: list[_Edit], *, final: bool) -> tuple[dict[str, list[float]], list[_Edit]]:
        """Latencies (ms, by attack phase) of the edits' arrivals that are in, and the edits still awaited.

        An arrival at a daemon that stopped or restarted since the edit is not awaited any more; one
        that has not come within ARRIVAL_TIMEOUT_S (or by the end, with ``final``) is lost."""
        latencies: dict[str, list[float]] = {}
        now = time.monotonic()
        left = []
        with self.lock:
            lifetimes = {name: daemon.lifetime for name, daemon in self.running.items()}
        for made in edits:
            arrived = self.arrivals.get(made.token, {})
            for name, lifetime in list(made.waiting.items()):
                if name in arrived and lifetimes.get(name) == lifetime:
                    latencies.setdefault(made.phase, []).append((arrived[name] - made.made_s) * 1000)
                elif lifetimes.get(name) != lifetime:
                    self.counts["arrivals_interrupted"] += 1
                elif final or now - made.made_s > ARRIVAL_TIMEOUT_S:
                    self.counts["edits_lost"] += 1
                    log(f"soak: edit <{made.token}> from {made.author} never reached {name}")
                else:
                    continue
                del made.waiting[name]
            if made.waiting:
                left.append(made)
            else:
                self.arrivals.pop(made.token, None)
        return latencies, left

    # --- sampling ---

    def sample(self) -> dict[str, dict[str, float]]:
        """Every running daemon's series now; a daemon found dead is counted and restarted."""
        from cli.demo import DemoFailed

        samples = {}
        for name in sorted(self.running):
            with self.lock:
                daemon = self.running.get(name)
                if daemon is None or name in self.dead:
                    continue
                try:
                    values = _process_series(daemon.pid)
                    values["peers"] = len(daemon.peer.call("node.peers")["peers"])
                except (DemoFailed, ProcessGone) as error:
                    self.dead.add(name)
                    self.counts["daemon_deaths"] += 1
                    log(f"soak: {name}'s daemon died ({error}); restarting it")
                    self.churn.put(("restart", name))
                    continue
            values.update(_metrics(self.metrics_ports[name]))
            database = daemon.peer.home.database
            wal = database.with_name(database.name + "-wal")
            values["wal_bytes"] = wal.stat().st_size if wal.exists() else 0
            values["db_bytes"] = database.stat().st_size + values["wal_bytes"]
            values.update(_store_rows(database))
            samples[name] = values
        return samples

    def error_lines(self) -> dict[str, int]:
        return {
            name: sum("level=error" in line for line in peer.log_file.read_text(errors="replace").splitlines())
            for name, peer in self.peers.items()
            if peer.log_file.exists()
        }


def _process_series(pid: int) -> dict[str, float]:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError as error:
        raise ProcessGone(f"pid {pid}: {error}") from error
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if fields.get("State", "").strip().startswith("Z"):
        raise ProcessGone(f"pid {pid} exited")
    return {"rss_mb": round(int(fields["VmRSS"].split()[0]) / 1024, 2), "open_fds": fds}  # the kernel says kB


def _free_port() -> int:
    """A loopback TCP port free now (the daemon binds it with SO_REUSEADDR on each start)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _metrics(port: int) -> dict[str, float]:
    """The daemon's gauges and its contained failures, from its metrics page; {} if unreachable."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=METRICS_TIMEOUT_S) as response:
            text = response.read().decode()
    except OSError as error:
        log(f"soak: no metrics on port {port}: {error}")
        return {}
    values = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    sampled = {series: float(values[metric]) for series, metric in METRIC_GAUGES.items() if metric in values}
    sampled["internal_failures"] = sum(float(v) for k, v in values.items() if k.endswith(INTERNAL_FAILURES_SUFFIX))
    return sampled


def _store_rows(database: Path) -> dict[str, float]:
    """Row counts of the growing tables, read-only beside the running daemon."""
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=SQLITE_BUSY_S)) as db:
            return {series: db.execute(query).fetchone()[0] for series, query in STORE_QUERIES.items()}
    except sqlite3.Error as error:
        log(f"soak: cannot count rows of {database}: {error}")
        return {}


# ----- mallory -----


def _repertoire(mallory: Any, space: bytes) -> dict[str, Callable[[str], bytes]]:
    """Mallory's attacks by name, each the bytes she writes under the key named by its argument:
    mallory's own ATTACKS, and well-formed ones composed from its builders. Each leaves
    nothing durable behind when handled right, but for a self-fork's first half (a valid change
    of hers, stored and spread: counted among the writes the store series are judged by)."""
    import native
    from protocol.space import DOC_ID_BYTES, INDEX_DOC_ID

    def doc_of(key: str) -> bytes:  # a doc of her own per key, nobody else's
        return hashlib.sha256(key.encode()).digest()[:DOC_ID_BYTES]

    def self_fork(key: str) -> bytes:
        identity = mallory.mallory(key)
        halves = mallory.forked_pair(identity, native.Document())
        frames: bytes = mallory.hello(key, space) + b"".join(
            mallory.signed_batch(identity, space, doc_of(key), [half]) for half in halves
        )
        return frames

    well_formed: dict[str, Callable[[str], bytes]] = {
        "self-fork": self_fork,
        "junk-status": lambda key: mallory.hello(key, space)
        + mallory.junk_status(JUNK_STATUS_DOCS, seed=int.from_bytes(doc_of(key), "big")),  # new docs each time
        "repeated-wants": lambda key: mallory.hello(key, space) + mallory.want(INDEX_DOC_ID) * REPEATED_WANTS,
        "unsigned-changes": lambda key: mallory.hello(key, space)
        + mallory.unsigned_reply(mallory.mallory(key), doc_of(key), UNSIGNED_CHANGES),
    }
    given = {kind: partial(build, space=space) for kind, build in mallory.ATTACKS.items()}
    return {**given, **well_formed}


def _hostile(soak: _Soak, mallory: Any, repertoire: dict[str, Callable[[str], bytes]]) -> None:
    """Mallory's thread: while ``soak.phase`` names an attack, that attack again and again, each
    under a fresh key (keys cost her nothing), on a random running daemon, a few at once."""
    import trio

    from node.errors import NodeError

    rng = random.Random(soak.seed + 1)  # her own: the editor's choices stay reproducible

    async def attack(number: int, kind: str, addr: str) -> None:
        key = f"soak {kind} {number}"  # mallory derives her key from this name
        async with mallory.mallory_stream(key, addr) as frames:
            try:
                await frames.send_bytes(repertoire[kind](key))
            except NodeError:
                pass  # cut off mid-write
            with trio.move_on_after(ATTACK_LINGER_S) as linger:
                await mallory.closed_by_peer(frames)
        soak.counts[f"attacks_{kind}"] += 1
        if linger.cancelled_caught:
            soak.counts[f"attacks_{kind}_left_open"] += 1  # not cut off: she closed it herself
        if kind == "self-fork":
            soak.counts["mallory_writes"] += 1  # the first half is hers to write

    async def one(number: int, kind: str, addr: str, limiter: trio.CapacityLimiter) -> None:
        try:
            await attack(number, kind, addr)
        except NodeError:
            soak.counts["attacks_undelivered"] += 1  # the victim was stopping
        except Exception as error:  # counted and shown; she goes on attacking
            soak.counts["attacks_failed_unexpectedly"] += 1
            log(f"soak: attack {number} failed: {error!r}")
        finally:
            limiter.release_on_behalf_of(number)

    async def main() -> None:
        limiter = trio.CapacityLimiter(ATTACKS_IN_FLIGHT)
        number = 0
        async with trio.open_nursery() as nursery:
            while not soak.stopping.is_set():
                with soak.lock:
                    addrs = [daemon.peer.addrs[0] for daemon in soak.running.values()]
                kind = soak.phase
                if kind == QUIET or not addrs:
                    await trio.sleep(ATTACK_REST_S)
                    continue
                number += 1
                await limiter.acquire_on_behalf_of(number)
                if soak.phase != kind:  # the interval ended while she waited
                    limiter.release_on_behalf_of(number)
                    continue
                soak.counts["hostile_keys"] += 1
                nursery.start_soon(one, number, kind, rng.choice(addrs), limiter)

    trio.run(main)


# ----- the run -----


def _slope_per_hour(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per hour."""
    mean_t = sum(t for t, _ in points) / len(points)
    mean_v = sum(v for _, v in points) / len(points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / spread * 3600 if spread else 0.0


def _unit(series: str) -> str:
    return UNITS.get(series, "rows")


def _churn_for(interval: int) -> list[tuple[str, str]]:
    """What happens to the daemons at the start of ``interval`` (see DAVE_CYCLE, RESTART_EVERY)."""
    actions = []
    if interval == DAVE_JOINS_AT:
        actions.append(("start", "dave"))
    elif interval > DAVE_JOINS_AT and interval % DAVE_CYCLE == 0:
        actions.append(("stop", "dave"))
    elif interval > DAVE_JOINS_AT + 1 and interval % DAVE_CYCLE == 1:
        actions.append(("start", "dave"))
    if interval and interval % RESTART_EVERY == 0:
        actions.append(("restart", RESTARTED[(interval // RESTART_EVERY) % len(RESTARTED)]))
    return actions


def run_soak(minutes: float, seed: int = 12) -> Iterator[Figure]:
    """The soak (see the module docstring): figures per interval as it goes, then the summary."""
    intervals = max(2, round(minutes * 60 / SAMPLE_INTERVAL_S))
    with tempfile.TemporaryDirectory(prefix="distspace-soak-") as root:
        soak = _Soak(Path(root), seed)
        threads = [threading.Thread(target=soak.churn_worker, daemon=True)]
        quieted = logging.root.manager.disable
        try:
            yield from _run(soak, intervals, threads)
        finally:
            logging.disable(quieted)  # _run quiets logging: give the process back as it was
            soak.stopping.set()
            soak.churn.put(("quit", ""))
            for thread in threads:
                if thread.is_alive():
                    thread.join(THREAD_STOP_TIMEOUT_S)
            soak.stop_all()


def _run(soak: _Soak, intervals: int, threads: list[threading.Thread]) -> Iterator[Figure]:
    from cli.demo import DemoFailed

    alice = soak.peers[ALWAYS_UP]
    try:
        alice.start([])
        soak.space = alice.call("space.create", name="soak", public=True)["space_id"]
        for path in FILES:
            alice.call("fs.write", path=path, text=SEED_TEXT, parents=False)
    except DemoFailed as error:
        raise SoakFailed(f"alice: {error}") from error
    soak.adopt(ALWAYS_UP)
    for name in RESTARTED:
        soak.start(name, join=True)
    threads[0].start()
    _quiet_logs()  # Mallory's libp2p logs every stream the victims cut; stderr is for progress
    from benchmarks import mallory

    repertoire = _repertoire(mallory, bytes.fromhex(soak.space))
    kinds = sorted(repertoire)
    threads.append(threading.Thread(target=_hostile, args=(soak, mallory, repertoire), daemon=True))
    threads[-1].start()
    log(f"soak: {len(soak.running)} daemons share space {soak.space[:12]}; {intervals} intervals of {SAMPLE_INTERVAL_S:.0f} s")

    series: dict[tuple[str, str], list[tuple[float, float, int]]] = {}  # (daemon, series) -> (t, value, lifetime)
    latencies: dict[str, list[float]] = {}
    made: dict[str, list[tuple[float, int]]] = {rate: [] for rate in RATE_UNITS}  # rate -> (t, count so far)
    awaited: list[_Edit] = []
    previous: list[_Edit] = []
    started = time.monotonic()
    token = 0
    for interval in range(intervals):
        for action in _churn_for(interval):
            soak.churn.put(action)
        soak.phase = kinds[(interval // 2) % len(kinds)] if interval % 2 else QUIET
        this_interval: list[_Edit] = []
        end = started + (interval + 1) * SAMPLE_INTERVAL_S
        next_edit = time.monotonic()
        while (now := time.monotonic()) < end:
            if now < next_edit:
                time.sleep(min(next_edit, end) - now)
                continue
            next_edit = max(next_edit + 1 / EDIT_RATE_PER_S, now - EDIT_MAX_LAG_S)
            token += 1
            edit = soak.edit(token)
            if edit is not None:
                this_interval.append(edit)
        t = round(time.monotonic() - started)
        made[HONEST_RATE].append((t, soak.counts["edits"]))
        made[WRITE_RATE].append((t, soak.counts["edits"] + soak.counts["mallory_writes"]))
        made[HOSTILE_RATE].append((t, soak.counts["hostile_keys"]))
        # The previous interval's edits have had a whole interval to arrive: report them now.
        got, awaited = soak.settle(awaited + previous, final=False)
        previous = this_interval
        for phase, values in got.items():
            latencies.setdefault(phase, []).extend(values)
            yield Figure(f"edit_latency_p50_ms.{phase}@{t}s", round(_p(values, 0.5), 2), "ms")
            yield Figure(f"edit_latency_p99_ms.{phase}@{t}s", round(_p(values, 0.99), 2), "ms")
        shown = [value for values in got.values() for value in values]
        samples = soak.sample()
        for name, sample in samples.items():
            for key, value in sample.items():
                series.setdefault((name, key), []).append((t, value, soak.lifetimes[name]))
                yield Figure(f"{name}.{key}@{t}s", value, _unit(key))
        log(
            f"soak: {t:>5} s {soak.phase:<16} "
            + "; ".join(f"{n} {v['rss_mb']:.0f} MB {v['open_fds']:.0f} fds {v.get('changes_rows', 0):.0f} ch "
                        f"{v.get('sync_states_rows', 0):.0f} ss" for n, v in samples.items())
            + (f"; edits of the interval before: p99 {_p(shown, 0.99):.1f} ms" if shown else "")
        )

    soak.phase = QUIET
    deadline = time.monotonic() + ARRIVAL_TIMEOUT_S
    awaited += previous
    while awaited and time.monotonic() < deadline:
        got, awaited = soak.settle(awaited, final=False)
        for phase, values in got.items():
            latencies.setdefault(phase, []).extend(values)
        time.sleep(POLL_S)
    got, _ = soak.settle(awaited, final=True)
    for phase, values in got.items():
        latencies.setdefault(phase, []).extend(values)
    yield from _summary(soak, series, latencies, made, time.monotonic() - started)


def _summary(
    soak: _Soak,
    series: dict[tuple[str, str], list[tuple[float, float, int]]],
    latencies: dict[str, list[float]],
    made: dict[str, list[tuple[float, int]]],
    elapsed_s: float,
) -> Iterator[Figure]:
    warm_t = elapsed_s * WARM_UP_FRACTION
    rates = {}
    for rate, counts in made.items():
        warm = [(t, n) for t, n in counts if t >= warm_t]
        if len(warm) >= MIN_SLOPE_SAMPLES:
            rates[rate] = round(_slope_per_hour(warm), 1)
            yield Figure(rate, rates[rate], RATE_UNITS[rate])
    for (name, key), points in sorted(series.items()):
        last_lifetime = soak.lifetimes[name]
        kept = [(t, v) for t, v, life in points if t >= warm_t and (key not in PROCESS_SERIES or life == last_lifetime)]
        if len(kept) < MIN_SLOPE_SAMPLES:
            log(f"soak: {name}.{key}: {len(kept)} samples after warm-up, no slope")
            continue
        slope = round(_slope_per_hour(kept), 3)
        if key in PROCESS_SERIES:
            mean = round(sum(v for _, v in kept) / len(kept), 3)
            yield Figure(f"{name}.{key}_slope_per_h", slope, f"{_unit(key)}/h", f"{name}.{key}_mean_after_warm_up", mean)
        elif rates.get(rate := RATE_OF_SERIES.get(key, WRITE_RATE)):
            yield Figure(f"{name}.{key}_slope_per_h", slope, f"{_unit(key)}/h", rate, rates[rate])
    quiet = latencies.get(QUIET, [])
    under = {"attack": [v for phase, values in latencies.items() if phase != QUIET for v in values]}
    under.update((kind, values) for kind, values in sorted(latencies.items()) if kind != QUIET)
    for kind, values in under.items():
        for q, label in ((0.5, "p50"), (0.99, "p99")):
            if values and quiet:
                yield Figure(
                    f"edit_latency_{label}_ms_under_{kind}", round(_p(values, q), 2), "ms",
                    f"edit_latency_{label}_ms_without_attack", round(_p(quiet, q), 2),
                )
        yield Figure(f"edit_arrivals_measured_under_{kind}", len(values), "arrivals")
    yield Figure("edit_arrivals_measured_without_attack", len(quiet), "arrivals")
    counters = (
        "edits", "edits_lost", "edit_failures", "arrivals_interrupted", "daemon_deaths", "churn_failures", "hostile_keys",
        "mallory_writes",
    )
    for counter in counters:
        yield Figure(counter, soak.counts[counter], "count")
    for counter, value in sorted(soak.counts.items()):
        if counter.startswith(("attacks_", "churn_")) and counter != "churn_failures":
            yield Figure(counter, value, "count")
    for name, lines in soak.error_lines().items():
        yield Figure(f"{name}.log_error_lines", lines, "lines")
    for (name, key), points in sorted(series.items()):
        if key == "internal_failures":  # a counter per lifetime of the process: add up each one's last
            last_of_lifetime = {life: value for _, value, life in points}
            yield Figure(f"{name}.internal_failures", sum(last_of_lifetime.values()), "failures")


@benchmark("soak")
def soak(options: RunOptions) -> Iterator[Figure]:
    minutes = options.minutes if options.minutes is not None else (QUICK_MINUTES if options.quick else DEFAULT_MINUTES)
    log(f"soak: {minutes:g} minutes")
    yield from run_soak(minutes)

