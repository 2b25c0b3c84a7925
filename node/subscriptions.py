"""Subscriptions of API clients: what each connection watches, and the notifications it gets.

Four kinds, each answered first with the current state, then kept current by notifications:

- ``file``: one file, followed across renames by its stable file id. ``file.changed`` carries the
  edits that take the client's copy from the heads it has to the new heads — for a text file a
  list of ``{index, delete, insert}`` splices in order (Unicode code points), which an editor
  applies to its buffer as they come; when the change is not a splice of the same text (a binary
  file, or the text object itself replaced by a concurrent create) the whole new content instead.
  A rename or removal is sent too, with the new path (null once removed).
- ``tree``: one space's tree. ``tree.changed`` lists what was added, removed, moved or modified
  since the client's last notification.
- ``peers``: ``peers.changed`` when a peer connects or disconnects.
- ``presence``: ``presence.changed`` when a cursor or selection in the space moves or goes.

Besides these, a connection's ``Follower``s: objects that keep a client's copy of one doc and
compute its notifications themselves (the editor protocol's open documents, ``node/editor.py``),
named by a key per connection and space. They are flushed with the space like its file
subscriptions, and go with their connection too.

Store writes do not notify anyone inside ``Repo.commit``: the bus listener only marks the space
dirty and calls ``wake``; the daemon then calls ``flush`` from a task of its own, which computes
each change once per distinct starting point and fans it out. Many writes between two flushes
become one notification per subscription, and a subscription always starts from what its client
has, so coalescing never skips or repeats an edit.

Each subscription belongs to a ``Sink`` (one connection); ``drop`` ends all of a sink's
subscriptions and the presence it set, when it disconnects. Nothing here imports trio.

A doc the store or Automerge cannot read (damaged bytes, a poisoned history) fails only what
depends on it: the subscriptions of that file, or of that space's tree, miss this notification
(logged, counted in ``failures``) and stay where they were, so they catch up if it is repaired;
every other subscription and space is flushed as usual.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import native
from node.api_json import content_json, peer_json, presence_json
from node.events import PeerEvent, Presence, PresenceEvent, PresenceKey
from node.logs import event
from node.services import NodeServices
from protocol.space import INDEX_DOC_ID
from store.errors import StoreError
from store.repo import StoreEvent
from store.tree import DIR, FILE, TEXT, Tree, doc_id_of, text_object
from store.workspace import Workspace
from store.workspace_errors import ContentUnavailable, IsADirectory

Json = dict[str, Any]

# What a doc that cannot be read raises: the store's own errors, and Automerge's from a document
# already loaded (a diff over heads it refuses).
UNREADABLE = (StoreError, native.AutomergeError)

log = logging.getLogger("distspace.api")


class Sink(Protocol):
    """Where a connection's notifications go; must not block (it queues or cuts the client off)."""

    def notify(self, method: str, params: Json) -> None: ...


class Follower(Protocol):
    """A client's copy of one doc, kept current by a notification it computes itself."""

    def catch_up(self, ws: Workspace) -> tuple[str, Json] | None:
        """The notification (method, params) that takes the client's copy to the doc now, which
        it then takes as the client's; None when the client has the doc as it is."""
        ...


@dataclass(slots=True)
class _Subscription:
    id: int
    sink: Sink
    kind: str
    group: dict[int, _Subscription]  # the index it is filed under, so that cancel finds it
    space: bytes | None = None
    file_id: str | None = None
    path: str | None = None  # file: where the client last saw it
    heads: list[bytes] | None = None  # file: the content heads the client has
    version: int = 0  # tree: the space version the client last saw
    follower: Follower | None = None  # doc: what computes its notifications (path: its key)


def _counts_view(_sink: Sink | None, presence: Presence) -> Json:
    """Positions that are counts as they are; Automerge cursors (which need the doc) as null."""
    counts = [p for p in presence.selection or () if isinstance(p, int)]
    cursor = presence.cursor if isinstance(presence.cursor, int) else None
    return presence_json(presence, cursor, counts if len(counts) == 2 else None, None)


