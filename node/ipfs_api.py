"""The local API's IPFS methods (node/ipfs.py): ``ipfs.publish``, ``ipfs.join``, ``ipfs.status``.

In a daemon with ``ipfs_api`` set, publishing and joining run on its ``IpfsService``: a
publish is built at once (the reply has its CID) and uploaded by the service's task; a join
is started, and ``ipfs.status`` says when it is done and how (the CLI waits on that). A command
without a daemon runs them to the end in-process, on an asyncio thread of its own, and the
reply is final. Handlers import node/ipfs.py only when called: it pulls in libp2p and aiohttp.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from node.api_methods import Call, Json, method
from node.errors import IpfsBlockMissing, IpfsContentRefused, IpfsError, IpfsUnavailable, PublishRefused
from node.rpc import RpcError

if TYPE_CHECKING:
    from node.ipfs import Publication

# Error codes of IPFS refusals (node/errors.py's IpfsError kinds).
IPFS_ERROR_CODES: dict[type[IpfsError], int] = {
    IpfsError: 1050,
    IpfsUnavailable: 1051,
    IpfsBlockMissing: 1052,
    IpfsContentRefused: 1053,
    PublishRefused: 1054,
}

def ipfs_error(error: IpfsError) -> RpcError:
    for kind in type(error).__mro__:
        if kind in IPFS_ERROR_CODES:
            return RpcError(IPFS_ERROR_CODES[kind], str(error), type(error).__name__)
    raise AssertionError("unreachable: IpfsError is listed")


def _api(call: Call, params: Json) -> str:
    """The IPFS daemon a command without a daemon uses: the call's, else config.toml's."""
    services = call.services
    if services.daemon:
        raise RpcError(IPFS_ERROR_CODES[IpfsUnavailable], "the daemon runs without an IPFS daemon: set ipfs_api in config.toml and restart it", "IpfsUnavailable")
    api = params.get("ipfs_api") or services.config.ipfs_api
    if not api:
        raise RpcError(IPFS_ERROR_CODES[IpfsUnavailable], "no IPFS daemon: set ipfs_api in config.toml (its RPC API, e.g. /ip4/127.0.0.1/tcp/5001) or pass --ipfs-api", "IpfsUnavailable")
    return str(api)


def _run_here(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Run an async IPFS operation to the end in this (command's) process."""
    import trio  # not at import: a command on the store that does not publish never loads it

    try:
        return trio.run(partial(function, *args, **kwargs))
    except IpfsError as error:
        raise ipfs_error(error) from error


def _publication_json(publication: Publication) -> Json:
    from store.blocks import cid_text

    pointer = publication.pointer
    return {
        "space": publication.space.hex(),
        "cid": cid_text(publication.root),
        "manifest": cid_text(pointer.manifest),
        "seq": pointer.seq,
        "blocks": len(publication.blocks),
        "bytes": publication.size,
        "ipns": None,
    }


@method("ipfs.publish")
def ipfs_publish(call: Call, params: Json) -> Json:
    from node import ipfs

    services = call.services
    space = call.space(params)
    allow_private = bool(params["allow_private"] or services.config.ipfs_allow_private)
    service = ipfs.service_of(services)
    if service is not None:
        try:
            publication = service.publish_now(space, allow_private=allow_private)
        except IpfsError as error:
            raise ipfs_error(error) from error
        return {**_publication_json(publication), "status": "publishing"}
    entry = _run_here(ipfs.publish_space, services, space, _api(call, params), allow_private=allow_private)
    return {"space": space.hex(), **{key: entry[key] for key in ("cid", "manifest", "seq", "blocks", "bytes", "ipns")}, "status": "published"}


@method("ipfs.join")
def ipfs_join(call: Call, params: Json) -> Json:
    from node import ipfs, ipfs_client

    services = call.services
    service = ipfs.service_of(services)
    if service is not None:
        try:
            return dict(service.join_soon(params["source"], params["peers"]))
        except IpfsError as error:
            raise ipfs_error(error) from error

    async def join_here(api: str) -> Json:
        async with ipfs_client.open_client(api) as client:
            return await ipfs.join_publication(services, client, params["source"], extra_peers=params["peers"])

    result = _run_here(join_here, _api(call, params))
    return {"source": params["source"], "status": "joined", **result}


@method("ipfs.status")
def ipfs_status(call: Call, params: Json) -> Json:
    from node import ipfs

    services = call.services
    service = ipfs.service_of(services)
    state = ipfs.state_of(services)
    spaces = []
    for genesis in services.repo.spaces():
        entry = state.published(genesis.space_id) or {}
        pending = service.pending(genesis.space_id) if service is not None else None
        if not entry and pending is None:
            continue
        spaces.append(
            {
                "space_id": genesis.space_id.hex(),
                "name": genesis.name,
                "private": genesis.private,
                **{key: entry.get(key) for key in ("cid", "manifest", "seq", "ipns", "published_ms", "blocks", "bytes", "error", "error_ms")},
                "pending": pending,
            }
        )
    return {
        "ipfs_api": services.config.ipfs_api,
        "publishing": service is not None,
        "allow_private": services.config.ipfs_allow_private,
        "spaces": spaces,
        "joins": [dict(status) for status in service.joins.values()] if service is not None else [],
    }
