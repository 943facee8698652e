"""The recorder: transactions leave the request path through a bounded queue, and a writer
task stores them in batches.

On the request path there is only :meth:`Storage.on_started` (asks the transaction to keep
bodies, unless the endpoint opted out) and :meth:`Storage.on_finished` (one append to a deque,
or one increment of :attr:`Storage.dropped` when it is full). Everything else — decoding,
redaction, hashing, SQL — happens in the writer task, a batch at a time: one INSERT per table
per batch, bodies inserted only when their hash is new.

A database that is down or slow never holds traffic back: the writer keeps the batch it could
not write and tries again with a growing pause (0.5 s to 30 s), while new transactions wait in
the queue up to ``queue_size``; beyond that they are dropped and counted. One warning says the
database went away, one that it is back and how many transactions were lost meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncEngine

from ferryman.apps.storage.migrate import create_engine, migrate
from ferryman.apps.storage.rows import COLUMNS, Batch, build_batch
from ferryman.apps.storage.schema import bodies, tags, transactions
from ferryman.apps.storage.settings import Record, StorageSettings
from ferryman.apps.storage.stream import Broadcaster
from ferryman.proxy.logs import RateLimitedLog
from ferryman.proxy.transactions import Transaction

__all__ = ["Storage"]

logger = logging.getLogger("ferryman.storage")
_overflow_log = RateLimitedLog(logger)

#: The writer's pauses between attempts while the database is unreachable.
RETRY_MIN: Final = 0.5
RETRY_MAX: Final = 30.0


class Storage:
    """Records transactions into the database at ``settings.url``; see the module docs.

    Counters other applications read (the metrics): :attr:`recorded`, :attr:`dropped`,
    :attr:`queue_depth`, and :attr:`available` (whether the last write succeeded).
    """

    def __init__(self, settings: StorageSettings, engine: AsyncEngine | None = None) -> None:
        self.settings = settings
        self.engine = (
            engine if engine is not None else create_engine(settings.url, timeout=settings.timeout)
        )
        #: Transactions stored, since start.
        self.recorded = 0
        #: Transactions that could not be stored (queue full, database down at shutdown...).
        self.dropped = 0
        #: Whether the database answered the last write.
        self.available = True
        self.stream = Broadcaster()
        self._queue: deque[Transaction] = deque()
        self._limit = settings.queue_size
        self._batch_size = settings.batch_size
        self._batch_ready = asyncio.Event()
        self._header_names = settings.header_names
        self._json_keys = settings.json_keys
        self._opted = {name: rec.record for name, rec in settings.endpoints.items()}
        self._body_limit = settings.max_body_size
        self._pending: tuple[list[Transaction], Batch] | None = None
        self._statements: tuple[str, str, str] | None = None
        self._dropped_at_outage = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._idle = asyncio.Event()
        self._idle.set()
        #: Waiting for a transaction tagged ``replay=<key>`` (see the API's replay).
        self._waiters: dict[str, asyncio.Future[str]] = {}

    # -- the request path ---------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        """Transactions waiting for the writer (the one it is retrying included)."""
        pending = self._pending
        return len(self._queue) + (0 if pending is None else len(pending[0]))

    def on_started(self, transaction: Transaction) -> None:
        """``proxy.transaction.started``: keep the bodies, unless the endpoint said not to."""
        if self._body_limit and (
            not self._opted or self._opted.get(transaction.endpoint, Record.ALL) is Record.ALL
        ):
            transaction.record_bodies(self._body_limit)

    def on_finished(self, transaction: Transaction) -> None:
        """``proxy.transaction.finished``: queue it for the writer, or count it as dropped."""
        if self._opted and self._opted.get(transaction.endpoint) is Record.NONE:
            return
        queue = self._queue
        if len(queue) >= self._limit:
            self.dropped += 1
            _overflow_log.report(
                "storage queue full",
                "storage",
                f"the storage queue is full ({self._limit} transactions waiting): "
                "transactions are dropped and counted until the writer catches up",
            )
        else:
            queue.append(transaction)
            if len(queue) == self._batch_size:
                self._batch_ready.set()
        if self.stream.subscribers:
            self.stream.publish(transaction)
        if self._waiters:
            self._resolve_waiter(transaction)

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
        """Migrate the schema and start the writer and the janitor. A database that cannot
        be reached now is not fatal: traffic flows, and the writer keeps trying."""
        try:
            async with asyncio.timeout(self.settings.timeout):
                await migrate(self.engine, self.settings.url)
        except Exception as exc:
            self.available = False
            logger.warning(
                "storage: cannot prepare the database %s (%s); proxying goes on, and "
                "recording starts when it can be reached",
                _masked(self.settings.url),
                _words(exc),
            )
            self._tasks.append(asyncio.create_task(self._migrate_later()))
        else:
            self._start_tasks()

    def _start_tasks(self) -> None:
        self._tasks.append(asyncio.create_task(self._writer(), name="ferryman storage writer"))
        self._tasks.append(asyncio.create_task(self._janitor(), name="ferryman storage janitor"))

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
            self.available = True
            logger.warning("storage: the database %s is ready", _masked(self.settings.url))
            self._start_tasks()
            return

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every queued transaction was written (or given up on)."""
        async with asyncio.timeout(timeout):
            while self.queue_depth:
                self._batch_ready.set()
                await asyncio.sleep(0.01)
            await self._idle.wait()

    async def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (for up to ``timeout`` s), stop the tasks, count what is left."""
        if self.available:
            with contextlib.suppress(TimeoutError):
                await self.flush(timeout)
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        lost = self.queue_depth
        if lost:
            self.dropped += lost
            logger.warning("storage: %d transactions were not stored before the exit", lost)
        self._queue.clear()
        self._pending = None
        self.stream.close()
        await self.engine.dispose()

    # -- the writer ---------------------------------------------------------------------------

    async def _writer(self) -> None:
        pause = RETRY_MIN
        interval = self.settings.flush_interval
        while True:
            if self._pending is None:
                if len(self._queue) < self._batch_size:
                    self._batch_ready.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(interval):
                            await self._batch_ready.wait()
                if not self._queue:
                    continue
                taken = [
                    self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))
                ]
                self._pending = (
                    taken,
                    build_batch(taken, self._header_names, self._json_keys),
                )
            taken, batch = self._pending
            self._idle.clear()
            try:
                async with asyncio.timeout(self.settings.timeout):
                    await self._write(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._idle.set()
                self._outage(exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_MAX)
                continue
            self._pending = None
            self._idle.set()
            self.recorded += len(batch)
            pause = RETRY_MIN
            if not self.available:
                self.available = True
                logger.warning(
                    "storage: the database is back; recording resumed "
                    "(%d transactions dropped while it was away)",
                    self.dropped - self._dropped_at_outage,
                )

    def _outage(self, exc: BaseException) -> None:
        if self.available:
            self.available = False
            self._dropped_at_outage = self.dropped
            logger.warning(
                "storage: cannot write to the database %s (%s); proxying goes on, up to %d "
                "transactions wait in memory, more are dropped and counted, and recording "
                "resumes when the database is back",
                _masked(self.settings.url),
                _words(exc),
                self._limit,
            )

    async def _write(self, batch: Batch) -> None:
        """One executemany per table, at the driver's level: SQLAlchemy's per-row type
        processing cost more than the database did (the rows are already plain values)."""
        statements = self._statements
        if statements is None:
            statements = self._statements = _statements(self.engine.dialect.paramstyle)
        async with self.engine.begin() as connection:
            if batch.bodies:
                await connection.exec_driver_sql(statements[0], list(batch.bodies.values()))
            await connection.exec_driver_sql(statements[1], batch.transactions)
            if batch.tags:
                await connection.exec_driver_sql(statements[2], batch.tags)

    # -- the janitor --------------------------------------------------------------------------

    async def _janitor(self) -> None:
        while True:
            try:
                await self.clean()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("storage: the janitor could not clean up (%s)", _words(exc))
            await asyncio.sleep(self.settings.janitor_interval)

    async def clean(self, now: float | None = None) -> tuple[int, int]:
        """Delete transactions older than the retention (favourites excepted), then bodies
        no transaction refers to. Returns how many of each were deleted."""
        cutoff = (time.time() if now is None else now) - self.settings.retention
        old = select(transactions.c.id).where(
            transactions.c.started_at < cutoff, transactions.c.favourite.is_(False)
        )
        async with self.engine.begin() as connection:
            await connection.execute(delete(tags).where(tags.c.transaction_id.in_(old)))
            deleted = (
                await connection.execute(
                    delete(transactions).where(
                        transactions.c.started_at < cutoff, transactions.c.favourite.is_(False)
                    )
                )
            ).rowcount
            orphans = (
                await connection.execute(
                    delete(bodies).where(
                        ~exists().where(transactions.c.request_body == bodies.c.hash),
                        ~exists().where(transactions.c.response_body == bodies.c.hash),
                    )
                )
            ).rowcount
        if deleted or orphans:
            logger.info("storage: deleted %d old transactions and %d bodies", deleted, orphans)
        return deleted, orphans


def _statements(paramstyle: str) -> tuple[str, str, str]:
    """The writer's three INSERTs (bodies and tags skip rows already there), in the driver's
    parameter style."""

    def insert_sql(table: str, columns: Sequence[str], ignore: str) -> str:
        if paramstyle == "qmark":
            marks = ", ".join("?" for _ in columns)
        elif paramstyle in ("numeric_dollar", "numeric"):
            sign = "$" if paramstyle == "numeric_dollar" else ":"
            marks = ", ".join(f"{sign}{n}" for n in range(1, len(columns) + 1))
        else:
            marks = ", ".join("%s" for _ in columns)
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
        return sql + (f" ON CONFLICT ({ignore}) DO NOTHING" if ignore else "")

    return (
        insert_sql("bodies", ("hash", "content_type", "size", "content"), "hash"),
        insert_sql("transactions", COLUMNS, ""),
        insert_sql("tags", ("transaction_id", "name", "value"), "transaction_id, name"),
    )


def _masked(url: str) -> str:
    """The URL without its password, for log lines."""
    from sqlalchemy.engine.url import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "(an unreadable URL)"


def _words(exc: BaseException) -> str:
    """An exception as a reader wants it: the driver's message, not the class hierarchy."""
    if isinstance(exc, TimeoutError):
        return "it did not answer in time"
    original: Any = getattr(exc, "orig", None) or exc
    message = str(original).strip().splitlines()[0] if str(original).strip() else ""
    if isinstance(original, ConnectionRefusedError) or "Connect call failed" in message:
        return "connection refused"
    if isinstance(original, OSError) and original.strerror:
        return original.strerror.lower()
    return message or type(original).__name__