class Subscriptions:
    """Every subscription of every connected client, and the fan-out of node events to them."""

    def __init__(self, services: NodeServices) -> None:
        self._services = services
        self._ids = itertools.count(1)
        self._all: dict[int, _Subscription] = {}
        self._by_space: dict[bytes, dict[int, _Subscription]] = {}  # file and tree subscriptions
        self._by_kind: dict[str, dict[int, _Subscription]] = {"peers": {}, "presence": {}}
        self._followers: dict[tuple[Sink, bytes, str], _Subscription] = {}  # (connection, space, key)
        self._presence_of: dict[Sink, set[PresenceKey]] = {}
        self._dirty: set[bytes] = set()
        self.failures = 0  # notifications not sent because their doc could not be read
        self.wake: Callable[[], None] = lambda: None  # set by the daemon: schedule a flush
        # Set by the API server (node/presence_anchors.py's, which resolves cursors in the doc):
        # how a presence entry looks to one connection. By default positions only as counts.
        self.presence_view: Callable[[Sink | None, Presence], Json] = _counts_view
        self._unlisten = [
            services.bus.listen(StoreEvent, self._on_store_event),
            services.bus.listen(PeerEvent, self._on_peer_event),
            services.bus.listen(PresenceEvent, self._on_presence_event),
        ]

    def close(self) -> None:
        for unlisten in self._unlisten:
            unlisten()

    def __len__(self) -> int:
        return len(self._all)

    # ----- subscribing -----

    def file(self, sink: Sink, ws: Workspace, path: str) -> Json:
        """Watch one file; returns its content now, the base the edits apply to."""
        node = ws.node(path)
        if node.kind == DIR:
            raise IsADirectory(f"{path!r} is a directory; subscribe to the tree to watch it")
        heads = ws.repo.heads(ws.space, node.doc_id)
        subscription = self._add(sink, "file", ws.space, file_id=node.file_id, path=node.path, heads=heads)
        return {
            "subscription": subscription.id,
            "space": ws.space.hex(),
            "file_id": node.file_id,
            "path": node.path,
            "version": ws.version(),
            "heads": _hexes(heads),
            **_content_or_pending(ws, node.path, node.encoding),
        }

    def tree(self, sink: Sink, ws: Workspace) -> Json:
        version = ws.version()
        subscription = self._add(sink, "tree", ws.space, version=version)
        return {"subscription": subscription.id, "space": ws.space.hex(), "version": version}

    def peers(self, sink: Sink) -> Json:
        subscription = self._add(sink, "peers")
        return {"subscription": subscription.id, "peers": [peer_json(p) for p in self._services.peers.list()]}

    def presence(self, sink: Sink, space: bytes) -> Json:
        subscription = self._add(sink, "presence", space)
        entries = self._services.presence.entries(space)
        return {"subscription": subscription.id, "space": space.hex(), "presence": [self.presence_view(sink, p) for p in entries]}

    def cancel(self, sink: Sink, subscription_id: int) -> bool:
        """End one of ``sink``'s subscriptions; False if it has none by that id."""
        subscription = self._all.get(subscription_id)
        if subscription is None or subscription.sink is not sink:
            return False
        del self._all[subscription_id]
        del subscription.group[subscription_id]
        if subscription.follower is not None:
            assert subscription.space is not None and subscription.path is not None
            del self._followers[(sink, subscription.space, subscription.path)]
        return True

    def follow(self, sink: Sink, space: bytes, key: str, follower: Follower) -> None:
        """Flush ``follower`` with ``space`` from now on, as ``sink``'s ``key`` there (replacing
        the one it had by that key)."""
        self.unfollow(sink, space, key)
        self._followers[(sink, space, key)] = self._add(sink, "doc", space, path=key, follower=follower)

    def follower(self, sink: Sink, space: bytes, key: str) -> Follower | None:
        subscription = self._followers.get((sink, space, key))
        return subscription.follower if subscription is not None else None

    def unfollow(self, sink: Sink, space: bytes, key: str) -> bool:
        """Stop flushing ``sink``'s follower ``key``; False if it had none by that key."""
        subscription = self._followers.get((sink, space, key))
        return subscription is not None and self.cancel(sink, subscription.id)

    def touch(self, space: bytes) -> None:
        """Flush ``space`` soon even if nothing was written: a follower may have moved away
        from the doc's heads by itself (an editor's edit at an old base)."""
        if self._by_space.get(space) and space not in self._dirty:
            self._dirty.add(space)
            self.wake()

    def set_presence(self, sink: Sink, presence: Presence) -> None:
        """Publish a local client's presence; it goes when the client disconnects or stops refreshing."""
        self._presence_of.setdefault(sink, set()).add(presence.key)
        self._services.presence.update(presence, local=True)

    def clear_presence(self, sink: Sink, key: PresenceKey) -> bool:
        self._presence_of.get(sink, set()).discard(key)
        return self._services.presence.remove(key, local=True)

    def drop(self, sink: Sink) -> None:
        """A connection closed: end its subscriptions and remove the presence it set."""
        for subscription in [s for s in self._all.values() if s.sink is sink]:
            self.cancel(sink, subscription.id)
        for key in self._presence_of.pop(sink, set()):
            self._services.presence.remove(key, local=True)

    def _add(self, sink: Sink, kind: str, space: bytes | None = None, **state: Any) -> _Subscription:
        group = self._by_space.setdefault(space, {}) if space is not None and kind in ("file", "tree", "doc") else self._by_kind[kind]
        subscription = _Subscription(next(self._ids), sink, kind, group, space, **state)
        group[subscription.id] = subscription
        self._all[subscription.id] = subscription
        return subscription

    # ----- events -----

    def _on_store_event(self, event: StoreEvent) -> None:
        self.touch(event.space)

    def _on_peer_event(self, event: PeerEvent) -> None:
        for subscription in list(self._by_kind["peers"].values()):
            subscription.sink.notify(
                "peers.changed", {"subscription": subscription.id, "event": event.kind, "peer": peer_json(event.peer)}
            )

    def _on_presence_event(self, event: PresenceEvent) -> None:
        presence = event.presence
        for subscription in list(self._by_kind["presence"].values()):
            if subscription.space == presence.space:
                subscription.sink.notify(
                    "presence.changed",
                    {
                        "subscription": subscription.id,
                        "space": presence.space.hex(),
                        "presence": self.presence_view(subscription.sink, presence),
                        "removed": event.removed,
                    },
                )

    def flush(self) -> None:
        """Notify file and tree subscribers of every space written since the last flush."""
        dirty, self._dirty = self._dirty, set()
        for space in dirty:
            subscriptions = list(self._by_space.get(space, {}).values())
            if not subscriptions:
                continue
            ws = self._services.workspace(space)
            try:
                version, tree = ws.version(), ws.tree()
            except UNREADABLE as error:  # the space's index doc: none of its subscriptions can be told
                self._failed(subscriptions, space, error)
                continue
            self._flush_files(ws, version, tree, [s for s in subscriptions if s.kind == "file"])
            self._flush_trees(ws, version, tree, [s for s in subscriptions if s.kind == "tree"])
            self._flush_followers(ws, [s for s in subscriptions if s.kind == "doc"])

    def _failed(self, subscriptions: list[_Subscription], space: bytes, error: Exception) -> None:
        self.failures += len(subscriptions)
        ids = [subscription.id for subscription in subscriptions]
        event(log, "api.notify_failed", logging.WARNING, space=space.hex(), subscriptions=ids, error=repr(error))

    def _flush_files(self, ws: Workspace, version: int, tree: Tree, subscriptions: list[_Subscription]) -> None:
        updates: dict[tuple[str, tuple[bytes, ...]], Json] = {}  # one diff per file and starting heads
        for subscription in subscriptions:
            assert subscription.file_id is not None and subscription.heads is not None
            try:
                heads = ws.repo.heads(ws.space, doc_id_of(subscription.file_id))
                path = tree.path_of(subscription.file_id)
                if heads == subscription.heads and path == subscription.path:
                    continue
                key = (subscription.file_id, tuple(subscription.heads))
                if key not in updates:
                    updates[key] = _file_update(ws, tree, subscription.file_id, subscription.heads, heads)
            except UNREADABLE as error:  # this file's doc: its watchers wait, the others go on
                self._failed([subscription], ws.space, error)
                continue
            subscription.heads, subscription.path = heads, path
            subscription.sink.notify(
                "file.changed",
                {"subscription": subscription.id, "space": ws.space.hex(), "version": version, **updates[key]},
            )

    def _flush_followers(self, ws: Workspace, subscriptions: list[_Subscription]) -> None:
        for subscription in subscriptions:
            assert subscription.follower is not None
            try:
                notification = subscription.follower.catch_up(ws)
            except UNREADABLE as error:  # this doc: its follower waits, the others go on
                self._failed([subscription], ws.space, error)
                continue
            if notification is not None:
                subscription.sink.notify(*notification)

    def _flush_trees(self, ws: Workspace, version: int, tree: Tree, subscriptions: list[_Subscription]) -> None:
        changes: dict[int, list[Json]] = {}  # per starting version
        for subscription in subscriptions:
            since = subscription.version
            if since == version:
                continue
            if since not in changes:
                try:
                    changes[since] = _tree_changes(ws, since, tree)
                except UNREADABLE as error:  # the tree at that version: these watchers wait
                    self._failed([subscription], ws.space, error)
                    continue
            subscription.version = version
            if changes[since]:
                subscription.sink.notify(
                    "tree.changed",
                    {"subscription": subscription.id, "space": ws.space.hex(), "version": version, "changes": changes[since]},
                )


