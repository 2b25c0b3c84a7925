"""The soak benchmark end to end, shortened: real daemons, edits, Dave joining, Mallory attacking.

Four sampling intervals (quiet, attack, quiet, attack) are enough for every figure kind to
appear: per-interval samples, slopes over the samples after warm-up, and honest edit latency
with and without the attack, with nothing lost, no daemon dead, no failure contained and no
error in any log.
"""

from __future__ import annotations

from benchmarks.soak import SAMPLE_INTERVAL_S, run_soak

SMOKE_INTERVALS = 4


def test_a_short_soak_measures_every_series_and_loses_no_honest_edit():
    figures = {figure.name: figure for figure in run_soak(SMOKE_INTERVALS * SAMPLE_INTERVAL_S / 60)}

    assert figures["edits"].value > 0
    assert figures["edits_lost"].value == 0
    assert figures["daemon_deaths"].value == 0
    assert figures["edit_failures"].value == 0
    assert figures["edit_arrivals_measured_under_attack"].value > 0
    assert figures["edit_arrivals_measured_without_attack"].value > 0
    under_attack = figures["edit_latency_p99_ms_under_attack"]
    assert under_attack.baseline == "edit_latency_p99_ms_without_attack" and under_attack.baseline_value > 0
    assert figures["hostile_keys"].value > 0
    assert not [name for name in figures if name.startswith("attacks_failed")]
    for kind in ("flood", "forged-tip", "garbage", "self-fork"):  # each is cut off at once
        assert f"attacks_{kind}_left_open" not in figures, f"a daemon kept a {kind} stream open"
    for series in ("rss_mb", "open_fds", "db_bytes", "changes_rows", "versions_rows", "sync_states_rows", "sync_state_peers"):
        assert f"alice.{series}_slope_per_h" in figures
    assert figures["alice.changes_rows_slope_per_h"].baseline == "writes_per_h"
    assert figures["alice.sync_state_peers_slope_per_h"].baseline == "hostile_keys_per_h"
    assert {name for name in figures if name.startswith("dave.") and "@" in name}, "dave never joined"
    assert all(f.value == 0 for name, f in figures.items() if name.endswith(".log_error_lines"))
    failures = {name: f.value for name, f in figures.items() if name.endswith(".internal_failures")}
    assert failures and not any(failures.values()), failures
