"""The writer holds its writes while the proxy is saturated, and writes them when the load
eases, when ``hold_under_load`` has passed, or when its input ends.

"The proxy" here is a child process burning a CPU (saturated) or stopped with SIGSTOP (idle):
the writer reads its load from ``/proc`` as it reads its real proxy's.
"""

from __future__ import annotations

import asyncio
import contextlib
import marshal
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ferryman.apps.storage.load import ProxyCPU
from ferryman.apps.storage.migrate import migrate
from ferryman.apps.storage.settings import StorageSettings
from ferryman.apps.storage.writer import MEASURE, MEASURE_EVERY, DatabaseWriter

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")

#: Enough for a measurement and the writes that follow, on a busy CI machine.
SETTLE = MEASURE + MEASURE_EVERY + 3.0


def records(count: int) -> bytes:
    """A batch frame of ``count`` minimal records, as the proxy sends them."""
    started = time.time()
    record = (
        None, "api", b"GET", b"/", [(b"Host", b"x")], "1.1", ("127.0.0.1", 1), None,
        "http://127.0.0.1:1", b"GET / HTTP/1.1", False, 200, b"OK", b"Content-Length: 0\r\n",
        None, None, started, 1.0, 1.0, 1.0, 1.0, 1.0, 0, 0, None, None, False, False, None,
    )  # fmt: skip
    return marshal.dumps([record] * count)


@pytest.fixture
def busy_proxy() -> Iterator[subprocess.Popen[bytes]]:
    """A process using a whole CPU until it is stopped (SIGSTOP) or killed."""
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


async def started_writer(tmp_path: Path, pid: int, **settings: Any) -> DatabaseWriter:
    url = f"sqlite:///{tmp_path}/holding.db"
    writer = DatabaseWriter(StorageSettings(url=url, **settings), lambda event, detail: None)
    await migrate(writer.engine, url)
    writer.proxy_cpu = ProxyCPU.open(pid)
    assert writer.proxy_cpu is not None
    return writer


@contextlib.asynccontextmanager
async def running(writer: DatabaseWriter) -> AsyncIterator[DatabaseWriter]:
    """The writer writing and watching its proxy; ended, stopped and disposed after."""
    tasks = [asyncio.create_task(writer.run()), asyncio.create_task(writer.watch_proxy())]
    try:
        yield writer
    finally:
        writer.end()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await writer.engine.dispose()


async def wait_until(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_the_writer_holds_while_the_proxy_is_saturated_and_writes_when_it_eases(
    tmp_path: Path, busy_proxy: subprocess.Popen[bytes]
) -> None:
    async with running(await started_writer(tmp_path, busy_proxy.pid)) as writer:
        assert await wait_until(lambda: writer.saturated, SETTLE)
        writer.add(records(5))
        await asyncio.sleep(SETTLE)
        assert (writer.recorded, writer.held) == (0, 5)  # held, not lost
        busy_proxy.send_signal(signal.SIGSTOP)  # the load eases
        assert await wait_until(lambda: writer.recorded == 5, SETTLE + MEASURE)
        assert not writer.saturated


async def test_a_saturation_longer_than_hold_under_load_is_written_through(
    tmp_path: Path, busy_proxy: subprocess.Popen[bytes]
) -> None:
    writer = await started_writer(tmp_path, busy_proxy.pid, hold_under_load=1.0)
    async with running(writer):
        assert await wait_until(lambda: writer.saturated, SETTLE)
        writer.add(records(5))
        assert await wait_until(lambda: writer.recorded == 5, 1.0 + SETTLE)
        assert writer.saturated  # still: written through, not because it eased


async def test_the_writer_holds_at_most_half_its_backlog(
    tmp_path: Path, busy_proxy: subprocess.Popen[bytes]
) -> None:
    frame = records(5)
    writer = await started_writer(tmp_path, busy_proxy.pid, backlog_size=len(frame) * 2)
    async with running(writer):
        assert await wait_until(lambda: writer.saturated, SETTLE)
        writer.add(frame)  # half the backlog: written although the proxy is saturated
        assert await wait_until(lambda: writer.recorded == 5, SETTLE)


def test_what_is_held_is_written_when_the_input_ends_even_while_measuring(
    tmp_path: Path, busy_proxy: subprocess.Popen[bytes]
) -> None:
    """The input ending in the middle of a measurement: the writer writes what it holds at
    once (it once spun on the ended input's event without yielding, so the measurement never
    finished and nothing more was written; run in a thread so that a spin fails the test)."""
    outcome: dict[str, Any] = {}

    async def scenario() -> None:
        writer = await started_writer(tmp_path, busy_proxy.pid)
        watching = asyncio.create_task(writer.watch_proxy())
        await asyncio.sleep(0)
        assert writer._measuring  # a measurement has begun (it takes MEASURE seconds)
        writer.add(records(7))
        writer.end()
        await writer.run()
        outcome["recorded"] = writer.recorded
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        await writer.engine.dispose()

    thread = threading.Thread(target=lambda: asyncio.run(scenario()), daemon=True)
    thread.start()
    thread.join(10 + MEASURE)
    assert not thread.is_alive(), "the writer did not finish after its input ended"
    assert outcome == {"recorded": 7}
