"""SIGKILL of a mirroring daemon at random moments of heavy writes, then a restart.

One daemon mirrors its space into a folder. In each trial a writer process churns
``disk/`` (whole-block files written in 4 KiB chunks, saves by temp file and rename, appends,
renames, deletes) while the test writes ``api/`` through the API (the daemon writes those files
out); the daemon is killed at a random moment, then the writer is stopped (it finishes its
operation), so the folder holds what the user wrote. Then:

- before the restart, no file in the folder is half written: every file (the mirror's temp
  files aside) is a sequence of whole blocks (``mirror_helpers.block``);
- after the restart, the folder and the store agree exactly, no mirror temp file is left, the
  writer's files are what was on disk, and every acknowledged API write is there (or the one
  in flight at the kill, which may or may not have been committed).

Deterministic seeds: a failure names its trial and seed.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

from e2e_helpers import create_space, daemon
from mirror_helpers import (
    MIRROR_TEMP_PREFIX,
    Side,
    block,
    churn_writer,
    complete_blocks,
    connect_api,
    disk_tree,
    run_standalone,
    wait_converged,
)
from node.api_client import ApiUnavailable
from node.rpc import RpcError

TRIALS = 20
SEED = 15
API_PATHS = [f"api/a{i}.txt" for i in range(4)]
# The kill comes this long (uniform) after the writes start: before the first ingest, in the
# middle of a burst, or once batches are committing.
KILL_AFTER_S = (0.05, 0.6)
# Between API writes: a client's pace, not a flood (every write is a change every restart's
# checkout loads again; the trials stay in bounds on 2 cores).
API_PAUSE_S = 0.01


def test_sigkill_during_heavy_writes_leaves_no_half_file_and_loses_nothing(tmp_path: Path) -> None:
    home, folder = tmp_path / "home", tmp_path / "folder"
    (folder / "disk").mkdir(parents=True)
    create_space(home)
    rng = random.Random(SEED)
    acked: dict[str, bytes] = {}  # the last acknowledged API write of each path
    in_flight: dict[str, bytes] = {}  # a write whose reply the kill cut off: maybe committed
    on_disk: dict[str, bytes] = {}  # the writer's files once it stopped
    for trial in range(TRIALS + 1):
        with daemon(home, "--folder", str(folder)) as running:
            side = Side("node", home, folder, running, connect_api(running))
            try:
                _check_recovered(side, trial, acked, in_flight, on_disk)
                if trial == TRIALS:
                    return
                on_disk = _kill_during_writes(side, trial, rng, acked, in_flight)
            finally:
                side.api.close()


def _kill_during_writes(side: Side, trial: int, rng: random.Random, acked: dict[str, bytes], in_flight: dict[str, bytes]) -> dict[str, bytes]:
    """One trial's writes and kill; returns the writer's files as it left them."""
    stop = side.folder.parent / f"stop-{trial}"
    writer = run_standalone(churn_writer, str(side.folder / "disk"), str(SEED * 1000 + trial), str(stop), helpers=(block,))
    killer = threading.Timer(rng.uniform(*KILL_AFTER_S), side.daemon.process.kill)
    killer.start()
    try:
        _api_writes_until_killed(side, trial, rng, acked, in_flight)
    finally:
        killer.join()
        side.daemon.process.wait()
        stop.touch()
        assert writer.wait(30) == 0, f"trial {trial}: the writer failed"
    half = {
        path: len(content)
        for path, content in disk_tree(side.folder).files.items()
        if content is not None and not Path(path).name.startswith(MIRROR_TEMP_PREFIX) and not complete_blocks(content)
    }
    assert not half, f"trial {trial} (seed {SEED}): half-written files after SIGKILL: {half}"
    return {path: content for path, content in disk_tree(side.folder / "disk").files.items() if content is not None}


def _api_writes_until_killed(side: Side, trial: int, rng: random.Random, acked: dict[str, bytes], in_flight: dict[str, bytes]) -> None:
    in_flight.clear()
    for n in range(1_000_000):
        path = rng.choice(API_PATHS)
        content = block(Path(path).name, f"t{trial}.{n}", rng.randrange(1_000, 12_000))
        in_flight[path] = content
        try:
            side.put(path, content.decode())
        except (ApiUnavailable, RpcError, OSError):
            return
        acked[path] = in_flight.pop(path)
        time.sleep(API_PAUSE_S)  # noqa: sleep — the API writer's pace, not a wait
    raise AssertionError("the daemon outlived a million writes")


def _check_recovered(side: Side, trial: int, acked: dict[str, bytes], in_flight: dict[str, bytes], on_disk: dict[str, bytes]) -> None:
    """The previous trial's files, everywhere, after the restart. The store is the judge of
    a write in flight at the kill (committed or not: either is right); then it is acked."""
    stored = {path: content for path, content in side.space("api").files.items()}
    for name, content in stored.items():
        path = f"api/{name}"
        assert content in (acked.get(path), in_flight.get(path)), f"trial {trial - 1} (seed {SEED}): {path} is neither acked nor in flight"
    lost = sorted(path for path in acked if path[len("api/") :] not in stored)
    assert not lost, f"trial {trial - 1} (seed {SEED}): acknowledged API writes lost: {lost}"
    expected = {f"disk/{path}": content for path, content in on_disk.items()}
    expected |= {f"api/{name}": content for name, content in stored.items() if content is not None}
    files = wait_converged([side], expected=expected, timeout_s=60)
    acked.update(_api_only(files))
    in_flight.clear()
    leftover = [p for p in disk_tree(side.folder).files if Path(p).name.startswith(MIRROR_TEMP_PREFIX)]
    assert not leftover, f"trial {trial - 1}: mirror temp files left after the restart: {leftover}"


def _api_only(files: dict[str, bytes]) -> dict[str, bytes]:
    return {path: content for path, content in files.items() if path.startswith("api/")}
