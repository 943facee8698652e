"""The storage writer: a process of its own that turns the proxy's records into rows and writes
them, so that none of that work runs on the proxy's event loop.

    python -m ferryman.apps.storage.writer     # started by the proxy's Storage, not by hand

Building a row (decoding, redaction, hashing, body deduplication: :mod:`.rows`) and inserting
it cost more than relaying the request did, and an SQLite driver's inserts run in the calling
process: in the proxy's process that halved its throughput. Here they cost the proxy nothing
but the marshalled records it sends (see :mod:`.channel` for the frames on both pipes), and
the writer runs at the lowest priority (:func:`lower_priority`): on a saturated core it takes
the time the proxy leaves, holds what it is behind on, and catches up when the load eases.

While the proxy is saturated (its process uses most of a CPU, :mod:`.load`), the writer holds
what it receives instead of writing it, for up to ``hold_under_load`` seconds in a row and half
of ``backlog_size``, and writes it when the load eases: the CPU that storing costs (the
writer's, and a database server's, which does not run at the writer's low priority) is then not
taken from the traffic. A burst is recorded whole, a little later; a longer saturation is
written through as it comes, as without a hold.

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
import gc
import logging
import marshal
import os
import signal
import sys
import time
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
    batch_size_of,
    encode,
    read_frame,
    read_raw_frame,
)
from ferryman.apps.storage.database import clean, insert_statements, words, write_batch
from ferryman.apps.storage.load import BUSY, ProxyCPU
from ferryman.apps.storage.migrate import create_engine
from ferryman.apps.storage.rows import Batch, build_batch
from ferryman.apps.storage.settings import StorageSettings

__all__ = [
    "DISCARD_ENV",
    "MEASURE",
    "MEASURE_EVERY",
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

#: Seconds over which the writer measures the proxy's CPU use (writing nothing meanwhile),
#: and seconds it writes between two measurements while the proxy is not saturated.
MEASURE: Final = 0.5
MEASURE_EVERY: Final = 2.0

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
        #: Batches as they came, marshalled, with their record counts, and their bytes' sum.
        #: Kept as bytes until taken: a backlog of records as tuples made every garbage
        #: collection walk all of them (most of the writer's time, behind on a busy machine).
        self._queue: deque[tuple[bytes, int]] = deque()
        self._queued_bytes = 0
        self._queued_records = 0
        self._pending: tuple[int, Batch] | None = None
        self._ready = asyncio.Event()
        self._ending = asyncio.Event()
        #: The proxy's CPU time, where it can be read (see :meth:`watch_proxy`).
        self.proxy_cpu: ProxyCPU | None = None
        #: Whether the proxy was saturated when last measured, and since when the writer
        #: holds for it.
        self.saturated = False
        self._held_since: float | None = None
        #: A hold ended: writing until the queue is empty, neither holding nor measuring.
        self._draining = False
        #: Set while a measurement needs the writer not to write; a batch being written.
        self._measuring = False
        self._writing = False
        self._header_names = settings.header_names
        self._json_keys = settings.json_keys
        self._statements: tuple[str, str, str] | None = None

    @property
    def held(self) -> int:
        """Records in memory: queued, and the batch being written."""
        pending = self._pending
        return self._queued_records + (0 if pending is None else pending[0])

    def add(self, frame: bytes) -> None:
        """A batch from the proxy, as its frame's marshalled bytes: kept while the queue
        holds at most ``backlog_size`` bytes; the records beyond are dropped and counted."""
        count = batch_size_of(frame)
        if not count:
            return
        weight = max(len(frame) // count, 1)
        room = (self.settings.backlog_size - self._queued_bytes) // weight
        if count > room:
            kept = max(room, 0)
            self.dropped += count - kept
            self.report(FULL, count - kept)
            if not kept:
                return
            frame = marshal.dumps(marshal.loads(frame)[:kept])
            count = kept
        self._queued_bytes += len(frame)
        self._queued_records += count
        self._queue.append((frame, count))
        self._ready.set()

    def _take(self, batch_size: int) -> list[Sequence[Any]]:
        """Whole frames from the queue's head, unmarshalled, until ``batch_size`` records
        (the proxy sends at most that many in one)."""
        queue = self._queue
        taken: list[Sequence[Any]] = []
        while queue and len(taken) < batch_size:
            frame, count = queue.popleft()
            self._queued_bytes -= len(frame)
            self._queued_records -= count
            taken += marshal.loads(frame)
        return taken

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
                # (Not once the input ended: a set event's wait returns without yielding.)
                if not self._ending.is_set() and (self._measuring or self._holding()):
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.05 if self._measuring else MEASURE):
                            await self._ending.wait()
                    continue
                taken = self._take(batch_size)
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
            self._writing = True
            try:
                async with asyncio.timeout(self.settings.timeout):
                    await self._write(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.available:
                    self.available = False
                    self.report(OUTAGE, words(exc))
                self._writing = False
                if self._ending.is_set():  # the proxy stops or died: nobody waits for retries
                    self.dropped += self.held
                    self._pending = None
                    queue.clear()
                    self._queued_bytes = self._queued_records = 0
                    self.report(STORED, None)
                    return
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._ending.wait()
                pause = min(pause * 2, RETRY_MAX)
                continue
            self._writing = False
            self._pending = None
            self.recorded += count
            pause = RETRY_MIN
            if self.available:
                self.report(STORED, None)
            else:
                self.available = True
                self.report(BACK, None)

    def _holding(self) -> bool:
        """Whether to hold the queue instead of writing now: while the proxy is saturated
        (:mod:`.load`), for at most ``hold_under_load`` seconds in a row and while the queue
        holds less than half of ``backlog_size``; never once the input ended. Storing costs
        the database about as much CPU again as the writer (a PostgreSQL server's is not at
        the writer's low priority), and taken while the proxy is saturated, that CPU is
        taken from the traffic; held, it is spent when the load eases.

        Once a hold ends, for any of these reasons, the writer writes until it has caught up
        (its queue is empty) before it holds again: a saturation that outlasts the hold is
        written through as if nothing had been held, the writer taking the CPU its low
        priority gets. (Where that is less than storing every request needs, the queue
        reaches ``backlog_size`` and the rest is dropped and counted, with or without a
        hold: ``benchmarks/storage_bench.py --duration 45`` on 2 CPUs and SQLite.)"""
        if self._ending.is_set():
            self._stop_holding()
            return False
        if self._draining:
            if self._queue:
                return False
            self._draining = False  # caught up
        now = time.monotonic()
        held_since = self._held_since
        if (
            not self.saturated
            or self._queued_bytes * 2 >= self.settings.backlog_size
            or (held_since is not None and now - held_since >= self.settings.hold_under_load)
        ):
            self._stop_holding()
            return False
        if held_since is None:
            self._held_since = now
        return True

    def _stop_holding(self) -> None:
        if self._held_since is not None:
            self._held_since = None
            self._draining = True

    async def watch_proxy(self) -> None:
        """Measures whether the proxy is saturated: over :data:`MEASURE` seconds in which
        the writer writes nothing (its writes, and the database's work for them, slow the
        proxy down on a busy machine: measured while they run, a saturated proxy looks less
        busy than it is). While the writer holds, it measures again at once; otherwise it
        writes for :data:`MEASURE_EVERY` seconds between two measurements, and does not
        measure while it catches up after a hold."""
        while (cpu := self.proxy_cpu) is not None and not self._ending.is_set():
            if self._draining and self._queue:  # catching up: nothing to decide meanwhile
                await asyncio.sleep(MEASURE_EVERY)
                continue
            try:
                if not self._holding():
                    self._measuring = True
                    while self._writing:  # the batch being written finishes
                        await asyncio.sleep(0.01)
                share = await cpu.share(MEASURE)
            except (OSError, ValueError, IndexError):  # the proxy is gone: the input ends
                self.proxy_cpu = None
                share = 0.0
            finally:
                self._measuring = False
            self.saturated = share >= BUSY
            if not self._holding():
                await asyncio.sleep(MEASURE_EVERY)
        self.saturated = False

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
    # What exists now (modules, the engine) lives as long as the process: kept out of the
    # collector's walks, which then see only the batches in flight.
    gc.freeze()
    if settings.hold_under_load:
        writer.proxy_cpu = ProxyCPU.open(os.getppid())
    report(HELLO, os.getpid())
    writing = asyncio.create_task(writer.run(), name="ferryman storage writer")
    janitor = asyncio.create_task(writer.janitor(), name="ferryman storage janitor")
    watching = asyncio.create_task(writer.watch_proxy(), name="ferryman storage load")

    discard = bool(os.environ.get(DISCARD_ENV))

    async def receive() -> None:
        try:
            while (frame := await read_raw_frame(reader)) is not None:
                if discard:
                    writer.dropped += batch_size_of(frame)
                    report(STORED, None)
                else:
                    writer.add(frame)
        finally:  # (a frame out of step ends the input too: nothing after it can be read)
            writer.end()

    receiving = asyncio.create_task(receive())
    status = 0
    try:
        await asyncio.wait((writing, receiving), return_when=asyncio.FIRST_EXCEPTION)
        if writing.done() and writing.exception() is not None:
            raise writing.exception()  # type: ignore[misc]
        await writing
        if receiving.done() and receiving.exception() is not None:
            raise receiving.exception()  # type: ignore[misc]
    except Exception as exc:
        print(f"ferryman storage writer: {exc!r}", file=sys.stderr)
        status = 1
    finally:
        for task in (receiving, janitor, watching, writing):
            task.cancel()
        for task in (receiving, janitor, watching, writing):
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
