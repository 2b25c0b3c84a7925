"""Snapshots into IPFS: publishing a space's newest snapshot, and joining a space from IPFS alone.

A publication is every block a node that has never met a member needs (protocol/snapshot_pointer.py
says what each holds): the doc snapshots' raw chunks and the signed manifest that links them
(store/snapshots.py: one block, or for a space of thousands of docs a root and its pages, every
block within IPFS's limits), the bundle (genesis, capability log, the tips covering every change)
as raw blocks, and the signed pointer linking manifest and bundle — the root. It goes to the
IPFS daemon at config.toml's ``ipfs_api`` as one CAR through ``dag/import``, which pins the root
and so the whole DAG, and the pointer's CID is also published under an IPNS name of the daemon's
key ``distspace-<space id prefix>``, so ``join --from-ipfs`` can take a name that always points
at the latest publication. The CAR leaves out what the daemon holds pinned under our previous
publication (``IpfsClient.pinned_dag``): after an edit of a few docs it carries their chunks,
the pages listing them, the bundle and the root, not the whole space again. Our own pointer, not
IPNS's record, is what a joiner trusts: it is signed by a member's key and sequence-numbered,
and ``PointerChain`` refuses a replayed older one.

Publishing. In a daemon with ``ipfs_api`` set, ``IpfsService.run`` publishes each space whose
newest manifest differs from the one it last published — a snapshot was taken (every
``snapshot_every`` changes, or by maintenance), or ``distspace publish`` asked — a debounce
after the change, one space at a time. Building a publication (``build_publication``) is
synchronous store work on the trio thread (it brings every doc's snapshot up to date first, so
the tips it gathers cover exactly what the snapshots hold); only the upload awaits.
A private space is not published unless the call or config.toml (``ipfs_allow_private``) says
so: **a published snapshot is readable by whoever fetches its CID** — nothing is encrypted.

Joining (``join_publication``): fetch the pointer, bundle, manifest and every chunk, checking
each block against its CID as it arrives — a paged manifest's root (its signature, its budgets,
the pointer's space and signer) before any of its pages, each page against the root — then the
pointer's and manifest's signatures (one signer), the genesis, the capability log and that the
signer may publish (a member, in a private space), load each doc's snapshot and check its heads
and change count, and verify every change against the bundle's tips and the log exactly as
changes from a peer are (protocol/ingest.py). Only then is anything stored, in one transaction:
a missing or corrupt block, a bad signature, an unauthorised change or a replayed pointer
stores nothing and raises a typed ``IpfsError``. The space is then served like any other, and
the pointer's peer addresses are dialled (kept wanted) so the node catches up over libp2p when
a member is back.

State: HOME/ipfs.json holds, per space, what was last published (pointer, CID, IPNS name, sizes,
what was sent) or the error of the last try, and the newest pointer seen per (space, signer).
"""

from __future__ import annotations

import base64
import json
import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import trio
from libp2p.transport.webrtc._asyncio_bridge import AsyncioBridge

import native
from node.errors import IpfsContentRefused, IpfsError, PublishRefused
from node.home import write_atomically
from node.host import Host
from node.ipfs_client import IpfsClient, car_bytes, host_bridge, open_client
from node.logs import event
from protocol.batch import decode_changes
from protocol.capabilities import CapabilityLog
from protocol.errors import ProtocolError, SnapshotPointerError, VerificationError, WireError
from protocol.ingest import PendingChanges, VerifiedTips, ingest
from protocol.limits import MAX_PENDING_CHANGES
from protocol.snapshot_pointer import (
    MAX_PEER_ADDR_CHARS,
    MAX_POINTER_PEERS,
    Bundle,
    PointerChain,
    SnapshotPointer,
    decode_bundle,
    decode_pointer,
    encode_bundle,
)
from protocol.space import INDEX_DOC_ID, Genesis
from protocol.store_api import decode_records
from protocol.tips import SignedTip
from store.blocks import CODEC_DAG_CBOR, Block, checked, cid_from_text, cid_text, codec_of, split_raw
from store.errors import CorruptionError, InvalidInput, StoreError, UnknownBlock
from store.records import DocSnapshot
from store.repo import Repo, StoreEvent
from store.snapshots import Manifest, ManifestRoot, load_checked, manifest_pages

