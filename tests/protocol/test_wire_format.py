"""Wire format: versioned, length-prefixed canonical CBOR, decoded from untrusted bytes."""

from __future__ import annotations

import zlib

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import native
from protocol import cbor
from protocol.batch import decode_changes, pack_changes, plan_reply, scan_batch, unpack
from protocol.capabilities import MAX_REVOCATION_BYTES
from protocol.errors import LimitExceeded, OverLimit, WireError
from protocol.limits import MAX_CBOR_DEPTH, MAX_FRAME_BYTES, MAX_HEADS, MAX_RECORDS_PER_MESSAGE, MAX_TIPS_PER_BATCH
from protocol.tips import TipSignature
from protocol.wire import (
    Bye,
    Capabilities,
    Changes,
    DocHeads,
    Encoding,
    FrameDecoder,
    Heads,
    Hello,
    Message,
    Ping,
    Prune,
    Status,
    StatusRequest,
    decode_payload,
    encode_frame,
    encode_payload,
    varint,
)

HASH = b"\x11" * 32
DOC = b"\x22" * 16
STATUS = Status(b"\x33" * 32, (DocHeads(DOC, (HASH, b"\x44" * 32)),), complete=False)
TIPS = (TipSignature(0, b"\x55" * 64), TipSignature(HASH, b"\x66" * 64))
MESSAGES: list[Message] = [
    Hello((1,), b"\x77" * 32, b"\x88" * 32, STATUS),
    STATUS,
    Status(b"\x33" * 32, (), complete=True),
    StatusRequest(),
    Heads(DOC, (HASH,), want=True),
    Heads(DOC, (), want=False),
    Changes(DOC, Encoding.DEFLATE, b"compressed", (), TIPS, push=True),
    Changes(DOC, Encoding.DOCUMENT, b"saved", (HASH,), TIPS, push=False),
    Prune(b"\x99" * 32),
    Ping(),
    Bye("going away"),
    Capabilities(b"\xaa" * 32, ()),
    Capabilities(b"\xaa" * 32, (b"a record", b"\xbb" * 300)),
]


def frames_of(data: bytes) -> list:
    decoder = FrameDecoder()
    decoder.receive_data(data)
    messages = []
    while (message := decoder.next_message()) is not None:
        messages.append(message)
    return messages


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_kind_round_trips_and_re_encodes_identically(message):
    frame = encode_frame(message)
    assert frames_of(frame) == [message]
    assert encode_payload(decode_payload(encode_payload(message))) == encode_payload(message)


def test_frames_arriving_a_byte_at_a_time_decode_in_order():
    decoder = FrameDecoder()
    stream = b"".join(encode_frame(m) for m in MESSAGES)
    decoded = []
    for i in range(len(stream)):
        decoder.receive_data(stream[i : i + 1])
        while (message := decoder.next_message()) is not None:
            decoded.append(message)
    assert decoded == MESSAGES and decoder.buffered_bytes == 0


def test_an_oversized_frame_is_refused_from_its_header_and_the_stream_stays_refused():
    decoder = FrameDecoder()
    decoder.receive_data(varint(MAX_FRAME_BYTES + 1))
    with pytest.raises(LimitExceeded):
        decoder.next_message()
    decoder.receive_data(encode_frame(Ping()))
    with pytest.raises(LimitExceeded):
        decoder.next_message()


@pytest.mark.parametrize("header", [b"\x80\x00", b"\xff\xff\xff\xff\xff\x01"], ids=["non-shortest", "too-long"])
def test_malformed_length_prefixes_are_wire_errors(header):
    decoder = FrameDecoder()
    decoder.receive_data(header + b"\x00" * 8)
    with pytest.raises(WireError):
        decoder.next_message()


def test_a_truncated_frame_waits_for_the_rest():
    frame = encode_frame(MESSAGES[0])
    decoder = FrameDecoder()
    decoder.receive_data(frame[:-1])
    assert decoder.next_message() is None
    decoder.receive_data(frame[-1:])
    assert decoder.next_message() == MESSAGES[0]


def test_a_bad_payload_costs_only_its_own_frame():
    decoder = FrameDecoder()
    decoder.receive_data(varint(2) + b"\xff\xff" + encode_frame(Ping()))
    with pytest.raises(WireError):
        decoder.next_message()
    assert decoder.next_message() == Ping()


