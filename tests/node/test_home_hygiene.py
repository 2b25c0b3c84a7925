"""A node's files are its user's alone, its logs cannot be forged, its metrics not rebound.

Real daemons on real homes (the installed ``distspace up``), started from this test process's
umask 022 as a shell would, and the metrics server on a loopback port.
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
from pathlib import Path

import pytest
import trio

from api_helpers import DISTSPACE, connect, running_daemon
from node.logs import LogfmtFormatter, event
from node.metrics import serve_metrics

NOBODY = 65534


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_wide_home_is_made_private_and_every_file_is_born_private(tmp_path: Path) -> None:
    """The home exists, made 0755 by the user's shell; the daemon makes everything in it."""
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    previous = os.umask(0o022)  # what a shell gives the daemon
    try:
        with running_daemon(home) as daemon:
            assert mode(home) == 0o700
            assert "event=home.made_private" in daemon.log.read_text()
            async with connect(daemon, "unix") as api:  # the daemon writes: store, WAL, versions
                await api.call("space.create", name="main")
                await api.call("fs.write", path="secret.txt", text="only mine")
            for path in home.iterdir():
                assert mode(path) & 0o077 == 0, f"{path.name} is {oct(mode(path))}"
            assert stat.S_ISSOCK((home / "api.sock").stat().st_mode) and mode(home / "api.sock") == 0o600
            assert {"daemon.lock", "api.sock", "api.token", "daemon.json", "store.sqlite", "config.toml"} <= {p.name for p in home.iterdir()}
    finally:
        os.umask(previous)


@pytest.mark.skipif(os.getuid() != 0, reason="giving a directory to another user needs root")
def test_a_home_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    os.chown(home, NOBODY, NOBODY)
    result = subprocess.run([DISTSPACE, "--home", str(home), "up", "--no-mdns"], capture_output=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.decode().splitlines()[-1] == (
        f"distspace: {home} belongs to user {NOBODY}, not to you ({os.getuid()}): use a home of your own"
    )
    assert list(home.iterdir()) == []  # nothing written into it


def test_log_fields_escape_every_control_character() -> None:
    hostile = "mallory\n ts=2025 level=error event=forged\x1b[2J\r\x85\u2028\x00"
    lines = []
    logger = logging.getLogger("distspace.test.hygiene")
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(LogfmtFormatter().format(record))  # type: ignore[method-assign]
    logger.addHandler(handler)
    # Whatever earlier tests in this process did to logging, this logger passes the record on.
    logger.setLevel(logging.DEBUG)
    disabled = logging.root.manager.disable
    logging.disable(logging.NOTSET)
    try:
        event(logger, "presence.renamed", logging.WARNING, client=hostile)
    finally:
        logger.removeHandler(handler)
        logging.disable(disabled)
    [line] = lines
    assert line.endswith('client="mallory\\n ts=2025 level=error event=forged\\x1b[2J\\r\\x85\\u2028\\x00"'), line
    assert not any(ord(char) < 0x20 or 0x7F <= ord(char) <= 0x9F or char == "\u2028" for char in line)


async def fetch(port: int, host: str | None) -> bytes:
    """The status line of ``GET /metrics`` with ``host`` as its Host header (None: no Host)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        headers = f"Host: {host}\r\n" if host is not None else ""
        await stream.send_all(f"GET /metrics HTTP/1.1\r\n{headers}\r\n".encode())
        answer = b""
        with trio.fail_after(10):
            while data := await stream.receive_some(4096):
                answer += data
    return answer.split(b"\r\n", 1)[0]


async def test_metrics_answer_only_requests_naming_their_loopback_port() -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_metrics, 0, lambda: {"api_requests_total": 3.0})
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", f"LOCALHOST:{port}"):
            assert await fetch(port, host) == b"HTTP/1.1 200 OK", host
        for host in (f"evil.example:{port}", "127.0.0.1", "127.0.0.1:1", f"127.0.0.1:{port}.evil.example", None):
            assert await fetch(port, host) == b"HTTP/1.1 403 Forbidden", host
        nursery.cancel_scope.cancel()
