"""Paged snapshot manifests (store/snapshots.py): a space whose manifest outgrows one block gets a
signed root linking content-defined pages, each checked alone as it arrives; anything crafted
or damaged is a CorruptionError and nothing else; a root past the budgets is refused before
any page is read; maintenance keeps the pages it links and drops the ones it replaced; verify
checks every page."""

from __future__ import annotations

import functools
import random
from collections.abc import Callable

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import cbor
from protocol.identity import Identity
from protocol.space import DOC_ID_BYTES
from store import snapshots
from store.backend import MemoryBackend
from store.batch import BatchOp
from store.blocks import CODEC_RAW, MAX_BLOCK_BYTES, Block, cid_for, codec_of
from store.errors import CorruptionError, InvalidInput, UnknownBlock
from store.records import DocSnapshot
from store.repo import Repo
from store.snapshots import (
    DOMAIN_MANIFEST,
    MAX_MANIFEST_BLOCK_BYTES,
    MAX_MANIFEST_BYTES,
    MAX_MANIFEST_DOCS,
    MAX_MANIFEST_PAGES,
    PAGED_MANIFEST_FORMAT,
    Manifest,
    ManifestRoot,
)
from store.verify import ProblemKind
from store.workspace import Workspace

SPACE = bytes([0x5A]) * 32
AUTHOR = Identity(bytes([0xA1]) * 32)
CREATED_MS = 1_700_000_000_000
# Docs that make a paged manifest (~125 bytes an entry: one block holds ~2,000) with a few pages.
PAGED_DOCS = 3_000