if TYPE_CHECKING:
    from node.services import NodeServices

log = logging.getLogger("distspace.ipfs")

__all__ = [
    "IPFS_STATE_FILE",
    "IpfsService",
    "IpfsState",
    "Publication",
    "build_publication",
    "fetch_publication",
    "join_publication",
    "publish_space",
    "run_ipfs",
    "service_of",
    "source_cid",
    "state_of",
    "upload_publication",
]

IPFS_STATE_FILE: Final = "ipfs.json"
# After a snapshot, wait this long for more before publishing: a burst of edits that crosses
# snapshot_every several times costs one upload, not one per snapshot.
PUBLISH_DEBOUNCE_S: Final = 2.0
# Maintenance snapshots arrive without a store event of their own: look this often too.
PUBLISH_CHECK_S: Final = 30.0
# After a failed upload (daemon down), try again no sooner than this.
PUBLISH_RETRY_S: Final = 60.0
# Pointers seen kept in ipfs.json (the newest per space and signer): bounded like a peerstore.
MAX_SEEN_POINTERS: Final = 1024
# kubo refuses a block above 1 MiB without --allow-big-block, and bitswap would not carry one
# to other IPFS nodes. Snapshot chunks and manifest pages are at most 256 KiB (store/blocks.py,
# store/snapshots.py); only a one-block manifest written before manifests were paged can pass it.
MAX_IPFS_BLOCK_BYTES: Final = 1024 * 1024
IPNS_KEY_PREFIX: Final = "distspace-"
_IPNS_KEY_SPACE_HEX: Final = 16  # 64 bits of the space id: unique among a node's spaces


def ipns_key_name(space: bytes) -> str:
    return IPNS_KEY_PREFIX + space.hex()[:_IPNS_KEY_SPACE_HEX]


# ----- state: HOME/ipfs.json -----


_STATES: weakref.WeakKeyDictionary[NodeServices, IpfsState] = weakref.WeakKeyDictionary()


def state_of(services: NodeServices) -> IpfsState:
    """The node's IPFS state (HOME/ipfs.json), read once per ``NodeServices``."""
    state = _STATES.get(services)
    if state is None:
        state = _STATES[services] = IpfsState(services.home.path / IPFS_STATE_FILE)
    return state


class IpfsState:
    """What this node published to IPFS, per space, and the newest pointers it has seen."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._published: dict[str, dict[str, Any]] = {}
        seen: list[SnapshotPointer] = []
        try:
            raw = json.loads(path.read_text())
            self._published = dict(raw.get("published", {}))
            for encoded in raw.get("seen", []):
                seen.append(decode_pointer(base64.b64decode(encoded)))
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError, AttributeError, SnapshotPointerError) as error:
            event(log, "ipfs.state_unreadable", logging.WARNING, path=path, error=error)
        self.chain = PointerChain(seen)

    def _save(self) -> None:
        seen = sorted(self.chain.all(), key=lambda p: p.published_ms)[-MAX_SEEN_POINTERS:]
        state = {"published": self._published, "seen": [base64.b64encode(p.encode()).decode("ascii") for p in seen]}
        write_atomically(self.path, json.dumps(state, indent=1))

    def last_pointer(self, space: bytes, signer: bytes) -> SnapshotPointer | None:
        return self.chain.newest(space, signer)

    def published(self, space: bytes) -> dict[str, Any] | None:
        return self._published.get(space.hex())

    def record_published(self, publication: Publication, ipns: str | None, api: str, sent: Sequence[Block]) -> None:
        self.chain.hold(publication.pointer)
        self._published[publication.space.hex()] = {
            "cid": cid_text(publication.root),
            "manifest": cid_text(publication.pointer.manifest),
            "seq": publication.pointer.seq,
            "ipns": ipns,
            "ipfs_api": api,
            "published_ms": publication.pointer.published_ms,
            "blocks": len(publication.blocks),
            "bytes": publication.size,
            "sent_blocks": len(sent),  # the rest the daemon held from the previous publication
            "sent_bytes": sum(len(block.data) for block in sent),
            "error": None,
        }
        self._save()

    def record_error(self, space: bytes, error: BaseException, now_ms: int) -> None:
        entry = dict(self._published.get(space.hex(), {}))
        entry.update(error=f"{type(error).__name__}: {error}", error_ms=now_ms)
        self._published[space.hex()] = entry
        self._save()

    def take_seen(self, pointer: SnapshotPointer) -> None:
        self.chain.take(pointer)
        self._save()


# ----- publishing -----


@dataclass(frozen=True, slots=True)
class Publication:
    """One publication's blocks, the pointer (the root) last."""

    space: bytes
    pointer: SnapshotPointer
    blocks: tuple[Block, ...]

    @property
    def root(self) -> bytes:
        return self.blocks[-1].cid

    @property
    def size(self) -> int:
        return sum(len(block.data) for block in self.blocks)

    def unsent(self, held: set[bytes] | frozenset[bytes] = frozenset()) -> list[Block]:
        """The blocks to send a daemon that holds ``held`` (``IpfsClient.pinned_dag``): the root always."""
        return [block for block in self.blocks if block.cid not in held or block.cid == self.root]

    def car(self, held: set[bytes] | frozenset[bytes] = frozenset()) -> bytes:
        return car_bytes([self.root], [(block.cid, block.data) for block in self.unsent(held)])


