"""CIDs exactly as IPFS computes them, checked against CIDs kubo prints for the same bytes."""

from __future__ import annotations

import pytest

from protocol import cbor
from store.blocks import (
    CODEC_DAG_CBOR,
    MAX_BLOCK_BYTES,
    Block,
    cid_for,
    cid_from_text,
    cid_text,
    split_raw,
)
from store.errors import CorruptionError, InvalidInput

# `echo -n 'hello world' | ipfs block put --cid-codec raw` (a well-known CID).
HELLO_WORLD_RAW = "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
# `ipfs dag put` of the empty map {} as dag-cbor (the bytes a0).
EMPTY_MAP_DAG_CBOR = "bafyreigbtj4x7ip5legnfznufuopl4sg4knzc2cof6duas4b3q2fy6swua"


def test_a_raw_block_has_the_cid_ipfs_gives_the_same_bytes() -> None:
    assert cid_text(Block.raw(b"hello world").cid) == HELLO_WORLD_RAW


def test_a_dag_cbor_block_has_the_cid_ipfs_gives_the_same_value() -> None:
    assert cid_text(Block.dag_cbor(cbor.dumps({})).cid) == EMPTY_MAP_DAG_CBOR


def test_the_text_form_round_trips_and_bad_text_is_refused() -> None:
    assert cid_text(cid_from_text(HELLO_WORLD_RAW)) == HELLO_WORLD_RAW
    with pytest.raises(InvalidInput, match="base32"):
        cid_from_text("Qmabc")
    with pytest.raises(InvalidInput):
        cid_from_text("b" + "a" * 10)
    with pytest.raises(InvalidInput, match="codec"):
        cid_for(0x70, b"")


def test_a_block_whose_bytes_changed_fails_its_check() -> None:
    block = Block.raw(b"hello world")
    block.check()
    with pytest.raises(CorruptionError, match=HELLO_WORLD_RAW):
        Block(block.cid, b"hello World").check()
    assert Block.dag_cbor(b"\xa0").cid == cid_for(CODEC_DAG_CBOR, b"\xa0")


def test_split_raw_cuts_at_the_block_size_and_keeps_every_byte() -> None:
    data = bytes(range(256)) * (MAX_BLOCK_BYTES // 256) + b"tail"
    blocks = split_raw(data)
    assert [len(b.data) for b in blocks] == [MAX_BLOCK_BYTES, 4]
    assert b"".join(b.data for b in blocks) == data
    assert len(split_raw(b"")) == 1
