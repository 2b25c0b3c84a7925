"""A daemon that says it is not reachable holds a reservation on its relay (config.toml's
``reachability`` and ``relays``, node/wiring.py) over REAL daemons on 127.0.0.1.

Alice's space has a relay node R (joined by a ``relay`` ticket, ``distspace up --relay``).
Alice's config.toml says ``reachability = "private"`` and names R in ``relays``: her daemon
keeps R connected (R, joined by her ticket, opens the space's session on that connection),
reserves a slot on R, and announces her circuit address first — in ``distspace status`` and
in the ticket she gives Bob, who joins by it and syncs. That the circuit carries a sync when no
direct address works is tests/node/test_sync_nat.py's; across real NATs, tests/netns's.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import trio

from api_helpers import distspace
from e2e_helpers import CONVERGE_TIMEOUT_S, addr, client, daemon
from node.config import choose_port

STATUS_POLL_S = 0.2  # the status of another process: nothing notifies a reservation


def status(home: Path) -> dict[str, object]:
    result: dict[str, object] = json.loads(distspace(home, "--json", "status").stdout)
    return result


async def until_circuit(home: Path) -> str:
    """Alice's first reachable address once it is a relay circuit."""
    with trio.fail_after(CONVERGE_TIMEOUT_S):
        for _ in itertools.count():
            reachable = status(home)["reachable"]
            assert isinstance(reachable, list)
            if reachable and "/p2p-circuit/" in reachable[0]:
                return str(reachable[0])
            await trio.sleep(STATUS_POLL_S)  # noqa: sleep — polls another process's status, bounded by the deadline
    raise AssertionError("unreachable")


async def test_a_private_daemon_reserves_on_its_relay_and_its_ticket_carries_the_circuit(tmp_path: Path) -> None:
    alice_home, relay_home, bob_home = (tmp_path / name for name in ("alice", "relay", "bob"))
    distspace(alice_home, "init", "team")
    distspace(relay_home, "join", json.loads(distspace(alice_home, "invite", "--role", "relay", "--json").stdout)["ticket"])
    relay_listen = f"/ip4/127.0.0.1/tcp/{choose_port()}"  # known before Alice's config names it
    with daemon(relay_home, "--relay", "--listen", relay_listen) as relay_d:
        relay_addr = addr(relay_d)
        config = alice_home / "config.toml"
        config.write_text(config.read_text() + f'reachability = "private"\nrelays = ["{relay_addr}"]\n')
        with daemon(alice_home) as alice_d:
            circuit = await until_circuit(alice_home)
            assert circuit == f"{relay_addr}/p2p-circuit/p2p/{alice_d.ready['peer_id']}"
            ticket = json.loads(distspace(alice_home, "invite", "--role", "write", "--json").stdout)
            assert ticket["addrs"][0] == circuit
            distspace(bob_home, "join", ticket["ticket"])
            with daemon(bob_home) as bob_d:
                async with client(alice_d) as alice, client(bob_d) as bob:
                    await alice.write("plan.md", "from behind the NAT\n")

                    async def arrived() -> bool:
                        return await bob.read("plan.md") == "from behind the NAT\n"

                    await bob.until(arrived)