def build_publication(
    services: NodeServices, space: bytes, *, allow_private: bool, now_ms: int, previous: SnapshotPointer | None
) -> Publication:
    """Bring every doc's snapshot of ``space`` up to date and gather its publication, the seq
    after ``previous`` (this node's pointer it follows; None for its first).

    Raises:
        PublishRefused: a private space without ``allow_private``, or a space with no docs.
        StoreError: the store cannot give a block it holds.
    """
    repo = services.repo
    genesis = repo.genesis(space)
    if genesis.private and not allow_private:
        raise PublishRefused(
            f"space {genesis.name!r} is private: a snapshot published to IPFS is readable by whoever fetches its CID (nothing is encrypted); "
            "publish it anyway with --allow-private (or ipfs_allow_private = true in config.toml)"
        )
    if repo.snapshot(space, now_ms) is None:
        raise PublishRefused(f"space {genesis.name!r} has no docs yet: nothing to publish")
    manifest = repo.manifest(space)
    assert manifest is not None  # a snapshot was just made or was there
    latest = repo.latest_snapshot(space)
    assert latest is not None
    manifest_root = Block(latest.manifest_cid, repo.block(latest.manifest_cid))
    pages = [Block(cid, repo.block(cid)) for cid in manifest_pages(manifest_root.cid, manifest_root.data)]
    chunks = [Block(cid, repo.block(cid)) for entry in manifest.docs for cid in entry.chunks]
    records = [row.data for row in repo.backend.capability_records(space)]
    tips = [tip for entry in manifest.docs for tip in repo.tips(space, entry.doc)]
    bundle = split_raw(encode_bundle(genesis, records, tips))
    pointer = SnapshotPointer.issue(
        services.identity,
        space=space,
        seq=previous.seq + 1 if previous is not None else 1,
        manifest=latest.manifest_cid,
        previous=previous.manifest if previous is not None else None,
        bundle=[block.cid for block in bundle],
        published_ms=now_ms,
        peers=[addr for addr in services.addrs() if len(addr) <= MAX_PEER_ADDR_CHARS][:MAX_POINTER_PEERS],
    )
    root = Block.dag_cbor(pointer.encode())
    if len(manifest_root.data) > MAX_IPFS_BLOCK_BYTES:
        raise PublishRefused(
            f"space {genesis.name!r}: its manifest of {len(manifest.docs)} docs is one block of {len(manifest_root.data)} bytes (written before manifests were paged), "
            f"over IPFS's {MAX_IPFS_BLOCK_BYTES}-byte block limit; the next snapshot (any edit, then publish) pages it"
        )
    unique = {block.cid: block for block in [*chunks, *pages, manifest_root, *bundle]}
    unique.pop(root.cid, None)
    return Publication(space, pointer, (*unique.values(), root))


