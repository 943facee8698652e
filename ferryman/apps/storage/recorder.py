"""The recorder, in the proxy's process: transactions leave the request path as compact records
in a bounded queue, and a writer process (:mod:`.writer`) stores them.

On the request path there is only :meth:`Storage.on_started` (asks the transaction to keep
bodies, unless the endpoint opted out) and :meth:`Storage.on_finished` (one
``Transaction.record()`` tuple of the raw bytes and numbers appended to a deque, or one
increment of the dropped count when it is full). Every ``flush_interval``, or as soon as
``batch_size`` records wait, a flusher task marshals their list in one call and writes it to
the writer's pipe without waiting (:mod:`.process`). Everything else — decoding, redaction,
hashing, SQL, retries, the janitor — runs in the writer process, at the lowest priority: what
recording costs the proxy's process is the listeners, the tuple and its share of the
marshalling.

Nothing waits without bound and nothing grows without bound. A writer that reads too slowly
leaves at most ``PIPE_BACKLOG`` bytes in the pipe's transport; then records wait in the queue,
up to ``queue_size``, and beyond that they are dropped and counted. A database that is down
makes the writer hold up to ``backlog_size`` bytes of records and retry (its module docs say
how), as it does when it is behind on a CPU the proxy saturates; the
proxy logs one line when it goes away and one when it is back, with the loss meanwhile. A
writer that dies (killed, crashed) is reported in one line, what it held is counted as lost,
and another is started, after 0.5 s, then pauses doubling up to 30 s while they keep dying.

The migrations run here, at start, before the writer exists: the proxy's own API reads with
the engine kept here (:attr:`Storage.engine`), and a database unreachable at start is reported
here and retried before a writer is started (records wait in the queue meanwhile). With
``ferryman start --workers N`` each worker has its own writer process; several writers share
one SQLite file (WAL, a busy timeout) or one PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections import deque
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncEngine

from ferryman.apps.storage import channel
from ferryman.apps.storage.database import clean, masked, words
from ferryman.apps.storage.migrate import create_engine, migrate
from ferryman.apps.storage.process import WriterProcess
from ferryman.apps.storage.settings import Record, StorageSettings
from ferryman.apps.storage.stream import Broadcaster
from ferryman.proxy.logs import RateLimitedLog
from ferryman.proxy.transactions import Transaction

__all__ = ["RESTART_MAX", "RESTART_MIN", "Storage"]

logger = logging.getLogger("ferryman.storage")
_overflow_log = RateLimitedLog(logger)

#: Pauses before a dead writer is replaced: the first, and the longest while they keep dying.
RESTART_MIN: Final = 0.5
RESTART_MAX: Final = 30.0
#: Pauses between attempts to migrate a database that could not be reached at start.
RETRY_MIN: Final = 0.5
RETRY_MAX: Final = 30.0


class Storage:
    """Records transactions into the database at ``settings.url``; see the module docs.

    Counters other applications read (the metrics): :attr:`recorded`, :attr:`dropped`,
    :attr:`queue_depth`, and :attr:`available` (whether recording works: the database answered
    the last write and a writer runs).
    """

    def __init__(self, settings: StorageSettings, engine: AsyncEngine | None = None) -> None:
        self.settings = settings
        #: The proxy's own engine: migrations, the API's reads, :meth:`clean`.
        self.engine = (
            engine if engine is not None else create_engine(settings.url, timeout=settings.timeout)
        )
        self.stream = Broadcaster()
        #: Each finished transaction's record (``Transaction.record()``), until the flusher
        #: marshals a batch of them in one call.
        self._queue: deque[tuple[Any, ...]] = deque()
        self._limit = settings.queue_size
        self._batch_size = settings.batch_size
        self._batch_ready = asyncio.Event()
        self._opted = {name: rec.record for name, rec in settings.endpoints.items()}
        self._body_limit = settings.max_body_size
        self._writer: WriterProcess | None = None
        #: Dropped in this process (queue full); stored and dropped by writers that exited.
        self._dropped_here = 0
        self._recorded_before = 0
        self._dropped_before = 0
        self._database_up = True
        self._dropped_at_outage = 0
        self._restart_pause = RESTART_MIN
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        #: Waiting for a transaction tagged ``replay=<key>`` (see the API's replay).
        self._waiters: dict[str, asyncio.Future[str]] = {}

    # -- what the metrics and the API read ----------------------------------------------------

    @property
    def recorded(self) -> int:
        """Transactions stored, since start."""
        writer = self._writer
        return self._recorded_before + (0 if writer is None else writer.recorded)

    @property
    def dropped(self) -> int:
        """Transactions that could not be stored (queue full, database down, a writer lost)."""
        writer = self._writer
        return self._dropped_here + self._dropped_before + (0 if writer is None else writer.dropped)

    @property
    def queue_depth(self) -> int:
        """Transactions waiting to be stored: queued here, and sent to the writer but not
        reported stored or dropped yet."""
        writer = self._writer
        return len(self._queue) + (0 if writer is None else writer.in_flight)

    @property
    def available(self) -> bool:
        """Whether the database answered the last write, and a writer runs."""
        return self._database_up and self._writer is not None

    @property
    def backlog_bytes(self) -> int:
        """Bytes of marshalled batches the writer's pipe has not taken yet (at most about
        ``PIPE_BACKLOG`` plus one batch: then records wait in the queue)."""
        writer = self._writer
        return 0 if writer is None else writer.backlog

    @property
    def writer_pid(self) -> int | None:
        """The writer process's id, while one runs."""
        writer = self._writer
        return None if writer is None else writer.pid

    # -- the request path ---------------------------------------------------------------------

    def on_started(self, transaction: Transaction) -> None:
        """``proxy.transaction.started``: keep the bodies, unless the endpoint said not to."""
        if self._body_limit and (
            not self._opted or self._opted.get(transaction.endpoint, Record.ALL) is Record.ALL
        ):
            transaction.record_bodies(self._body_limit)

    def on_finished(self, transaction: Transaction) -> None:
        """``proxy.transaction.finished``: queue its record for the writer, or count it as
        dropped. The id is made here only when the live stream or a replay reads it."""
        if self._opted and self._opted.get(transaction.endpoint) is Record.NONE:
            return
        if self._waiters:
            self._resolve_waiter(transaction)
        if self.stream.subscribers:
            transaction.id  # noqa: B018 - fixed before the record is taken
            self.stream.publish(transaction)
        queue = self._queue
        if len(queue) >= self._limit:
            self._dropped_here += 1
            _overflow_log.report(
                "storage queue full",
                "storage",
                f"the storage queue is full ({self._limit} transactions waiting): "
                "transactions are dropped and counted until the writer catches up",
            )
            return
        queue.append(transaction.record())
        if len(queue) == self._batch_size:
            self._batch_ready.set()

    def _resolve_waiter(self, transaction: Transaction) -> None:
        key = transaction.tags.get("replay")
        if key is not None:
            future = self._waiters.pop(key, None)
            if future is not None and not future.done():
                future.set_result(transaction.id)

    def wait_for_tagged(self, key: str) -> asyncio.Future[str]:
        """A future of the id of the next transaction tagged ``replay=key``."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters[key] = future
        future.add_done_callback(lambda _: self._waiters.pop(key, None))
        return future

    # -- life ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Migrate the schema and start the writer process and the flusher. A database that
        cannot be reached now is not fatal: traffic flows, and migrating is tried again."""
        self._tasks.append(asyncio.create_task(self._flusher(), name="ferryman storage flusher"))
        try:
            async with asyncio.timeout(self.settings.timeout):
                await migrate(self.engine, self.settings.url)
        except Exception as exc:
            self._database_up = False
            logger.warning(
                "storage: cannot prepare the database %s (%s); proxying goes on, and "
                "recording starts when it can be reached",
                masked(self.settings.url),
                words(exc),
            )
            self._tasks.append(asyncio.create_task(self._migrate_later()))
        else:
            await self._start_writer()
            if self._writer is not None:
                # Serving starts once the writer takes records (a second or so, imports
                # mostly): a load from the first request on does not fill the queue first.
                await self._writer.wait_ready(self.settings.timeout)

    async def _migrate_later(self) -> None:
        pause = RETRY_MIN
        while not self._closing:
            await asyncio.sleep(pause)
            try:
                async with asyncio.timeout(self.settings.timeout):
                    await migrate(self.engine, self.settings.url)
            except Exception:
                pause = min(pause * 2, RETRY_MAX)
                continue
            self._database_up = True
            logger.warning("storage: the database %s is ready", masked(self.settings.url))
            await self._start_writer()
            return

    async def _start_writer(self) -> None:
        if self._closing:
            return
        try:
            self._writer = await WriterProcess.start(
                self.settings, self._database_up, self._on_report, self._on_exit
            )
        except Exception as exc:
            logger.warning("storage: cannot start the writer process (%s)", words(exc))
            self._schedule_restart()
            return
        self._batch_ready.set()  # what waited for it goes now

    def _on_report(self, writer: WriterProcess, report: channel.Report) -> None:
        _, _, event, detail = report
        if event == channel.STORED:
            if writer.recorded:
                self._restart_pause = RESTART_MIN
        elif event == channel.OUTAGE:
            if self._database_up:
                self._database_up = False
                self._dropped_at_outage = self.dropped
                logger.warning(
                    "storage: cannot write to the database %s (%s); proxying goes on, up to %d "
                    "transactions wait in memory, more are dropped and counted, and recording "
                    "resumes when the database is back",
                    masked(self.settings.url),
                    detail,
                    self._limit,
                )
        elif event == channel.BACK:
            if not self._database_up:
                self._database_up = True
                logger.warning(
                    "storage: the database is back; recording resumed "
                    "(%d transactions dropped while it was away)",
                    self.dropped - self._dropped_at_outage,
                )
        elif event == channel.FULL:
            _overflow_log.report(
                "storage queue full",
                "storage writer",
                f"the storage writer holds {self.settings.backlog_size} bytes of transactions "
                "the database has not taken yet (it is down, slow, or the writer gets no CPU): "
                "transactions are dropped and counted until it catches up",
            )
        elif event == channel.LOG:
            level, message = detail
            logger.log(level, "%s", message)

    def _on_exit(self, writer: WriterProcess, returncode: int) -> None:
        lost = writer.in_flight
        self._recorded_before += writer.recorded
        self._dropped_before += writer.dropped + lost
        if self._writer is writer:
            self._writer = None
        if self._closing:
            return
        if returncode < 0:
            try:
                how = f"was killed by {signal.Signals(-returncode).name}"
            except ValueError:
                how = f"was killed by signal {-returncode}"
        else:
            how = f"exited with status {returncode}"
        logger.warning(
            "storage: the writer process (pid %d) %s; the %d transactions it had not stored are "
            "counted as dropped, and another writer starts in %.1f s",
            writer.pid,
            how,
            lost,
            self._restart_pause,
        )
        self._schedule_restart()

    def _schedule_restart(self) -> None:
        pause = self._restart_pause
        self._restart_pause = min(pause * 2, RESTART_MAX)

        async def restart() -> None:
            await asyncio.sleep(pause)
            await self._start_writer()

        self._tasks = [task for task in self._tasks if not task.done()]
        self._tasks.append(asyncio.create_task(restart(), name="ferryman storage restart"))

    async def _flusher(self) -> None:
        interval = self.settings.flush_interval
        queue = self._queue
        batch_size = self._batch_size
        while True:
            writer = self._writer
            if writer is None or not writer.open or len(queue) < batch_size:
                self._batch_ready.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(interval):
                        await self._batch_ready.wait()
            writer = self._writer
            while queue and writer is not None and writer.open:
                if len(queue) <= batch_size:
                    batch = list(queue)
                    queue.clear()
                else:
                    batch = [queue.popleft() for _ in range(batch_size)]
                writer.send(batch)
                await writer.drain()  # waits only while the pipe's backlog is full

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued transaction was stored (or given up on)."""
        async with asyncio.timeout(timeout):
            while self.queue_depth:
                self._batch_ready.set()
                await asyncio.sleep(0.01)

    async def close(self, timeout: float = 5.0) -> None:
        """Store what is queued (for up to ``timeout`` s), stop the writer, count what is
        left."""
        if self.available:
            with contextlib.suppress(TimeoutError):
                await self.flush(timeout)
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        dropped = self.dropped
        writer = self._writer
        if writer is not None:
            if self._queue and writer.open:  # finished since the flush: the writer takes them
                writer.send(list(self._queue))
                self._queue.clear()
            writer.end_input()
            # Its last report and its exit come through _on_exit; what it still holds after
            # drain_timeout (a backlog built under load) is counted as dropped when killed.
            await writer.wait(max(timeout, self.settings.drain_timeout))
        self._dropped_here += len(self._queue)
        self._queue.clear()
        lost = self.dropped - dropped
        if lost:
            logger.warning("storage: %d transactions were not stored before the exit", lost)
        self.stream.close()
        await self.engine.dispose()

    # -- the janitor, on demand (the writer runs it every janitor_interval) -------------------

    async def clean(self, now: float | None = None) -> tuple[int, int]:
        """Delete transactions older than the retention (favourites excepted), then bodies
        no transaction refers to. Returns how many of each were deleted."""
        deleted, orphans = await clean(self.engine, self.settings.retention, now)
        if deleted or orphans:
            logger.info("storage: deleted %d old transactions and %d bodies", deleted, orphans)
        return deleted, orphans
