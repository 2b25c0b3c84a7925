"""The durable store: every space a node holds, its signed history, snapshots and blocks.

``Repo`` is the entry point (store/repo.py); errors are in store/errors.py.
"""
