"""Scenarios as data: frozen options objects read strictly from TOML files.

A scenario file (``simulations/scenarios/NAME.toml``) holds the size of the run, its seeds, the
topology, the workload, the fault model and any ``SyncConfig`` overrides. The fault model is one
object, ``FaultModel``, loadable on its own from any TOML file's ``[faults]`` table. Reading is
strict: an unknown option or a value of the wrong type is a ``ScenarioError`` naming the option,
so a typo can never silently run a different experiment.

Every time is in virtual milliseconds from the start of the run, every rate a share in [0, 1],
and every name ends in its unit.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.limits import SyncConfig
from simulations.errors import ScenarioError, UnknownScenario

SCENARIOS_DIR = Path(__file__).parent / "scenarios"
LATENCY_DISTRIBUTIONS = ("constant", "uniform", "lognormal")
TOPOLOGIES = ("mesh", "full", "star", "ring")
WORKLOADS = ("random", "trace")
BURSTS = ("random", "even")
ATTACKS = ("forged-tip", "impersonation", "garbage", "unauthorised-write")
# What a hostile peer sends unless its scenario says: ``unauthorised-write`` is a well-formed
# change that only a private space's capability log refuses (in an open space it is honest work).
DEFAULT_ATTACKS = ATTACKS[:3]


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ScenarioError(message)


def _share(value: float, name: str) -> None:
    _require(0.0 <= value <= 1.0, f"{name} is a share in [0, 1], got {value}")


@dataclass(frozen=True, slots=True)
class LinkOptions:
    """The weather of every link. Each pair of peers draws one base latency (its distance);
    each frame adds jitter. Loss, duplication and reordering hit whole frames after a
    connection's first frame (its Hello), as a lossy datagram transport would; libp2p's streams
    would retransmit instead, so this is harsher on the protocol's repair paths than reality."""

    # "constant" (the median), "uniform" (min to max) or "lognormal" (around the median, spread
    # by latency_log_sigma); always clamped to min and max
    latency_distribution: str = "lognormal"
    latency_ms_median: float = 40.0
    latency_ms_min: float = 2.0
    latency_ms_max: float = 400.0
    latency_log_sigma: float = 0.6  # spread of the lognormal distribution
    jitter_ms: float = 5.0  # uniform, either way, per frame
    loss_rate: float = 0.0
    duplication_rate: float = 0.0
    reorder_rate: float = 0.0
    reorder_delay_ms: float = 80.0  # how late a reordered frame comes, at most
    upload_bytes_per_s: int = 0  # each peer's uplink; frames queue behind it (0: unlimited)
    relay_upload_bytes_per_s: int = 0  # a relay's uplink (0: as upload_bytes_per_s)

    def __post_init__(self) -> None:
        _require(self.latency_distribution in LATENCY_DISTRIBUTIONS, f"latency_distribution is one of {LATENCY_DISTRIBUTIONS}")
        _require(0 <= self.latency_ms_min <= self.latency_ms_median <= self.latency_ms_max, "latency_ms_min <= latency_ms_median <= latency_ms_max")
        _require(self.jitter_ms >= 0 and self.reorder_delay_ms >= 0, "jitter_ms and reorder_delay_ms are not negative")
        for name in ("loss_rate", "duplication_rate", "reorder_rate"):
            _share(getattr(self, name), name)
        _require(self.loss_rate < 1, "loss_rate below 1, or nothing ever arrives")
        _require(self.upload_bytes_per_s >= 0 and self.relay_upload_bytes_per_s >= 0, "bandwidths are not negative")


@dataclass(frozen=True, slots=True)
class PartitionOptions:
    """From ``at_ms`` for ``duration_ms``, a random ``share`` of the peers can reach only each
    other: frames across are dropped and dials across fail, until it heals."""

    at_ms: int
    duration_ms: int
    share: float = 0.5

    def __post_init__(self) -> None:
        _require(self.at_ms >= 0 and self.duration_ms > 0, "a partition starts at or after 0 and lasts")
        _share(self.share, "partition share")


@dataclass(frozen=True, slots=True)
class CrashOptions:
    """``count`` crashes of random peers at random times of the fault phase. A crash loses the
    node's memory — its Replicator, its unsigned typing, its connections and what they had in
    flight — and keeps its store (every acknowledged write). It restarts ``downtime_ms`` later."""

    count: int = 0
    downtime_ms: int = 10_000

    def __post_init__(self) -> None:
        _require(self.count >= 0 and self.downtime_ms > 0, "crash count >= 0, downtime_ms > 0")


