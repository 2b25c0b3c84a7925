"""Structured logs of the daemon: one logfmt line per event on stderr.

``ts=2025-01-02T03:04:05.678Z level=info event=api.listening unix=/home/x/api.sock``: a person can
read it, ``grep event=api.`` finds a subsystem, and log tools parse it without a schema. Events
are named ``subsystem.what`` and carry their details as fields, never inside the message, so the
same event always looks the same. Other libraries' records (libp2p, trio-websocket) come out in
the same form, their message as ``msg``.

Field values often carry what a peer or a client sent (a name, a path, an error quoting its
input): every control character in them is escaped (``\n``, ``\x1b``, ``\u2028``...), so one
event stays one line and no value can move a terminal's cursor or forge a line of its own.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import IO, Any

_FIELDS = "fields"
# What forces a value into quotes: the separators of logfmt, and every control character (C0,
# DEL, C1) and Unicode line or paragraph separator, which a terminal or a line reader acts on.
_NEEDS_QUOTES = re.compile(r'[\s"=\\\x00-\x1f\x7f-\x9f\u2028\u2029]')
_ESCAPED = re.compile(r'["\\\x00-\x1f\x7f-\x9f\u2028\u2029]')
_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def event(logger: logging.Logger, name: str, level: int = logging.INFO, *, exc_info: bool = False, **fields: Any) -> None:
    """Log event ``name`` with ``fields`` (and the traceback being handled, with ``exc_info``)."""
    logger.log(level, name, exc_info=exc_info, extra={_FIELDS: fields})


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        pairs: list[tuple[str, object]] = [("ts", stamp), ("level", record.levelname.lower())]
        fields = getattr(record, _FIELDS, None)
        if fields is None:
            pairs += [("logger", record.name), ("msg", record.getMessage())]
        else:
            pairs += [("event", record.msg), *fields.items()]
        if record.exc_info:
            pairs.append(("error", self.formatException(record.exc_info)))
        return " ".join(f"{key}={_value(value)}" for key, value in pairs)


def configure(stream: IO[str] = sys.stderr, level: int = logging.INFO) -> None:
    """Send every log record of the process to ``stream`` as logfmt (the daemon's entry point calls this)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def _value(value: object) -> str:
    text = str(value)
    if text and not _NEEDS_QUOTES.search(text):
        return text
    return '"' + _ESCAPED.sub(_escape, text) + '"'


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _SHORT_ESCAPES.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")