async def upload_publication(services: NodeServices, publication: Publication, api: str, client: IpfsClient) -> dict[str, Any]:
    """Put a publication into IPFS as one CAR (pinned from its root) and point the space's IPNS
    name at it; its status (``IpfsState``'s entry). The CAR leaves out the blocks the daemon
    already holds under our previous publication's pin (the pages, chunks and bundle blocks no
    snapshot since has changed). A failure is kept as the space's publishing error too, then raised."""
    space = publication.space
    previous = state_of(services).published(space) or {}
    try:
        held: set[bytes] = set()
        if previous.get("cid") and previous.get("ipfs_api") == api:
            held = await client.pinned_dag(cid_from_text(previous["cid"]))
        sent = publication.unsent(held)
        await client.import_car(publication.car(held))
        ipns = await client.publish_name(ipns_key_name(space), publication.root)
    except IpfsError as error:
        state_of(services).record_error(space, error, services.clock())
        event(log, "ipfs.publish_failed", logging.WARNING, space=space.hex()[:12], error=error)
        raise
    state = state_of(services)
    state.record_published(publication, ipns, api, sent)
    event(
        log, "ipfs.published", space=space.hex()[:12], cid=cid_text(publication.root), seq=publication.pointer.seq, blocks=len(publication.blocks), bytes=publication.size, sent_blocks=len(sent)
    )
    entry = state.published(space)
    assert entry is not None
    return entry


async def publish_space(services: NodeServices, space: bytes, api: str, *, allow_private: bool) -> dict[str, Any]:
    """Build and upload a publication now, on a client of its own (a command without a daemon)."""
    try:
        previous = state_of(services).last_pointer(space, services.identity.public_key)
        publication = build_publication(services, space, allow_private=allow_private, now_ms=services.clock(), previous=previous)
    except (IpfsError, StoreError) as error:
        state_of(services).record_error(space, error, services.clock())
        raise
    async with open_client(api) as client:
        return await upload_publication(services, publication, api, client)


