"""Document API of the binding: persistence, forks, edits, reads now and at heads, diffs.

Conventions under test: object ids are strings (ROOT is "_root"), hashes and actor ids are bytes,
text positions count Unicode code points like Python `str`.
"""

from __future__ import annotations

import pytest

from native import ROOT, Document, InvalidHash, InvalidObjectId, InvalidOperation, ObjectRef, decode_change
from tests.native.helpers import ALICE, BOB, CAROL, apply_text_patches, shared_doc


def last_change(doc: Document):
    return decode_change(doc.get_last_local_change())


# ----- identity and persistence -----


def test_actor_is_the_bytes_given_or_a_fresh_random_id() -> None:
    """Changes are attributed to the actor, so it must be exactly what the caller chose."""
    alice = Document(ALICE)
    assert alice.actor == ALICE
    anonymous = [Document().actor for _ in range(2)]
    assert anonymous[0] != anonymous[1] and all(len(a) == 16 for a in anonymous)


def test_set_actor_stamps_later_changes_with_the_new_actor() -> None:
    doc = Document(ALICE)
    doc.put(ROOT, "by", "alice")
    doc.commit()
    doc.set_actor(BOB)
    doc.put(ROOT, "by", "bob")
    doc.commit()
    assert doc.actor == BOB and last_change(doc).actor == BOB
    assert [decode_change(c).actor for c in doc.get_changes()] == [ALICE, BOB]


def test_save_then_load_restores_content_heads_and_takes_a_new_actor() -> None:
    alice, _text = shared_doc()
    alice.put(ROOT, "blob", b"\x00\xff\x10")
    alice.commit()
    restored = Document.load(alice.save(), actor=BOB)
    assert restored.actor == BOB
    assert restored.heads() == alice.heads()
    assert restored.hydrate() == {"text": "hello world", "blob": b"\x00\xff\x10"}
    assert Document.load(alice.save()).actor != ALICE, "a reloaded replica must not reuse the writer's actor"


def test_save_incremental_carries_only_what_is_new_since_the_last_save() -> None:
    """A store appends save_incremental() chunks to one file; the reader replays them with load_incremental."""
    alice, text = shared_doc()
    snapshot = alice.save()
    alice.splice_text(text, 5, 0, ",")
    alice.commit()
    chunk = alice.save_incremental()
    assert alice.save_incremental() == b"", "nothing new since the previous chunk"

    bob = Document.load(snapshot, actor=BOB)
    assert bob.load_incremental(chunk) == 1  # ops applied: the comma
    assert bob.text(text) == "hello, world" and bob.heads() == alice.heads()
    assert bob.load_incremental(chunk) == 0, "replaying a chunk is harmless"
    assert Document.load(snapshot + chunk).heads() == alice.heads(), "a file of concatenated chunks loads"


def test_save_after_heads_holds_the_changes_a_peer_at_those_heads_lacks() -> None:
    alice, text = shared_doc()
    old_heads = alice.heads()
    bob = Document.load(alice.save(), actor=BOB)
    alice.splice_text(text, 0, 1, "H")
    alice.commit()
    alice.update_text(text, "Hello world!")
    alice.commit()
    bob.load_incremental(alice.save_after(old_heads))
    assert bob.text(text) == "Hello world!" and bob.heads() == alice.heads()
    assert alice.save_after(alice.heads()) == b""


def test_fork_is_an_independent_copy() -> None:
    alice, text = shared_doc()
    bob = alice.fork(actor=BOB)
    assert bob.actor == BOB and alice.fork().actor not in (ALICE, BOB)
    bob.splice_text(text, 0, 5, "howdy")
    bob.commit()
    assert alice.text(text) == "hello world" and bob.text(text) == "howdy world"


def test_fork_at_heads_starts_from_that_past_state() -> None:
    alice, text = shared_doc()
    first = alice.heads()
    alice.splice_text(text, 0, 5, "goodbye")
    alice.commit()
    carol = alice.fork_at(first, actor=CAROL)
    assert carol.actor == CAROL and carol.heads() == first and carol.text(text) == "hello world"
    carol.splice_text(text, 11, 0, "!")
    carol.commit()
    alice.apply_changes(carol.get_changes(first))
    assert alice.text(text) == "goodbye world!", "a fork from the past merges back like a concurrent edit"
    assert alice.fork_at([]).hydrate() == {}