def entries(seed: int, count: int) -> list[DocSnapshot]:
    """``count`` doc snapshots with random ids, 1-3 heads and 1-4 chunks each."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        heads = tuple(sorted(rng.randbytes(32) for _ in range(rng.randint(1, 3))))
        chunks = tuple(cid_for(0x55, rng.randbytes(8)) for _ in range(rng.randint(1, 4)))
        out.append(DocSnapshot(SPACE, rng.randbytes(DOC_ID_BYTES), heads, rng.randint(1, 10**6), chunks, CREATED_MS))
    return out


def sign(docs: list[DocSnapshot]) -> Manifest:
    return Manifest.sign(AUTHOR, SPACE, docs, CREATED_MS)


def store_of(blocks: list[Block]) -> dict[bytes, bytes]:
    return {block.cid: block.data for block in blocks}


def load(blocks: list[Block], store: dict[bytes, bytes] | None = None) -> Manifest:
    held = store if store is not None else store_of(blocks)

    def block(cid: bytes) -> bytes:
        if cid not in held:
            raise UnknownBlock("absent")
        return held[cid]

    return Manifest.load(blocks[-1], block)


def signed_root(body: dict[str, object], identity: Identity = AUTHOR) -> Block:
    """A root block over ``body`` with a valid signature: what a hostile publisher can make."""
    signature = identity.sign(DOMAIN_MANIFEST, cbor.dumps(body))
    return Block.dag_cbor(cbor.dumps({**body, "signature": signature}))


def root_fields(block: Block) -> dict[str, object]:
    fields = dict(cbor.loads(block.data, "root"))
    del fields["signature"]
    return fields


@functools.cache
def _paged() -> tuple[Manifest, list[Block]]:
    """A manifest of PAGED_DOCS docs and its blocks, made once (not a fixture: hypothesis would
    print its megabytes with every failing example)."""
    manifest = sign(entries(7, PAGED_DOCS))
    return manifest, manifest.to_blocks()


def well_formed(manifest: Manifest) -> None:
    """What a loaded manifest guarantees its reader, whatever the publisher crafted."""
    assert len(manifest.space) == 32 and len(manifest.author) == 32 and manifest.created_ms >= 0
    assert [e.doc for e in manifest.docs] == sorted({e.doc for e in manifest.docs})
    for entry in manifest.docs:
        assert len(entry.doc) == DOC_ID_BYTES and all(isinstance(h, bytes) and len(h) == 32 for h in entry.heads)
        assert entry.change_count >= 0 and all(codec_of(cid) == CODEC_RAW for cid in entry.chunks)


def test_a_large_manifest_is_paged_and_every_block_fits_one_ipfs_block() -> None:
    manifest, blocks = _paged()
    *pages, root = blocks
    assert manifest.paged and len(pages) >= 3
    assert all(len(block.data) <= MAX_MANIFEST_BLOCK_BYTES == MAX_BLOCK_BYTES for block in blocks)
    assert cbor.loads(root.data, "root")["format"] == PAGED_MANIFEST_FORMAT
    assert load(blocks) == manifest
    decoded = ManifestRoot.from_block(root)
    assert [link.cid for link in decoded.pages] == [page.cid for page in pages]
    assert Manifest.from_block(Block.dag_cbor(sign(entries(7, 10)).to_block().data)).paged is False
    with pytest.raises(CorruptionError, match="is paged"):
        Manifest.from_block(root)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), count=st.integers(0, 4_500))
def test_any_entry_set_round_trips(seed: int, count: int) -> None:
    docs = entries(seed, count)
    manifest = sign(docs)
    blocks = manifest.to_blocks()
    assert load(blocks) == manifest
    assert [e.doc for e in manifest.docs] == sorted(s.doc for s in docs)
    assert all(len(block.data) <= MAX_MANIFEST_BLOCK_BYTES for block in blocks)
    assert manifest.paged == (len(blocks) > 1)


def _flip(data: bytes, bit: int) -> bytes:
    index = bit // 8 % len(data)
    return data[:index] + bytes([data[index] ^ (1 << bit % 8)]) + data[index + 1 :]


@settings(max_examples=60, deadline=None)
@given(which=st.integers(0, 10**6), bit=st.integers(0, 10**9))
def test_a_flipped_bit_in_any_block_is_a_corruption_error(which: int, bit: int) -> None:
    _, blocks = _paged()
    victim = blocks[which % len(blocks)]
    store = store_of(blocks)
    store[victim.cid] = _flip(victim.data, bit)
    root = Block(blocks[-1].cid, store[blocks[-1].cid])
    with pytest.raises(CorruptionError):
        load([*blocks[:-1], root], store)


@settings(max_examples=30, deadline=None)
@given(pair=st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)))
def test_a_swapped_page_is_a_corruption_error(pair: tuple[int, int]) -> None:
    """The store answers one page's CID with another page's bytes."""
    _, blocks = _paged()
    pages = blocks[:-1]
    a, b = pages[pair[0] % len(pages)], pages[pair[1] % len(pages)]
    if a.cid == b.cid:
        b = pages[(pair[1] + 1) % len(pages)]
    store = store_of(blocks)
    store[a.cid], store[b.cid] = b.data, a.data
    with pytest.raises(CorruptionError):
        load(blocks, store)


def test_a_root_signed_over_reordered_pages_or_a_wrong_count_is_refused() -> None:
    """Every signature verifies: the publisher itself lies about its pages."""
    _, blocks = _paged()
    store = store_of(blocks)
    body = root_fields(blocks[-1])
    links = list(body["pages"])  # type: ignore[call-overload]
    reordered = signed_root({**body, "pages": [links[1], links[0], *links[2:]]})
    with pytest.raises(CorruptionError, match="out of order"):
        load([reordered], store)
    # The links in order, but each naming the next page's block: its docs are not what the link says.
    shifted = [{**link, "page": links[(i + 1) % len(links)]["page"], "bytes": links[(i + 1) % len(links)]["bytes"]} for i, link in enumerate(links)]
    with pytest.raises(CorruptionError, match="does not hold the docs its root says"):
        load([signed_root({**body, "pages": shifted})], store)
    for counted in ({**body, "docs": body["docs"] + 1}, {**body, "pages": [{**links[0], "docs": links[0]["docs"] - 1}, *links[1:]]}):  # type: ignore[operator]
        with pytest.raises(CorruptionError):
            load([signed_root(counted)], store)
    dropped = {**body, "docs": body["docs"] - links[-1]["docs"], "pages": links[:-1]}  # type: ignore[operator]
    assert len(load([signed_root(dropped)], store).docs) == body["docs"] - links[-1]["docs"]  # type: ignore[operator]  # a shorter manifest, but a consistent one
    stranger = Identity(bytes([0x66]) * 32)
    with pytest.raises(CorruptionError, match="signature"):
        load([signed_root(body, stranger)], store)


def test_a_page_reordered_inside_or_crossing_its_neighbour_is_refused() -> None:
    """A page re-made with its docs out of order (or one moved into the next page's range),
    under a root signed over the new page: the page's CID checks out, its order does not."""
    manifest, blocks = _paged()
    body = root_fields(blocks[-1])
    links = list(body["pages"])  # type: ignore[call-overload]
    first_page = dict(cbor.loads(blocks[0].data, "page"))
    docs = list(first_page["docs"])
    for bad in ([docs[0], docs[2], docs[1], *docs[3:]], [*docs[:-1], {**docs[-1], "doc": manifest.docs[len(docs) + 1].doc}]):
        page = Block.dag_cbor(cbor.dumps({**first_page, "docs": bad}))
        root = signed_root({**body, "pages": [{**links[0], "page": _tag(page.cid), "bytes": len(page.data)}, *links[1:]]})
        with pytest.raises(CorruptionError, match="out of order"):
            load([root], {**store_of(blocks), page.cid: page.data})


_CBOR_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.binary(max_size=40) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(key=st.sampled_from(["format", "space", "author", "created_ms", "docs", "pages", "extra"]), value=_CBOR_VALUES, link_key=st.sampled_from(["first", "docs", "bytes", "page"]))
def test_any_crafted_signed_root_is_a_corruption_error_or_a_well_formed_manifest(key: str, value: object, link_key: str) -> None:
    _, blocks = _paged()
    body = root_fields(blocks[-1])
    links = list(body["pages"])  # type: ignore[call-overload]
    for crafted in ({**body, key: value}, {**body, "pages": [{**links[0], link_key: value}, *links[1:]]}):
        try:
            manifest = load([signed_root(crafted)], store_of(blocks))
        except CorruptionError:
            continue
        well_formed(manifest)


@settings(max_examples=80, deadline=None)
@given(value=_CBOR_VALUES, field=st.sampled_from(["doc", "heads", "changes", "chunks", "format", "docs"]))
def test_any_crafted_page_is_a_corruption_error_or_well_formed(value: object, field: str) -> None:
    """A page with one field replaced, under a root signed over exactly that page."""
    _, blocks = _paged()
    body = root_fields(blocks[-1])
    links = list(body["pages"])  # type: ignore[call-overload]
    page_fields = dict(cbor.loads(blocks[0].data, "page"))
    if field in ("format", "docs"):
        page_fields[field] = value
    else:
        page_fields["docs"] = [{**page_fields["docs"][0], field: value}, *page_fields["docs"][1:]]
    try:
        page = Block.dag_cbor(cbor.dumps(page_fields))
    except ValueError:
        return  # not encodable at all
    root = signed_root({**body, "pages": [{**links[0], "page": _tag(page.cid), "bytes": len(page.data)}, *links[1:]]})
    try:
        manifest = load([root], {**store_of(blocks), page.cid: page.data})
    except CorruptionError:
        return
    well_formed(manifest)


def _tag(cid: bytes) -> cbor2.CBORTag:
    return cbor2.CBORTag(42, b"\x00" + cid)


def _never(cid: bytes) -> bytes:
    raise AssertionError("a root past the budgets must be refused before any page is read")


def test_a_root_past_the_budgets_is_refused_before_any_page_is_read() -> None:
    _, blocks = _paged()
    body = root_fields(blocks[-1])
    links = list(body["pages"])  # type: ignore[call-overload]
    first = links[0]
    many_docs = {**body, "docs": MAX_MANIFEST_DOCS + 1, "pages": [{**first, "docs": MAX_MANIFEST_DOCS + 1}]}
    many_pages = {
        **body,
        "docs": MAX_MANIFEST_PAGES + 1,
        "pages": [{**first, "first": i.to_bytes(DOC_ID_BYTES, "big"), "docs": 1, "bytes": 100} for i in range(MAX_MANIFEST_PAGES + 1)],
    }
    big_page = {**body, "pages": [{**first, "bytes": MAX_MANIFEST_BLOCK_BYTES + 1}, *links[1:]]}
    all_bytes = {
        **body,
        "docs": 300,
        "pages": [{**first, "first": i.to_bytes(DOC_ID_BYTES, "big"), "docs": 1, "bytes": MAX_MANIFEST_BLOCK_BYTES} for i in range(300)],
    }
    assert 300 * MAX_MANIFEST_BLOCK_BYTES > MAX_MANIFEST_BYTES and 300 <= MAX_MANIFEST_PAGES
    for crafted, said in ((many_docs, "MAX_MANIFEST_DOCS"), (many_pages, "MAX_MANIFEST_PAGES"), (big_page, "MAX_MANIFEST_BYTES"), (all_bytes, "MAX_MANIFEST_BYTES")):
        with pytest.raises(CorruptionError, match=said):
            Manifest.load(signed_root(crafted), _never)
    inline = {"format": snapshots.MANIFEST_FORMAT, "space": SPACE, "author": AUTHOR.public_key, "created_ms": 1, "docs": [{}] * (MAX_MANIFEST_DOCS + 1)}
    with pytest.raises(CorruptionError, match="MAX_MANIFEST_DOCS"):
        Manifest.load(signed_root(inline), _never)
    with pytest.raises(InvalidInput, match="at most"):
        sign([DocSnapshot(SPACE, i.to_bytes(DOC_ID_BYTES, "big"), (), 1, (), 0) for i in range(MAX_MANIFEST_DOCS + 1)])


def test_a_root_of_the_most_pages_fits_one_block() -> None:
    """MAX_MANIFEST_PAGES is what one root block holds, with every field at its largest."""
    link = snapshots.PageLink(b"\xff" * DOC_ID_BYTES, MAX_MANIFEST_DOCS, MAX_MANIFEST_BLOCK_BYTES, cid_for(0x71, b"page"))
    body = snapshots._root_body(SPACE, AUTHOR.public_key, 2**63, MAX_MANIFEST_DOCS, [link] * MAX_MANIFEST_PAGES)
    assert len(signed_root(body).data) <= MAX_MANIFEST_BLOCK_BYTES


def _page_cids(docs: list[DocSnapshot]) -> set[bytes]:
    return {block.cid for block in sign(docs).to_blocks()[:-1]}


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32), at=st.integers(0, 10**6), edit=st.sampled_from(["change", "add", "remove"]))
def test_one_doc_changed_added_or_removed_rewrites_at_most_two_pages(seed: int, at: int, edit: str) -> None:
    docs = sorted(entries(seed, PAGED_DOCS), key=lambda s: s.doc)
    before = _page_cids(docs)
    index = at % len(docs)
    if edit == "change":
        old = docs[index]
        docs[index] = DocSnapshot(SPACE, old.doc, (bytes(32),), old.change_count + 1, (cid_for(0x55, b"new"),), CREATED_MS)
    elif edit == "add":
        docs.append(entries(seed + 1, 1)[0])
    else:
        del docs[index]
    after = _page_cids(docs)
    assert len(after - before) <= 2 and len(before - after) <= 2
    assert len(before & after) >= len(before) - 2