@dataclass(frozen=True, slots=True)
class ChurnOptions:
    """Peers that join with an empty store, and readers that leave for good (their store with
    them), at random times of the fault phase."""

    joins: int = 0
    leaves: int = 0

    def __post_init__(self) -> None:
        _require(self.joins >= 0 and self.leaves >= 0, "joins and leaves are not negative")


@dataclass(frozen=True, slots=True)
class HostileOptions:
    """A ``share`` of the peers misbehave: they sync like anyone (so they get past Hello and
    relay honest work), and every ``attack_interval_ms`` (mean) send one of ``attacks`` down a
    random connection: changes under a forged tip, changes claiming an honest author, garbage;
    or (``unauthorised-write``, private spaces only) sign a well-formed change of their own
    and hand it to their Replicator, as a patched client ignoring its missing write would."""

    share: float = 0.0
    attack_interval_ms: int = 3_000
    attacks: tuple[str, ...] = DEFAULT_ATTACKS

    def __post_init__(self) -> None:
        _share(self.share, "hostile share")
        _require(self.share < 1, "hostile share below 1: someone must be honest")
        _require(self.attack_interval_ms > 0, "attack_interval_ms > 0")
        _require(bool(self.attacks) and set(self.attacks) <= set(ATTACKS), f"attacks are some of {ATTACKS}")


@dataclass(frozen=True, slots=True)
class CpuOptions:
    """Each peer's processor. Every frame and timer its Replicator handles takes ``service_ms``,
    one at a time, so a busy peer queues them; ``stalls_per_s`` times a second (Poisson) it
    stops for up to ``stall_ms_max`` (uniform), as a daemon does when descheduled on a
    saturated machine or blocked in an fsync. The defaults (zero) make peers instant, as before:
    no draw is made, so runs without it replay byte for byte."""

    service_ms: float = 0.0
    stalls_per_s: float = 0.0
    stall_ms_max: float = 0.0

    def __post_init__(self) -> None:
        _require(min(self.service_ms, self.stalls_per_s, self.stall_ms_max) >= 0, "cpu times and rates are not negative")

    @property
    def on(self) -> bool:
        return bool(self.service_ms or (self.stalls_per_s and self.stall_ms_max))


@dataclass(frozen=True, slots=True)
class FaultModel:
    """Everything that goes wrong in a run, in one object (see each part)."""

    link: LinkOptions = LinkOptions()
    cpu: CpuOptions = CpuOptions()
    partitions: tuple[PartitionOptions, ...] = ()
    crashes: CrashOptions = CrashOptions()
    churn: ChurnOptions = ChurnOptions()
    hostile: HostileOptions = HostileOptions()

    @classmethod
    def load(cls, path: Path) -> FaultModel:
        """The ``[faults]`` table of a TOML file (all defaults when it has none)."""
        return build(cls, _read_toml(path).get("faults", {}), f"{path}:faults")


@dataclass(frozen=True, slots=True)
class TopologyOptions:
    """Who dials whom. ``mesh``: each peer dials ``degree`` random others (so about twice that
    many connections each); ``full``: everyone; ``star``: ``relays`` relay peers dial each other
    and every other peer dials ``relay_links`` of them; ``ring``: a ring plus a chord across
    from each peer of the first half (degree 3 for ten peers: benchmarks/node.py's mesh). A node keeps redialing its neighbors
    every ``redial_interval_ms`` (jittered) while a connection is down, and replaces a neighbor
    that left or that it banned. The connection manager knows every peer (as a rendezvous
    service would) and keeps the honest overlay connected."""

    kind: str = "mesh"
    degree: int = 3
    relays: int = 2
    relay_links: int = 1
    redial_interval_ms: int = 2_000

    def __post_init__(self) -> None:
        _require(self.kind in TOPOLOGIES, f"topology kind is one of {TOPOLOGIES}")
        _require(self.degree >= 1 and self.relays >= 1 and self.relay_links >= 1, "degree, relays, relay_links >= 1")
        _require(self.relay_links <= self.relays, "relay_links <= relays")
        _require(self.redial_interval_ms > 0, "redial_interval_ms > 0")


@dataclass(frozen=True, slots=True)
class OfflineOptions:
    """``peers`` peers (writers first) lose their network at ``at_ms`` for ``duration_ms`` and
    keep editing: offline-first."""

    peers: int
    at_ms: int
    duration_ms: int

    def __post_init__(self) -> None:
        _require(self.peers >= 1 and self.at_ms >= 0 and self.duration_ms > 0, "offline: peers >= 1, at_ms >= 0, duration_ms > 0")


