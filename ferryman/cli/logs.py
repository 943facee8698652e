"""What the serving commands print: ``ferryman: ...`` lines on stderr, through :mod:`logging`.

The command's own lines (addresses, shutdown) read as plain sentences; records from the rest of
ferryman (a failing middleware, a listener's error) also name their level and logger, so a user
can tell a start-up note from a problem. With ``--log-format json`` (``logging.format``) each
record is one JSON object instead (``time``, ``level``, ``logger``, ``message``), as the access
log's lines are then, so one parser reads all of stderr.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["LOGGER_NAME", "JSONFormatter", "logger", "setup_logging", "setup_logging_from"]

LOGGER_NAME: Final = "ferryman.cli"
logger = logging.getLogger(LOGGER_NAME)

LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        source = "" if record.name == LOGGER_NAME else f"{record.name}: "
        return f"ferryman: {level}{source}{text}"


class JSONFormatter(logging.Formatter):
    """One JSON object per record; a traceback, when there is one, in ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        data: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def setup_logging(level: int = logging.INFO, format: str = "text") -> None:
    """Send ferryman's log records to stderr; called once by each serving process (again, it
    changes the level and the format)."""
    root = logging.getLogger("ferryman")
    handler = next((h for h in root.handlers if getattr(h, "_ferryman_cli", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler._ferryman_cli = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    handler.setFormatter(JSONFormatter() if format == "json" else _Formatter("%(message)s"))
    root.setLevel(level)


def setup_logging_from(config: Mapping[str, Any]) -> None:
    """:func:`setup_logging` with the configuration's ``logging.level`` and ``logging.format``
    (info and text when the ``accesslog`` application, which reads them, is not listed)."""
    settings = config.get("logging") or {}
    setup_logging(
        LEVELS.get(str(settings.get("level", "info")), logging.INFO),
        str(settings.get("format", "text")),
    )