def _file_update(ws: Workspace, tree: Tree, file_id: str, old: list[bytes], new: list[bytes]) -> Json:
    """What takes a copy of the file at heads ``old`` to heads ``new``: splices, or all of it."""
    path = tree.path_of(file_id)
    update: Json = {"file_id": file_id, "path": path, "heads": _hexes(new)}
    node = tree.get(path) if path is not None else None
    if node is None or old == new:
        return {**update, "edits": []}  # removed (content follows if it comes back), or only moved
    document = ws.document(node.doc_id)
    edits = text_splices(document, text_object(document), old, new) if node.encoding == TEXT else None
    if edits is not None:
        return {**update, "edits": edits}
    return {**update, **_content_or_pending(ws, node.path, node.encoding)}


def text_splices(document: native.Document, text_id: str | None, old: list[bytes], new: list[bytes]) -> list[Json] | None:
    """The splices ``{index, delete, insert}`` (code points, to apply in order) that take the
    text ``text_id`` from heads ``old`` to heads ``new`` (the doc's now); None when the change
    is not a splice of that one text (no text, or the text object itself replaced)."""
    patches = document.diff(old, new)
    # The next update of this doc starts at ``new``: with the cursor there, Automerge answers
    # it from its patch log (~25 us) instead of scanning the document (~4 ms at 20k characters).
    document.update_diff_cursor()
    if text_id is None or not all(p["obj"] == text_id and p["action"] in ("splice_text", "del_seq") for p in patches):
        return None
    return splices_of(patches)