class IpfsService:
    """A daemon's publisher and its joins from IPFS (module docstring).

    ``publish_now`` (the API's ``ipfs.publish``) builds a publication at once — so the caller
    learns its CID — and leaves the upload to ``run``'s task; on its own, ``run`` publishes each
    space whose newest manifest it has not published, a debounce after the snapshot.
    """

    def __init__(self, services: NodeServices, api: str, *, allow_private: bool) -> None:
        self.services = services
        self.api = api
        self.allow_private = allow_private
        self._wake = trio.Event()
        self._uploads: dict[bytes, Publication] = {}  # built, not yet uploaded: the newest per space
        self._failed_ms: dict[bytes, int] = {}
        self._bridge: AsyncioBridge | None = None
        self._nursery: trio.Nursery | None = None
        self.joins: dict[str, dict[str, Any]] = {}  # by source: the status of a join from IPFS

    def pending(self, space: bytes) -> str | None:
        """The CID of the space's publication being uploaded, if any."""
        publication = self._uploads.get(space)
        return cid_text(publication.root) if publication is not None else None

    def _previous(self, space: bytes) -> SnapshotPointer | None:
        waiting = self._uploads.get(space)
        return waiting.pointer if waiting is not None else state_of(self.services).last_pointer(space, self.services.identity.public_key)

    def publish_now(self, space: bytes, *, allow_private: bool) -> Publication:
        """Build the space's publication now and upload it soon (raises as ``build_publication``)."""
        publication = build_publication(
            self.services, space, allow_private=allow_private or self.allow_private, now_ms=self.services.clock(), previous=self._previous(space)
        )
        self._uploads[space] = publication
        self._wake.set()
        return publication

    def join_soon(self, source: str, peers: Sequence[str] = ()) -> dict[str, Any]:
        """Start a join from IPFS; its status (also in ``joins``) says when it is done."""
        if self._nursery is None:
            raise IpfsError("the daemon's IPFS service is not running")
        status = self.joins.get(source)
        if status is not None and status["status"] == "fetching":
            return status
        status = self.joins[source] = {"source": source, "status": "fetching"}
        self._nursery.start_soon(self._join, source, tuple(peers))
        return status

    async def _join(self, source: str, peers: tuple[str, ...]) -> None:
        status = self.joins[source]
        try:
            async with open_client(self.api, self._bridge) as client:
                result = await join_publication(self.services, client, source, extra_peers=peers)
        except (IpfsError, StoreError, ProtocolError) as error:
            status.update(status="failed", error=str(error), kind=type(error).__name__)
            event(log, "ipfs.join_failed", logging.WARNING, source=source, error=error)
            return
        status.update(status="joined", **result)

    def _due(self) -> list[bytes]:
        """Spaces whose newest manifest was not published (private ones only if allowed), not
        within PUBLISH_RETRY_S of a failure."""
        repo, state = self.services.repo, state_of(self.services)
        now_ms = self.services.clock()
        due = []
        for genesis in repo.spaces():
            space = genesis.space_id
            if space in self._uploads or (genesis.private and not self.allow_private):
                continue
            latest = repo.latest_snapshot(space)
            published = state.published(space) or {}
            if latest is None or published.get("manifest") == cid_text(latest.manifest_cid):
                continue
            if now_ms - self._failed_ms.get(space, -PUBLISH_RETRY_S * 1000) < PUBLISH_RETRY_S * 1000:
                continue
            due.append(space)
        return due

    def _on_event(self, change: StoreEvent) -> None:
        latest = self.services.repo.latest_snapshot(change.space)
        published = state_of(self.services).published(change.space) or {}
        if latest is not None and published.get("manifest") != cid_text(latest.manifest_cid):
            self._wake.set()

    async def run(self, host: Host | None = None, *, task_status: trio.TaskStatus[IpfsService] = trio.TASK_STATUS_IGNORED) -> None:
        """Publish and join until cancelled, aioipfs on ``host``'s asyncio thread (or one of its own)."""
        shared = await host_bridge(host) if host is not None else None
        bridge = shared if shared is not None else AsyncioBridge()
        if shared is None:
            await bridge.start()
        self._bridge = bridge
        unlisten = self.services.bus.listen(StoreEvent, self._on_event)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started(self)
                await self._publish_loop()
        finally:
            unlisten()
            self._nursery = None
            if shared is None:
                with trio.CancelScope(shield=True):
                    await bridge.stop()

    async def _publish_loop(self) -> None:
        while True:
            with trio.move_on_after(PUBLISH_CHECK_S):
                await self._wake.wait()
            self._wake = trio.Event()
            if not self._uploads:
                await trio.sleep(PUBLISH_DEBOUNCE_S)  # noqa: sleep — a debounce: more snapshots may follow, one upload for them all
                for space in self._due():
                    try:
                        self.publish_now(space, allow_private=False)
                    except (IpfsError, StoreError) as error:
                        state_of(self.services).record_error(space, error, self.services.clock())
                        self._failed_ms[space] = self.services.clock()
            while self._uploads:
                space, publication = next(iter(self._uploads.items()))
                try:
                    async with open_client(self.api, self._bridge) as client:
                        await upload_publication(self.services, publication, self.api, client)
                except (IpfsError, StoreError):
                    self._failed_ms[space] = self.services.clock()  # kept in ipfs.json: status shows it
                else:
                    self._failed_ms.pop(space, None)
                if self._uploads.get(space) is publication:
                    del self._uploads[space]


_SERVICES: dict[int, IpfsService] = {}  # id(NodeServices) -> its daemon's running IPFS service


def service_of(services: NodeServices) -> IpfsService | None:
    """The daemon's running IPFS service, for the API's methods (node/ipfs_api.py)."""
    return _SERVICES.get(id(services))


async def run_ipfs(services: NodeServices, host: Host | None, *, task_status: trio.TaskStatus[IpfsService] = trio.TASK_STATUS_IGNORED) -> None:
    """A daemon's IPFS part (when config.toml sets ``ipfs_api``): its ``IpfsService``, until cancelled."""
    config = services.config
    assert config.ipfs_api is not None
    service = IpfsService(services, config.ipfs_api, allow_private=config.ipfs_allow_private)
    _SERVICES[id(services)] = service
    try:
        event(log, "ipfs.service_started", ipfs_api=config.ipfs_api, allow_private=config.ipfs_allow_private)
        await service.run(host, task_status=task_status)
    finally:
        _SERVICES.pop(id(services), None)


# ----- joining -----


def _check_block(cid: bytes, data: bytes) -> bytes:
    try:
        return checked(cid, data)
    except CorruptionError as error:
        raise IpfsContentRefused(f"IPFS returned a corrupt block: {error}; nothing was stored") from error


