"""The IPFS daemon's RPC API (kubo), through aioipfs, from trio.

aioipfs is asyncio; the node is trio. Every aioipfs call runs on an asyncio loop in one
background thread and is awaited from trio through libp2p's ``AsyncioBridge``
(``asyncio.run_coroutine_threadsafe`` there, ``trio.to_thread`` here; see libraries.md, "aiortc
with trio"): in a daemon the very loop libp2p's webrtc-direct transport already runs aiortc on
(``host_bridge``), so the node runs one asyncio thread, not two; a command without a daemon
starts a bridge of its own for its one call and stops it after. ``trio_asyncio`` is not used.

A client is opened per operation (``open_client``): its aiohttp session lives and dies on the
loop inside that operation, so nothing of it outlives a daemon's shutdown.

aioipfs 0.7.1's quirks (measured, libraries.md "IPFS"): it needs aiohttp < 3.12 (pinned in
pyproject.toml); ``block.put`` takes a file path, so blocks go in as one CAR through
``dag/import`` (which also pins the roots); ``key.gen`` sends a 2048-bit size that kubo refuses
for ed25519, so the size is given.

Every failure is one of node/errors.py's ``IpfsError`` kinds: the daemon unreachable or
refusing (``IpfsUnavailable``), a block it does not have or cannot find in time
(``IpfsBlockMissing``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import trio
from libp2p.transport.webrtc._asyncio_bridge import AsyncioBridge, AsyncioBridgeError
from libp2p.transport.webrtc.transport import WebRTCDirectTransport

from node.errors import IpfsBlockMissing, IpfsUnavailable
from node.host import Host
from store.blocks import cid_from_text, cid_text
from store.errors import InvalidInput

log = logging.getLogger("distspace.ipfs")

__all__ = ["IpfsClient", "car_bytes", "host_bridge", "open_client"]

# A block of a local daemon comes in milliseconds; an online daemon looking for one on the
# network may search far longer. Past this, the block is missing and the join stops.
BLOCK_TIMEOUT_S: Final = 30.0
# Any other call (version, import, pin, name): an import of a large publication writes
# hundreds of MB into kubo's datastore.
CALL_TIMEOUT_S: Final = 600.0
# Blocks fetched at once: enough to keep a local daemon busy, few enough not to open many sockets.
FETCH_CONCURRENCY: Final = 16
# kubo's IPNS record lifetime for our pointers: a year, republished with every publication.
IPNS_LIFETIME: Final = "8760h"
_ED25519_BITS: Final = 256

_T = TypeVar("_T")


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def car_bytes(roots: Sequence[bytes], blocks: Sequence[tuple[bytes, bytes]]) -> bytes:
    """A CARv1 archive: the dag-cbor header ``{"roots": [links], "version": 1}``, then each
    block as varint(len(cid) + len(data)) + cid + data (binary CIDs)."""
    import cbor2

    header = cbor2.dumps({"roots": [cbor2.CBORTag(42, b"\x00" + root) for root in roots], "version": 1}, canonical=True)
    parts = [_varint(len(header)), header]
    for cid, data in blocks:
        parts += [_varint(len(cid) + len(data)), cid, data]
    return b"".join(parts)


async def host_bridge(host: Host) -> AsyncioBridge | None:
    """The asyncio loop thread libp2p's webrtc-direct transport runs aiortc on, started if it
    was not yet (it starts on first use); None when the host runs no such transport."""
    for transport in host.libp2p.get_network().transport_manager.get_transports():  # type: ignore[attr-defined]  # Swarm's, not INetworkService's
        if isinstance(transport, WebRTCDirectTransport):
            bridge: AsyncioBridge = await transport._ensure_bridge()
            return bridge
    return None


def _api_address(api: str) -> dict[str, Any]:
    """aioipfs's address arguments for ``ipfs_api``: a multiaddr (``/ip4/127.0.0.1/tcp/5001``,
    what kubo's ``Addresses.API`` holds) or a URL (``http://127.0.0.1:5001``)."""
    if api.startswith("/"):
        return {"maddr": api}
    url = urlsplit(api if "://" in api else f"http://{api}")
    if not url.hostname or url.port is None:
        raise IpfsUnavailable(f"ipfs_api {api!r} is neither a multiaddr nor an http URL with a port")
    return {"host": url.hostname, "port": url.port, "scheme": url.scheme or "http"}