def splices_of(patches: list[Json]) -> list[Json]:
    """Automerge's text patches (``splice_text``, ``del_seq``) as splices ``{index, delete, insert}``."""
    return [
        {"index": p["index"], "delete": 0, "insert": p["value"]}
        if p["action"] == "splice_text"
        else {"index": p["index"], "delete": p["length"], "insert": ""}
        for p in patches
    ]


def _tree_changes(ws: Workspace, since: int, tree: Tree) -> list[Json]:
    """What was added, removed, moved or modified (content) between version ``since`` and ``tree``."""
    changed_docs = {record.doc for record in ws.repo.versions(ws.space, since)}
    before = ws.tree(since) if INDEX_DOC_ID in changed_docs else tree
    old = {node.file_id: node for node in before.walk()}
    new = {node.file_id: node for node in tree.walk()}
    changes = []
    for file_id, node in new.items():
        was = old.get(file_id)
        if was is None:
            changes.append({"change": "added", "path": node.path, "kind": node.kind})
        elif was.path != node.path:
            changes.append({"change": "moved", "path": node.path, "from": was.path, "kind": node.kind})
        elif node.kind == FILE and node.doc_id in changed_docs:
            changes.append({"change": "modified", "path": node.path, "kind": node.kind})
    for file_id in old.keys() - new.keys():
        changes.append({"change": "removed", "path": old[file_id].path, "kind": old[file_id].kind})
    return sorted(changes, key=lambda change: (change["path"], change["change"]))


def _content_or_pending(ws: Workspace, path: str, encoding: str | None) -> Json:
    """The file's content as JSON, or ``pending`` while it has not arrived from its peers."""
    try:
        content = ws.read(path)
    except ContentUnavailable:
        return {"encoding": encoding, "pending": True}
    return content_json(content)


def _hexes(hashes: list[bytes]) -> list[str]:
    return [h.hex() for h in hashes]
