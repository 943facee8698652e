"""Path rewriting: the prefix a client uses is not always the one the upstream serves."""

from __future__ import annotations

__all__ = ["Rewrite"]


class Rewrite:
    """Replace the path prefix ``rfrom`` by ``rto`` (aiorp's ``Rewrite(rfrom=..., rto=...)``).

    Prefixes match whole segments (``/api`` rewrites ``/api`` and ``/api/users``, never
    ``/apis``), and the rest of the path is kept byte for byte, percent-escapes included, so
    ``Rewrite(rfrom="/api", rto="/")`` sends ``/api/a%2Fb?q=1`` upstream as ``/a%2Fb?q=1``. A
    path without the prefix goes through unchanged.
    """

    __slots__ = ("_from", "_to", "rfrom", "rto")

    def __init__(self, rfrom: str, rto: str) -> None:
        if not rfrom.startswith("/") or not rto.startswith("/"):
            raise ValueError(f"rewrite paths start with '/': rfrom={rfrom!r}, rto={rto!r}")
        self.rfrom = rfrom
        self.rto = rto
        self._from = rfrom.rstrip("/").encode("ascii")
        self._to = rto.rstrip("/").encode("ascii")

    def apply(self, target: bytes) -> bytes:
        """Rewrite a raw request target (path and query, as received)."""
        prefix = self._from
        if not target.startswith(prefix):
            return target
        rest = target[len(prefix) :]
        if rest and rest[0] not in b"/?":
            return target  # "/apis" is not under "/api"
        if not rest or rest[0] == 63:  # b"?"
            return (self._to or b"/") if not rest else (self._to or b"/") + rest
        return self._to + rest

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rewrite) and (self.rfrom, self.rto) == (other.rfrom, other.rto)

    def __hash__(self) -> int:
        return hash((self.rfrom, self.rto))

    def __repr__(self) -> str:
        return f"Rewrite(rfrom={self.rfrom!r}, rto={self.rto!r})"