def test_heads_track_commits_and_merges() -> None:
    alice = Document(ALICE)
    assert alice.heads() == []
    alice.put(ROOT, "x", 1)
    first = alice.commit()
    assert alice.heads() == [first]
    bob = alice.fork(BOB)
    alice.put(ROOT, "x", 2)
    bob.put(ROOT, "x", 3)
    a2, b2 = alice.commit(), bob.commit()
    alice.apply_changes(bob.get_changes([first]))
    assert sorted(alice.heads()) == sorted([a2, b2])
    merge = alice.empty_change("merge")
    assert alice.heads() == [merge]
    assert sorted(decode_change(alice.get_change_by_hash(merge)).deps) == sorted([a2, b2])


# ----- maps and scalar values -----

SCALARS = [
    None,
    True,
    False,
    0,
    -7,
    2**63 - 1,
    -(2**63),
    2**63,
    2**64 - 1,
    1.5,
    -0.25,
    "",
    "héllo 🎉",
    b"",
    b"\x00\xff",
]


@pytest.mark.parametrize("value", SCALARS, ids=repr)
def test_scalars_round_trip_with_their_python_type(value: object) -> None:
    """bool must stay bool (not 1), unsigned 64-bit ints must survive, bytes must stay bytes."""
    alice = Document(ALICE)
    alice.put(ROOT, "v", value)
    alice.commit()
    for doc in (alice, Document.load(alice.save())):
        got = doc.get(ROOT, "v")
        assert got == value and type(got) is type(value)


def test_map_put_get_delete_keys_length() -> None:
    alice = Document(ALICE)
    assert alice.object_type(ROOT) == "map"
    alice.put(ROOT, "title", "draft")
    alice.put(ROOT, "count", 1)
    alice.put(ROOT, "count", 2)
    assert alice.get(ROOT, "count") == 2 and alice.get(ROOT, "missing") is None
    assert alice.keys(ROOT) == ["count", "title"] and alice.length(ROOT) == 2
    alice.delete(ROOT, "title")
    alice.delete(ROOT, "never-there")
    assert alice.keys(ROOT) == ["count"] and alice.get(ROOT, "title") is None
    assert alice.get_all(ROOT, "count") == [2]


def test_concurrent_puts_conflict_and_every_replica_picks_the_same_winner() -> None:
    alice = Document(ALICE)
    bob = Document(BOB)
    alice.put(ROOT, "color", "red")
    bob.put(ROOT, "color", "blue")
    alice.commit(), bob.commit()
    alice.apply_changes(bob.get_changes())
    bob.apply_changes(alice.get_changes())
    for doc in (alice, bob):
        assert sorted(doc.get_all(ROOT, "color")) == ["blue", "red"]
        assert doc.get(ROOT, "color") == doc.get_all(ROOT, "color")[-1], "the winner is last"
    assert alice.get(ROOT, "color") == bob.get(ROOT, "color")


# ----- nested objects -----


def test_nested_map_list_and_text_build_a_tree() -> None:
    alice = Document(ALICE)
    meta = alice.put_object(ROOT, "meta", "map")
    todo = alice.put_object(ROOT, "todo", "list")
    notes = alice.put_object(ROOT, "notes", "text")
    alice.put(meta, "owner", "alice")
    alice.insert(todo, 0, "write tests")
    alice.insert(todo, 0, "read the code")
    item = alice.insert_object(todo, 2, "map")
    alice.put(item, "done", False)
    sub = alice.put_object(item, "steps", "list")
    alice.insert(sub, 0, 1)
    alice.put(todo, 1, "write more tests")
    alice.splice_text(notes, 0, 0, "nested")
    alice.commit()

    assert [alice.object_type(o) for o in (meta, todo, notes, item, sub)] == ["map", "list", "text", "map", "list"]
    refs = [alice.get(ROOT, key) for key in ("meta", "todo", "notes")] + [alice.get(todo, 2)]
    assert all(isinstance(r, ObjectRef) for r in refs)
    assert [(r.kind, r.id) for r in refs] == [("map", meta), ("list", todo), ("text", notes), ("map", item)]
    assert len({alice.get(todo, 2), alice.get(todo, 2)}) == 1, "refs compare and hash by value"
    assert alice.length(todo) == 3 and alice.get(todo, 0) == "read the code"
    assert alice.hydrate() == {
        "meta": {"owner": "alice"},
        "todo": ["read the code", "write more tests", {"done": False, "steps": [1]}],
        "notes": "nested",
    }
    assert alice.hydrate(todo) == ["read the code", "write more tests", {"done": False, "steps": [1]}]
    alice.delete(todo, 0)
    assert alice.get(todo, 0) == "write more tests" and alice.length(todo) == 2


# ----- text -----


