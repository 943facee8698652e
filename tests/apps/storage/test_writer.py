"""The writer process: its failures never reach the traffic. Killed mid-load, it is replaced
and what it held is counted; stopped (a writer too slow to read), the proxy's memory stays
bounded and the excess is counted; the proxy killed, the writer does not outlive it. Real
processes and signals, no stand-ins."""

from __future__ import annotations

import asyncio
import logging
import marshal
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

import ferryman
from ferryman.apps.storage.channel import FULL
from ferryman.apps.storage.process import PIPE_BACKLOG
from ferryman.apps.storage.settings import StorageSettings
from ferryman.apps.storage.writer import DatabaseWriter
from tests.apps.storage.test_faults import stored_count, wait_until
from tests.cli.proxy_process import ProxyProcess
from tests.servers.edge import EdgeServer


def gone(pid: int) -> bool:
    """Whether the process exited (a zombie waiting for a reaper counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as file:
            found += [int(child) for child in file.read().split()]
    return found


async def test_a_killed_writer_is_replaced_and_what_it_held_is_counted(
    serve: Any,
    database_url: str,
    edge: EdgeServer,
    client: ferryman.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    served = await serve(database_url, [("api", edge.url)], "storage.batch_size=10")
    storage = served.storage
    statuses: list[int] = []

    async def load(count: int) -> None:
        for _ in range(count):
            statuses.append((await client.get(served.url("api", "/echo"))).status_code)

    await load(30)
    await storage.flush(10)
    assert storage.recorded == 30
    first = storage.writer_pid
    assert first is not None and not gone(first)

    # Stopped, it takes nothing; 20 transactions go into its pipe, then it is killed.
    os.kill(first, signal.SIGSTOP)
    await load(20)
    await wait_until(lambda: storage.queue_depth == 20 and storage.backlog_bytes == 0)
    caplog.set_level(logging.WARNING, "ferryman.storage")
    os.kill(first, signal.SIGKILL)
    await wait_until(lambda: storage.writer_pid != first)
    await load(20)  # answered while there is no writer, or a new one starting
    await wait_until(lambda: storage.writer_pid is not None)
    await storage.flush(20)

    assert statuses == [200] * 70
    assert storage.dropped == 20 and storage.recorded == 50
    assert await stored_count(database_url) == 50
    assert gone(first) and storage.writer_pid != first and storage.available
    deaths = [r.getMessage() for r in caplog.records if "writer process" in r.getMessage()]
    assert len(deaths) == 1, deaths
    assert f"(pid {first}) was killed by SIGKILL" in deaths[0]
    assert "the 20 transactions it had not stored are counted as dropped" in deaths[0]


async def test_a_writer_that_does_not_read_leaves_the_proxy_bounded_and_counts_the_excess(
    serve: Any, tmp_path: Path, edge: EdgeServer, client: ferryman.AsyncClient
) -> None:
    url = f"sqlite:///{tmp_path}/transactions.db"
    served = await serve(url, [("api", edge.url)], "storage.queue_size=20", "storage.batch_size=5")
    storage = served.storage
    await wait_until(lambda: storage.writer_pid is not None)
    pid = storage.writer_pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # a writer that never gets the CPU
    try:
        size = 256 * 1024  # each record carries a 256 KiB body: the pipe fills quickly
        answers = [await client.get(served.url("api", f"/big?size={size}")) for _ in range(80)]
        assert all(len(a.content) == size for a in answers)
        await asyncio.sleep(0.2)  # the flusher had its turns
        # What waits: at most queue_size records here, and the pipe's backlog.
        assert len(storage._queue) <= 20
        assert storage.backlog_bytes <= PIPE_BACKLOG + 5 * (size + 4096)
        assert storage.dropped > 0
        assert storage.recorded + storage.dropped + storage.queue_depth == 80
    finally:
        os.kill(pid, signal.SIGCONT)
    await storage.flush(30)
    assert storage.recorded + storage.dropped == 80
    assert await stored_count(url) == storage.recorded > 0
    assert storage.writer_pid == pid  # it was slow, not dead


def test_the_writer_exits_when_the_proxy_is_killed(edge: EdgeServer, tmp_path: Path) -> None:
    process = ProxyProcess(
        ["--endpoint", f"api=0:{edge.url}", "--set", "proxy.port=0"],
        env={"FERRYMAN_DATA_DIR": str(tmp_path)},
    ).wait_serving()
    try:
        deadline = time.monotonic() + 20
        while not (writers := children(process.process.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(writers) == 1, process.output
        # Background work: on a core the proxy saturates, the proxy's loop comes first.
        assert os.getpriority(os.PRIO_PROCESS, writers[0]) == 19
        assert os.getpriority(os.PRIO_PROCESS, process.process.pid) == 0
        with ferryman.Client(trust_env=False) as client:
            for _ in range(20):
                assert client.get(process.url("api") + "/echo").status_code == 200
    finally:
        process.signal(signal.SIGKILL)
        process.process.wait(10)
    deadline = time.monotonic() + 15
    while not gone(writers[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(writers[0]), f"the writer {writers[0]} outlived its proxy"


async def test_the_writer_holds_at_most_backlog_size_bytes_and_counts_the_rest() -> None:
    reports: list[tuple[str, Any]] = []
    settings = StorageSettings(url="sqlite:////nonexistent/x.db", backlog_size=1000)
    writer = DatabaseWriter(settings, lambda event, detail: reports.append((event, detail)))
    try:
        # Each record its own (marshal writes a repeated object once): ~300 bytes a record.
        frame = marshal.dumps([("x" * 290 + str(n),) for n in range(5)])
        assert 1450 < len(frame) < 1550
        writer.add(frame)  # three fit
        assert (writer.held, writer.dropped) == (3, 2)
        assert reports == [(FULL, 2)]
        writer.add(marshal.dumps([("y" * 50,)]))  # fewer bytes still fit
        writer.add(marshal.dumps([("z" * 500,)]))  # these do not
        assert (writer.held, writer.dropped) == (4, 3)
        taken = writer._take(10)  # what is kept is what came, in order
        assert [row[0][:1] for row in taken] == ["x", "x", "x", "y"]
        assert taken[2][0] == "x" * 290 + "2"
        assert writer.held == 0
    finally:
        await writer.engine.dispose()


async def test_a_frame_out_of_step_ends_the_writer_after_it_stored_what_it_held(
    tmp_path: Path,
) -> None:
    """A frame that is not a batch (the pipe out of step): the writer stores the batches
    it had, says why on stderr and exits with status 1, instead of waiting for more."""
    from ferryman.apps.storage.channel import encode, read_frame
    from ferryman.apps.storage.migrate import migrate
    from ferryman.apps.storage.writer import serve

    url = f"sqlite:///{tmp_path}/step.db"
    settings = StorageSettings(url=url, hold_under_load=0)
    writer = DatabaseWriter(settings, lambda event, detail: None)
    await migrate(writer.engine, url)
    await writer.engine.dispose()
    record = (
        None, "api", b"GET", b"/", [(b"Host", b"x")], "1.1", ("127.0.0.1", 1), None,
        "http://127.0.0.1:1", b"GET / HTTP/1.1", False, 200, b"OK", b"Content-Length: 0\r\n",
        None, None, time.time(), 1.0, 1.0, 1.0, 1.0, 1.0, 0, 0, None, None, False, False, None,
    )  # fmt: skip
    to_writer, writer_input = os.pipe()[::-1]
    reports_output, reports = os.pipe()[::-1]
    with os.fdopen(to_writer, "wb") as pipe:
        for value in ((settings.model_dump_json(), True), [record] * 3, 42):  # 42: no batch
            head, body = encode(value)
            pipe.write(head + body)
    status = await asyncio.wait_for(serve(writer_input, reports_output), 20)
    assert status == 1
    reader = asyncio.StreamReader()
    with os.fdopen(reports, "rb") as file:
        reader.feed_data(file.read())
    reader.feed_eof()
    last = None
    while (report := await read_frame(reader)) is not None:
        last = report
    assert last is not None and last[0] == 3  # recorded
