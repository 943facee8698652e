"""The storage writer: a process of its own that turns the proxy's records into rows and writes
them, so that none of that work runs on the proxy's event loop.

    python -m ferryman.apps.storage.writer     # started by the proxy's Storage, not by hand

Building a row (decoding, redaction, hashing, body deduplication: :mod:`.rows`) and inserting
it cost more than relaying the request did, and an SQLite driver's inserts run in the calling
process: in the proxy's process that halved its throughput. Here they cost the proxy nothing
but the marshalled records it sends (see :mod:`.channel` for the frames on both pipes), and
the writer runs at the lowest priority (:func:`lower_priority`): on a saturated core it takes
the time the proxy leaves, holds what it is behind on, and catches up when the load eases.

A database that is down or slow never holds the proxy back: the writer keeps the batch it could
not write and tries again with a growing pause (0.5 s to 30 s), while what arrives meanwhile
waits in memory up to ``backlog_size`` bytes; beyond that, records are dropped and counted. The
proxy learns every change of the counters and of the database's state through reports, and
writes the log lines itself, with its own counters (see :class:`~.recorder.Storage`).

The writer ends when its input ends: the proxy closed it (shutting down) or died (the kernel
closes a dead process's pipes), so no writer outlives its proxy. It then writes what it still
holds — one attempt, bounded by ``timeout``, when the database is not answering — and exits. It
ignores SIGINT and SIGTERM, which a terminal or ``kill`` of the process group sends it together
with the proxy: the proxy's last batches are still on their way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final

from ferryman.apps.storage.channel import (
    BACK,
    FULL,
    HELLO,
    LOG,
    OUTAGE,
    STORED,
    encode,
    read_frame,
    read_sized_frame,
)
from ferryman.apps.storage.database import clean, insert_statements, words, write_batch
from ferryman.apps.storage.migrate import create_engine
from ferryman.apps.storage.rows import Batch, build_batch
from ferryman.apps.storage.settings import StorageSettings

__all__ = [
    "DISCARD_ENV",
    "RETRY_MAX",
    "RETRY_MIN",
    "DatabaseWriter",
    "lower_priority",
    "main",
    "serve",
]

#: The writer's pauses between attempts while the database is unreachable.
RETRY_MIN: Final = 0.5
RETRY_MAX: Final = 30.0

#: Set (to anything), the writer counts what it receives as dropped and writes nothing: for
#: ``benchmarks/storage_bench.py``'s ``discard`` case, which measures what recording costs
#: the proxy's process alone, with a writer that takes no CPU from anything else.
DISCARD_ENV: Final = "_FERRYMAN_STORAGE_WRITER_DISCARD"  # not FERRYMAN_*: not configuration

Reporter = Callable[[str, Any], None]


class DatabaseWriter:
    """Writes batches of records into ``settings.url``, and says what happened through
    ``report(event, detail)`` (the events of :mod:`.channel`)."""

    def __init__(self, settings: StorageSettings, report: Reporter, *, available: bool = True):
        self.settings = settings
        self.engine = create_engine(settings.url, timeout=settings.timeout)
        self.report = report
        #: Records stored, and dropped (queue full, or the input ended with the database down).
        self.recorded = 0
        self.dropped = 0
        #: Whether the database answered the last write (the proxy says how it was at start).
        self.available = available
        #: Records, each with its share of the bytes of the frame it came in, and their sum.
        self._queue: deque[tuple[Sequence[Any], int]] = deque()
        self._queued_bytes = 0
        self._pending: tuple[int, Batch] | None = None
        self._ready = asyncio.Event()
        self._ending = asyncio.Event()
        self._header_names = settings.header_names
        self._json_keys = settings.json_keys
        self._statements: tuple[str, str, str] | None = None

    @property
    def held(self) -> int:
        """Records in memory: queued, and the batch being written."""
        pending = self._pending
        return len(self._queue) + (0 if pending is None else pending[0])

    def add(self, records: list[Sequence[Any]], size: int) -> None:
        """A batch from the proxy (``size``: its frame's bytes): kept while the queue holds at
        most ``backlog_size`` bytes, the rest dropped."""
        if not records:
            return
        weight = max(size // len(records), 1)
        room = (self.settings.backlog_size - self._queued_bytes) // weight
        if len(records) > room:
            kept = max(room, 0)
            lost = len(records) - kept
            records = records[:kept]
            self.dropped += lost
            self.report(FULL, lost)
        self._queued_bytes += weight * len(records)
        self._queue.extend((record, weight) for record in records)
        self._ready.set()

    def end(self) -> None:
        """The input ended: write what is held, then :meth:`run` returns."""
        self._ending.set()
        self._ready.set()

    async def run(self) -> None:
        pause = RETRY_MIN
        queue = self._queue
        batch_size = self.settings.batch_size
        while True:
            if self._pending is None:
                if not queue:
                    if self._ending.is_set():
                        return
                    self._ready.clear()
                    await self._ready.wait()
                    continue
                taken = []
                for _ in range(min(batch_size, len(queue))):
                    record, weight = queue.popleft()
                    self._queued_bytes -= weight
                    taken.append(record)
                try:
                    self._pending = (
                        len(taken),
                        build_batch(taken, self._header_names, self._json_keys),
                    )
                except Exception as exc:  # a record it cannot read: a bug, not an outage
                    self.dropped += len(taken)
                    self.report(LOG, (logging.ERROR, f"storage: unreadable records ({exc!r})"))
                    continue
            count, batch = self._pending
            try:
                async with asyncio.timeout(self.settings.timeout):
                    await self._write(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.available:
                    self.available = False
                    self.report(OUTAGE, words(exc))
                if self._ending.is_set():  # the proxy stops or died: nobody waits for retries
                    self.dropped += self.held
                    self._pending = None
                    queue.clear()
                    self._queued_bytes = 0
                    self.report(STORED, None)
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._ending.wait()
                pause = min(pause * 2, RETRY_MAX)
                continue
            self._pending = None
            self.recorded += count
            pause = RETRY_MIN
            if self.available:
                self.report(STORED, None)
            else:
                self.available = True
                self.report(BACK, None)

    async def _write(self, batch: Batch) -> None:
        statements = self._statements
        if statements is None:
            statements = self._statements = insert_statements(self.engine.dialect.paramstyle)
        await write_batch(self.engine, statements, batch)

    async def janitor(self) -> None:
        """Deletes what is older than the retention now, then every ``janitor_interval``."""
        while True:
            try:
                deleted, orphans = await clean(self.engine, self.settings.retention)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                message = f"storage: the janitor could not clean up ({words(exc)})"
                self.report(LOG, (logging.WARNING, message))
            else:
                if deleted or orphans:
                    message = f"storage: deleted {deleted} old transactions and {orphans} bodies"
                    self.report(LOG, (logging.INFO, message))
            await asyncio.sleep(self.settings.janitor_interval)


class _Closed(asyncio.Protocol):
    def __init__(self) -> None:
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def serve(input_fd: int, output_fd: int) -> int:
    """Reads the settings, then batches, from ``input_fd`` until it ends; reports on
    ``output_fd``. The exit status: 0, or 1 when the writing failed unexpectedly."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(input_fd, "rb", buffering=0)
    )
    output, protocol = await loop.connect_write_pipe(
        _Closed, os.fdopen(output_fd, "wb", buffering=0)
    )
    first = await read_frame(reader)
    if first is None:
        return 0
    settings_json, available = first
    settings = StorageSettings.model_validate_json(settings_json)

    def report(event: str, detail: Any) -> None:
        if not output.is_closing():
            head, body = encode((writer.recorded, writer.dropped, event, detail))
            output.write(head)
            output.write(body)

    writer = DatabaseWriter(settings, report, available=available)
    report(HELLO, os.getpid())
    writing = asyncio.create_task(writer.run(), name="ferryman storage writer")
    janitor = asyncio.create_task(writer.janitor(), name="ferryman storage janitor")

    discard = bool(os.environ.get(DISCARD_ENV))

    async def receive() -> None:
        while (frame := await read_sized_frame(reader)) is not None:
            batch, size = frame
            if discard:
                writer.dropped += len(batch)
                report(STORED, None)
            else:
                writer.add(batch, size)
        writer.end()

    receiving = asyncio.create_task(receive())
    status = 0
    try:
        await asyncio.wait((writing, receiving), return_when=asyncio.FIRST_EXCEPTION)
        if writing.done() and writing.exception() is not None:
            raise writing.exception()  # type: ignore[misc]
        await writing
    except Exception as exc:
        print(f"ferryman storage writer: {exc!r}", file=sys.stderr)
        status = 1
    finally:
        for task in (receiving, janitor, writing):
            task.cancel()
        for task in (receiving, janitor, writing):
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            await writer.engine.dispose()
        output.close()  # what is buffered (the last reports) is written first
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await protocol.closed
    return status


def lower_priority() -> None:
    """Run as background work: the proxy's event loop comes first.

    The writer is the proxy's child and shares its CPUs (a ``taskset`` or a container's
    cpuset pins both). Under load, the scheduler would share a saturated core between the two
    equally, and recording would take throughput from the traffic it records. At nice 19 the
    writer runs in the time the proxy leaves; behind, it holds up to ``backlog_size`` bytes of
    records and catches up when the load eases (and in ``drain_timeout`` at shutdown).
    """
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, 0, 19)


def main() -> None:
    lower_priority()
    # The reports get a descriptor of their own; anything printed goes to stderr, never
    # into the frames.
    channel = os.dup(1)
    os.dup2(2, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(asyncio.run(serve(0, channel)))


if __name__ == "__main__":
    main()