def test_splice_text_counts_code_points_like_python() -> None:
    """An editor computes positions with Python string indexing; emoji and accents are one position each."""
    alice, text = shared_doc(text="héllo 🎉 world")
    mirror = "héllo 🎉 world"
    for pos, delete, insert in [(6, 1, "🚀🚀"), (0, 1, "H"), (len("héllo 🚀🚀 world"), 0, "!"), (1, 4, "")]:
        alice.splice_text(text, pos, delete, insert)
        mirror = mirror[:pos] + insert + mirror[pos + delete :]
        assert alice.text(text) == mirror and alice.length(text) == len(mirror)
    assert alice.get(text, 2) == mirror[2], "get on text reads one character"
    alice.splice_text(text, 3, -2)
    assert alice.text(text) == mirror[:1] + mirror[3:], "a negative count deletes before pos, as Automerge does"


def test_update_text_edits_minimally_so_concurrent_edits_survive() -> None:
    """update_text from a whole new buffer must not clobber a peer's concurrent insert."""
    alice, text = shared_doc()
    bob = alice.fork(BOB)
    alice.update_text(text, "hello brave world")
    bob.splice_text(text, 11, 0, "!")
    alice.commit(), bob.commit()
    alice.apply_changes(bob.get_changes())
    assert alice.text(text) == "hello brave world!"


# ----- transactions -----


def test_commit_returns_the_change_hash_with_message_and_time() -> None:
    alice = Document(ALICE)
    alice.put(ROOT, "x", 1)
    alice.put(ROOT, "y", 2)
    assert alice.pending_ops() == 2
    hash_ = alice.commit("set x and y", time=1_700_000_000)
    change = decode_change(alice.get_change_by_hash(hash_))
    assert (change.hash, change.message, change.time, change.op_count) == (hash_, "set x and y", 1_700_000_000, 2)
    assert alice.pending_ops() == 0
    assert alice.commit("nothing") is None, "an empty transaction makes no change"


def test_empty_change_records_a_message_without_operations() -> None:
    alice, _ = shared_doc()
    hash_ = alice.empty_change("checkpoint", time=42)
    change = decode_change(alice.get_last_local_change())
    assert (change.hash, change.op_count, change.message, change.time) == (hash_, 0, "checkpoint", 42)


def test_rollback_discards_pending_operations_only() -> None:
    alice, text = shared_doc()
    heads = alice.heads()
    alice.splice_text(text, 0, 5, "bye")
    alice.put(ROOT, "oops", True)
    pending = alice.pending_ops()
    assert pending > 0 and alice.rollback() == pending
    assert alice.pending_ops() == 0 and alice.heads() == heads
    assert alice.hydrate() == {"text": "hello world"}


# ----- reads at heads -----


def test_reads_at_heads_see_the_past_state() -> None:
    alice, text = shared_doc()
    todo = alice.put_object(ROOT, "todo", "list")
    alice.insert(todo, 0, "a")
    alice.put(ROOT, "status", "draft")
    alice.commit()
    past = alice.heads()
    alice.splice_text(text, 0, 5, "bye")
    alice.insert(todo, 1, "b")
    alice.put(ROOT, "status", "final")
    alice.put(ROOT, "extra", 1)
    alice.commit()

    assert alice.text(text, heads=past) == "hello world"
    assert alice.get(ROOT, "status", heads=past) == "draft"
    assert alice.get_all(ROOT, "status", heads=past) == ["draft"]
    assert alice.keys(ROOT, heads=past) == ["status", "text", "todo"]
    assert alice.length(todo, heads=past) == 1
    assert alice.hydrate(heads=past) == {"text": "hello world", "todo": ["a"], "status": "draft"}
    assert alice.hydrate(todo, heads=tuple(past)) == ["a"], "heads may be any sequence"
    assert alice.get(ROOT, "todo", heads=[]) is None, "no heads is the empty document"


def test_a_read_at_heads_leaves_the_pending_transaction_open() -> None:
    """Looking at history mid-edit must not commit the half-done edit under no message."""
    alice, text = shared_doc()
    past = alice.heads()
    alice.splice_text(text, 0, 1, "J")
    assert alice.text(text, heads=past) == "hello world"
    assert alice.pending_ops() > 0
    alice.commit("capitalise")
    assert last_change(alice).message == "capitalise"


# ----- isolation: edits at old heads -----


def bob_edits_after(text: str, position: int, insert: str) -> tuple[Document, str, list[bytes], Document]:
    """Alice's doc holding ``text``, its heads then (a client's base), and Bob's fork with one
    splice Alice has not got."""
    alice, obj = shared_doc(text=text)
    base = alice.heads()
    bob = alice.fork(BOB)
    bob.splice_text(obj, position, 0, insert)
    bob.commit()
    return alice, obj, base, bob


