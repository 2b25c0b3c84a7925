"""ipfs: what publishing a space into IPFS costs, and joining from IPFS beside joining from a peer
(issue 17's "Measure"), on a real kubo daemon (benchmarks/kubo; built by .ci/kubo).

The space: one doc of CHANGES keystroke-sized changes (one character inserted at a random place
each), written by a writer's key and stored in the publisher's store as a peer would hand them
over (batches with one signed tip each) — so the publisher's first publication pays the doc's
first snapshot, as a node publishing a space it synced would.

- ``publish``: in a fresh process, ``node.ipfs.build_publication`` (every doc snapshotted, the
  manifest, bundle and pointer signed) then ``upload_publication`` (one CAR into kubo through
  aioipfs, pinned, and the IPNS name); its seconds, and the bytes and blocks it put.
- ``join``: end to end over real daemons (``distspace up`` on loopback, started outside the
  timing), in the same run: a fresh node joins the space from the publisher's running daemon
  (``space.join {space_id, peers}``: fetch the genesis, sync), and another fresh node, with
  every member stopped, joins from IPFS alone (``ipfs.join {source}``: fetch, check every CID,
  signature and change, store) — each until its ``node.stats`` holds every change, polled every
  POLL_S. The peer join is the baseline.
- ``paged``: a space of MANY_DOCS one-line files (``Workspace.apply_batch``), whose manifest is
  paged (store/snapshots.py): its publication's seconds, bytes, blocks and pages; then one file
  edited and the space published again — what that second upload sends (the daemon holds the
  rest under the first publication's pin) beside the publication's whole size.
"""

from __future__ import annotations

import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from time import perf_counter
from typing import Any

from benchmarks.kubo import NO_KUBO_REASON, kubo_binary, start_kubo
from benchmarks.measure import log, run_python_workload
from benchmarks.registry import BenchmarkError, Figure, RunOptions, benchmark
from cli.daemon_process import DaemonNotReady, DaemonProcess, start_daemon

FULL_CHANGES = 100_000  # the "100k-change space"
QUICK_CHANGES = 5_000
FULL_DOCS = 20_000  # a paged manifest of ~80 pages
QUICK_DOCS = 2_500  # just past one block: 2 or more pages
APPLY_BATCH = 1_000  # changes per apply, one tip each: a sync batch's order
NOW_MS = 1_700_000_000_000
WRITER_SEED = bytes([0x57]) * 32
DOC = bytes([0x0D]) * 16
SEED = 17
POLL_S = 0.01
JOIN_TIMEOUT_S = 600.0
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
LISTEN = "/ip4/127.0.0.1/tcp/0"