@dataclass(frozen=True, slots=True)
class WorkloadOptions:
    """What the writers type.

    ``random``: ``edits`` random insertions and deletions (and a share of file-tree updates in
    the index doc) over ``docs`` files, typed in bursts of ``burst_edits`` one
    ``typing_interval_ms`` apart; each writer spreads its bursts over ``typing_span_ms`` with
    random pauses, so a run of any size edits through the whole fault phase. ``bursts``:
    ``random`` (each burst anywhere in the span) or ``even`` (the span cut into one slot per
    burst, each burst anywhere in its slot: every writer types in every part of the run).

    ``trace``: the first ``edits`` transactions of an editing trace (``trace`` is
    ``concurrent/NAME`` or ``sequential/NAME``), one every ``typing_interval_ms``. A concurrent
    trace's agents are writers and each transaction is typed against exactly the version its
    author saw (its recorded parents), waiting until the author holds them; a sequential trace
    is split into turns of ``edits_per_turn`` edits passed round the writers.

    Either way a writer's node signs what was typed into one commit ``commit_interval_ms`` after
    the first unsigned edit, or at ``commit_edits_max`` edits: until then the edits are not
    acknowledged, and a crash loses them.
    """

    kind: str = "random"
    edits: int = 200
    writers: int = 4
    docs: int = 3
    index_edit_share: float = 0.1
    trace: str = ""
    edits_per_turn: int = 100
    start_ms: int = 1_000
    typing_interval_ms: int = 100
    burst_edits: int = 20
    typing_span_ms: int = 30_000
    bursts: str = "random"
    commit_interval_ms: int = 500
    commit_edits_max: int = 64
    offline: tuple[OfflineOptions, ...] = ()

    def __post_init__(self) -> None:
        _require(self.kind in WORKLOADS, f"workload kind is one of {WORKLOADS}")
        _require(self.bursts in BURSTS, f"bursts is one of {BURSTS}")
        _require(self.kind != "trace" or self.trace.split("/")[0] in ("concurrent", "sequential"), "a trace workload names concurrent/NAME or sequential/NAME")
        _require(self.edits >= 1 and self.writers >= 1 and self.docs >= 1, "edits, writers, docs >= 1")
        _share(self.index_edit_share, "index_edit_share")
        _require(min(self.edits_per_turn, self.burst_edits, self.commit_edits_max) >= 1, "edits_per_turn, burst_edits, commit_edits_max >= 1")
        _require(min(self.typing_interval_ms, self.typing_span_ms, self.commit_interval_ms) > 0, "intervals > 0")


@dataclass(frozen=True, slots=True)
class RevocationOptions:
    """The root revokes a writer's key at ``at_ms`` (one of the last writers, one each). That
    writer loses its network at ``offline_at_ms`` and keeps typing, so it edits past a
    revocation it does not hear of, and is back at ``back_at_ms``. The revocation's ``seen`` is
    what the root then holds of its changes (per doc, the highest seq): those stay, the rest
    must never be materialised anywhere."""

    at_ms: int
    offline_at_ms: int
    back_at_ms: int

    def __post_init__(self) -> None:
        _require(0 <= self.offline_at_ms < self.at_ms < self.back_at_ms, "a revocation: offline_at_ms < at_ms < back_at_ms")


@dataclass(frozen=True, slots=True)
class SpaceOptions:
    """The space's kind. ``private``: peer 0 (a writer) creates a private genesis and is its
    root admin; at the start every store but the strangers' holds its grants — write to each
    writer, read to each reader (joiners too), relay to each relay, read to the first
    ``hostile_readers`` hostile peers. Those are members that only try to write: each attack of
    theirs is an ``unauthorised-write``, so they keep their sessions (a refused change is no
    fault: the receiver's log may lag) and every write is refused at ingest. The other hostile
    peers are strangers, attacking with ``faults.hostile.attacks``: they know the space id and
    its log, and hold no grant. A peer that joins later
    holds what a ticket gives (its grant and the chain to the root) and dials the root first."""

    private: bool = False
    hostile_readers: int = 0
    revocations: tuple[RevocationOptions, ...] = ()

    def __post_init__(self) -> None:
        _require(self.private or not (self.hostile_readers or self.revocations), "hostile_readers and revocations need a private space")
        _require(self.hostile_readers >= 0, "hostile_readers >= 0")