def test_a_change_made_while_isolated_depends_on_exactly_the_isolated_heads() -> None:
    """An editor that read the text at `base` edits there; the merge places the edit."""
    alice, text, base, bob = bob_edits_after("hello world", 0, "oh, ")
    alice.apply_changes(bob.get_changes(base))

    alice.isolate(base)
    assert alice.text(text) == "hello world" and alice.heads() == base  # reads see the text at base
    alice.splice_text(text, 5, 0, ",")  # position 5 of "hello world"
    change = alice.commit("at base")
    assert change is not None
    made = decode_change(alice.get_change_by_hash(change))
    assert made.deps == base and made.actor == ALICE
    assert alice.heads() == [change] and alice.text(text) == "hello, world"  # still isolated: at [change]

    alice.integrate()
    assert sorted(alice.heads()) == sorted([change, *bob.heads()])
    assert alice.text(text) == "oh, hello, world"
    bob.apply_changes(alice.get_changes(bob.heads()))
    assert bob.text(text) == "oh, hello, world"


def test_changes_applied_while_isolated_are_kept_but_seen_only_after_integrate() -> None:
    alice, text, base, bob = bob_edits_after("abc", 3, "d")
    alice.isolate(base)
    alice.apply_changes(bob.get_changes(base))
    assert alice.text(text) == "abc" and alice.heads() == base
    alice.integrate()
    assert alice.text(text) == "abcd" and alice.heads() == bob.heads()


def test_isolating_at_unknown_heads_is_refused_and_changes_nothing() -> None:
    alice, text = shared_doc()
    heads = alice.heads()
    for bad in ([b"\x01" * 32], [b"short"]):
        with pytest.raises(InvalidHash):
            alice.isolate(bad)
        assert alice.heads() == heads and alice.text(text) == "hello world"
    alice.integrate()  # not isolated: a no-op
    assert alice.heads() == heads


def test_an_isolated_edit_behind_the_actors_own_newest_change_gets_a_derived_actor() -> None:
    """Automerge keeps an actor's changes in one chain: why the store isolates at the base plus
    its own newest change (store/workspace.py _on_own_chain)."""
    alice, text = shared_doc(text="abc")
    base = alice.heads()
    alice.splice_text(text, 0, 0, "x")
    newest = alice.commit()
    alice.isolate(base)
    alice.splice_text(text, 3, 0, "y")
    assert decode_change(alice.get_change_by_hash(alice.commit())).actor != ALICE
    alice.integrate()
    alice.isolate([newest])
    alice.splice_text(text, 0, 0, "z")
    assert decode_change(alice.get_change_by_hash(alice.commit())).actor == ALICE


# ----- diff -----


def test_a_cursor_stays_on_its_character_while_text_is_inserted_and_deleted_before_it() -> None:
    doc, text = shared_doc()
    cursor = doc.get_cursor(text, 6)  # the "w" of "hello world"
    doc.splice_text(text, 0, 0, "oh, ")
    doc.commit()
    assert doc.get_cursor_position(text, cursor) == 10 and doc.text(text)[10] == "w"
    doc.splice_text(text, 0, 6, "")  # "oh, he" gone
    doc.commit()
    assert doc.text(text) == "llo world" and doc.get_cursor_position(text, cursor) == 4


def test_a_cursor_made_at_old_heads_follows_its_character_across_a_merge() -> None:
    """Alice's cursor, made in the text she saw, lands on the same character in Bob's copy after
    a concurrent edit of his, and resolves at the old heads too."""
    alice, text, base, bob = bob_edits_after("hello world", 0, "oh, ")
    alice.splice_text(text, 5, 0, ",")
    alice.commit()
    cursor = alice.get_cursor(text, 7, base)  # "o" of "world" at base (alice's "," came after)
    assert alice.get_cursor_position(text, cursor, base) == 7
    bob.apply_changes(alice.get_changes(base))
    assert bob.text(text) == "oh, hello, world"
    assert bob.get_cursor_position(text, cursor) == 12 and bob.text(text)[12] == "o"


def test_a_deleted_characters_cursor_moves_to_the_next_one_and_the_end_stays_at_the_end() -> None:
    doc, text = shared_doc()
    on_w, at_end = doc.get_cursor(text, 6), doc.get_cursor(text, len("hello world"))
    assert at_end == "e"
    doc.splice_text(text, 6, 1, "")
    doc.splice_text(text, doc.length(text), 0, "!")
    doc.commit()
    assert doc.text(text) == "hello orld!"
    assert doc.get_cursor_position(text, on_w) == 6 and doc.get_cursor_position(text, at_end) == 11


