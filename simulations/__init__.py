"""Many peers through bad networks, reproducibly: the real sync protocol on a virtual clock.

The protocol is sans-IO — ``Replicator.handle(event, now_ms) -> [action]`` — so the node and
this simulator are two interpreters of the same state machines (as in iroh-gossip's
``proto/sim.rs``). Here every peer is a real ``Replicator`` over a ``MemoryChangeStore``, with
real Ed25519 signatures and real Automerge changes; only the world around them is simulated:

- ``loop``: a virtual clock and a heap of callbacks, ties broken by scheduling order;
- ``network``: links with latency, jitter, loss, duplication, reordering, bandwidth queues,
  partitions and offline peers;
- ``topology``: who dials whom, and a connection manager that redials and replaces neighbors;
- ``workload``: writers typing random edits or editing traces into a typing buffer that the
  node signs into commits (``traces`` turns traces into causal graphs typed by per-author
  editors);
- ``hostile``: the frames misbehaving peers slip into their connections;
- ``simulator``: the driver that wires them together and interprets the Replicators' actions;
- ``checks``: the invariants, judged only from the stores a run leaves behind;
- ``metrics`` and ``report``: delivery times, traffic, convergence over time, JSON and plots.

A run is one ``Scenario`` (a TOML file in ``scenarios/``) and one seed; one ``random.Random``
draws everything, so a seed replays the same run byte for byte, and a failing run prints the
command that replays it. As in TigerBeetle's VOPR, a run is a safety phase under faults and then
a liveness phase on a healed network. ``python -m simulations list`` names the scenarios.
"""
