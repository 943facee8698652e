"""The ``logging`` configuration: the access log, and how ferryman's own log lines look.

.. code-block:: yaml

    logging:
      access_log: stderr          # or "-" (stderr too), a file path (appended to), or "off"
      format: text                # or json: one object per line (the access log and the rest)
      level: info                 # ferryman's own loggers: debug, info, warning or error
      redact_query: [api_key, access_token, token, password, secret, signature, sig, key]
      flush_interval: 0.2         # seconds an access-log line may wait in memory
      buffer_size: 65536          # bytes buffered before a write regardless of the timer
      max_pending: 8388608        # bytes queued for the writer; beyond, lines are dropped

``ferryman start --access-log FILE|off --log-format text|json --log-level LEVEL`` set the first
three. Read by the ``accesslog`` application (in the default ``applications``); the command line
applies ``format`` and ``level`` to its own lines too.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import Field, field_validator

from ferryman.system.applications import Settings

__all__ = ["DEFAULT_REDACTED_PARAMETERS", "LogFormat", "LogLevel", "LoggingSettings"]

LogFormat = Literal["text", "json"]
LogLevel = Literal["debug", "info", "warning", "error"]

#: Query parameters whose values the access log replaces with ``[redacted]``: logs are read by
#: more people than the traffic is, and API keys often travel in the URL.
DEFAULT_REDACTED_PARAMETERS: Final = (
    "access_token",
    "api_key",
    "apikey",
    "auth",
    "client_secret",
    "key",
    "password",
    "secret",
    "sig",
    "signature",
    "token",
)
#: What ``access_log`` says for "standard error" and for "no access log".
STDERR_NAMES: Final = frozenset({"stderr", "-"})
OFF_NAMES: Final = frozenset({"off"})


class LoggingSettings(Settings):
    """Validated ``logging`` settings (see the module documentation)."""

    access_log: Annotated[str, Field(min_length=1)] = "stderr"
    format: LogFormat = "text"
    level: LogLevel = "info"
    redact_query: list[str] = Field(default_factory=lambda: list(DEFAULT_REDACTED_PARAMETERS))
    flush_interval: Annotated[float, Field(gt=0, le=10)] = 0.2
    buffer_size: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 65536
    max_pending: Annotated[int, Field(ge=65536)] = 8 * 1024 * 1024

    @field_validator("access_log", mode="before")
    @classmethod
    def _off(cls, value: object) -> object:
        # YAML reads a bare ``off`` (and ``false``) as False: both mean "no access log".
        if value is False or value is None:
            return "off"
        if value is True:
            return "stderr"
        return value

    @field_validator("level", "format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @property
    def access_log_off(self) -> bool:
        return self.access_log.lower() in OFF_NAMES

    @property
    def access_log_to_stderr(self) -> bool:
        return self.access_log.lower() in STDERR_NAMES