class IpfsClient:
    """The calls the node makes of an IPFS daemon. Get one from ``open_client``."""

    def __init__(self, api: str, bridge: AsyncioBridge, driver: Any) -> None:
        self.api = api
        self._bridge = bridge
        self._driver = driver

    async def _run(self, what: str, make: Callable[[], Awaitable[_T]], timeout_s: float = CALL_TIMEOUT_S) -> _T:
        """Run ``make()`` on the asyncio loop, its failures as IpfsUnavailable."""
        import aiohttp
        from aioipfs.exceptions import APIError, UnknownAPIError

        async def call() -> _T:
            return await asyncio.wait_for(make(), timeout_s)

        try:
            return await self._bridge.run_coro(call())
        except TimeoutError as error:
            raise IpfsUnavailable(f"IPFS daemon at {self.api}: {what} took over {timeout_s:g} s") from error
        except (APIError, UnknownAPIError) as error:
            raise IpfsUnavailable(f"IPFS daemon at {self.api} refused {what}: {getattr(error, 'message', '') or error!r}") from error
        except (aiohttp.ClientError, OSError, ValueError, AsyncioBridgeError) as error:
            raise IpfsUnavailable(f"IPFS daemon at {self.api} cannot be reached for {what}: {error}") from error

    async def version(self) -> str:
        reply = await self._run("version", lambda: self._driver.core.version())
        return str(reply.get("Version", "?"))

    async def import_car(self, car: bytes) -> None:
        """Put every block of a CAR into the daemon and pin its roots (recursively).

        Raises:
            IpfsUnavailable: the daemon is unreachable, or refused the CAR or a pin of it.
        """
        reply = await self._run("dag/import", lambda: self._driver.dag.car_import(car, pin_roots=True))
        failed = reply.get("Root", {}).get("PinErrorMsg") if isinstance(reply, dict) else None
        if failed:
            raise IpfsUnavailable(f"IPFS daemon at {self.api} imported the blocks but could not pin them: {failed}")

    async def block(self, cid: bytes) -> bytes:
        """A block's bytes as the daemon returns them (unchecked: the caller checks the CID).

        Raises:
            IpfsBlockMissing: the daemon does not have it and cannot find it in BLOCK_TIMEOUT_S.
            IpfsUnavailable: the daemon is unreachable.
        """
        from aioipfs.exceptions import APIError

        text = cid_text(cid)

        async def get() -> bytes | str:
            try:
                data: bytes = await asyncio.wait_for(self._driver.block.get(text), BLOCK_TIMEOUT_S)
            except TimeoutError:
                return f"not found within {BLOCK_TIMEOUT_S:g} s"
            except APIError as error:
                if "not found" in (error.message or "") or "could not find" in (error.message or ""):
                    return str(error.message)
                raise
            return data

        got = await self._run(f"block/get {text}", get, BLOCK_TIMEOUT_S + 5)
        if isinstance(got, str):
            raise IpfsBlockMissing(f"block {text} is not in IPFS (at {self.api}): {got}")
        return got

    async def blocks(self, cids: Sequence[bytes], check: Callable[[int, bytes], _T]) -> list[_T]:
        """``check(index, bytes)`` of every block of ``cids``, in order, FETCH_CONCURRENCY
        fetched at a time; each block is checked as it arrives, so a bad one stops the fetch
        (raises as ``block``, or what ``check`` raises)."""
        results: list[Any] = [None] * len(cids)
        failed: list[Exception] = []

        async def fetch(start: int, scope: trio.CancelScope) -> None:
            try:
                for index in range(start, len(cids), FETCH_CONCURRENCY):
                    results[index] = check(index, await self.block(cids[index]))
            except Exception as error:  # the first failure is re-raised as itself, not in a group
                failed.append(error)
                scope.cancel()

        async with trio.open_nursery() as nursery:
            for start in range(min(FETCH_CONCURRENCY, len(cids))):
                nursery.start_soon(fetch, start, nursery.cancel_scope)
        if failed:
            raise failed[0]
        return results

    async def pinned_dag(self, cid: bytes) -> set[bytes]:
        """Every CID of the DAG under ``cid`` (itself included) if the daemon holds it pinned
        recursively — then all of it is in its blockstore, so a publication need not send those
        blocks again; else nothing (anything kubo refuses only means sending everything). Never
        asks the network: a recursive pin's blocks are all local, and refs reads only those.

        Raises:
            IpfsUnavailable: the daemon is unreachable.
        """
        from aioipfs.exceptions import APIError

        text = cid_text(cid)

        async def walk() -> set[str]:
            try:
                await self._driver.pin.ls(path=text, pintype="recursive", quiet=True)
                refs = self._driver.refs
                found = {text}
                async for entry in refs.mjson_decode(refs.url("refs"), params={"arg": text, "recursive": "true", "unique": "true"}):
                    if entry.get("Err"):
                        return set()  # a block of it is gone after all
                    found.add(str(entry["Ref"]))
                return found
            except APIError:  # "not pinned" (unpinned since, or another daemon's repo): send everything
                return set()

        held = set()
        for ref in await self._run(f"pin/ls and refs of {text}", walk):
            try:
                held.add(cid_from_text(ref))
            except InvalidInput:
                continue  # not a CID we make (another base or codec): nothing we would skip
        return held

    async def publish_name(self, key: str, cid: bytes) -> str:
        """Point the IPNS name of the daemon's key ``key`` (made if it has none) at ``cid``;
        returns the name (``k51...``). Offline daemons keep the record locally."""
        from aioipfs.exceptions import APIError

        async def publish() -> Any:
            keys = await self._driver.key.list()
            if key not in {entry.get("Name") for entry in keys.get("Keys", [])}:
                try:
                    await self._driver.key.gen(key, type="ed25519", size=_ED25519_BITS)
                except APIError as error:  # made meanwhile by another publication
                    if "already exists" not in (error.message or ""):
                        raise
            return await self._driver.name.publish(f"/ipfs/{cid_text(cid)}", key=key, allow_offline=True, lifetime=IPNS_LIFETIME, resolve=False)

        reply = await self._run(f"name/publish with key {key}", publish)
        return str(reply["Name"])

    async def resolve(self, name: str) -> bytes:
        """The CID an IPNS name (``k51...`` or ``/ipns/...``) points at.

        Raises:
            IpfsBlockMissing: the name resolves to nothing, or to a path that is not one CID.
        """
        path = name if name.startswith("/ipns/") else f"/ipns/{name}"
        reply = await self._run(f"name/resolve {path}", lambda: self._driver.name.resolve(path))
        target = str(reply.get("Path", ""))
        if not target.startswith("/ipfs/") or "/" in target[len("/ipfs/") :]:
            raise IpfsBlockMissing(f"IPNS name {name} resolves to {target!r}, not one /ipfs/CID")
        try:
            return cid_from_text(target[len("/ipfs/") :])
        except InvalidInput as error:
            raise IpfsBlockMissing(f"IPNS name {name} resolves to {target!r}: {error}") from error


@asynccontextmanager
async def open_client(api: str, bridge: AsyncioBridge | None = None) -> AsyncIterator[IpfsClient]:
    """A client of the IPFS daemon at ``api`` on ``bridge``'s loop — or, given none, on a loop
    thread started here and stopped on exit."""
    address = _api_address(api)
    own = bridge is None
    if bridge is None:
        bridge = AsyncioBridge()
        await bridge.start()
    try:
        import aioipfs

        async def make() -> Any:
            return aioipfs.AsyncIPFS(**address)

        driver = await bridge.run_coro(make())
        try:
            yield IpfsClient(api, bridge, driver)
        finally:
            with trio.CancelScope(shield=True):
                try:
                    await bridge.run_coro(driver.close())
                except AsyncioBridgeError:
                    pass  # the host stopped its loop first (daemon shutdown): nothing left to close
    finally:
        if own:
            with trio.CancelScope(shield=True):
                await bridge.stop()
