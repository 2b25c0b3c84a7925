"""membership: what private spaces cost a person and a connection (issue 13's "Measure").

``join.by_ticket_p50``: end to end over real daemons (``distspace up`` processes on loopback
TCP). Alice's daemon holds a private space with one file; for each run a fresh node (its own
home, its daemon already started, outside the timing) is Bob: from Alice's ``space.invite``
call, through Bob's ``space.join {ticket}`` (redeem, store, dial the ticket's address, present
the proof, sync), until Bob's API reads Alice's file (polled every POLL_S). The p50 and the
slowest of the runs; no baseline: no open-space join does the same (it fetches a genesis by id).

``admission.*``: what admission before disclosure costs one connection, sans-IO — a
``protocol.replicator.Replicator`` answering a stream that opens with a Hello, then closing it:
Connected, the frames, ConnectionLost, timed around its ``handle`` calls only, in one process
(same run, so the ratio means the same anywhere). The spaces hold no docs (the answer's status
is the same small one in every case, so only admission differs), and the private one a
RECORDS-record capability log. Signature checks are memoised (protocol/identity.py), so the
memo is cleared before each connection: the figure is a peer not seen recently.

- ``open_hello``: an open space's Hello (the baseline);
- ``member_proof_hello``: a member the log holds, presenting its proof (one grant) before its
  Hello, as every non-root member does;
- ``joiner_proof_hello``: a joiner's first connection, its proof (the invitation and its
  redemption) new to the log: tried on a copy of the log, then stored, so it pays the log's
  evaluation twice. Each run is a new joiner of one many-use invitation.

The authorisation cost per ingested change is ``python -m benchmarks capabilities``
(benchmarks/capabilities.py: changes/s into a private space with a 1,000-record log beside an
open space, same run; target under 10% slower), not measured again here.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from time import perf_counter
from typing import Any

from benchmarks.measure import log, run_python_workload
from benchmarks.registry import BenchmarkError, Figure, RunOptions, benchmark
from cli.daemon_process import DaemonNotReady, DaemonProcess, start_daemon

RECORDS = 1_000  # as benchmarks/capabilities.py: the issue's "1,000-entry capability log"
CONNECTIONS = 2_000
QUICK_CONNECTIONS = 200
JOINER_CONNECTIONS = 40
QUICK_JOINER_CONNECTIONS = 5
JOINS = 10
QUICK_JOINS = 2
POLL_S = 0.005  # Bob's API asked this often whether Alice's file is there yet
JOIN_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
LISTEN = "/ip4/127.0.0.1/tcp/0"
FILE = "plan.md"
ROOT_SEED = bytes([0x41]) * 32
MEMBER_SEED = bytes([0x4D]) * 32


# ----- admission, sans-IO -----


def admission_costs(connections: int, joiners: int) -> dict[str, Any]:
    """Workload (fresh process): µs per connection answered, per case (module docstring)."""
    from protocol.capabilities import Grant, Role
    from protocol.clock import FIXED_NOW_MS as NOW_MS
    from protocol.events import Connected, ConnectionLost, DataReceived
    from protocol.identity import Identity, _signature_verifies
    from protocol.limits import SUPPORTED_VERSIONS
    from protocol.memory import MemoryChangeStore
    from protocol.reconcile import space_summary
    from protocol.replicator import Replicator
    from protocol.space import Genesis
    from protocol.ticket import Ticket, redeem
    from protocol.wire import Capabilities, Hello, Status, encode_frame

    root, member = Identity(ROOT_SEED), Identity(MEMBER_SEED)

    def hello(identity: Identity, space: bytes) -> bytes:
        return encode_frame(Hello(SUPPORTED_VERSIONS, space, identity.public_key, Status(space_summary({}), (), False)))

    def proof_frame(records: list[Any]) -> bytes:
        return encode_frame(Capabilities(bytes(32), tuple(record.encode() for record in records)))

    def replicator(genesis: Genesis, records: list[bytes]) -> tuple[Replicator, MemoryChangeStore]:
        store = MemoryChangeStore(geneses=[genesis])
        if records:
            store.add_capability_records(genesis.space_id, records)
        return Replicator(root, store, random.Random(0), [genesis.space_id], wall_clock_ms=lambda: NOW_MS), store

    def answered_us(serving: Replicator, peer: bytes, frames: list[bytes], conn: object) -> float:
        _signature_verifies.cache_clear()
        started = perf_counter()
        actions = serving.handle(Connected(conn, peer, None), NOW_MS)
        for frame in frames:
            actions += serving.handle(DataReceived(conn, frame), NOW_MS)
        if not any(type(action).__name__ == "Send" for action in actions):
            raise AssertionError("the connection got no answer")
        serving.handle(ConnectionLost(conn), NOW_MS)
        return (perf_counter() - started) * 1e6

    opened = Genesis.create(root, "open", NOW_MS, nonce=bytes(16))
    private = Genesis.create(root, "private", NOW_MS, nonce=bytes(16), private=True)
    space = private.space_id
    member_grant = Grant.issue(root, space=space, subject=member.public_key, role=Role.WRITE, issued_ms=NOW_MS - 1)
    invitation_key = Identity.generate()
    invitation = Grant.issue(root, space=space, subject=invitation_key.public_key, role=Role.WRITE, uses=joiners + 1, issued_ms=NOW_MS - 1)
    others = [
        Grant.issue(root, space=space, subject=Identity(os.urandom(32)).public_key, role=Role.WRITE, issued_ms=NOW_MS - 1)
        for _ in range(RECORDS - 2)
    ]
    log_records = [record.encode() for record in (member_grant, invitation, *others)]

    open_replicator, _ = replicator(opened, [])
    private_replicator, store = replicator(private, log_records)
    member_frames = [proof_frame(store.capability_log(space).proof_for(member.public_key)), hello(member, space)]
    if len(store.capability_log(space).proof_for(member.public_key)) != 1:
        raise AssertionError("a member's proof is its one grant")
    ticket = Ticket(private, (invitation,), invitation_key.seed, ())
    joining = [Identity.generate() for _ in range(joiners)]
    joiner_frames = [[proof_frame(redeem(ticket, joiner, NOW_MS)[-2:]), hello(joiner, space)] for joiner in joining]

    result: dict[str, Any] = {"records": RECORDS}
    timings: dict[str, list[float]] = {"open_hello": [], "member_proof_hello": [], "joiner_proof_hello": []}
    for index in range(connections):  # interleaved, so drift on a shared machine hits both alike
        timings["open_hello"].append(answered_us(open_replicator, member.public_key, [hello(member, opened.space_id)], ("open", index)))
        timings["member_proof_hello"].append(answered_us(private_replicator, member.public_key, member_frames, ("member", index)))
    for index, (joiner, frames) in enumerate(zip(joining, joiner_frames, strict=True)):
        timings["joiner_proof_hello"].append(answered_us(private_replicator, joiner.public_key, frames, ("joiner", index)))
        if not store.capability_log(space).admits(joiner.public_key, NOW_MS):
            raise AssertionError("the joiner's proof did not admit it")
    for name, values in timings.items():
        result[f"{name}_us"] = statistics.median(values)
    result["log_records_after"] = len(store.capability_log(space))
    return result


# ----- join by ticket, real daemons -----


def _distspace(home: Path, *args: str) -> str:
    command = [str(Path(sys.executable).with_name("distspace")), "--home", str(home), *args]
    result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise BenchmarkError(f"distspace {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def _daemon(home: Path) -> DaemonProcess:
    command = [str(Path(sys.executable).with_name("distspace"))]
    try:
        return start_daemon(home, "--no-mdns", "--listen", LISTEN, command=command, ready_timeout_s=READY_TIMEOUT_S)
    except DaemonNotReady as error:
        raise BenchmarkError(str(error)) from error


def _api(home: Path, daemon: DaemonProcess) -> Any:
    from node.api_client import ApiClient

    return ApiClient.connect(Path(daemon.ready["api"]["unix"]), (home / "api.token").read_text())


def join_times_ms(directory: Path, joins: int) -> list[float]:
    """Milliseconds from Alice's invite until a new node reads her file, per join."""
    from node.rpc import RpcError

    alice_home = directory / "alice"
    _distspace(alice_home, "init", "team")
    alice = _daemon(alice_home)
    times = []
    try:
        with _api(alice_home, alice) as alice_api:
            alice_api.call("fs.write", path=FILE, text="members only\n")
            for run in range(joins):
                bob_home = directory / f"bob-{run}"
                _distspace(bob_home, "id")
                bob = _daemon(bob_home)
                try:
                    with _api(bob_home, bob) as bob_api:
                        started = perf_counter()
                        ticket = alice_api.call("space.invite", role="write", uses=1)["ticket"]
                        bob_api.call("space.join", ticket=ticket)
                        deadline = started + JOIN_TIMEOUT_S
                        while True:
                            try:
                                if bob_api.call("fs.read", path=FILE)["text"] == "members only\n":
                                    break
                            except RpcError:
                                pass  # not there yet
                            if perf_counter() > deadline:
                                raise BenchmarkError(f"join {run}: Bob did not get Alice's file in {JOIN_TIMEOUT_S:.0f} s")
                            time.sleep(POLL_S)
                        times.append((perf_counter() - started) * 1000)
                finally:
                    bob.stop(STOP_TIMEOUT_S)
    finally:
        alice.stop(STOP_TIMEOUT_S)
    return times


