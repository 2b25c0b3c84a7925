"""An index edit's reader catches up from what the edit wrote (``IndexEdit.written``) instead of
reading every added entry back: whatever one edit does, the entries it leaves are exactly those
a fresh read of the committed index finds."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.identity import Identity
from protocol.space import INDEX_DOC_ID, new_doc_id
from store.repo import Repo
from store.tree import BINARY, DIR, FILE, ROOT_ID, TEXT, IndexReader, file_id_of
from store.workspace import Workspace
from store_helpers import NOW_MS

# One step of an edit: add a directory or a file under the root or an earlier directory, then
# perhaps move, remove, set the mode of or restore an entry added earlier in the same edit.
STEP = st.tuples(
    st.sampled_from(["dir", "execdir", "text", "binary", "exec", "move", "remove", "mode", "restore"]),
    st.integers(0, 30),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=0, max_size=6),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=st.lists(STEP, max_size=6), steps=st.lists(STEP, min_size=1, max_size=25))
def test_the_entries_after_an_edit_are_what_a_fresh_read_finds(before: list[tuple[str, int, str]], steps: list[tuple[str, int, str]]) -> None:
    repo = Repo.open(None, Identity(bytes([0xA1]) * 32))
    ws = Workspace(repo, repo.create_space("index", NOW_MS).space_id)
    dirs, added = [ROOT_ID], []
    for number, edit_steps in enumerate((before, steps)):
        ws.tree()  # the reader is at the heads the edit starts from
        with ws.editing_index("edit", NOW_MS + number) as edit:
            for action, pick, name in edit_steps:
                name = name or "n"  # an empty name is malformed: read back as no entry, left out of written
                if action in ("dir", "execdir", "text", "binary", "exec") or not added:
                    file_id = file_id_of(new_doc_id())
                    kind = DIR if action in ("dir", "execdir") else FILE
                    encoding = None if kind == DIR else BINARY if action == "binary" else TEXT
                    edit.add(file_id, kind, encoding, dirs[pick % len(dirs)], f"{name}{len(added)}", executable=action in ("exec", "execdir"))  # a directory has no mode bit
                    added.append(file_id)
                    if kind == DIR:
                        dirs.append(file_id)
                    continue
                target = added[pick % len(added)]
                if action == "move":
                    edit.move(target, dirs[pick % len(dirs)], f"moved{pick}")
                elif action == "remove":
                    edit.remove(target, [])
                elif action == "mode":
                    edit.set_executable(target, pick % 2 == 0)
                else:
                    edit.restore(target)
        index = ws.document(INDEX_DOC_ID)
        assert ws.entries() == IndexReader().entries(index, index.heads())
