"""A run's results on disk: ``result.json`` and three PNG plots (matplotlib, Agg backend).

- ``convergence.png``: over virtual time, the share of (honest peer, change) deliveries done
  and the share of honest peers holding everything signed so far; partitions shaded, the heal
  marked.
- ``delivery.png``: the distribution of each edit's time to 99% (and 100%) of the peers, with
  the gossip studies' 300 ms anchor.
- ``bandwidth.png``: bytes sent and received per honest peer.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: files only, the same on every machine

from matplotlib import pyplot
from matplotlib.figure import Figure

from simulations.metrics import GOSSIP_ANCHOR_MS
from simulations.simulator import Result

DPI = 110


def write(result: Result, out_dir: Path) -> list[Path]:
    """Write the JSON and the plots; return the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    title = f"{result.summary['scenario']} · seed {result.summary['seed']} · {result.summary['peers']} peers"
    paths = [out_dir / "result.json", out_dir / "convergence.png", out_dir / "delivery.png", out_dir / "bandwidth.png"]
    paths[0].write_text(json.dumps(result.summary, indent=2) + "\n")
    _convergence(result, title, paths[1])
    _delivery(result, title, paths[2])
    _bandwidth(result, title, paths[3])
    if result.events is not None:
        events = out_dir / "events.log"
        events.write_text("\n".join(result.events) + "\n")
        paths.append(events)
    return paths


def _convergence(result: Result, title: str, path: Path) -> None:
    figure, axes = pyplot.subplots(figsize=(8, 4))
    seconds = [s.time_ms / 1000 for s in result.samples]
    axes.plot(seconds, [s.delivered_share for s in result.samples], label="deliveries done (peer × change)")
    axes.plot(seconds, [s.up_to_date_share for s in result.samples], label="peers holding every change", alpha=0.8)
    for start, end in result.partitions_ms:
        axes.axvspan(start / 1000, end / 1000, color="grey", alpha=0.2, label="partition")
    axes.axvline(result.heal_ms / 1000, color="black", linestyle="--", linewidth=1, label="fault phase ends")
    converged = result.summary["virtual_ms"]["converged"] / 1000
    axes.axvline(converged, color="green", linestyle=":", linewidth=1.5, label=f"converged at {converged:.1f} s")
    axes.set(xlabel="virtual time (s)", ylabel="share", ylim=(0, 1.05), title=title)
    handles, labels = axes.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    axes.legend(unique.values(), unique.keys(), loc="lower right", fontsize="small")
    _save(figure, path)


def _delivery(result: Result, title: str, path: Path) -> None:
    figure, axes = pyplot.subplots(figsize=(8, 4))
    curves = {"every edit": result.delivery_ms, "edits signed while the network was whole": result.delivery_whole_ms}
    for label, values in curves.items():
        ordered = sorted(values)
        if ordered:
            shares = [(i + 1) / len(ordered) for i in range(len(ordered))]
            axes.step([max(v, 0.1) for v in ordered], shares, where="post", label=f"{label} ({len(ordered)})")
    if result.delivery_ms:
        axes.set_xscale("log")
    axes.axvline(GOSSIP_ANCHOR_MS, color="red", linestyle="--", linewidth=1, label="300 ms: gossipsub ~98% (1,000 nodes), Whiteblock 99% in 305 ms (95 nodes)")
    axes.set(xlabel="time from signing to 99% of honest peers (ms, log)", ylabel="share of edits", ylim=(0, 1.05), title=title)
    axes.legend(loc="lower right", fontsize="small")
    _save(figure, path)


def _bandwidth(result: Result, title: str, path: Path) -> None:
    figure, axes = pyplot.subplots(figsize=(8, 4))
    axes.hist([b / 1024 for b in result.bytes_per_peer], bins=30)
    axes.set(xlabel="KiB sent + received per honest peer (whole run)", ylabel="peers", title=title)
    _save(figure, path)


def _save(figure: Figure, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    pyplot.close(figure)
