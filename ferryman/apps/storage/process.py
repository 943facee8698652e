"""The proxy's end of one storage writer process (:mod:`.writer`): start it, send it batches,
read its reports, learn when it exits.

The writer is ``python -m ferryman.apps.storage.writer`` from the proxy's own interpreter and
installation, in the proxy's process group (a terminal's Ctrl-C or a ``kill`` of the group
reaches it too, and it ignores them: it ends when its input ends, see :mod:`.writer`). The
settings travel on its standard input, never on its command line where ``ps`` would show a
database password.

Sending never blocks: :meth:`WriterProcess.send` hands the frame to the pipe's transport, which
writes what the pipe takes now and keeps the rest; the caller waits in :meth:`drain` (a task of
its own, never the request path) while more than :data:`PIPE_BACKLOG` bytes are waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import ferryman
from ferryman.apps.storage.channel import HELLO, Report, encode, read_frame
from ferryman.apps.storage.settings import StorageSettings

__all__ = ["PIPE_BACKLOG", "WriterProcess"]

#: Bytes of batches the proxy keeps for a writer that does not read fast enough; beyond, the
#: batches wait as records in the storage's queue (and beyond ``queue_size``, are dropped).
PIPE_BACKLOG: Final = 4 * 1024 * 1024
#: The pipe's own buffer, asked of the kernel (fewer wake-ups per batch than its 64 KiB).
_PIPE_SIZE: Final = 1024 * 1024
_F_SETPIPE_SZ: Final = 1031


class WriterProcess:
    """One running writer: ``on_report(self, report)`` for each of its reports (the counters
    are updated first), ``on_exit(self, returncode)`` once, when it exited."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        on_report: Callable[[WriterProcess, Report], None],
        on_exit: Callable[[WriterProcess, int], None],
    ) -> None:
        assert process.stdin is not None and process.stdout is not None
        self.process = process
        self.pid = process.pid
        #: Records sent to it, and those it reported stored or dropped.
        self.sent = 0
        self.recorded = 0
        self.dropped = 0
        #: Whether it said hello (it runs and read its settings).
        self.ready = False
        self._hello = asyncio.Event()
        self._stdin = process.stdin
        self._on_report = on_report
        self._on_exit = on_exit
        self._reading = asyncio.get_running_loop().create_task(
            self._read(process.stdout), name=f"ferryman storage writer {process.pid} reports"
        )

    @classmethod
    async def start(
        cls,
        settings: StorageSettings,
        available: bool,
        on_report: Callable[[WriterProcess, Report], None],
        on_exit: Callable[[WriterProcess, int], None],
    ) -> WriterProcess:
        """Start a writer for ``settings`` (``available``: whether the database answered the
        proxy last; the writer reports when that changes)."""
        env = dict(os.environ)
        # The same ferryman as the proxy's, whatever the current directory holds.
        package_root = str(Path(ferryman.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(
            path for path in (package_root, env.get("PYTHONPATH", "")) if path
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-P",
            "-m",
            "ferryman.apps.storage.writer",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        assert process.stdin is not None
        transport: Any = process.stdin.transport
        with contextlib.suppress(OSError, AttributeError):
            fcntl.fcntl(transport.get_extra_info("pipe").fileno(), _F_SETPIPE_SZ, _PIPE_SIZE)
        transport.set_write_buffer_limits(high=PIPE_BACKLOG)
        writer = cls(process, on_report, on_exit)
        writer._write((settings.model_dump_json(), available))
        return writer

    async def wait_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for its hello; whether it came."""
        try:
            async with asyncio.timeout(timeout):
                await self._hello.wait()
        except TimeoutError:
            return False
        return True

    @property
    def in_flight(self) -> int:
        """Records sent that it has not reported stored or dropped yet."""
        return self.sent - self.recorded - self.dropped

    @property
    def backlog(self) -> int:
        """Bytes of batches written that the pipe has not taken yet."""
        return int(self._stdin.transport.get_write_buffer_size())

    @property
    def open(self) -> bool:
        """Whether it takes batches (running, and its input not closed)."""
        return not self._stdin.transport.is_closing()

    def send(self, records: Sequence[tuple[Any, ...]]) -> None:
        """One batch (a list of ``Transaction.record()`` tuples), marshalled in one frame."""
        self._write(records)
        self.sent += len(records)

    def _write(self, value: Any) -> None:
        head, body = encode(value)
        self._stdin.write(head)
        self._stdin.write(body)

    async def drain(self) -> None:
        """Returns once fewer than :data:`PIPE_BACKLOG` bytes wait for the pipe (at once
        when the writer is gone: its exit is reported by ``on_exit``)."""
        with contextlib.suppress(ConnectionError):
            await self._stdin.drain()

    def end_input(self) -> None:
        """Close its input: it writes what it holds, reports, and exits."""
        with contextlib.suppress(Exception):
            self._stdin.close()

    async def wait(self, timeout: float) -> None:
        """Wait for it to exit (and its reports to be read); killed after ``timeout`` s."""
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._reading)
        except TimeoutError:
            self.kill()
            await self._reading

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()

    async def _read(self, reports: asyncio.StreamReader) -> None:
        try:
            while (report := await read_frame(reports)) is not None:
                recorded, dropped, event, _ = report
                self.recorded, self.dropped = recorded, dropped
                if event == HELLO:
                    self.ready = True
                    self._hello.set()
                self._on_report(self, report)
        except Exception:  # frames out of step: treat the writer as gone
            self.kill()
        self.end_input()
        returncode = await self.process.wait()
        self._on_exit(self, returncode)
