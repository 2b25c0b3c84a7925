"""The errors a command raises for people to read: cli/main.py turns each into one line and an
exit code, never a traceback. Their own module, so the commands and the demo both raise them and
neither imports the other for it."""

from __future__ import annotations


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 1, no traceback."""


class UsageError(Exception):
    """Arguments argparse could not judge alone: usage and the message, exit code 2."""
