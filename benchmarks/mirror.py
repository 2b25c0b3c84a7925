"""mirror: the folder mirror (node/mirror.py) on real daemons and real folders.

- ``save_to_other_folder``: a file both folders hold saved in Alice's folder until Bob's folder
  holds the save, through both daemons (Alice's watcher and ingest, the sync, Bob's write-out),
  p50 and p99 over a run of saves one after another (target p99 < 100 ms). Bob's file is polled
  every POLL_S, so a figure can read up to that much late.
- ``create_to_other_folder``: the same for a new file, p50 over a few. Slower by design: the
  mirror holds a new name for MIRROR_SETTLE_MS of quiet (it may be an editor's temp file).
- ``first_scan`` and ``first_checkout`` of a real source tree, ``TREE_FILES`` Python files of
  this installation's site-packages (``.py`` files in path order, capped): a folder holding the
  tree mirrored into an empty space (every file read and committed, in one batch), and that
  space mirrored into an empty folder (every file written atomically). Each is timed from
  ``mirror.start`` to ``mirror.status`` saying running; the baseline, measured in the same run
  on the same tree, is ``cp -r`` of it.
- ``first_scan_longest_call`` and ``first_checkout_longest_call``: the longest a ``mirror.status``
  call took while each ran (polled every 5 ms): how long the daemon kept its other clients
  waiting at most (its loop is served between slices of the scan, node/mirror.py MIRROR_SLICE_MS).
- ``settle_cpu``: the CPU seconds (utime + stime in /proc/PID/stat) the daemon holding that
  checked-out mirror spends in the SETTLE_S after the checkout: one-off work (the watcher's
  events of the checkout's own writes, looked at once).
- ``idle_cpu``: the same over the IDLE_S after that, with nothing changing: the steady state
  (target ~0). IDLE_S is one period of the mirror's full scan and of the daemon's maintenance
  (both 60 s), so each runs once in it, wherever the window falls.

``--quick``: a smaller tree, fewer saves, shorter windows (the periodic work may fall outside).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks.measure import log
from benchmarks.registry import BenchmarkError, Figure, RunOptions, benchmark
from cli.daemon_process import DaemonNotReady, DaemonProcess, start_daemon, stop_all
from node.api_client import ApiClient
from node.home import NodeHome

DISTSPACE = str(Path(sys.executable).with_name("distspace"))
READY_TIMEOUT_S = 60.0
TREE_FILES, QUICK_TREE_FILES = 5_000, 500
SAVES, QUICK_SAVES = 100, 20
CREATES, QUICK_CREATES = 10, 5
SETTLE_S, QUICK_SETTLE_S = 10.0, 5.0
IDLE_S, QUICK_IDLE_S = 60.0, 10.0
TARGET_P99_MS = 100.0
POLL_S = 0.001
# A save that has not reached the other folder after this long is a failure, not a slow figure.
SAVE_TIMEOUT_S = 30.0
CHECKOUT_TIMEOUT_S = 600.0
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


@benchmark("mirror")
def mirror(options: RunOptions) -> Iterator[Figure]:
    saves = (QUICK_SAVES if options.quick else SAVES) * options.repeat
    tree_files = QUICK_TREE_FILES if options.quick else TREE_FILES
    idle_s = QUICK_IDLE_S if options.quick else IDLE_S
    settle_s = QUICK_SETTLE_S if options.quick else SETTLE_S
    creates = QUICK_CREATES if options.quick else CREATES
    with tempfile.TemporaryDirectory(prefix="ds-bench-mirror-") as directory:
        root = Path(directory)
        log(f"mirror: {creates} new files and {saves} saves in Alice's folder, timed until Bob's folder has each")
        creates_ms, latencies_ms = _save_latencies(root / "latency", creates, saves)
        p50, p99 = _percentile(latencies_ms, 50), _percentile(latencies_ms, 99)
        log(f"mirror: save to the other folder p50 {p50:.1f} ms, p99 {p99:.1f} ms (target p99 < {TARGET_P99_MS:.0f} ms)")
        log(f"mirror: a new file to the other folder p50 {_percentile(creates_ms, 50):.1f} ms, max {max(creates_ms):.1f} ms")
        yield Figure("save_to_other_folder_p50", round(p50, 1), "ms")
        yield Figure("save_to_other_folder_p99", round(p99, 1), "ms")
        yield Figure("create_to_other_folder_p50", round(_percentile(creates_ms, 50), 1), "ms")

        tree = root / "tree"
        count, size = _copy_source_tree(tree, tree_files)
        log(f"mirror: a tree of {count} files ({size / 1e6:.1f} MB) from site-packages")
        cp_s = _cp_seconds(tree, root / "cp-copy")
        (scan_s, scan_call_ms), (checkout_s, checkout_call_ms), settle_cpu_s, idle_cpu_s = _scan_checkout_idle(root, tree, settle_s, idle_s)
        log(f"mirror: first scan {scan_s:.2f} s, first checkout {checkout_s:.2f} s, cp -r {cp_s:.2f} s")
        log(f"mirror: the longest API call meanwhile {scan_call_ms:.0f} ms (scan), {checkout_call_ms:.0f} ms (checkout)")
        log(f"mirror: CPU {settle_cpu_s:.3f} s in the {settle_s:.0f} s after the checkout (one-off), then {idle_cpu_s:.3f} s over {idle_s:.0f} s idle")
        yield Figure("tree_files", count, "files")
        yield Figure("first_scan", round(scan_s, 3), "s", "cp -r", round(cp_s, 3))
        yield Figure("first_checkout", round(checkout_s, 3), "s", "cp -r", round(cp_s, 3))
        yield Figure("first_scan_longest_call", round(scan_call_ms, 1), "ms")
        yield Figure("first_checkout_longest_call", round(checkout_call_ms, 1), "ms")
        yield Figure(f"settle_cpu_{settle_s:.0f}s", round(settle_cpu_s, 3), "s")
        yield Figure(f"idle_cpu_{idle_s:.0f}s", round(idle_cpu_s, 3), "s")


def _save_latencies(root: Path, creates: int, saves: int) -> tuple[list[float], list[float]]:
    """Alice and Bob, each mirroring one space into a folder of their own, peered on loopback."""
    alice_home, bob_home = root / "alice", root / "bob"
    created = json.loads(_distspace(alice_home, "init", "bench", "--public", "--json"))
    _distspace(bob_home, "join", created["space_id"], "--genesis", created["genesis"])
    alice_folder, bob_folder = root / "alice-folder", root / "bob-folder"
    daemons: list[DaemonProcess] = []
    try:
        alice = _daemon(alice_home, "--folder", str(alice_folder))
        daemons.append(alice)
        peer = next(a for a in alice.ready["addrs"] if "/tcp/" in a)
        daemons.append(_daemon(bob_home, "--folder", str(bob_folder), "--peer", peer))
        _save(alice_folder / "warm-up.txt", bob_folder / "warm-up.txt", "the session is up\n")
        created = [_save(alice_folder / f"new-{i}.txt", bob_folder / f"new-{i}.txt", f"new file {i}\n") * 1000 for i in range(creates)]
        _save(alice_folder / "notes.txt", bob_folder / "notes.txt", "the file the saves go to\n")
        latencies = []
        for i in range(saves):
            latencies.append(_save(alice_folder / "notes.txt", bob_folder / "notes.txt", f"save {i}\n" * (1 + i % 20)) * 1000)
        return created, latencies
    finally:
        stop_all(daemons)


def _save(source: Path, target: Path, text: str) -> float:
    """Seconds from writing ``text`` into ``source`` until ``target`` holds it."""
    expected = text.encode()
    started = time.perf_counter()
    source.write_text(text)
    deadline = started + SAVE_TIMEOUT_S
    while True:
        try:
            if target.read_bytes() == expected:
                return time.perf_counter() - started
        except FileNotFoundError:
            pass
        if time.perf_counter() > deadline:
            raise BenchmarkError(f"{target} did not get the save within {SAVE_TIMEOUT_S:.0f} s")
        time.sleep(POLL_S)


def _copy_source_tree(tree: Path, limit: int) -> tuple[int, int]:
    """Up to ``limit`` ``.py`` files of site-packages, in path order, copied under ``tree``."""
    site = Path(sysconfig.get_paths()["purelib"])
    sources = sorted(path for path in site.rglob("*.py") if path.is_file() and "__pycache__" not in path.parts)[:limit]
    if len(sources) < limit:
        raise BenchmarkError(f"{site} has {len(sources)} .py files, fewer than the {limit} asked for")
    size = 0
    for source in sources:
        target = tree / source.relative_to(site)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        size += target.stat().st_size
    return len(sources), size


def _cp_seconds(tree: Path, target: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["cp", "-r", str(tree), str(target)], check=True)
    return time.perf_counter() - started


def _scan_checkout_idle(root: Path, tree: Path, settle_s: float, idle_s: float) -> tuple[tuple[float, float], tuple[float, float], float, float]:
    """The first scan of ``tree`` into an empty space, the first checkout of that space into an
    empty folder (each: seconds, and the longest call meanwhile in ms), and the checked-out
    daemon's CPU seconds over the ``settle_s`` after it and over the ``idle_s`` after that."""
    home = root / "tree-home"
    _distspace(home, "init", "tree")
    daemon = _daemon(home)
    try:
        scan_s = _mirror_seconds(home, tree)
    finally:
        daemon.stop()
    _forget_folder(home)  # mirror.start wrote it into config.toml; the checkout is a new folder
    daemon = _daemon(home)
    try:
        checkout_s = _mirror_seconds(home, root / "checkout")
        _check_same_tree(tree, root / "checkout")
        started = _cpu_seconds(daemon.process.pid)
        time.sleep(settle_s)  # nothing changes from here on
        settled = _cpu_seconds(daemon.process.pid)
        time.sleep(idle_s)
        idle_cpu_s = _cpu_seconds(daemon.process.pid) - settled
    finally:
        daemon.stop()
    return scan_s, checkout_s, settled - started, idle_cpu_s


