"""What the serving commands print: ``ferryman: ...`` lines on stderr, through :mod:`logging`.

The command's own lines (addresses, shutdown) read as plain sentences; records from the rest of
ferryman (a failing middleware, a listener's error) also name their level and logger, so a user
can tell a start-up note from a problem.
"""

from __future__ import annotations

import logging
import sys
from typing import Final

__all__ = ["LOGGER_NAME", "logger", "setup_logging"]

LOGGER_NAME: Final = "ferryman.cli"
logger = logging.getLogger(LOGGER_NAME)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        source = "" if record.name == LOGGER_NAME else f"{record.name}: "
        return f"ferryman: {level}{source}{text}"


def setup_logging(level: int = logging.INFO) -> None:
    """Send ferryman's log records to stderr; called once by each serving process."""
    root = logging.getLogger("ferryman")
    if any(getattr(handler, "_ferryman_cli", False) for handler in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("%(message)s"))
    handler._ferryman_cli = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