@benchmark("membership", cheap=True)
def membership(options: RunOptions) -> Iterator[Figure]:
    connections = QUICK_CONNECTIONS if options.quick else CONNECTIONS
    joiners = QUICK_JOINER_CONNECTIONS if options.quick else JOINER_CONNECTIONS
    log(f"membership: admission sans-IO, {connections} connections a case, {joiners} joiners, {RECORDS}-record log")
    runs = [run_python_workload(admission_costs, connections=connections, joiners=joiners) for _ in range(options.repeat)]
    best = {name: min(run[f"{name}_us"] for run in runs) for name in ("open_hello", "member_proof_hello", "joiner_proof_hello")}
    opened = best["open_hello"]
    if opened <= 0:
        raise BenchmarkError("membership: an open Hello took no time")
    yield Figure("admission.open_hello", round(opened, 1), "us/connection")
    for name in ("member_proof_hello", "joiner_proof_hello"):
        log(f"membership: {name} {best[name]:.0f} us, open {opened:.0f} us (x{best[name] / opened:.1f})")
        yield Figure(f"admission.{name}_{RECORDS}_records", round(best[name], 1), "us/connection", "open_hello", round(opened, 1))

    joins = (QUICK_JOINS if options.quick else JOINS) * options.repeat
    log(f"membership: join by ticket over real daemons, {joins} runs")
    with tempfile.TemporaryDirectory(prefix="ds-membership-") as directory:
        times = join_times_ms(Path(directory), joins)
    log(f"membership: join by ticket {', '.join(f'{t:.0f}' for t in times)} ms")
    yield Figure("join.by_ticket_p50", round(statistics.median(times), 1), "ms")
    yield Figure("join.by_ticket_max", round(max(times), 1), "ms")
