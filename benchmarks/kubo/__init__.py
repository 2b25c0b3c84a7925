"""A real kubo IPFS daemon for the IPFS tests (tests/node/kubo.py's fixture) and benchmarks/ipfs.py.

The binary is built by ``.ci/kubo`` (CI runs it before the tests; ``make kubo`` does too) into
``$KUBO_CACHE`` (default ``~/.cache/distspace``)/kubo-VERSION/ipfs, or named by
``$DISTSPACE_KUBO``. Without it the tests skip and the benchmark stops, naming .ci/kubo.

Each daemon gets its own IPFS_PATH (a directory the caller gives, fresh), ``init --profile=test``
(no bootstrap peers, no MDNS), the RPC API and the gateway on port 0 of 127.0.0.1. Nothing is read
from a pipe: the daemon writes to IPFS_PATH/daemon.log, and readiness is polled, within one
bounded deadline, from what kubo leaves behind — the ``api`` file it writes in its repo once the
API listens (the actual address), an ``/api/v0/id`` that answers, and the gateway's address from
the log. A pipe read line by line lost lines once (four setup errors, output gone); a file and
an answering API cannot. Teardown runs ``ipfs shutdown`` and kills it if it has not exited
within a bound; a failed start kills it and says what the log held.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

KUBO_VERSION = "v0.43.1"  # what .ci/kubo builds by default
READY_TIMEOUT_S = 90.0  # ~1 s on an idle machine; a loaded 2-core CI box is far slower
READY_POLL_S = 0.05  # between looks at the api file and the API while it starts
PROBE_TIMEOUT_S = 5.0  # one /api/v0/id request
SHUTDOWN_TIMEOUT_S = 20.0
COMMAND_TIMEOUT_S = 60.0
LOG_FILE = "daemon.log"
_API_FILE = "api"  # kubo writes its RPC API's multiaddr here once it listens
_API_ADDR = re.compile(r"^/ip4/127\.0\.0\.1/tcp/(\d+)$")
_GATEWAY_LINE = re.compile(r"Gateway server listening on (/ip4/127\.0\.0\.1/tcp/\d+)")
_LOG_TAIL_CHARS = 4000  # of the log, in the error of a failed start


class KuboStartError(RuntimeError):
    """kubo did not start, or did not answer within READY_TIMEOUT_S (the log's tail says why)."""


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

    def run(self, *args: str, stdin: bytes | None = None) -> bytes:
        """``ipfs ARGS`` against this daemon; its stdout. Raises CalledProcessError on failure."""
        done = subprocess.run(
            [str(self.binary), *args], input=stdin, capture_output=True, env={**os.environ, "IPFS_PATH": str(self.path)}, timeout=COMMAND_TIMEOUT_S, check=False
        )
        if done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, done.args, done.stdout, done.stderr)
        return done.stdout

    def stop(self) -> None:
        _stop(self.process, self.binary, self.path)


def _stop(process: subprocess.Popen[bytes], binary: Path, path: Path) -> None:
    """``ipfs shutdown``, then a kill if it has not exited within SHUTDOWN_TIMEOUT_S."""
    if process.poll() is None:
        try:
            subprocess.run([str(binary), "shutdown"], env={**os.environ, "IPFS_PATH": str(path)}, capture_output=True, timeout=SHUTDOWN_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            pass
        try:
            process.wait(timeout=SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=SHUTDOWN_TIMEOUT_S)


def _api_port(path: Path) -> int | None:
    """The port in the repo's ``api`` file, once kubo has written it whole."""
    try:
        text = (path / _API_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    match = _API_ADDR.match(text)
    return int(match.group(1)) if match else None


def _answers(port: int) -> bool:
    """Whether the API on ``port`` answers ``/api/v0/id`` (POST, as kubo's RPC wants)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v0/id", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S) as reply:
            return bool(reply.status == 200 and b'"ID"' in reply.read())
    except (urllib.error.URLError, OSError):
        return False


def _log_text(path: Path) -> str:
    try:
        return (path / LOG_FILE).read_text(errors="replace")
    except FileNotFoundError:
        return ""


def start_kubo(binary: Path, path: Path) -> Kubo:
    """Init a fresh repo at ``path`` and run ``ipfs daemon --offline`` on it until its API answers.

    Raises:
        KuboStartError: ``path`` is not empty, init failed, or the daemon exited or did not answer
            within READY_TIMEOUT_S (the daemon is killed; the error holds the log's tail).
    """
    if path.exists() and any(path.iterdir()):
        raise KuboStartError(f"{path} is not empty: each kubo gets a repo of its own")
    env = {**os.environ, "IPFS_PATH": str(path)}

    def ipfs(*args: str) -> None:
        done = subprocess.run([str(binary), *args], env=env, capture_output=True, timeout=COMMAND_TIMEOUT_S, check=False)
        if done.returncode != 0:
            raise KuboStartError(f"ipfs {' '.join(args)} failed ({done.returncode}): {done.stderr.decode(errors='replace')}")

    ipfs("init", "--profile=test")
    ipfs("config", "Addresses.API", "/ip4/127.0.0.1/tcp/0")
    ipfs("config", "Addresses.Gateway", "/ip4/127.0.0.1/tcp/0")
    with open(path / LOG_FILE, "wb") as log:
        process = subprocess.Popen([str(binary), "daemon", "--offline"], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + READY_TIMEOUT_S
    try:
        while True:
            port = _api_port(path)
            gateway = _GATEWAY_LINE.search(_log_text(path))
            if port is not None and gateway is not None and _answers(port):
                return Kubo(binary, path, f"/ip4/127.0.0.1/tcp/{port}", gateway.group(1), process)
            if process.poll() is not None:
                raise KuboStartError(f"kubo exited ({process.returncode}) before its API answered: {_log_text(path)[-_LOG_TAIL_CHARS:]}")
            if time.monotonic() > deadline:
                raise KuboStartError(f"kubo's API did not answer within {READY_TIMEOUT_S} s: {_log_text(path)[-_LOG_TAIL_CHARS:]}")
            time.sleep(READY_POLL_S)  # noqa: sleep — polling a starting process, bounded by the deadline
    except BaseException:
        _stop(process, binary, path)
        raise


__all__ = ["KUBO_VERSION", "NO_KUBO_REASON", "Kubo", "KuboStartError", "kubo_binary", "start_kubo"]
