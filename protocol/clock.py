"""A fixed instant for runs that must repeat exactly.

The protocol never reads a clock: every time is passed in, in milliseconds since the Unix epoch.
Tests and benchmarks pass this one (2023-11-14), so the changes, tips and genesis records they
make have the same bytes and hashes every run. It lives here, with no imports, because both
tests/ and benchmarks/ use it and neither may import the other.
"""

from __future__ import annotations

FIXED_NOW_MS = 1_700_000_000_000

__all__ = ["FIXED_NOW_MS"]
