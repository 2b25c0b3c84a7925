"""Snapshots into IPFS against a real kubo daemon (tests/node/kubo.py), without distspace daemons:
``distspace publish`` and ``join --from-ipfs`` run in the command's own process.

What kubo holds is checked with kubo's own commands (``ipfs block get``, ``ipfs dag get``), and
every way a publication can be wrong — a pointer with a bad signature, a replayed older pointer,
a manifest signed over a block that is not a snapshot, a missing block, a corrupt block — is
refused with its typed error and leaves the joiner's store empty.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cbor2
import pytest
import trio

from api_helpers import distspace
from kubo import Kubo, kubo  # noqa: F401  (a fixture)
from node.errors import IpfsBlockMissing, IpfsContentRefused, IpfsUnavailable
from node.home import NodeHome
from node.ipfs import IPFS_STATE_FILE, fetch_publication, join_publication
from node.ipfs_client import IpfsClient, open_client
from node.services import NodeServices
from protocol import cbor
from protocol.identity import Identity
from protocol.signed import sign
from protocol.snapshot_pointer import DOMAIN_POINTER, SnapshotPointer, decode_pointer
from store.batch import BatchOp
from store.blocks import MAX_BLOCK_BYTES, Block, cid_from_text, cid_text
from store.records import DocSnapshot
from store.repo import Repo, wall_clock_ms
from store.snapshots import DOMAIN_MANIFEST, PAGED_MANIFEST_FORMAT, Manifest, ManifestRoot
from store.workspace import Workspace

# A file whose saved doc outgrows one block: random text does not compress.
BIG_FILE_BYTES = 3 * MAX_BLOCK_BYTES


@dataclass
class Published:
    home: Path
    files: dict[str, str]
    result: dict[str, Any]


def _publish(home: Path, kubo: Kubo, *extra: str) -> dict[str, Any]:
    return dict(json.loads(distspace(home, "--json", "publish", "--ipfs-api", kubo.api, *extra).stdout))


def _space_with_files(home: Path, *, public: bool = True) -> dict[str, str]:
    distspace(home, "init", "team", *(["--public"] if public else []))
    files = {
        "README.md": "# team\nhello from IPFS\n",
        "src/main.py": "print('hi')\n" * 50,
        "big.txt": base64.b64encode(os.urandom(BIG_FILE_BYTES * 3 // 4)).decode(),
    }
    for path, text in files.items():
        distspace(home, "write", "-p", path, input=text.encode())
    distspace(home, "write", "README.md", input=(files["README.md"] + "edited\n").encode())
    files["README.md"] += "edited\n"
    return files


@pytest.fixture
def published(tmp_path: Path, kubo: Kubo) -> Published:
    home = tmp_path / "alice"
    files = _space_with_files(home)
    return Published(home, files, _publish(home, kubo))


def _read_all(home: Path, files: dict[str, str]) -> dict[str, str]:
    return {path: distspace(home, "cat", path).stdout.decode() for path in files}


def _links(node: Any) -> list[str]:
    """Every CID an ``ipfs dag get`` JSON value links to."""
    if isinstance(node, dict):
        if set(node) == {"/"} and isinstance(node["/"], str):
            return [node["/"]]
        return [cid for value in node.values() for cid in _links(value)]
    if isinstance(node, list):
        return [cid for value in node for cid in _links(value)]
    return []


def test_kubo_holds_every_block_of_a_publication_byte_for_byte(published: Published, kubo: Kubo) -> None:
    pointer_cid = published.result["cid"]
    pointer_json = json.loads(kubo.run("dag", "get", pointer_cid))
    assert pointer_json[0] == "snapshot-pointer" and pointer_json[2] == 1
    manifest_cid, *bundle = _links(pointer_json)
    assert manifest_cid == published.result["manifest"]
    manifest_json = json.loads(kubo.run("dag", "get", manifest_cid))
    chunks = _links(manifest_json)
    assert len(chunks) > 3, "the big file's snapshot is split into blocks of at most 256 KiB"
    identity = NodeHome(published.home).identity()
    with Repo.open(NodeHome(published.home).database, identity) as repo:
        for cid in [manifest_cid, *chunks]:
            ours = repo.block(cid_from_text(cid))
            assert kubo.run("block", "get", cid) == ours
            assert len(ours) <= MAX_BLOCK_BYTES
    state = json.loads((published.home / IPFS_STATE_FILE).read_text())
    pointer = decode_pointer(base64.b64decode(state["seen"][0]))
    assert kubo.run("block", "get", pointer_cid) == pointer.encode()
    assert [cid_text(c) for c in pointer.bundle] == bundle
    pins = kubo.run("pin", "ls", "--type=recursive").decode()
    assert pointer_cid in pins
    assert all(cid in kubo.run("refs", "-r", pointer_cid).decode() for cid in [manifest_cid, *chunks, *bundle])
    status = json.loads(distspace(published.home, "--json", "status").stdout)["ipfs"]
    assert status["spaces"][0]["cid"] == pointer_cid and status["spaces"][0]["error"] is None


def test_a_fresh_node_joins_from_ipfs_alone_and_reads_every_file(published: Published, kubo: Kubo, tmp_path: Path) -> None:
    bob = tmp_path / "bob"
    joined = json.loads(distspace(bob, "--json", "join", "--from-ipfs", published.result["cid"], "--ipfs-api", kubo.api).stdout)
    assert joined["status"] == "joined" and joined["cid"] == published.result["cid"] and joined["changes"] > 0
    assert _read_all(bob, published.files) == published.files
    assert "checks out" in distspace(bob, "verify").stdout.decode()
    # By its IPNS name too (a second join stores nothing new).
    again = json.loads(distspace(bob, "--json", "join", "--from-ipfs", f"/ipns/{published.result['ipns']}", "--ipfs-api", kubo.api).stdout)
    assert again["cid"] == published.result["cid"] and again["changes"] == 0


def test_a_replayed_older_pointer_is_refused(published: Published, kubo: Kubo, tmp_path: Path) -> None:
    distspace(published.home, "write", "README.md", input=b"newer\n")
    second = _publish(published.home, kubo)
    assert second["seq"] == 2
    bob = tmp_path / "bob"
    distspace(bob, "join", "--from-ipfs", second["cid"], "--ipfs-api", kubo.api)
    replay = distspace(bob, "join", "--from-ipfs", published.result["cid"], "--ipfs-api", kubo.api, check=False)
    assert replay.returncode == 1 and "older than pointer 2" in replay.stderr.decode() and "replay" in replay.stderr.decode()
    assert distspace(bob, "cat", "README.md").stdout == b"newer\n"
    pointer2 = decode_pointer(kubo.run("block", "get", second["cid"]))
    assert pointer2.previous == cid_from_text(published.result["manifest"])


def _put(kubo: Kubo, block: Block) -> str:
    codec = "dag-cbor" if block.cid[1] == 0x71 else "raw"
    cid = kubo.run("block", "put", "--cid-codec", codec, stdin=block.data).decode().strip()
    assert cid == cid_text(block.cid)
    return cid


def _refused(bob: Path, kubo: Kubo, cid: str) -> str:
    result = distspace(bob, "join", "--from-ipfs", cid, "--ipfs-api", kubo.api, check=False)
    assert result.returncode == 1, result.stdout
    assert json.loads(distspace(bob, "--json", "spaces").stdout)["spaces"] == [], "nothing stored"
    return result.stderr.decode()


def _alice_pointer(published: Published, kubo: Kubo) -> tuple[Identity, SnapshotPointer]:
    return NodeHome(published.home).identity(), decode_pointer(kubo.run("block", "get", published.result["cid"]))


def test_a_pointer_with_a_wrong_signature_is_refused(published: Published, kubo: Kubo, tmp_path: Path) -> None:
    _, pointer = _alice_pointer(published, kubo)
    forged = replace(pointer, signature=bytes(64 - 1) + b"\x01")
    said = _refused(tmp_path / "bob", kubo, _put(kubo, Block.dag_cbor(forged.encode())))
    assert "not a valid snapshot pointer" in said and "does not verify" in said


def test_a_pointer_signed_by_a_stranger_for_another_manifest_is_refused(published: Published, kubo: Kubo, tmp_path: Path) -> None:
    _, pointer = _alice_pointer(published, kubo)
    mallory = Identity.generate()
    relabelled = sign(replace(pointer, signer=mallory.public_key, signature=b""), mallory, DOMAIN_POINTER)
    said = _refused(tmp_path / "bob", kubo, _put(kubo, Block.dag_cbor(relabelled.encode())))
    assert "signed by another key than the pointer" in said


def test_a_manifest_over_a_block_that_is_no_snapshot_is_refused(published: Published, kubo: Kubo, tmp_path: Path) -> None:
    """Put a different block into kubo, sign a manifest (with the publisher's own key) pointing
    a doc at it and a pointer to that manifest: every signature verifies, the snapshot does not."""
    alice, pointer = _alice_pointer(published, kubo)
    manifest = Manifest.from_block(Block(pointer.manifest, kubo.run("block", "get", cid_text(pointer.manifest))))
    garbage = Block.raw(b"not an automerge document")
    _put(kubo, garbage)
    first, *rest = manifest.docs
    docs = [DocSnapshot(manifest.space, e.doc, e.heads, e.change_count, e.chunks, 0) for e in rest]
    docs.append(DocSnapshot(manifest.space, first.doc, first.heads, first.change_count, (garbage.cid,), 0))
    tampered = Manifest.sign(alice, manifest.space, docs, manifest.created_ms).to_block()
    _put(kubo, tampered)
    forged = SnapshotPointer.issue(
        alice, space=pointer.space, seq=7, manifest=tampered.cid, previous=pointer.manifest, bundle=pointer.bundle, published_ms=pointer.published_ms
    )
    said = _refused(tmp_path / "bob", kubo, _put(kubo, Block.dag_cbor(forged.encode())))
    assert f"the snapshot of doc {first.doc.hex()}" in said and "nothing was stored" in said


def test_a_missing_block_is_refused_and_nothing_is_stored(published: Published, kubo: Kubo, tmp_path: Path) -> None:
    alice, pointer = _alice_pointer(published, kubo)
    absent = Block.dag_cbor(b"\xa0")  # an empty map: never put into kubo
    dangling = SnapshotPointer.issue(
        alice, space=pointer.space, seq=2, manifest=absent.cid, previous=pointer.manifest, bundle=pointer.bundle, published_ms=pointer.published_ms
    )
    said = _refused(tmp_path / "bob", kubo, _put(kubo, Block.dag_cbor(dangling.encode())))
    assert f"block {cid_text(absent.cid)} is not in IPFS" in said


class _Corrupting:
    """A client that returns one block's bytes altered: kubo hashes what it is given, so a
    corrupt block can only come from a damaged datastore or a lying daemon."""

    def __init__(self, client: IpfsClient, victim: bytes) -> None:
        self._client = client
        self._victim = victim

    async def block(self, cid: bytes) -> bytes:
        data = await self._client.block(cid)
        return data[:-1] + bytes([data[-1] ^ 1]) if cid == self._victim else data

    async def blocks(self, cids: list[bytes], check: Callable[[int, bytes], Any]) -> list[Any]:
        return [check(index, await self.block(cid)) for index, cid in enumerate(cids)]

    async def resolve(self, name: str) -> bytes:
        return await self._client.resolve(name)


@pytest.fixture
def bob_services(tmp_path: Path) -> Iterator[NodeServices]:
    home = NodeHome(tmp_path / "bob-inproc")
    identity = home.identity()
    with Repo.open(home.database, identity) as repo:
        services = NodeServices(home, home.config(), identity, repo)
        yield services
        services.close()


async def test_a_corrupt_block_from_ipfs_is_refused(published: Published, kubo: Kubo, bob_services: NodeServices) -> None:
    root = cid_from_text(published.result["cid"])
    async with open_client(kubo.api) as client:
        pointer = decode_pointer(await client.block(root))
        manifest = Manifest.from_block(Block(pointer.manifest, await client.block(pointer.manifest)))
        for victim in (root, pointer.bundle[0], pointer.manifest, manifest.docs[-1].chunks[-1]):
            with pytest.raises(IpfsContentRefused, match="corrupt"):
                await join_publication(bob_services, _Corrupting(client, victim), published.result["cid"])  # type: ignore[arg-type]
            assert bob_services.repo.spaces() == []
        fetched = await fetch_publication(client, published.result["cid"])
        assert fetched.pointer == pointer


async def test_an_ipfs_daemon_that_is_gone_is_a_clear_error(bob_services: NodeServices, kubo: Kubo) -> None:
    kubo.stop()
    async with open_client(kubo.api) as client:
        with pytest.raises(IpfsUnavailable, match="cannot be reached"):
            await join_publication(bob_services, client, cid_text(Block.dag_cbor(b"\xa0").cid))
    assert bob_services.repo.spaces() == []


def test_a_private_space_is_published_only_when_asked(tmp_path: Path, kubo: Kubo) -> None:
    alice = tmp_path / "alice"
    files = _space_with_files(alice, public=False)
    refused = distspace(alice, "publish", "--ipfs-api", kubo.api, check=False)
    assert refused.returncode == 1 and "is private" in refused.stderr.decode() and "--allow-private" in refused.stderr.decode()
    assert "readable by whoever fetches" in refused.stderr.decode()
    result = _publish(alice, kubo, "--allow-private")
    bob = tmp_path / "bob"
    joined = json.loads(distspace(bob, "--json", "join", "--from-ipfs", result["cid"], "--ipfs-api", kubo.api).stdout)
    assert joined["status"] == "joined"
    assert _read_all(bob, files) == files, "what was published is readable by whoever fetches it"


def test_missing_block_error_type(published: Published, kubo: Kubo) -> None:
    async def fetch() -> None:
        async with open_client(kubo.api) as client:
            await client.block(Block.raw(b"never put").cid)

    with pytest.raises(IpfsBlockMissing, match="not in IPFS"):
        trio.run(fetch)


def test_a_private_space_published_by_a_non_member_is_refused(tmp_path: Path, kubo: Kubo) -> None:
    """Mallory re-signs Alice's manifest and a pointer with her own key: both signatures verify,
    one signer, but the published log does not admit her."""
    alice = tmp_path / "alice"
    _space_with_files(alice, public=False)
    result = _publish(alice, kubo, "--allow-private")
    pointer = decode_pointer(kubo.run("block", "get", result["cid"]))
    manifest = Manifest.from_block(Block(pointer.manifest, kubo.run("block", "get", cid_text(pointer.manifest))))
    mallory = Identity.generate()
    docs = [DocSnapshot(manifest.space, e.doc, e.heads, e.change_count, e.chunks, 0) for e in manifest.docs]
    hers = Manifest.sign(mallory, manifest.space, docs, manifest.created_ms).to_block()
    _put(kubo, hers)
    forged = SnapshotPointer.issue(mallory, space=pointer.space, seq=1, manifest=hers.cid, previous=None, bundle=pointer.bundle, published_ms=pointer.published_ms)
    said = _refused(tmp_path / "bob", kubo, _put(kubo, Block.dag_cbor(forged.encode())))
    assert "is not a member of private space" in said


# ----- a space of thousands of docs: its manifest is paged (store/snapshots.py) -----

# Files that make a manifest of more than one block (~125 bytes a doc entry: one block holds ~2,000).
PAGED_FILES = 2_300


def _space_of_many_files(home: Path) -> tuple[bytes, dict[str, str]]:
    """A public space of PAGED_FILES one-line files, written through the store in one batch
    (as ``fs.batch`` or a git import would)."""
    distspace(home, "init", "many", "--public")
    files = {f"d{i % 10}/f{i}.txt": f"file {i}\n" for i in range(PAGED_FILES)}
    node = NodeHome(home)
    with Repo.open(node.database, node.identity()) as repo:
        [genesis] = repo.spaces()
        Workspace(repo, genesis.space_id).apply_batch([BatchOp("create", path, text) for path, text in files.items()], now_ms=wall_clock_ms())
    return genesis.space_id, files


def _read_store(home: Path, space: bytes, paths: list[str]) -> dict[str, str | bytes]:
    node = NodeHome(home)
    with Repo.open(node.database, node.identity()) as repo:
        workspace = Workspace(repo, space)
        return {path: workspace.read(path) for path in paths}


@dataclass
class PagedPublished:
    home: Path
    space: bytes
    files: dict[str, str]
    result: dict[str, Any]


@pytest.fixture
def paged_published(tmp_path: Path, kubo: Kubo) -> PagedPublished:
    home = tmp_path / "alice"
    space, files = _space_of_many_files(home)
    return PagedPublished(home, space, files, _publish(home, kubo))


def _published_state(home: Path, space: bytes) -> dict[str, Any]:
    return dict(json.loads((home / IPFS_STATE_FILE).read_text())["published"][space.hex()])


def test_a_paged_manifest_is_published_and_a_fresh_node_joins_from_ipfs_alone(paged_published: PagedPublished, kubo: Kubo, tmp_path: Path) -> None:
    alice = paged_published
    root = json.loads(kubo.run("dag", "get", alice.result["manifest"]))
    assert root["format"] == PAGED_MANIFEST_FORMAT and root["docs"] == PAGED_FILES + 1  # and the index
    pages = [link["page"]["/"] for link in root["pages"]]
    assert len(pages) >= 2
    node = NodeHome(alice.home)
    with Repo.open(node.database, node.identity()) as repo:
        for cid in [alice.result["manifest"], *pages]:
            ours = repo.block(cid_from_text(cid))
            assert kubo.run("block", "get", cid) == ours and len(ours) <= MAX_BLOCK_BYTES
    refs = kubo.run("refs", "-r", alice.result["cid"]).decode()
    assert all(cid in refs for cid in pages)
    state = _published_state(alice.home, alice.space)
    assert state["sent_blocks"] == state["blocks"], "a first publication sends everything"

    bob = tmp_path / "bob"
    joined = json.loads(distspace(bob, "--json", "join", "--from-ipfs", alice.result["cid"], "--ipfs-api", kubo.api).stdout)
    assert joined["status"] == "joined" and joined["docs"] == PAGED_FILES + 1
    assert _read_store(bob, alice.space, list(alice.files)) == alice.files
    assert "checks out" in distspace(bob, "verify").stdout.decode()

    # One file edited: the next publication sends its doc's chunk, the page listing it, the
    # manifest's root, the bundle's block holding its new tip (tips keep their offsets) and the
    # pointer — not the other ~2,300 docs' chunks or pages — and kubo holds all of the new DAG.
    distspace(alice.home, "write", "d7/f7.txt", input=b"edited\n")
    second = _publish(alice.home, kubo)
    state = _published_state(alice.home, alice.space)
    bundle = decode_pointer(kubo.run("block", "get", second["cid"])).bundle
    assert second["seq"] == 2 and state["blocks"] > PAGED_FILES
    assert state["sent_blocks"] <= 1 + 2 + 1 + len(bundle) + 1, "the doc's chunk, at most 2 pages, the root, the bundle at most, the pointer"
    carol = tmp_path / "carol"
    distspace(carol, "join", "--from-ipfs", second["cid"], "--ipfs-api", kubo.api)
    assert _read_store(carol, alice.space, list(alice.files)) == {**alice.files, "d7/f7.txt": "edited\n"}
    # Unpinned in kubo since: nothing is taken as held, everything is sent again.
    kubo.run("pin", "rm", second["cid"])
    distspace(alice.home, "write", "d7/f7.txt", input=b"edited twice\n")
    _publish(alice.home, kubo)
    state = _published_state(alice.home, alice.space)
    assert state["sent_blocks"] == state["blocks"]


async def test_a_tampered_page_is_refused_and_nothing_is_stored(paged_published: PagedPublished, kubo: Kubo, bob_services: NodeServices) -> None:
    """A page's bytes altered on the way (a damaged datastore or a lying daemon: kubo hashes what
    it is given), and a page re-made by the publisher itself with a doc left out, under a root
    and pointer it signs: every CID and signature checks out, the page's docs do not."""
    alice_identity = NodeHome(paged_published.home).identity()
    root_cid = cid_from_text(paged_published.result["cid"])
    async with open_client(kubo.api) as client:
        pointer = decode_pointer(await client.block(root_cid))
        manifest_root = ManifestRoot.from_block(Block(pointer.manifest, await client.block(pointer.manifest)))
        with pytest.raises(IpfsContentRefused, match="corrupt"):
            await join_publication(bob_services, _Corrupting(client, manifest_root.pages[-1].cid), paged_published.result["cid"])  # type: ignore[arg-type]
        assert bob_services.repo.spaces() == []

        root_fields = dict(cbor.loads(await client.block(pointer.manifest), "root"))
        del root_fields["signature"]
        page_fields = dict(cbor.loads(await client.block(manifest_root.pages[0].cid), "page"))
        short = Block.dag_cbor(cbor.dumps({**page_fields, "docs": page_fields["docs"][:-1]}))
    _put(kubo, short)
    absent = Block.dag_cbor(cbor.dumps({"never": "put"}))

    def pointer_to(page: Block) -> str:
        """A root (signed by Alice) whose first link names ``page``, and a pointer to it."""
        links = list(root_fields["pages"])
        links[0] = {**links[0], "page": cbor2.CBORTag(42, b"\x00" + page.cid), "bytes": len(page.data)}
        body = {**root_fields, "pages": links}
        root = _put(kubo, Block.dag_cbor(cbor.dumps({**body, "signature": alice_identity.sign(DOMAIN_MANIFEST, cbor.dumps(body))})))
        forged = SnapshotPointer.issue(
            alice_identity, space=pointer.space, seq=7, manifest=cid_from_text(root), previous=pointer.manifest, bundle=pointer.bundle, published_ms=pointer.published_ms
        )
        return _put(kubo, Block.dag_cbor(forged.encode()))

    async with open_client(kubo.api) as client:
        with pytest.raises(IpfsContentRefused, match=r"page 0 .* does not hold the docs its root says.*nothing was stored"):
            await join_publication(bob_services, client, pointer_to(short))
        assert bob_services.repo.spaces() == []
        with pytest.raises(IpfsBlockMissing, match=f"block {cid_text(absent.cid)} is not in IPFS"):
            await join_publication(bob_services, client, pointer_to(absent))
    assert bob_services.repo.spaces() == []