def _mirror_seconds(home: Path, folder: Path) -> tuple[float, float]:
    """Seconds from ``mirror.start`` of ``folder`` until its mirror runs (first checkout done),
    and the longest ``mirror.status`` call meanwhile, in ms."""
    node = NodeHome(home)
    with ApiClient.connect(node.api_socket, node.token_file.read_text(), timeout=CHECKOUT_TIMEOUT_S) as api:
        started = time.perf_counter()
        space = api.call("mirror.start", folder=str(folder))["space"]
        longest = 0.0
        while True:
            asked = time.perf_counter()
            [state] = [m for m in api.call("mirror.status")["mirrors"] if m["space"] == space]
            longest = max(longest, time.perf_counter() - asked)
            if state["state"] == "running":
                return time.perf_counter() - started, longest * 1000
            if state["state"] == "failed":
                raise BenchmarkError(f"mirroring {folder} failed: {state['error']}")
            if time.perf_counter() - started > CHECKOUT_TIMEOUT_S:
                raise BenchmarkError(f"mirroring {folder} did not start within {CHECKOUT_TIMEOUT_S:.0f} s")
            time.sleep(0.005)


def _check_same_tree(expected: Path, got: Path) -> None:
    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    if files(expected) != files(got):
        raise BenchmarkError(f"the checkout {got} differs from the tree {expected}")


def _forget_folder(home: Path) -> None:
    config = home / "config.toml"
    kept = [line for line in config.read_text().splitlines(keepends=True) if not line.startswith(("folder ", "folder_space "))]
    config.write_text("".join(kept))


def _cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S


def _percentile(values: list[float], percent: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1] if len(values) > 1 else values[0]


def _daemon(home: Path, *args: str) -> DaemonProcess:
    try:
        return start_daemon(home, "--no-mdns", *args, command=[DISTSPACE], ready_timeout_s=READY_TIMEOUT_S, log=home.parent / f"{home.name}.log")
    except DaemonNotReady as error:
        raise BenchmarkError(str(error)) from error


def _distspace(home: Path, *args: str) -> str:
    result = subprocess.run([DISTSPACE, "--home", str(home), *args], capture_output=True, check=False)
    if result.returncode != 0:
        raise BenchmarkError(f"distspace {' '.join(args)}: {result.stderr.decode().strip()}")
    return result.stdout.decode()
