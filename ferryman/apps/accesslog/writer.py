"""Lines gathered on the event loop, written in batches by a thread: the loop never waits on I/O.

:class:`BatchWriter` keeps the lines a listener hands it in a list and passes them on, joined,
when ``flush_interval`` has passed since the first of them or when they reach ``buffer_size``
bytes, and at :meth:`~BatchWriter.close`. A thread of its own does the ``write(2)`` calls, so a
slow disk or a terminal that stopped reading (a full pipe on stderr) holds up the thread, never
the traffic. What waits for that thread is bounded by ``max_pending`` bytes: beyond, a batch is
dropped and its lines counted (:attr:`~BatchWriter.dropped`), as are the lines of a write that
failed (a full disk, a closed stderr); one warning per interval says so.

Several processes (``ferryman start --workers N``) may write the same file or stderr: a file is
opened with ``O_APPEND``, and each batch goes in whole lines: in one ``write(2)`` to a regular
file (an append is atomic there), in pieces of at most ``PIPE_BUF`` bytes cut at line ends to a
pipe or a terminal (what POSIX keeps whole among writers). Lines of different processes
alternate, but never mix inside a line.

A file is opened once; rotate it with logrotate's ``copytruncate`` (with ``O_APPEND`` the next
write goes to the start of the truncated file), or call :meth:`~BatchWriter.reopen`.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import select
import stat
import threading
from collections import deque
from typing import Final

from ferryman.proxy.logs import RateLimitedLog

__all__ = ["BatchWriter"]

logger = logging.getLogger("ferryman.accesslog")
#: Bytes a write to a pipe may carry and stay whole among several writers (POSIX minimum 512;
#: 4096 on Linux).
PIPE_BUF: Final = getattr(select, "PIPE_BUF", 512)
#: Seconds the writing thread waits for a pipe that will not take more before it drops a batch.
STALL_TIMEOUT: Final = 5.0
#: Seconds :meth:`BatchWriter.close` waits for the thread to write what it holds.
CLOSE_TIMEOUT: Final = 5.0


class BatchWriter:
    """Buffers lines (``str`` ending with a newline) and writes them in batches; see the module.

    ``path``: a file to append to (created if needed, mode 0644), or ``None`` for stderr
    (file descriptor 2, which is never closed here). Call :meth:`open` before the first line.
    """

    def __init__(
        self,
        path: str | None = None,
        *,
        flush_interval: float = 0.2,
        buffer_size: int = 65536,
        max_pending: int = 8 * 1024 * 1024,
    ) -> None:
        self.path = path
        self.flush_interval = flush_interval
        self.buffer_size = buffer_size
        self.max_pending = max_pending
        #: Lines written, and lines lost (queue full, failed writes); read by the metrics.
        self.written = 0
        self.dropped = 0
        self._lines: list[str] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._fd = -1
        self._whole = True  # a regular file: a batch in one write
        self._queue: deque[tuple[bytes, int] | None] = deque()
        self._pending = 0
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        # One per thread: a RateLimitedLog is not shared between threads.
        self._problems = RateLimitedLog(logger)
        self._write_problems = RateLimitedLog(logger)

    # -- on the event loop ----------------------------------------------------------------------

    def open(self) -> None:
        """Open the file (``OSError`` if it cannot be) and start the writing thread."""
        self._fd = self._open_fd()
        self._thread = threading.Thread(
            target=self._run, name=f"ferryman access log ({self.describe()})", daemon=True
        )
        self._thread.start()

    def describe(self) -> str:
        return "stderr" if self.path is None else self.path

    def _open_fd(self) -> int:
        if self.path is None:
            fd = 2
        else:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
            fd = os.open(self.path, flags, 0o644)
        try:
            self._whole = stat.S_ISREG(os.fstat(fd).st_mode)
        except OSError:  # a closed stderr: every write will fail, and be counted
            self._whole = False
        return fd

    def write(self, line: str) -> None:
        """Add one line; it is written within ``flush_interval`` seconds."""
        lines = self._lines
        lines.append(line)
        self._size += len(line)
        if self._size >= self.buffer_size:
            self.flush()
        elif self._timer is None and len(lines) == 1:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (a test, a script): at once
                self.flush()
                return
            self._timer = loop.call_later(self.flush_interval, self._timed_flush)

    def _timed_flush(self) -> None:
        self._timer = None
        self.flush()

    def flush(self) -> None:
        """Hand the buffered lines to the writing thread now (dropped if too much waits)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        lines = self._lines
        if not lines:
            return
        self._lines = []
        self._size = 0
        data = "".join(lines).encode("utf-8", "backslashreplace")
        with self._ready:
            if self._closed or self._pending + len(data) > self.max_pending:
                self.dropped += len(lines)
                dropped = True
            else:
                self._pending += len(data)
                self._queue.append((data, len(lines)))
                self._ready.notify()
                dropped = False
        if dropped:
            self._problems.report(
                "access log lines dropped",
                self.describe(),
                f"the access log ({self.describe()}) is not written as fast as lines come: "
                f"{len(lines)} dropped ({self.dropped} in all)",
            )

    def reopen(self) -> None:
        """Open the file again (after it was moved away by a rotation); the next batches go to
        the new one. Nothing for stderr."""
        if self.path is None:
            return
        with self._ready:
            self._queue.append((b"", -1))  # the thread reopens between two batches
            self._ready.notify()

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Write what is buffered and stop the thread (waiting up to ``timeout`` seconds)."""
        self.flush()
        thread = self._thread
        with self._ready:
            self._closed = True
            self._queue.append(None)
            self._ready.notify()
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                with self._ready:
                    lost = sum(item[1] for item in self._queue if item is not None and item[1] > 0)
                logger.warning(
                    "the access log (%s) could not be written within %gs at shutdown: "
                    "%d line(s) lost",
                    self.describe(),
                    timeout,
                    lost,
                )
                return  # the daemon thread may still be writing: leave its fd open
        if self.path is not None and self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    # -- in the writing thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue:
                    self._ready.wait()
                item = self._queue.popleft()
            if item is None:
                return
            data, count = item
            if count < 0:
                self._reopen_now()
                continue
            error: OSError | None = None
            try:
                self._write(data)
            except OSError as exc:
                error = exc
            with self._ready:
                self._pending -= len(data)
                if error is None:
                    self.written += count
                else:
                    self.dropped += count
            if error is not None:
                self._write_problems.report(
                    "access log lines dropped",
                    self.describe(),
                    f"cannot write the access log ({self.describe()}): "
                    f"{os.strerror(error.errno).lower() if error.errno else error}; "
                    f"{count} line(s) dropped",
                )

    def _reopen_now(self) -> None:
        try:
            fd = self._open_fd()
        except OSError as exc:
            logger.warning("cannot reopen the access log %s: %s", self.path, exc.strerror)
            return
        old, self._fd = self._fd, fd
        if old >= 0:
            os.close(old)

    def _write(self, data: bytes) -> None:
        if self._whole:
            self._write_all(data)
            return
        # A pipe or a terminal: whole lines, at most PIPE_BUF bytes a write.
        start, end = 0, len(data)
        while start < end:
            stop = end if end - start <= PIPE_BUF else data.rfind(b"\n", start, start + PIPE_BUF)
            if stop < start:  # one line longer than PIPE_BUF: on its own
                stop = data.find(b"\n", start + PIPE_BUF)
                stop = end if stop < 0 else stop + 1
            elif stop != end:
                stop += 1
            self._write_all(data[start:stop])
            start = stop

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._fd, view)
            except BlockingIOError:  # someone made the fd non-blocking: wait until it takes more
                _, ready, _ = select.select([], [self._fd], [], STALL_TIMEOUT)
                if not ready:
                    raise OSError(errno.EAGAIN, "the reader stopped reading") from None
                continue
            except InterruptedError:
                continue
            view = view[written:]