def source_cid(source: str) -> tuple[bytes | None, str | None]:
    """(CID, None) for ``/ipfs/CID`` or ``CID``; (None, name) for ``/ipns/NAME`` or a ``k51...`` name."""
    text = source.strip()
    if text.startswith("/ipns/"):
        return None, text[len("/ipns/") :]
    if text.startswith("/ipfs/"):
        text = text[len("/ipfs/") :]
    if text.startswith("k51"):
        return None, text
    try:
        return cid_from_text(text), None
    except InvalidInput as error:
        raise IpfsContentRefused(f"{source!r} is neither a CID (bafy...) nor an IPNS name (k51...): {error}") from error


@dataclass(frozen=True, slots=True)
class _Fetched:
    pointer: SnapshotPointer
    root: bytes
    manifest: Manifest
    bundle: Bundle
    chunks: dict[bytes, bytes]


async def fetch_publication(client: IpfsClient, source: str) -> _Fetched:
    """Every block of a publication, each checked against its CID, the pointer, bundle and
    manifest decoded and verified (not yet the changes: ``_verify_and_store``)."""
    root, name = source_cid(source)
    if root is None:
        assert name is not None
        root = await client.resolve(name)
    if codec_of(root) != CODEC_DAG_CBOR:
        raise IpfsContentRefused(f"{cid_text(root)} is a raw block, not a snapshot pointer (dag-cbor, bafyrei...)")
    try:
        pointer = decode_pointer(_check_block(root, await client.block(root)))
    except SnapshotPointerError as error:
        raise IpfsContentRefused(f"{cid_text(root)} is not a valid snapshot pointer: {error}") from error
    bundle_data = b"".join(await client.blocks(pointer.bundle, lambda index, data: _check_block(pointer.bundle[index], data)))
    try:
        bundle = decode_bundle(bundle_data, pointer.space)
    except SnapshotPointerError as error:
        raise IpfsContentRefused(f"the bundle of pointer {cid_text(root)}: {error}") from error
    manifest = await _fetch_manifest(client, pointer, root)
    wanted = list(dict.fromkeys(cid for entry in manifest.docs for cid in entry.chunks))
    chunks = dict(zip(wanted, await client.blocks(wanted, lambda index, data: _check_block(wanted[index], data)), strict=True))
    return _Fetched(pointer, root, manifest, bundle, chunks)


async def _fetch_manifest(client: IpfsClient, pointer: SnapshotPointer, root: bytes) -> Manifest:
    """The pointer's manifest: its root checked (CID, signature, budgets, the pointer's space and
    signer) before any page is fetched, then each page checked against the root as it arrives."""
    where = f"the manifest of pointer {cid_text(root)}"
    try:
        manifest_root = ManifestRoot.from_block(Block(pointer.manifest, await client.block(pointer.manifest)))
    except CorruptionError as error:
        raise IpfsContentRefused(f"{where}: {error}") from error
    if manifest_root.space != pointer.space or manifest_root.author != pointer.signer:
        raise IpfsContentRefused(f"{where} is another space's or was signed by another key than the pointer")
    try:
        pages = await client.blocks([link.cid for link in manifest_root.pages], manifest_root.page)
        return manifest_root.manifest(pages)
    except CorruptionError as error:
        raise IpfsContentRefused(f"{where}: {error}; nothing was stored") from error