def build_space(home_dir: str, changes: int) -> dict[str, Any]:
    """Workload (fresh process): the publisher's store holding the writer's CHANGES changes."""
    import native
    from node.home import NodeHome
    from protocol.identity import Identity
    from protocol.space import Genesis
    from protocol.tips import SignedTip
    from store.repo import Repo

    home = NodeHome(Path(home_dir))
    writer = Identity(WRITER_SEED)
    genesis = Genesis.create(writer, "ipfs-bench", NOW_MS, nonce=bytes(16))
    space = genesis.space_id
    rng = random.Random(SEED)
    document = native.Document(writer.public_key)
    text = document.put_object(native.ROOT, "text", "text")
    document.commit(time=NOW_MS // 1000)
    length = 0
    for _ in range(changes - 1):
        document.splice_text(text, rng.randint(0, length), 0, rng.choice("abcdefgh \n"))
        length += 1
        document.commit(time=NOW_MS // 1000)
    decoded = [native.decode_change(raw) for raw in document.get_changes()]
    with Repo.open(home.database, home.identity()) as repo:
        repo.add_space(genesis)
        for start in range(0, len(decoded), APPLY_BATCH):
            batch = decoded[start : start + APPLY_BATCH]
            repo.apply(space, DOC, batch, [SignedTip.sign(writer, space, DOC, batch[-1].hash)], now_ms=NOW_MS)
    return {"space": space.hex(), "changes": len(decoded)}


def build_many_docs(home_dir: str, docs: int) -> dict[str, Any]:
    """Workload (fresh process): the publisher's own public space of ``docs`` one-line files."""
    from node.home import NodeHome
    from store.batch import BatchOp
    from store.repo import Repo
    from store.workspace import Workspace

    home = NodeHome(Path(home_dir))
    with Repo.open(home.database, home.identity()) as repo:
        space = repo.create_space("ipfs-bench-many", NOW_MS).space_id
        Workspace(repo, space).apply_batch([BatchOp("create", f"d{i % 100}/f{i}.txt", f"file {i}\n") for i in range(docs)], now_ms=NOW_MS)
    return {"space": space.hex()}


def edit_one_file(home_dir: str) -> dict[str, Any]:
    """Workload (fresh process): one file of ``build_many_docs``'s space written again."""
    from node.home import NodeHome
    from store.repo import Repo
    from store.workspace import Workspace

    home = NodeHome(Path(home_dir))
    with Repo.open(home.database, home.identity()) as repo:
        Workspace(repo, repo.spaces()[0].space_id).write("d7/f7.txt", "edited\n", now_ms=NOW_MS + 1)
    return {}


def publish(home_dir: str, api: str) -> dict[str, Any]:
    """Workload (fresh process): build the publication (after this node's last one), then upload it into kubo."""
    import trio

    from node.home import NodeHome
    from node.ipfs import build_publication, state_of, upload_publication
    from node.ipfs_client import open_client
    from node.services import NodeServices
    from store.blocks import Block, cid_text
    from store.repo import Repo
    from store.snapshots import ManifestRoot

    home = NodeHome(Path(home_dir))
    identity = home.identity()
    with Repo.open(home.database, identity) as repo:
        services = NodeServices(home, home.config(), identity, repo)
        space = repo.spaces()[0].space_id
        previous = state_of(services).last_pointer(space, identity.public_key)
        started = perf_counter()
        publication = build_publication(services, space, allow_private=False, now_ms=NOW_MS, previous=previous)
        build_s = perf_counter() - started

        async def upload() -> dict[str, Any]:
            async with open_client(api) as client:
                return await upload_publication(services, publication, api, client)

        started = perf_counter()
        entry = trio.run(upload)
        upload_s = perf_counter() - started
        manifest = publication.pointer.manifest
        pages = len(ManifestRoot.from_block(Block(manifest, repo.block(manifest))).pages)
        services.close()
    return {
        "build_s": build_s,
        "upload_s": upload_s,
        "bytes": publication.size,
        "blocks": len(publication.blocks),
        "sent_bytes": entry["sent_bytes"],
        "sent_blocks": entry["sent_blocks"],
        "pages": pages,
        "cid": cid_text(publication.root),
    }


def _distspace(home: Path, *args: str) -> str:
    command = [str(Path(sys.executable).with_name("distspace")), "--home", str(home), *args]
    result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise BenchmarkError(f"distspace {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def _daemon(home: Path) -> DaemonProcess:
    try:
        return start_daemon(home, "--no-mdns", "--listen", LISTEN, command=[str(Path(sys.executable).with_name("distspace"))], ready_timeout_s=READY_TIMEOUT_S)
    except DaemonNotReady as error:
        raise BenchmarkError(str(error)) from error


def _api(home: Path, daemon: DaemonProcess) -> Any:
    from node.api_client import ApiClient

    return ApiClient.connect(Path(daemon.ready["api"]["unix"]), (home / "api.token").read_text())


def _changes(api: Any) -> int:
    spaces = api.call("node.stats")["spaces"]
    return int(spaces[0]["changes"]) if spaces else 0


def _until(what: str, done: Any) -> None:
    deadline = perf_counter() + JOIN_TIMEOUT_S
    while not done():
        if perf_counter() > deadline:
            raise BenchmarkError(f"{what} did not finish within {JOIN_TIMEOUT_S:.0f} s")
        time.sleep(POLL_S)


def _fresh_node(directory: Path, name: str, ipfs_api: str | None = None) -> Path:
    home = directory / name
    _distspace(home, "id")
    if ipfs_api is not None:
        config = home / "config.toml"
        config.write_text(f'ipfs_api = "{ipfs_api}"\n' + (config.read_text() if config.exists() else ""))
    return home


def join_times_s(directory: Path, publisher: Path, space: str, cid: str, changes: int, ipfs_api: str) -> tuple[float, float]:
    """Seconds to join from the publisher's daemon, then (every member stopped) from IPFS."""
    carol_home, bob_home = _fresh_node(directory, "carol"), _fresh_node(directory, "bob", ipfs_api)
    alice = _daemon(publisher)
    try:
        carol = _daemon(carol_home)
        try:
            with _api(carol_home, carol) as api:
                address = next(a for a in alice.ready["addrs"] if "/tcp/" in a)
                started = perf_counter()
                api.call("space.join", space_id=space, peers=[address])
                _until("the join from a peer", lambda: _changes(api) >= changes)
                peer_s = perf_counter() - started
        finally:
            carol.stop(STOP_TIMEOUT_S)
    finally:
        alice.stop(STOP_TIMEOUT_S)
    bob = _daemon(bob_home)
    try:
        with _api(bob_home, bob) as api:
            started = perf_counter()
            api.call("ipfs.join", source=cid)

            def joined() -> bool:
                status = next(j for j in api.call("ipfs.status")["joins"] if j["source"] == cid)
                if status["status"] == "failed":
                    raise BenchmarkError(f"the join from IPFS failed: {status['error']}")
                return bool(status["status"] == "joined")

            _until("the join from IPFS", joined)
            ipfs_s = perf_counter() - started
            if _changes(api) != changes:
                raise BenchmarkError(f"the node that joined from IPFS holds {_changes(api)} changes, not {changes}")
    finally:
        bob.stop(STOP_TIMEOUT_S)
    return peer_s, ipfs_s


def _paged(directory: Path, api: str, docs: int) -> Iterator[Figure]:
    """A space of ``docs`` files published (its manifest paged), then again after one edit."""
    home = _fresh_node(directory, "many")
    log(f"ipfs: building a space of {docs} one-line files")
    run_python_workload(build_many_docs, home_dir=str(home), docs=docs)
    first = run_python_workload(publish, home_dir=str(home), api=api)
    first_s = first["build_s"] + first["upload_s"]
    log(f"ipfs: publish {first_s:.2f} s, {first['bytes']} bytes in {first['blocks']} blocks, the manifest in {first['pages']} pages")
    yield Figure(f"publish_paged_{docs}_docs", round(first_s, 3), "s")
    yield Figure(f"publish_paged_{docs}_docs.bytes", first["bytes"], "bytes")
    yield Figure(f"publish_paged_{docs}_docs.blocks", first["blocks"], "blocks")
    yield Figure(f"publish_paged_{docs}_docs.pages", first["pages"], "pages")
    run_python_workload(edit_one_file, home_dir=str(home))
    again = run_python_workload(publish, home_dir=str(home), api=api)
    again_s = again["build_s"] + again["upload_s"]
    log(f"ipfs: after one edit, publish {again_s:.2f} s, sent {again['sent_bytes']} of {again['bytes']} bytes, {again['sent_blocks']} of {again['blocks']} blocks")
    yield Figure(f"republish_paged_{docs}_docs_one_edit", round(again_s, 3), "s")
    yield Figure(f"republish_paged_{docs}_docs_one_edit.build", round(again["build_s"], 3), "s")
    yield Figure(f"republish_paged_{docs}_docs_one_edit.upload", round(again["upload_s"], 3), "s", f"publish_paged_{docs}_docs.upload", round(first["upload_s"], 3))
    yield Figure(f"republish_paged_{docs}_docs_one_edit.sent_bytes", again["sent_bytes"], "bytes", "publication_bytes", again["bytes"])
    yield Figure(f"republish_paged_{docs}_docs_one_edit.sent_blocks", again["sent_blocks"], "blocks", "publication_blocks", again["blocks"])


@benchmark("ipfs")
def ipfs(options: RunOptions) -> Iterator[Figure]:
    binary = kubo_binary()
    if binary is None:
        raise BenchmarkError(NO_KUBO_REASON)
    changes = QUICK_CHANGES if options.quick else FULL_CHANGES
    with tempfile.TemporaryDirectory(prefix="ds-ipfs-") as tmp:
        directory = Path(tmp)
        kubo = start_kubo(binary, directory / "kubo")
        try:
            publisher = _fresh_node(directory, "alice")
            log(f"ipfs: building a space of one doc with {changes} changes")
            built = run_python_workload(build_space, home_dir=str(publisher), changes=changes)
            log("ipfs: publishing it into kubo")
            published = run_python_workload(publish, home_dir=str(publisher), api=kubo.api)
            cid = published["cid"]
            publish_s = published["build_s"] + published["upload_s"]
            log(f"ipfs: publish {publish_s:.2f} s (build {published['build_s']:.2f} s, upload {published['upload_s']:.2f} s), {published['bytes']} bytes in {published['blocks']} blocks")
            yield Figure(f"publish_{changes}_changes", round(publish_s, 3), "s")
            yield Figure(f"publish_{changes}_changes.build", round(published["build_s"], 3), "s")
            yield Figure(f"publish_{changes}_changes.upload", round(published["upload_s"], 3), "s")
            yield Figure(f"publish_{changes}_changes.bytes", published["bytes"], "bytes")
            yield Figure(f"publish_{changes}_changes.bytes_per_change", round(published["bytes"] / built["changes"], 2), "bytes/change")
            yield Figure(f"publish_{changes}_changes.blocks", published["blocks"], "blocks")
            peer_s, ipfs_s = join_times_s(directory, publisher, built["space"], cid, built["changes"], kubo.api)
            log(f"ipfs: join from IPFS {ipfs_s:.2f} s, from a peer {peer_s:.2f} s")
            yield Figure(f"join_from_ipfs_{changes}_changes", round(ipfs_s, 3), "s", "join_from_a_peer", round(peer_s, 3))
            yield from _paged(directory, kubo.api, QUICK_DOCS if options.quick else FULL_DOCS)
        finally:
            kubo.stop()