def payload(*items) -> bytes:
    return cbor2.dumps(list(items))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (payload(2, 7), "unsupported version"),
        (payload(1, 99), "unknown kind"),
        (payload(True, 7), "bool for the version"),
        (payload(1, 4, DOC, [HASH] * (MAX_HEADS + 1), False), "too many heads"),
        (payload(1, 4, DOC, [b"short"], False), "short hash"),
        (payload(1, 4, DOC[:-1], [HASH], False), "short doc id"),
        (payload(1, 4, DOC, [HASH], 1), "int for a bool"),
        (payload(1, 5, DOC, 0, b"", [HASH], [], True), "base on a non-document batch"),
        (payload(1, 5, DOC, 9, b"", [], [], True), "unknown encoding"),
        (payload(1, 5, DOC, 0, b"", [], [[0, b"\x01" * 64]] * (MAX_TIPS_PER_BATCH + 1), True), "too many tips"),
        (payload(1, 2, b"\x33" * 32, [[DOC, []], [DOC, []]], False), "a doc listed twice"),
        (payload(1, 8, "x" * 1000), "an essay of a reason"),
        (payload(1, 9, b"\xaa" * 31, []), "a short digest"),
        (payload(1, 9, b"\xaa" * 32, [b""]), "an empty record"),
        (payload(1, 9, b"\xaa" * 32, ["text"]), "a record that is not bytes"),
        (payload(1, 9, b"\xaa" * 32, b"records"), "records that are not a list"),
        (payload(1, 9, b"\xaa" * 32), "no records"),
        (payload(1, 7, 0), "a field too many"),
        (b"\x83\x01\x07", "truncated array"),
        (cbor2.dumps({"version": 1}), "a map"),
        (cbor2.dumps(cbor2.CBORTag(35, "a+")), "a tag"),
        (cbor2.dumps([1, 7, 1.5]), "a float"),
        (b"\x9f\x01\x07\xff", "indefinite length"),
        (b"\x82\x18\x01\x07", "non-canonical integer"),
        (payload(1, 7) + b"\x00", "trailing bytes"),
        (b"\x81" * 10 + b"\x01", "nested too deep"),
    ],
)
def test_invalid_payloads_are_wire_errors(data, why):
    with pytest.raises(WireError):
        decode_payload(data)


def assert_decodes_canonically_or_raises_a_wire_error(data: bytes) -> list[Message]:
    """Decode ``data`` as a stream: every frame taken re-encodes to exactly its bytes (the
    encoding is canonical, which verbatim forwarding relies on), what is not taken is buffered
    as an incomplete frame, and anything else is a WireError. Returns the messages taken."""
    decoder = FrameDecoder()
    decoder.receive_data(data)
    messages, taken = [], 0
    try:
        while (message := decoder.next_message()) is not None:
            assert encode_frame(message) == decoder.frame == data[taken : taken + len(decoder.frame)]
            messages.append(message)
            taken += len(decoder.frame)
    except WireError:
        return messages
    assert taken + decoder.buffered_bytes == len(data)
    return messages


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes_decode_canonically_or_raise_only_wire_errors(data):
    assert_decodes_canonically_or_raises_a_wire_error(data)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(MESSAGES), st.data())
def test_mutated_frames_decode_canonically_or_raise_only_wire_errors(message, data):
    frame = bytearray(encode_frame(message))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(frame) - 1))
        frame[position] = data.draw(st.integers(0, 255))
    decoded = assert_decodes_canonically_or_raises_a_wire_error(bytes(frame))
    if bytes(frame) == encode_frame(message):  # the mutations wrote the same bytes back
        assert decoded == [message]
    cut = data.draw(st.integers(0, len(frame)))
    assert_decodes_canonically_or_raises_a_wire_error(bytes(frame[:cut]))


def ids(length: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=length, max_size=length)


heads = st.lists(ids(32), max_size=4).map(tuple)
statuses = st.builds(
    Status,
    ids(32),
    st.lists(st.builds(DocHeads, ids(16), heads), max_size=3, unique_by=lambda entry: entry.doc).map(tuple),
    st.booleans(),
    st.booleans(),
)
tips = st.lists(st.builds(TipSignature, st.integers(0, 2**64 - 1) | ids(32), ids(64)), max_size=3).map(tuple)
changes = st.builds(Changes, ids(16), st.sampled_from([Encoding.CHANGES, Encoding.DEFLATE]), st.binary(max_size=64), st.just(()), tips, st.booleans())
documents = st.builds(Changes, ids(16), st.just(Encoding.DOCUMENT), st.binary(max_size=64), heads, tips, st.booleans())
messages = st.one_of(
    st.builds(Hello, st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=3).map(tuple), ids(32), ids(32), statuses),
    statuses,
    st.just(StatusRequest()),
    st.builds(Heads, ids(16), heads, st.booleans()),
    changes,
    documents,
    st.builds(Prune, ids(32)),
    st.just(Ping()),
    st.builds(Bye, st.text(max_size=200)),
    st.builds(Capabilities, ids(32), st.lists(st.binary(min_size=1, max_size=80), max_size=4).map(tuple)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(messages, min_size=1, max_size=4), st.data())
def test_generated_messages_round_trip_through_a_stream_cut_anywhere(sent, data):
    stream = b"".join(encode_frame(message) for message in sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=4)))
    decoder, received = FrameDecoder(), []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        decoder.receive_data(stream[start:end])
        while (message := decoder.next_message()) is not None:
            received.append(message)
    assert received == sent
    assert decoder.buffered_bytes == 0


cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**65), 2**65) | st.binary(max_size=40) | st.text(max_size=10) | st.floats(),
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=4), children, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(cbor_values)
def test_arbitrary_cbor_values_decode_canonically_or_raise_only_wire_errors(value):
    payload = cbor2.dumps(value)
    try:
        message = decode_payload(payload)
    except WireError:
        return
    assert encode_payload(message) == payload


def in_our_subset(value: object, depth: int = 0) -> bool:
    """What the canonical gate lets through, said as a predicate on values."""
    if isinstance(value, (bool, bytes, str)):
        return True
    if isinstance(value, int):
        return 0 <= value < 2**64
    if isinstance(value, list):
        return depth < MAX_CBOR_DEPTH and all(in_our_subset(item, depth + 1) for item in value)
    return False


@settings(max_examples=300, deadline=None)
@given(cbor_values)
def test_the_canonical_gate_accepts_the_values_of_our_subset_and_nothing_else(value):
    try:
        cbor.check_canonical_subset(cbor.dumps(value), "value")
        accepted = True
    except WireError:
        accepted = False
    assert accepted == in_our_subset(value)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_whatever_the_canonical_gate_accepts_re_encodes_to_the_same_bytes(data):
    try:
        value = cbor.loads_canonical(data, "bytes")
    except WireError:
        return  # outside the subset, or (text that is not UTF-8) refused by the decoder
    assert cbor.dumps(value) == data


# ----- batches -----


def raw_changes(count: int) -> list[bytes]:
    document = native.Document(b"\x01" * 32)
    obj = document.put_object(native.ROOT, "text", "text")
    for i in range(count):
        document.splice_text(obj, 0, 0, str(i))
        document.commit()
    return document.get_changes([])


@pytest.mark.parametrize("count", [1, 50])
def test_a_batch_is_packed_plain_or_deflated_whichever_is_smaller(count):
    changes = raw_changes(count)
    encoding, data = pack_changes(changes)
    plain = cbor.dumps(changes)
    assert len(data) == min(len(plain), len(zlib.compress(plain, 6)))
    assert unpack(scan_batch(encoding, data), ()) == changes


def test_a_large_reply_is_sent_as_a_saved_document_and_unpacks_to_what_was_missing():
    document = native.Document(b"\x01" * 32)
    obj = document.put_object(native.ROOT, "text", "text")
    document.commit()
    base = document.heads()
    for _ in range(500):
        document.splice_text(obj, 0, 0, "x")
        document.commit()
    missing = document.get_changes(base)
    [(encoding, data, count)] = plan_reply(missing, [c.op_count for c in decode_changes(missing)], document.save)
    assert encoding is Encoding.DOCUMENT and count == len(missing)
    assert len(data) < 30 * len(missing)
    assert scan_batch(encoding, data).ops == 501  # the text object and every insert, from the bytes alone
    assert unpack(scan_batch(encoding, data), base) == missing
    assert [c.hash for c in decode_changes(unpack(scan_batch(encoding, data), base))] == [c.hash for c in decode_changes(missing)]


def test_a_document_batch_whose_base_is_not_in_it_is_refused():
    document = native.Document(b"\x01" * 32)
    document.put(native.ROOT, "k", 1)
    document.commit()
    with pytest.raises(WireError):
        unpack(scan_batch(Encoding.DOCUMENT, document.save()), (b"\x09" * 32,))
    with pytest.raises(WireError):
        unpack(scan_batch(Encoding.DOCUMENT, b"not a document"), ())


def test_a_deflate_bomb_is_refused(monkeypatch):
    monkeypatch.setattr("protocol.batch.MAX_INFLATED_BATCH_BYTES", 1000)
    with pytest.raises(LimitExceeded):
        scan_batch(Encoding.DEFLATE, zlib.compress(cbor.dumps([b"\x00" * 5000])))


@pytest.mark.parametrize(
    "data", [b"garbage", zlib.compress(b"garbage"), zlib.compress(cbor.dumps([b"x"]))[:-3], zlib.compress(cbor.dumps([1]))]
)
def test_malformed_deflated_batches_are_wire_errors(data):
    with pytest.raises(WireError):
        decode_changes(unpack(scan_batch(Encoding.DEFLATE, data), ()))


def test_an_undecodable_change_is_a_wire_error():
    with pytest.raises(WireError):
        decode_changes([raw_changes(1)[0][:-1]])


def test_a_capabilities_message_over_its_record_count_is_over_a_limit_not_garbage():
    with pytest.raises(OverLimit):
        decode_payload(payload(1, 9, b"\xaa" * 32, [b"r"] * (MAX_RECORDS_PER_MESSAGE + 1)))
    assert decode_payload(payload(1, 9, b"\xaa" * 32, [b"r"] * MAX_RECORDS_PER_MESSAGE)) == Capabilities(
        b"\xaa" * 32, (b"r",) * MAX_RECORDS_PER_MESSAGE
    )


def test_a_capability_record_larger_than_the_largest_revocation_is_refused():
    with pytest.raises(WireError):
        decode_payload(payload(1, 9, b"\xaa" * 32, [b"r" * (MAX_REVOCATION_BYTES + 1)]))
