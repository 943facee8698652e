"""The batch writer: lines reach the file within the flush interval, in whole lines, appended;
a full disk, a closed stderr or a reader that stops reading cost lines (counted), never an
exception or a blocked event loop."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from ferryman.apps.accesslog.writer import PIPE_BUF, BatchWriter


async def test_lines_are_written_after_the_flush_interval_not_one_by_one(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_text("before\n")
    writer = BatchWriter(str(path), flush_interval=0.2)
    writer.open()
    try:
        for i in range(50):
            writer.write(f"line {i}\n")
        assert path.read_text() == "before\n"  # buffered: nothing written yet
        await asyncio.sleep(0.5)
        assert path.read_text().splitlines() == ["before", *(f"line {i}" for i in range(50))]
        assert writer.written == 50 and writer.dropped == 0
    finally:
        writer.close()


async def test_a_full_buffer_is_written_at_once_and_close_writes_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    writer = BatchWriter(str(path), flush_interval=5, buffer_size=1024)
    writer.open()
    line = "x" * 99 + "\n"
    for _ in range(11):  # 1100 bytes: past the buffer size
        writer.write(line)
    for _ in range(50):
        if writer.written:
            break
        await asyncio.sleep(0.02)
    assert writer.written == 11  # long before the 5 s timer
    writer.write("last\n")
    writer.close()
    assert path.read_text() == line * 11 + "last\n"


async def test_a_full_disk_drops_and_counts_lines_without_raising(
    caplog: pytest.LogCaptureFixture,
) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    writer = BatchWriter("/dev/full", flush_interval=0.05)
    writer.open()
    for i in range(10):
        writer.write(f"line {i}\n")
    await asyncio.sleep(0.3)
    writer.close()
    assert writer.dropped == 10 and writer.written == 0
    assert "no space left on device; 10 line(s) dropped" in caplog.text


def fifo(tmp_path: Path) -> tuple[str, int]:
    """A named pipe, and its read end (non-blocking), opened so that a writer may open it."""
    path = str(tmp_path / "pipe")
    os.mkfifo(path)
    return path, os.open(path, os.O_RDONLY | os.O_NONBLOCK)


def drain(read_end: int) -> bytes:
    data = b""
    while True:
        try:
            chunk = os.read(read_end, 1 << 20)
        except BlockingIOError:
            return data
        if not chunk:
            return data
        data += chunk


async def test_what_waits_for_the_writer_is_bounded_and_the_loop_is_never_blocked(
    tmp_path: Path,
) -> None:
    path, read_end = fifo(tmp_path)  # nobody reads it for now: the thread blocks once it is full
    writer = BatchWriter(path, flush_interval=0.01, buffer_size=1024, max_pending=256 * 1024)
    writer.open()
    line = "y" * 1023 + "\n"
    started = time.monotonic()
    for _ in range(1000):  # 1 MB: far more than the pipe (64 KiB) and max_pending hold
        writer.write(line)
    assert time.monotonic() - started < 0.5  # the loop never waited on the pipe
    assert writer.dropped > 500  # what did not fit in max_pending, counted
    data = b""
    deadline = time.monotonic() + 10
    while writer.written + writer.dropped < 1000 and time.monotonic() < deadline:
        data += drain(read_end)  # the reader is back: what was queued arrives
        await asyncio.sleep(0.01)
    writer.close(timeout=2)
    data += drain(read_end)
    os.close(read_end)
    assert writer.written + writer.dropped == 1000
    assert writer.written >= 200  # the pipe's 64 KiB and the 256 KiB queued
    assert data == line.encode() * writer.written  # whole lines, none lost but those counted


async def test_to_a_pipe_a_batch_goes_in_whole_lines_of_at_most_pipe_buf_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, read_end = fifo(tmp_path)
    writes: list[bytes] = []
    real_write = os.write

    def recording_write(fd: int, data: bytes | memoryview) -> int:
        writes.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", recording_write)
    lines = [f"{i:05d}".encode() + b"z" * (i % 300) + b"\n" for i in range(200)]
    lines.append(b"L" * (PIPE_BUF + 10) + b"\n")  # longer than PIPE_BUF: written on its own
    lines.append(b"end\n")
    writer = BatchWriter(path, flush_interval=5)
    writer.open()
    for line in lines:
        writer.write(line.decode())
    writer.close()
    data = drain(read_end)
    os.close(read_end)
    assert data == b"".join(lines)
    assert len(writes) > 1
    assert all(piece.endswith(b"\n") for piece in writes)
    assert all(len(piece) <= PIPE_BUF for piece in writes if not piece.startswith(b"L"))
    assert lines[-2] in writes
