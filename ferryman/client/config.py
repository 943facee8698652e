"""Session settings that need more than a plain value: timeouts and the default headers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ferryman._version import __version__

__all__ = [
    "DEFAULT_MAX_REDIRECTS",
    "DEFAULT_TIMEOUT",
    "UNSET",
    "USER_AGENT",
    "Timeout",
    "TimeoutTypes",
]

USER_AGENT = f"ferryman/{__version__}"
DEFAULT_MAX_REDIRECTS = 10


class _Unset:
    """The default of per-request options, told apart from an explicit ``None``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


class Timeout:
    """The four timeouts of the transport, in seconds (``None``: wait forever).

    ``Timeout(5.0)`` sets all four; ``Timeout(5.0, connect=1.0)`` overrides one. ``connect``
    bounds opening a connection (TCP and TLS), ``read`` each wait for bytes, ``write`` each wait
    for the socket to accept bytes, ``pool`` the wait for a free connection.
    """

    __slots__ = ("_as_dict", "connect", "pool", "read", "write")

    def __init__(
        self,
        timeout: float | None = None,
        *,
        connect: float | Any | None = ...,
        read: float | Any | None = ...,
        write: float | Any | None = ...,
        pool: float | Any | None = ...,
    ) -> None:
        self.connect = _check("connect", timeout if connect is ... else connect)
        self.read = _check("read", timeout if read is ... else read)
        self.write = _check("write", timeout if write is ... else write)
        self.pool = _check("pool", timeout if pool is ... else pool)
        self._as_dict: dict[str, float | None] = {
            "connect": self.connect,
            "read": self.read,
            "write": self.write,
            "pool": self.pool,
        }

    def as_dict(self) -> dict[str, float | None]:
        """The ``timeout`` request extension; the same dict every time (do not mutate it)."""
        return self._as_dict

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Timeout) and self._as_dict == other._as_dict

    def __hash__(self) -> int:
        return hash(tuple(self._as_dict.values()))

    def __repr__(self) -> str:
        values = set(self._as_dict.values())
        if len(values) == 1:
            return f"Timeout({values.pop()})"
        return "Timeout({})".format(", ".join(f"{k}={v}" for k, v in self._as_dict.items()))


TimeoutTypes = Timeout | float | int | None | Mapping[str, float | None]


def _check(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(
            f"timeout {name!r} must be a number of seconds >= 0 or None, not {value!r}"
        )
    # ``0`` means "no timeout", as pulsar documents, rather than "fail at once".
    return float(value) or None


def to_timeout(value: TimeoutTypes) -> Timeout:
    if isinstance(value, Timeout):
        return value
    if value is None or isinstance(value, int | float):
        return Timeout(value)
    if isinstance(value, Mapping):
        unknown = set(value) - {"connect", "read", "write", "pool"}
        if unknown:
            raise ValueError(
                f"unknown timeout keys {sorted(unknown)}; use connect, read, write and pool"
            )
        return Timeout(None, **value)
    raise TypeError(f"timeout must be a Timeout, a number, a dict or None, not {value!r}")


DEFAULT_TIMEOUT = Timeout(5.0)
