"""Every error the simulator raises, so the CLI and the tests can tell a bad scenario file from
a protocol that broke an invariant.

``ScenarioError`` is the user's to fix (a scenario or trace that cannot run). A ``RunFailed`` is
the protocol's: a safety invariant broke or the healed network did not converge. The runner adds
the one command that reproduces the run to every error it lets out (``add_note``), so a failing
test or CLI run says how to replay it.
"""

from __future__ import annotations


class SimulationError(Exception):
    """Base class of every simulator error."""


class ScenarioError(SimulationError):
    """A scenario file (or an override) is invalid: unknown option, wrong type, bad value."""


class UnknownScenario(ScenarioError):
    """No scenario of that name in simulations/scenarios/."""


class TraceError(ScenarioError):
    """An editing trace is missing or cannot be replayed as the workload asks."""


class TraceNotFound(TraceError):
    """No editing trace file of that name (the traces live beside the checkout)."""


class RunFailed(SimulationError):
    """The run broke what the protocol promises."""


class InvariantViolated(RunFailed):
    """A safety checker found a violation (lost write, uncovered or hostile change, diverged heads)."""


class NotConverged(RunFailed):
    """The healed network did not reach identical heads within the scenario's settle time."""
