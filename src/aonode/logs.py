"""Logging for ``aonode serve``: readable lines by default, JSON lines with ``--log-format json``.

Quiet unless something needs attention: the node logs at ``warning`` and
above, plus one line per start and stop (of the node, and of each process's
scheduler) on the ``aonode.lifecycle`` logger, which stays at ``info`` under
the default level.  Lines about a process carry ``process_id`` (``process``
is taken: LogRecord's OS pid) and, where one applies, ``slot`` as fields
(``extra=where(pid, slot)``), so JSON consumers need not parse messages; the
readable format appends them as ``key=value``.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Final, TextIO

import orjson

LIFECYCLE: Final = "aonode.lifecycle"
FORMATS: Final = ("text", "json")
LEVELS: Final = ("debug", "info", "warning", "error", "critical")

lifecycle = logging.getLogger(LIFECYCLE)

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


def where(process: str, slot: int | None = None, **more: object) -> dict[str, object]:
    """The ``extra`` of a line about ``process`` (at ``slot``)."""
    fields: dict[str, object] = {"process_id": process}
    if slot is not None:
        fields["slot"] = slot
    fields.update(more)
    return fields


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {
        k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")
    }


def _timestamp(record: logging.LogRecord) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{stamp}.{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``t``, ``level``, ``logger``, ``msg``, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "t": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update(_fields(record))
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


class TextFormatter(logging.Formatter):
    """``2026-01-02T03:04:05.678Z WARNING aonode.scheduler: message process=… slot=…``."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        fields = _fields(record)
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup(level: str = "warning", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Send the node's logs to ``stream`` (stderr) in ``fmt``; idempotent per process.

    Raises ``ValueError`` for an unknown level or format.
    """
    if level.lower() not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    number = logging.getLevelName(level.upper())
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_aonode", False)]:
        root.removeHandler(old)
    handler._aonode = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(max(number, logging.WARNING))  # other libraries: warnings and up
    logging.getLogger("aonode").setLevel(number)
    # Start/stop lines are not noise; they stay unless the operator asked for errors only.
    lifecycle.setLevel(min(number, logging.INFO) if number <= logging.WARNING else number)
