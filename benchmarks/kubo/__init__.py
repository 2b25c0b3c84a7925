"""A real kubo IPFS daemon for the IPFS tests (tests/node/kubo.py's fixture) and benchmarks/ipfs.py.

The binary is built by ``.ci/kubo`` (CI runs it before the tests; ``make kubo`` does too) into
``$KUBO_CACHE`` (default ``~/.cache/distspace``)/kubo-VERSION/ipfs, or named by
``$DISTSPACE_KUBO``. Without it the tests skip and the benchmark stops, naming .ci/kubo.

Each daemon gets its own IPFS_PATH (a directory the caller gives), ``init --profile=test`` (no
bootstrap peers, no MDNS), the RPC API and the gateway on port 0 of 127.0.0.1, read back from
what the daemon prints; it is ready when it prints "Daemon is ready". Teardown runs
``ipfs shutdown`` and kills it if it has not exited within a bound.
"""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

KUBO_VERSION = "v0.43.1"  # what .ci/kubo builds by default
READY_TIMEOUT_S = 60.0  # ~1 s on an idle machine; a loaded 2-core CI box is far slower
SHUTDOWN_TIMEOUT_S = 20.0
COMMAND_TIMEOUT_S = 60.0
_READY_LINE = "Daemon is ready"
_API_LINE = re.compile(r"RPC API server listening on (/ip4/127\.0\.0\.1/tcp/\d+)")
_GATEWAY_LINE = re.compile(r"Gateway server listening on (/ip4/127\.0\.0\.1/tcp/\d+)")


def kubo_binary() -> Path | None:
    """The kubo binary .ci/kubo built (or $DISTSPACE_KUBO), if there is one."""
    named = os.environ.get("DISTSPACE_KUBO")
    if named:
        return Path(named) if Path(named).is_file() else None
    cache = Path(os.environ.get("KUBO_CACHE", Path.home() / ".cache" / "distspace"))
    binary = cache / f"kubo-{KUBO_VERSION}" / "ipfs"
    return binary if binary.is_file() and os.access(binary, os.X_OK) else None


NO_KUBO_REASON = f"no kubo binary: run .ci/kubo (builds kubo {KUBO_VERSION} from the Go module proxy into ~/.cache/distspace; needs Go) or set DISTSPACE_KUBO"


@dataclass
class Kubo:
    """A running kubo daemon: its binary, repo and API multiaddr (what config.toml's ``ipfs_api`` takes)."""

    binary: Path
    path: Path
    api: str
    gateway: str
    process: subprocess.Popen[bytes]
    drain: subprocess.Popen[bytes]

    def run(self, *args: str, stdin: bytes | None = None) -> bytes:
        """``ipfs ARGS`` against this daemon; its stdout. Raises CalledProcessError on failure."""
        done = subprocess.run(
            [str(self.binary), *args], input=stdin, capture_output=True, env={**os.environ, "IPFS_PATH": str(self.path)}, timeout=COMMAND_TIMEOUT_S, check=False
        )
        if done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, done.args, done.stdout, done.stderr)
        return done.stdout

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.run("shutdown")
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
                pass
            try:
                self.process.wait(timeout=SHUTDOWN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=SHUTDOWN_TIMEOUT_S)
        self.drain.wait(timeout=SHUTDOWN_TIMEOUT_S)


def start_kubo(binary: Path, path: Path) -> Kubo:
    """Init a repo at ``path`` and run ``ipfs daemon --offline`` on it until it says it is ready."""
    env = {**os.environ, "IPFS_PATH": str(path)}

    def ipfs(*args: str) -> None:
        subprocess.run([str(binary), *args], env=env, check=True, capture_output=True, timeout=COMMAND_TIMEOUT_S)

    ipfs("init", "--profile=test")
    ipfs("config", "Addresses.API", "/ip4/127.0.0.1/tcp/0")
    ipfs("config", "Addresses.Gateway", "/ip4/127.0.0.1/tcp/0")
    process = subprocess.Popen([str(binary), "daemon", "--offline"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    api = gateway = None
    text = ""
    deadline = time.monotonic() + READY_TIMEOUT_S
    # os.read, not readline: a buffered reader may hold lines the selector no longer sees.
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while _READY_LINE not in text:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(timeout=left):
                process.kill()
                process.wait()
                raise RuntimeError(f"kubo was not ready within {READY_TIMEOUT_S} s: {text}")
            data = os.read(process.stdout.fileno(), 65536)
            if not data:
                process.wait()
                raise RuntimeError(f"kubo exited before it was ready: {text}")
            text += data.decode(errors="replace")
    if match := _API_LINE.search(text):
        api = match.group(1)
    if match := _GATEWAY_LINE.search(text):
        gateway = match.group(1)
    if api is None or gateway is None:
        process.kill()
        process.wait()
        raise RuntimeError(f"kubo did not say where its API listens: {text}")
    # What it prints from here on goes to a log file through a `cat` of its own, so a chatty
    # daemon never fills the pipe and blocks; `cat` exits when kubo closes its end.
    with open(path / "daemon.log", "w") as log:
        drain = subprocess.Popen(["cat"], stdin=process.stdout, stdout=log)
    process.stdout.close()
    return Kubo(binary, path, api, gateway, process, drain)


__all__ = ["KUBO_VERSION", "NO_KUBO_REASON", "Kubo", "kubo_binary", "start_kubo"]
