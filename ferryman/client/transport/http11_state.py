"""Where an HTTP/1.1 client connection stands, shared by the modules that drive one.

Plain ints, not an ``Enum``: the connection compares them on every read and every request,
and a module-level int costs less to load and compare than an enum member.
"""

from __future__ import annotations

__all__ = ["ACTIVE", "BYPASS", "CLOSED", "CONNECTING", "DETACHED", "IDLE", "PARSE", "RAW"]

# The connection: opening; in its pool with no request; a request is out; closed; taken out of
# HTTP by a network stream (a CONNECT tunnel, an upgrade), so its pool no longer owns it.
CONNECTING, IDLE, ACTIVE, CLOSED, DETACHED = range(5)

# What the bytes the socket delivers are: HTTP for the parser; the rest of a long
# Content-Length body, counted instead of parsed; raw bytes after CONNECT or an upgrade.
PARSE, BYPASS, RAW = range(3)
