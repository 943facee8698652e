"""The ``storage`` configuration: where transactions are kept, for how long, and what of them.

.. code-block:: yaml

    storage:
      url: postgresql://ferryman@db.internal/ferryman   # default: SQLite in the data directory
      enabled: true
      retention: 30d              # "12h", "90m", "45s", or seconds as a number
      max_body_size: 1048576      # bytes kept per body; longer ones are truncated and marked
      queue_size: 10000           # transactions waiting for the writer process; beyond, dropped
      backlog_size: 268435456     # bytes of records the writer holds while behind; beyond, dropped
      drain_timeout: 30           # seconds a stopping proxy lets the writer store what it holds
      hold_under_load: 30         # seconds the writer may hold records while the proxy is saturated
      batch_size: 500             # records per batch sent to the writer, and rows per INSERT
      flush_interval: 0.5         # seconds the proxy waits for a batch to fill before sending
      redact_headers: [X-Api-Key] # added to Authorization, Proxy-Authorization, Cookie, Set-Cookie
      redact_json_keys: [pin]     # added to password, token, secret, access_token...
      endpoints:
        payments: {record: headers}   # all (default) | headers (no bodies) | none

The default URL is an SQLite file ``transactions.db`` in ``platformdirs.user_data_dir("ferryman")``,
or in ``$FERRYMAN_DATA_DIR`` when that is set (tests and containers point it elsewhere; it is not
a configuration key). ``postgresql://`` URLs use asyncpg and ``sqlite:///`` URLs aiosqlite, so the
plain URLs other tools print work as they are.
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from typing import Annotated, Final

from pydantic import Field, field_validator

from ferryman.system.applications import Settings

__all__ = [
    "DATA_DIR_ENV",
    "DEFAULT_REDACT_HEADERS",
    "DEFAULT_REDACT_JSON_KEYS",
    "EndpointRecording",
    "Record",
    "StorageSettings",
    "data_dir",
    "default_url",
    "driver_url",
    "parse_duration",
]

#: Overrides the data directory (where the default SQLite file lives).
DATA_DIR_ENV: Final = "FERRYMAN_DATA_DIR"
#: Header names whose values are never stored (case-insensitive); ``redact_headers`` adds to them.
DEFAULT_REDACT_HEADERS: Final = ("authorization", "proxy-authorization", "cookie", "set-cookie")
#: JSON object keys whose values are never stored (case-insensitive), at any depth.
DEFAULT_REDACT_JSON_KEYS: Final = (
    "password",
    "token",
    "secret",
    "access_token",
    "refresh_token",
    "client_secret",
    "api_key",
)

_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def data_dir() -> str:
    """Where ferryman keeps its data: ``$FERRYMAN_DATA_DIR``, else the user's data directory."""
    configured = os.environ.get(DATA_DIR_ENV)
    if configured:
        return configured
    import platformdirs

    return platformdirs.user_data_dir("ferryman")


def default_url() -> str:
    return "sqlite:///" + os.path.join(data_dir(), "transactions.db")


def driver_url(url: str) -> str:
    """``url`` with the asynchronous driver SQLAlchemy needs (``postgresql://`` -> asyncpg)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"{url!r} is not a database URL (postgresql://... or sqlite:///...)")
    base = scheme.split("+", 1)[0].lower()
    if base in ("postgresql", "postgres"):
        return "postgresql+asyncpg://" + rest
    if base == "sqlite":
        return "sqlite+aiosqlite://" + rest
    raise ValueError(f"{scheme!r} databases are not supported: use postgresql:// or sqlite:///")


def parse_duration(value: object) -> float:
    """Seconds, from a number or ``"30d"``/``"12h"``/``"90m"``/``"45s"``/``"2w"``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '30d' or '12h'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ValueError(
            f"{value!r} is not a duration: a number of seconds or a string like '30d' or '12h'"
        )
    if seconds <= 0:
        raise ValueError("a duration must be more than 0 seconds")
    return seconds


class Record(StrEnum):
    """What is stored of an endpoint's transactions."""

    ALL = "all"  # heads and bodies (up to max_body_size)
    HEADERS = "headers"  # heads only: bodies are never buffered
    NONE = "none"  # nothing: the endpoint's transactions are not recorded


class EndpointRecording(Settings):
    record: Record = Record.ALL


class StorageSettings(Settings):
    url: Annotated[str, Field(min_length=1)] = Field(default_factory=default_url)
    enabled: bool = True
    #: Seconds a transaction is kept (favourites are kept until unmarked).
    retention: float = 30 * 86400.0
    max_body_size: Annotated[int, Field(ge=0)] = 1024 * 1024
    queue_size: Annotated[int, Field(ge=1)] = 10000
    #: Bytes of records (as marshalled, about 700 for a small JSON exchange) the writer process
    #: holds while the database, or the CPU it shares with the proxy, is behind.
    backlog_size: Annotated[int, Field(ge=0)] = 256 * 1024 * 1024
    #: Seconds a stopping proxy waits for its writer to store what it holds; then it is killed
    #: and what it held is counted as dropped.
    drain_timeout: Annotated[float, Field(gt=0)] = 30.0
    #: Seconds in a row the writer may hold what it receives, instead of writing it, while the
    #: proxy's process uses most of a CPU (see ``writer.DatabaseWriter._holding``); 0: never.
    hold_under_load: Annotated[float, Field(ge=0)] = 30.0
    batch_size: Annotated[int, Field(ge=1, le=10000)] = 500
    flush_interval: Annotated[float, Field(gt=0, le=60)] = 0.5
    #: How often the janitor runs (it also runs once at start).
    janitor_interval: Annotated[float, Field(gt=0)] = 3600.0
    #: Seconds a database call may take before the batch is counted as lost and retried later.
    timeout: Annotated[float, Field(gt=0)] = 10.0
    redact_headers: list[str] = []
    redact_json_keys: list[str] = []
    #: Endpoint name -> what is recorded of it (all, headers, none).
    endpoints: dict[str, EndpointRecording] = {}
    #: Subscribers of the live stream at once; more are refused with 503.
    max_subscribers: Annotated[int, Field(ge=0)] = 100

    @field_validator("retention", "janitor_interval", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return parse_duration(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        driver_url(value)  # raises with the reason
        return value

    @property
    def header_names(self) -> frozenset[str]:
        """Header names to redact, lower-case."""
        return frozenset(DEFAULT_REDACT_HEADERS) | {name.lower() for name in self.redact_headers}

    @property
    def json_keys(self) -> frozenset[str]:
        """JSON keys to redact, lower-case."""
        return frozenset(DEFAULT_REDACT_JSON_KEYS) | {key.lower() for key in self.redact_json_keys}

    def record(self, endpoint: str) -> Record:
        recording = self.endpoints.get(endpoint)
        return Record.ALL if recording is None else recording.record
