"""Structured logs of the daemon: one logfmt line per event on stderr.

``ts=2025-01-02T03:04:05.678Z level=info event=api.listening unix=/home/x/api.sock``: a person can
read it, ``grep event=api.`` finds a subsystem, and log tools parse it without a schema. Events
are named ``subsystem.what`` and carry their details as fields, never inside the message, so the
same event always looks the same. Other libraries' records (libp2p, trio-websocket) come out in
the same form, their message as ``msg``.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import IO, Any

_FIELDS = "fields"


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
    if text and not any(char in text for char in ' "=\n\\'):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
