"""cli: how long ``distspace cat`` takes, wall clock, with and without a daemon (target 150 ms),
and what importing the network stack costs a command that opens a host.

A command is a fresh interpreter every time, so its cost is start-up and imports as much as
work. Measured here, in the same run: ``python -c pass`` (the floor any Python command pays,
the baseline of every figure), then ``distspace cat`` of a small text file on a home with one
space, first with no daemon (the command takes the home lock and opens the store itself), then
with ``distspace up`` running (one call over the Unix socket). Each figure is the best of its
runs: noise on a shared machine only adds time.

``import.*``: in a fresh interpreter, the cold import of libp2p, then what ``node.host`` adds on
top (QUIC, aiortc), and that process's peak RSS: what ``distspace up`` pays before it listens.
No baseline: nothing else imports them.

The commands run with a bytecode cache of their own (PYTHONPYCACHEPREFIX in the temporary
directory, warmed by the set-up commands), as on any installation: an environment that forbids
writing bytecode (PYTHONDONTWRITEBYTECODE) would make every run recompile each module it imports,
~50 ms on the store path, which measures the environment rather than the command.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.measure import log, run_python_workload
from benchmarks.registry import BenchmarkError, Figure, RunOptions, benchmark
from cli.daemon_process import DaemonNotReady, start_daemon

RUNS = 20
QUICK_RUNS = 5
TARGET_MS = 150.0
READY_TIMEOUT_S = 60.0
CONTENT = "print('hello, world')\n" * 40
DISTSPACE = str(Path(sys.executable).with_name("distspace"))


def _environment(directory: Path) -> dict[str, str]:
    """This environment, with a bytecode cache in ``directory`` that commands may write."""
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {**environment, "PYTHONPYCACHEPREFIX": str(directory / "pycache")}


def _best_wall_ms(command: list[str], runs: int, env: dict[str, str], expect: bytes | None = None) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, stdin=subprocess.DEVNULL, env=env)
        elapsed = (time.perf_counter() - started) * 1000
        if result.returncode != 0 or (expect is not None and result.stdout != expect):
            raise BenchmarkError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.decode()[-300:]}")
        best = min(best, elapsed)
    return best


def _distspace(home: Path, env: dict[str, str], *args: str, input: bytes = b"") -> None:
    result = subprocess.run([DISTSPACE, "--home", str(home), *args], input=input, capture_output=True, env=env)
    if result.returncode != 0:
        raise BenchmarkError(f"distspace {' '.join(args)} failed: {result.stderr.decode()}")


def import_costs() -> dict[str, Any]:
    """One workload, run in a fresh process by `run_python_workload`: import times in seconds."""
    started = time.perf_counter()
    import libp2p  # noqa: F401 - the import is what is measured

    libp2p_s = time.perf_counter() - started
    started = time.perf_counter()
    import node.host  # noqa: F401

    return {"libp2p_s": libp2p_s, "node_host_s": time.perf_counter() - started}


@benchmark("cli", cheap=True)
def cli(options: RunOptions) -> Iterator[Figure]:
    runs = (QUICK_RUNS if options.quick else RUNS) * options.repeat
    with tempfile.TemporaryDirectory(prefix="ds-bench-") as directory:
        home = Path(directory) / "home"
        env = _environment(Path(directory))
        _distspace(home, env, "init", "bench")
        _distspace(home, env, "write", "hello.py", input=CONTENT.encode())
        cat = [DISTSPACE, "--home", str(home), "cat", "hello.py"]

        log(f"cli: python -c pass and distspace cat without a daemon, {runs} runs each")
        python_ms = _best_wall_ms([sys.executable, "-c", "pass"], runs, env)
        direct_ms = _best_wall_ms(cat, runs, env, CONTENT.encode())

        log("cli: distspace cat with a daemon")
        try:
            daemon = start_daemon(home, "--no-mdns", env=env, command=[DISTSPACE], ready_timeout_s=READY_TIMEOUT_S)
        except DaemonNotReady as error:
            raise BenchmarkError(str(error)) from error
        try:
            daemon_ms = _best_wall_ms(cat, runs, env, CONTENT.encode())
        finally:
            daemon.stop(READY_TIMEOUT_S)
    log(f"cli: cat {direct_ms:.0f} ms without a daemon, {daemon_ms:.0f} ms with one (target {TARGET_MS:.0f} ms)")
    yield Figure("python_startup_wall", round(python_ms, 1), "ms")
    yield Figure("cat_without_daemon_wall", round(direct_ms, 1), "ms", "python -c pass", round(python_ms, 1))
    yield Figure("cat_with_daemon_wall", round(daemon_ms, 1), "ms", "python -c pass", round(python_ms, 1))

    log(f"cli: importing libp2p and node.host in a fresh interpreter, {options.repeat} run(s)")
    imports = [run_python_workload(import_costs) for _ in range(options.repeat)]
    yield Figure("import.libp2p", round(min(r["libp2p_s"] for r in imports) * 1000, 1), "ms")
    yield Figure("import.node_host_after_libp2p", round(min(r["node_host_s"] for r in imports) * 1000, 1), "ms")
    yield Figure("import.peak_rss", round(min(r["process_peak_rss_mb"] for r in imports), 1), "MB")
