"""The pipes between the proxy and its storage writer process: frames of marshalled data.

A frame is a 4-byte big-endian length and that many bytes of :mod:`marshal` data. Both ends are
ferryman of the same installation (the proxy starts the writer from its own interpreter), so
marshal's format is shared and its input trusted; it is the cheapest way found to turn record
tuples into bytes (less than half of pickle's cost).

The proxy sends, on the writer's standard input, ``(settings as JSON, database available)``
first, then batches: lists of ``Transaction.record()`` tuples, marshalled in one call per batch
(a third cheaper per record than marshalling each on its own when its transaction finished).
The writer answers on its standard output with :data:`Report` tuples
``(recorded, dropped, event, detail)``: its counters so far, and what happened
(:data:`HELLO`, :data:`STORED`, :data:`OUTAGE`, :data:`BACK`, :data:`FULL`, :data:`LOG`).
"""

from __future__ import annotations

import asyncio
import marshal
import struct
from typing import Any, Final

__all__ = [
    "BACK",
    "FULL",
    "HELLO",
    "LOG",
    "MAX_FRAME",
    "OUTAGE",
    "STORED",
    "Report",
    "batch_size_of",
    "encode",
    "read_frame",
    "read_raw_frame",
    "read_sized_frame",
]

_LENGTH: Final = struct.Struct(">I")
#: A frame longer than this is a broken pipe, not data (a batch is at most 10000 records).
MAX_FRAME: Final = 1 << 31

#: The writer started: ``detail`` is its pid.
HELLO: Final = "hello"
#: A batch was stored (or dropped): the counters moved.
STORED: Final = "stored"
#: The database stopped answering: ``detail`` says why, in words.
OUTAGE: Final = "outage"
#: The database answers again.
BACK: Final = "back"
#: The writer's own queue was full: ``detail`` records were dropped.
FULL: Final = "full"
#: A line for the proxy's log: ``detail`` is ``(level, message)``.
LOG: Final = "log"

#: ``(recorded, dropped, event, detail)``, the writer's counters since it started.
Report = tuple[int, int, str, Any]


def encode(value: Any) -> tuple[bytes, bytes]:
    """The frame of ``value``: its length prefix and its body, to write one after the other
    (no copy of a large body into a larger buffer)."""
    body = marshal.dumps(value)
    return _LENGTH.pack(len(body)), body


async def read_frame(reader: asyncio.StreamReader) -> Any:
    """The next frame's value; ``None`` when the other end closed the pipe (at a frame's
    boundary or in the middle of one: either way, nothing more comes)."""
    frame = await read_sized_frame(reader)
    return None if frame is None else frame[0]


async def read_sized_frame(reader: asyncio.StreamReader) -> tuple[Any, int] | None:
    """:func:`read_frame`'s value and the frame's size in bytes (what holding it costs)."""
    frame = await read_raw_frame(reader)
    return None if frame is None else (marshal.loads(frame), len(frame))


async def read_raw_frame(reader: asyncio.StreamReader) -> bytes | None:
    """The next frame's marshalled bytes, not turned into objects yet; ``None`` at the end."""
    try:
        header = await reader.readexactly(_LENGTH.size)
        (length,) = _LENGTH.unpack(header)
        if length >= MAX_FRAME:
            raise ValueError(f"a frame of {length} bytes: the pipe is out of step")
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        return None


#: marshal's type code of a list, without and with its reference flag (0x80).
_LIST_CODES: Final = frozenset((0x5B, 0xDB))


def batch_size_of(frame: bytes) -> int:
    """How many records a batch frame (a marshalled list) holds, read from its head without
    unmarshalling it: marshal writes a list as its type code and its length, a 4-byte
    little-endian integer (the format of this interpreter, which wrote the frame)."""
    if len(frame) < 5 or frame[0] not in _LIST_CODES:
        raise ValueError("not a batch: a batch frame is a marshalled list")
    return int.from_bytes(frame[1:5], "little")