def _verify_and_store(services: NodeServices, fetched: _Fetched) -> dict[str, int]:
    """Check the log, every snapshot and every change, then store it all in one transaction."""
    repo = services.repo
    pointer, manifest, genesis = fetched.pointer, fetched.manifest, fetched.bundle.genesis
    space = pointer.space
    try:
        records = decode_records(space, list(fetched.bundle.records))
    except (WireError, ProtocolError) as error:
        raise IpfsContentRefused(f"the publication's capability log does not verify: {error}; nothing was stored") from error
    trial = CapabilityLog(genesis, [record for record, _ in records])
    if genesis.private and trial.role(pointer.signer) is None and pointer.signer != genesis.creator:
        raise IpfsContentRefused(f"the pointer's signer {pointer.signer.hex()[:16]} is not a member of private space {genesis.name!r}; nothing was stored")
    try:
        state_of(services).chain.check(pointer)
    except SnapshotPointerError as error:
        raise IpfsContentRefused(f"{error}; nothing was stored") from error
    tips_by_doc: dict[bytes, list[SignedTip]] = {}
    for tip in fetched.bundle.tips:
        tips_by_doc.setdefault(tip.doc, []).append(tip)
    documents = []
    for entry in sorted(manifest.docs, key=lambda e: (e.doc != INDEX_DOC_ID, e.doc)):  # the index first: file docs' paths are read on it
        snapshot = DocSnapshot(space, entry.doc, entry.heads, entry.change_count, entry.chunks, manifest.created_ms)
        try:
            document = load_checked(snapshot, fetched.chunks.__getitem__)
        except (CorruptionError, UnknownBlock, KeyError) as error:
            raise IpfsContentRefused(f"the snapshot of doc {entry.doc.hex()}: {error}; nothing was stored") from error
        try:
            changes = decode_changes(document.get_changes([]))
        except WireError as error:
            raise IpfsContentRefused(f"the snapshot of doc {entry.doc.hex()}: {error}; nothing was stored") from error
        documents.append((entry.doc, changes))
    now_ms = services.clock()
    try:
        with repo.group(durable=True):
            stored = _store(repo, genesis, records, documents, tips_by_doc, now_ms)
    except ProtocolError as error:  # the log refused on storing (a record past its limits): the group stored nothing
        raise IpfsContentRefused(f"the publication's capability log is refused: {error}; nothing was stored") from error
    return {"docs": len(documents), "changes": sum(stored)}


def _store(
    repo: Repo, genesis: Genesis, records: list[tuple[Any, bytes]], documents: list[tuple[bytes, list[native.DecodedChange]]], tips: dict[bytes, list[SignedTip]], now_ms: int
) -> list[int]:
    """Inside the caller's group: the space, its log, then every doc's changes through ingest,
    each wholly covered and authorised; returns how many changes each doc newly stored."""
    space = genesis.space_id
    repo.add_space(genesis)
    repo.add_capability_records(space, [data for _, data in records])
    stored = []
    for doc, changes in documents:
        pending = PendingChanges(max(MAX_PENDING_CHANGES, len(changes)))
        try:
            result = ingest(repo, space, doc, changes, tips.get(doc, []), pending, VerifiedTips(), now_ms)
        except VerificationError as error:
            raise IpfsContentRefused(f"doc {doc.hex()}: a change does not verify against the published tips ({error}); nothing was stored") from error
        problems = [*(f"refused: {r.reason}" for r in result.refused), *(f"unauthorised: {u.reason}" for u in result.unauthorised)]
        if problems or len(pending):
            detail = problems[0] if problems else f"{len(pending)} changes no published tip covers"
            raise IpfsContentRefused(f"doc {doc.hex()}: {detail}; nothing was stored")
        stored.append(len(result.applied))
    return stored


async def join_publication(services: NodeServices, client: IpfsClient, source: str, *, extra_peers: Sequence[str] = ()) -> dict[str, Any]:
    """Join (or bring up to date) the space a publication holds: fetch, verify all, store all
    or nothing; then dial the pointer's peers to catch up over libp2p (module docstring).

    Raises:
        IpfsBlockMissing: a block is not in IPFS (as every IpfsError, nothing stored). IpfsContentRefused: anything does not check out.
        IpfsUnavailable: the IPFS daemon cannot be reached.
    """
    fetched = await fetch_publication(client, source)
    counts = _verify_and_store(services, fetched)
    pointer = fetched.pointer
    state_of(services).take_seen(pointer)
    peers = tuple(dict.fromkeys([*pointer.peers, *extra_peers]))
    if peers:
        services.request_join(pointer.space, peers)
    services.adopt_default_space(pointer.space)
    event(log, "ipfs.joined", space=pointer.space.hex()[:12], cid=cid_text(fetched.root), seq=pointer.seq, docs=counts["docs"], changes=counts["changes"])
    return {
        "space_id": pointer.space.hex(),
        "name": fetched.bundle.genesis.name,
        "cid": cid_text(fetched.root),
        "seq": pointer.seq,
        "publisher": pointer.signer.hex(),
        "published_ms": pointer.published_ms,
        "peers": list(peers),
        **counts,
    }


