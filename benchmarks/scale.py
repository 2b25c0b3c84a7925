"""scale: a fresh peer fetching a big space through real daemons, beside ``git clone``.

- ``fetch_real``: a real tree — ``TREE_FILES`` source files of this installation's
  site-packages (benchmarks/git.py's tree) — committed with git, cloned over ``file://`` (the
  baseline, timed) and imported into a private space on Alice's home; then Alice's daemon
  invites and a fresh daemon on an empty home joins by the ticket. Timed from the join until
  the fresh daemon holds every doc and change Alice holds (its ``node.stats``, polled every
  ``POLL_S``). Target: <= 2x git clone.
- ``fetch_generated``: the same for a generated tree of ``GENERATED_FILES`` small files (the
  issue's 20,000), with what the fetch cost: the Hello/Status bytes and pages both daemons sent
  (their Replicator counters, from their metrics ports), all sync bytes, and the fresh
  daemon's peak RSS (``VmHWM`` of /proc).

Both daemons are ``distspace up`` processes on loopback TCP; ``--quick`` uses smaller trees.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.git import GIT_ENV, _generated_tree, _git, _real_tree
from benchmarks.measure import log
from benchmarks.node import METRICS_TIMEOUT_S, _api, _cli, _free_port, _start_daemon
from benchmarks.registry import BenchmarkError, Figure, RunOptions, benchmark
from cli.daemon_process import DaemonProcess

TREE_FILES, QUICK_TREE_FILES = 1_000, 300
GENERATED_FILES, QUICK_GENERATED_FILES = 20_000, 2_000
POLL_S = 0.05
FETCH_TIMEOUT_S = 600.0  # a fetch that has not finished by then has failed
# The Replicator counters (``distspace_replicator_<name>_total``) reported per fetch.
COUNTERS = ("status_bytes_sent", "status_pages_sent", "bytes_sent", "messages_sent")


@benchmark("scale")
def scale(options: RunOptions) -> Iterator[Figure]:
    with tempfile.TemporaryDirectory(prefix="ds-bench-scale-") as directory:
        root = Path(directory)
        count, size = _real_tree(root / "real", QUICK_TREE_FILES if options.quick else TREE_FILES)
        log(f"scale: a tree of {count} files ({size / 1e6:.1f} MB) from site-packages")
        yield from _compare("fetch_real", root / "real", root, options)
        generated = QUICK_GENERATED_FILES if options.quick else GENERATED_FILES
        _generated_tree(root / "generated", generated)
        log(f"scale: a generated tree of {generated} files")
        yield from _compare("fetch_generated", root / "generated", root, options)


def _compare(name: str, tree: Path, root: Path, options: RunOptions) -> Iterator[Figure]:
    _git(tree, "init", "-q")
    _git(tree, "add", "-A")
    _git(tree, "commit", "-q", "-m", "the tree")
    clone_s = min(_clone_s(tree, root / f"{name}-clone-{run}") for run in range(options.repeat))
    runs = []
    for run in range(1, options.repeat + 1):
        log(f"scale {name} run {run}/{options.repeat}")
        runs.append(fetch(tree, root / f"{name}-{run}"))
    best = min(runs, key=lambda result: float(result["fetch_s"]))
    ratio = best["fetch_s"] / clone_s
    log(f"scale {name}: {best['docs']} docs fetched in {best['fetch_s']:.2f} s, git clone {clone_s:.2f} s ({ratio:.1f}x; target <= 2x)")
    yield Figure(f"{name}.seconds", round(best["fetch_s"], 3), "s", "git clone file://", round(clone_s, 3))
    yield Figure(f"{name}.docs", best["docs"], "docs")
    yield Figure(f"{name}.status_bytes", best["status_bytes_sent"], "B")
    yield Figure(f"{name}.status_pages", best["status_pages_sent"], "messages")
    yield Figure(f"{name}.sync_bytes", best["bytes_sent"], "B")
    yield Figure(f"{name}.fresh_peak_rss", round(best["fresh_peak_rss_mb"], 1), "MB")


def _clone_s(tree: Path, target: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["git", "clone", "-q", f"file://{tree}", str(target)], check=True, capture_output=True, env={**os.environ, **GIT_ENV})
    return time.perf_counter() - started


def fetch(tree: Path, root: Path) -> dict[str, Any]:
    """Import ``tree``'s HEAD into a private space on Alice's home (offline), start her daemon
    and a fresh one, join the fresh one by her ticket and time until it holds what she does."""
    alice, fresh = root / "alice", root / "fresh"
    _cli(alice, "git", "import", str(tree), "--space", "big")
    fresh.mkdir(parents=True)
    ports = {home: _serve_metrics(home) for home in (alice, fresh)}
    daemons: list[DaemonProcess] = []
    try:
        daemons.append(_start_daemon(alice, []))
        daemons.append(_start_daemon(fresh, []))
        theirs, ours = _api(alice, daemons[0].ready), _api(fresh, daemons[1].ready)
        ticket = theirs.call("space.invite", space="big", role="read")["ticket"]
        want = _counts(theirs.call("node.stats"))
        started = time.perf_counter()
        space = ours.call("space.join", ticket=ticket)["space_id"]
        while (got := _counts(ours.call("node.stats"), space)) != want:
            if time.perf_counter() - started > FETCH_TIMEOUT_S:
                raise BenchmarkError(f"the fresh daemon holds {got} (docs, changes) of {want} after {FETCH_TIMEOUT_S} s")
            time.sleep(POLL_S)
        fetch_s = time.perf_counter() - started
        counters = [_counters(port) for port in ports.values()]
        result: dict[str, Any] = {name: sum(each[name] for each in counters) for name in COUNTERS}
        result.update(fetch_s=fetch_s, docs=want[0], fresh_peak_rss_mb=_peak_rss_mb(daemons[1].process.pid))
        theirs.close()
        ours.close()
        return result
    finally:
        for running in daemons:
            running.kill()


def _counts(stats: dict[str, Any], space: str | None = None) -> tuple[int, int]:
    """(docs, changes) of the space (the only one when None), (0, 0) before it is there."""
    for each in stats["spaces"]:
        if space is None or each["space_id"] == space:
            return int(each["docs"]), int(each["changes"])
    return 0, 0


def _serve_metrics(home: Path) -> int:
    port = _free_port()
    config = home / "config.toml"
    text = config.read_text() if config.exists() else ""
    config.write_text(f"metrics_port = {port}\n" + re.sub(r"(?m)^metrics_port\s*=.*\n", "", text))
    return port


def _counters(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=METRICS_TIMEOUT_S) as reply:
        text = reply.read().decode()
    found = dict(re.findall(r"(?m)^distspace_replicator_(\w+)_total (\S+)$", text))
    return {name: float(found.get(name, 0.0)) for name in COUNTERS}


def _peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmHWM:\s+(\d+) kB$", status, re.MULTILINE)
    if found is None:
        raise BenchmarkError(f"no VmHWM in /proc/{pid}/status")
    return int(found.group(1)) / 1024


__all__ = ["fetch", "scale"]