def test_bad_cursors_and_positions_are_refused_with_typed_errors() -> None:
    doc, text = shared_doc()
    with pytest.raises(InvalidOperation):
        doc.get_cursor(text, 12)  # past the end
    with pytest.raises(InvalidHash):
        doc.get_cursor(text, 0, [b"\x01" * 32])
    for bad in ("", "zz", "\u00e9\u00e9", "1@zz", "99@" + ALICE.hex(), "1@" + BOB.hex()):  # the last two: no such op
        with pytest.raises(InvalidOperation):
            doc.get_cursor_position(text, bad)
    with pytest.raises(InvalidObjectId):
        doc.get_cursor_position("7@" + ALICE.hex(), doc.get_cursor(text, 0))


def test_diff_patches_let_an_editor_follow_local_and_merged_edits() -> None:
    """An editor keeps its own buffer; diff(before, after) patches must transform it into text(after)."""
    alice, text = shared_doc(text="the quick brown fox")
    bob = alice.fork(BOB)
    buffer, seen = alice.text(text), alice.heads()

    alice.splice_text(text, 4, 6, "slow 🐢 ")
    alice.commit()
    bob.splice_text(text, 0, 3, "A")
    bob.splice_text(text, len(bob.text(text)), 0, " jumps")
    bob.commit()
    alice.apply_changes(bob.get_changes())
    alice.update_text(text, alice.text(text).replace("brown", "red"))
    alice.commit()

    patches = alice.diff(seen, alice.heads())
    assert {p["action"] for p in patches} == {"splice_text", "del_seq"}
    assert all(p["path"] == ["text"] for p in patches)
    buffer = apply_text_patches(buffer, patches, text)
    assert buffer == alice.text(text) == "A slow 🐢 red fox jumps"
    assert apply_text_patches(buffer, alice.diff(alice.heads(), seen), text) == "the quick brown fox", (
        "diff backwards undoes"
    )


def test_a_diff_from_the_diff_cursor_equals_the_full_scan_and_follows_merges() -> None:
    """With the cursor at the editor's last heads, Automerge answers from its patch log; the
    patches must be the ones a scan gives, through local edits and merged remote ones."""
    alice, text = shared_doc(text="the quick brown fox")
    bob = alice.fork(BOB)
    assert alice.diff_cursor() == []
    alice.update_diff_cursor()
    seen, buffer = alice.heads(), alice.text(text)
    assert alice.diff_cursor() == seen
    for round_ in range(3):
        alice.splice_text(text, 4, 1, "Q")
        alice.commit()
        bob.splice_text(text, len(bob.text(text)), 0, f" {round_}")
        bob.commit()
        alice.apply_changes(bob.get_changes(seen))
        indexed = alice.diff(seen, alice.heads())
        assert indexed == alice.fork().diff(seen, alice.heads())  # a fork has no cursor: a scan
        buffer = apply_text_patches(buffer, indexed, text)
        assert buffer == alice.text(text)
        alice.update_diff_cursor()
        seen = alice.heads()


def test_diff_reports_map_puts_deletes_and_new_objects_with_paths() -> None:
    alice = Document(ALICE)
    alice.put(ROOT, "gone", 1)
    alice.commit()
    before = alice.heads()
    meta = alice.put_object(ROOT, "meta", "map")
    alice.put(meta, "owner", "alice")
    alice.delete(ROOT, "gone")
    alice.commit()
    patches = {(p["action"], p["key"]): p for p in alice.diff(before, alice.heads())}
    assert set(patches) == {("put_map", "meta"), ("put_map", "owner"), ("del_map", "gone")}
    assert patches[("put_map", "meta")]["value"] == alice.get(ROOT, "meta")
    assert patches[("put_map", "owner")]["path"] == ["meta"] and patches[("put_map", "owner")]["obj"] == meta
    assert patches[("put_map", "owner")]["value"] == "alice" and not patches[("put_map", "owner")]["conflict"]
    assert alice.diff(before, before) == []


# ----- introspection -----


def test_stats_count_ops_changes_and_actors() -> None:
    alice, _text = shared_doc()
    bob = alice.fork(BOB)
    bob.put(ROOT, "by", "bob")
    bob.commit()
    alice.apply_changes(bob.get_changes())
    assert alice.stats() == {"ops": 1 + len("hello world") + 1, "changes": 2, "actors": 2}


def test_reprs_name_the_essentials() -> None:
    alice, text = shared_doc()
    assert "616c696365" in repr(alice) and "heads=1" in repr(alice)
    assert repr(alice.get(ROOT, "text")) == f'ObjectRef(kind="text", id="{text}")'
    assert "create text" in repr(last_change(alice))
