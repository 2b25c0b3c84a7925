"""Fixtures for the store tests: named peers, and repos over each backend.

``make_repo`` is parametrised over the SQLite and in-memory backends, so every test that uses it
is a conformance test: both must behave identically.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from protocol.identity import Identity
from store.repo import Repo

BACKENDS = ("sqlite", "memory")


@pytest.fixture
def alice() -> Identity:
    return Identity(bytes([0xA1]) * 32)


@pytest.fixture
def bob() -> Identity:
    return Identity(bytes([0xB0]) * 32)


@pytest.fixture
def carol() -> Identity:
    return Identity(bytes([0xCA]) * 32)


@pytest.fixture(params=BACKENDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    return request.param


MakeRepo = Callable[..., Repo]


@pytest.fixture
def make_repo(backend_kind: str, tmp_path: Path) -> Iterator[MakeRepo]:
    """``make_repo(identity, name=..., **options)``: a repo on the parametrised backend.

    The same ``name`` reopens the same SQLite file (in memory there is nothing to reopen).
    """
    opened: list[Repo] = []

    def make(identity: Identity, name: str = "node", **options: object) -> Repo:
        path = tmp_path / f"{name}.db" if backend_kind == "sqlite" else None
        repo = Repo.open(path, identity, **options)
        opened.append(repo)
        return repo

    yield make
    for repo in opened:
        repo.close()
