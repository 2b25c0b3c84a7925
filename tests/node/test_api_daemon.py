"""The daemon's lifecycle, as a process: ready line, daemon.json, logs, the home lock, shutdown."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import pytest

from api_helpers import DISTSPACE, read_line, running_daemon
from node.home import NodeHome

LOGFMT = re.compile(r"^ts=\S+ level=(debug|info|warning|error) (event|logger)=\S+")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_ready_line_then_a_clean_stop(tmp_path: Path, sig: int) -> None:
    home = tmp_path / "home"
    with running_daemon(home) as daemon:
        assert set(daemon.ready) == {"event", "peer_id", "addrs", "api", "mirrors"}
        assert daemon.ready["event"] == "ready"
        assert daemon.ready["api"]["unix"] == str(daemon.home.api_socket)
        assert daemon.ready["api"]["websocket"].startswith("ws://127.0.0.1:")
        record = json.loads(daemon.home.daemon_file.read_text())
        assert record["pid"] == daemon.process.pid and record["api"] == daemon.ready["api"]
        assert daemon.stop(sig) == 0
        assert not daemon.home.api_socket.exists() and not daemon.home.daemon_file.exists()
        assert not daemon.home.daemon_running()
        lines = daemon.log.read_text().splitlines()
    assert lines and all(LOGFMT.match(line) for line in lines if not line.startswith((" ", "Traceback"))), lines
    assert any("event=daemon.ready" in line for line in lines) and any("event=daemon.stopped" in line for line in lines)


def test_a_second_daemon_on_the_same_home_fails_at_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with running_daemon(home) as first:
        second = subprocess.run([DISTSPACE, "--home", str(home), "up", "--no-mdns"], capture_output=True, timeout=30)
        assert second.returncode == 1
        assert second.stderr.decode().strip().splitlines()[-1] == (
            f"distspace: a daemon already runs on {home} (pid {first.process.pid})"
        )
        assert first.process.poll() is None


def test_a_daemon_waits_for_a_command_working_on_the_store(tmp_path: Path) -> None:
    """A command holds the home lock while it opens the store directly; a daemon started then
    waits for it instead of failing or racing it."""
    home = NodeHome(tmp_path / "home")
    lock = home.lock()  # what a distspace command without a daemon holds
    process = subprocess.Popen(
        [DISTSPACE, "--home", str(home.path), "up", "--json", "--no-mdns"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert process.stderr is not None and process.stdout is not None
        while b"event=daemon.waiting_for_lock" not in (line := read_line(process.stderr)):
            assert line, "the daemon exited instead of waiting"
        lock.close()
        ready = json.loads(read_line(process.stdout))
        assert ready["event"] == "ready"
    finally:
        lock.close()
        process.send_signal(signal.SIGTERM)
        try:
            assert process.wait(20) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            for pipe in (process.stdout, process.stderr):
                if pipe is not None:
                    pipe.close()


def test_an_unusable_home_is_one_line_on_stderr(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text("colour = 'blue'\n")
    result = subprocess.run([DISTSPACE, "--home", str(home), "up"], capture_output=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.decode().splitlines()[-1] == f"distspace: {home / 'config.toml'}: unknown setting(s) colour"
    assert b"Traceback" not in result.stderr