@dataclass(frozen=True, slots=True)
class CiOptions:
    """The small size the test suite runs the scenario at."""

    peers: int = 8
    edits: int = 60
    seeds: tuple[int, ...] = (1, 2)


@dataclass(frozen=True, slots=True)
class Scenario:
    """One experiment: two phases, as in TigerBeetle's VOPR. Until ``duration_ms`` the workload
    runs under the fault model; then the network heals (partitions end, offline and crashed
    peers return; the link weather stays) and must converge within ``settle_ms_max``."""

    name: str
    description: str
    peers: int
    source: str = ""  # how the command line names it: the name, or the path of its file
    seeds: tuple[int, ...] = (1,)
    duration_ms: int = 60_000
    settle_ms_max: int = 600_000
    sample_interval_ms: int = 250  # how often convergence over time is sampled
    topology: TopologyOptions = TopologyOptions()
    workload: WorkloadOptions = WorkloadOptions()
    faults: FaultModel = FaultModel()
    space: SpaceOptions = SpaceOptions()
    sync: SyncConfig = SyncConfig()
    ci: CiOptions = CiOptions()

    def __post_init__(self) -> None:
        _require(self.peers >= 2, "a scenario has at least 2 peers")
        _require(bool(self.seeds), "a scenario lists at least one seed")
        _require(min(self.duration_ms, self.settle_ms_max, self.sample_interval_ms) > 0, "durations > 0")
        for partition in self.faults.partitions:
            _require(partition.at_ms + partition.duration_ms <= self.duration_ms, "partitions heal within duration_ms")
        for offline in self.workload.offline:
            _require(offline.at_ms + offline.duration_ms <= self.duration_ms, "offline periods end within duration_ms")
        for revocation in self.space.revocations:
            _require(revocation.back_at_ms <= self.duration_ms, "a revoked writer is back within duration_ms")
        _require(len(self.space.revocations) < self.workload.writers, "the root (writer 0) cannot be revoked: fewer revocations than writers")
        _require(self.space.private or "unauthorised-write" not in self.faults.hostile.attacks, "unauthorised-write needs a private space")

    def scaled(self, *, peers: int | None = None, edits: int | None = None) -> Scenario:
        """The same experiment with another number of peers or edits."""
        workload = self.workload if edits is None else dataclasses.replace(self.workload, edits=edits)
        return dataclasses.replace(self, peers=self.peers if peers is None else peers, workload=workload)

    def small(self) -> Scenario:
        """The scenario at its CI size."""
        return self.scaled(peers=self.ci.peers, edits=self.ci.edits)


def scenario_names() -> list[str]:
    return sorted(path.stem for path in SCENARIOS_DIR.glob("*.toml"))


def load_scenario(name: str) -> Scenario:
    """A scenario by name (from simulations/scenarios/) or by path to a TOML file.

    Raises:
        UnknownScenario: no such scenario.
        ScenarioError: the file is not a valid scenario.
    """
    path = Path(name)
    if path.suffix != ".toml":
        path = SCENARIOS_DIR / f"{name}.toml"
        if not path.is_file():
            raise UnknownScenario(f"no scenario named {name!r}; known: {', '.join(scenario_names())}")
    table = _read_toml(path)
    return build(Scenario, {**table, "name": path.stem, "source": name}, str(path))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ScenarioError(f"cannot read {path}: {error}") from error


T = typing.TypeVar("T")


def build(cls: type[T], table: Mapping[str, Any], where: str) -> T:
    """An options dataclass from a TOML table, refusing unknown keys and mistyped values."""
    if not isinstance(table, Mapping):
        raise ScenarioError(f"{where}: expected a table")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(table) - known)
    if unknown:
        raise ScenarioError(f"{where}: unknown option {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    values = {name: _value(hints[name], value, f"{where}.{name}") for name, value in table.items()}
    try:
        return cls(**values)
    except TypeError as error:  # a required option is missing
        raise ScenarioError(f"{where}: {error}") from error
    except ScenarioError as error:
        raise ScenarioError(f"{where}: {error}") from error


def _value(hint: Any, value: Any, where: str) -> Any:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list):
            raise ScenarioError(f"{where}: expected a list")
        item = typing.get_args(hint)[0]
        return tuple(_value(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint in (int, str, bool) and type(value) is hint:
        return value
    raise ScenarioError(f"{where}: expected {getattr(hint, '__name__', hint)}, got {value!r}")