# ----- in a store: maintenance and verify -----


def paged_store(files: int = 2_300) -> tuple[Repo, MemoryBackend, bytes, Callable[[], list[bytes]]]:
    """A repo holding one space of ``files`` one-line files (a paged manifest), snapshotted."""
    backend = MemoryBackend()
    repo = Repo(backend, AUTHOR, snapshot_every=10**6)
    space = repo.create_space("many", CREATED_MS).space_id
    Workspace(repo, space).apply_batch([BatchOp("create", f"d/f{i}.txt", f"file {i}\n") for i in range(files)], now_ms=CREATED_MS)
    assert repo.snapshot(space, CREATED_MS + 1) is not None

    def pages() -> list[bytes]:
        latest = repo.latest_snapshot(space)
        assert latest is not None
        return [link.cid for link in ManifestRoot.from_block(Block(latest.manifest_cid, repo.block(latest.manifest_cid))).pages]

    return repo, backend, space, pages


def test_maintenance_drops_the_replaced_pages_and_keeps_the_rest_and_verify_passes() -> None:
    repo, _, space, pages = paged_store()
    manifest = repo.manifest(space)
    assert manifest is not None and manifest.paged and len(pages()) > 1
    assert repo.verify() == []
    old_root = repo.latest_snapshot(space)
    old_pages = pages()
    ws = Workspace(repo, space)
    ws.write("d/f7.txt", "edited\n", now_ms=CREATED_MS + 2)
    assert repo.snapshot(space, CREATED_MS + 3) is not None
    new_pages = pages()
    gone = set(old_pages) - set(new_pages)
    assert 1 <= len(gone) <= 2 * 2, "the changed file doc's page and the index's page, nothing else"
    for cid in gone | {old_root.manifest_cid}:  # type: ignore[union-attr]
        with pytest.raises(UnknownBlock):
            repo.block(cid)
    assert all(repo.block(cid) for cid in new_pages)
    assert repo.verify() == []
    assert Workspace(repo, space).read("d/f7.txt") == "edited\n"


def test_verify_reports_a_damaged_or_missing_page() -> None:
    repo, backend, space, pages = paged_store()
    latest = repo.latest_snapshot(space)
    assert latest is not None
    victim = pages()[1]
    data = repo.block(victim)
    backend.corrupt_block(victim, data[:-1] + bytes([data[-1] ^ 1]))
    found = [(p.kind, p.subject) for p in repo.verify()]
    assert (ProblemKind.BLOCK_DAMAGED, victim) in found and (ProblemKind.MANIFEST_DAMAGED, latest.manifest_cid) in found
    with pytest.raises(CorruptionError):
        repo.manifest(space)
