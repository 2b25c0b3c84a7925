"""The Rust baseline binary (benchmarks/native_replay/, a crate outside the maturin build)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.measure import log
from benchmarks.registry import BenchmarkError

CRATE = Path(__file__).resolve().parent / "native_replay"
BINARY = CRATE / "target" / "release" / "native_replay"


class BaselineBuildFailed(BenchmarkError):
    pass


def _stale() -> bool:
    if not BINARY.exists():
        return True
    sources = [CRATE / "Cargo.toml", CRATE / "Cargo.lock", *CRATE.joinpath("src").rglob("*.rs")]
    built = BINARY.stat().st_mtime
    return any(s.stat().st_mtime > built for s in sources if s.exists())


def native_replay_binary() -> Path:
    """The release binary, built first if it is missing or older than its sources."""
    if not _stale():
        return BINARY
    cargo = shutil.which("cargo")
    if cargo is None:
        raise BaselineBuildFailed(f"cargo is needed to build {BINARY}")
    log(f"building {BINARY.relative_to(CRATE.parent.parent)} (cargo build --release), once")
    manifest = CRATE / "Cargo.toml"
    done = subprocess.run([cargo, "build", "--release", "--manifest-path", str(manifest)], stdout=sys.stderr)
    if done.returncode != 0 or not BINARY.exists():
        raise BaselineBuildFailed(f"cargo build --release --manifest-path {manifest} failed")
    return BINARY
