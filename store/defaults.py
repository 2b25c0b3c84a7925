"""The store's settings that a node's config.toml can change, importable without loading the
store: node/config.py reads them on every CLI start, and the store pulls in Automerge and SQLite.
"""

from __future__ import annotations

# Changes a doc gathers between automatic snapshots. Loading a saved doc is ~10x faster per
# change than applying changes one by one, and saving costs ~20 ms per 100k changes, so a
# tail of at most 1,000 changes keeps a cold open close to the cost of the snapshot alone.
DEFAULT_SNAPSHOT_EVERY = 1000

__all__ = ["DEFAULT_SNAPSHOT_EVERY"]
