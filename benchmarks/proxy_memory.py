"""Does the proxy's memory stay flat while a large body streams through it, both ways?

``python benchmarks/proxy_memory.py [--size-mib 1024]`` starts an upstream on 127.0.0.1 that
serves (and swallows) a body of that size without holding it, starts ``python -m ferryman.proxy``
in front of it, downloads then uploads the body through the proxy, and samples the proxy's
resident memory (VmRSS) every 100 ms. It prints the RSS before and the peak during each
transfer: flat means the peak does not grow with ``--size-mib``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time

CHUNK = b"\x5a" * (256 * 1024)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, size: int) -> None:
    """GET: ``size`` bytes with a Content-Length; POST: read the body, answer its length."""
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            return
        if head.startswith(b"GET"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
            left = size
            while left:
                piece = CHUNK if left >= len(CHUNK) else CHUNK[:left]
                writer.write(piece)
                left -= len(piece)
                await writer.drain()
        else:
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            left = length
            while left:
                left -= len(await reader.read(min(left, 1 << 20)))
            body = b"%d" % length
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()


async def transfer(port: int, size: int, upload: bool, pid: int, peak: list[int]) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.perf_counter()
    if upload:
        writer.write(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
        left = size
        while left:
            piece = CHUNK if left >= len(CHUNK) else CHUNK[:left]
            writer.write(piece)
            left -= len(piece)
            await writer.drain()
            peak[0] = max(peak[0], rss_kib(pid))
        await reader.readuntil(b"\r\n\r\n")
    else:
        writer.write(b"GET /down HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readuntil(b"\r\n\r\n")
        left = size
        while left:
            data = await reader.read(1 << 20)
            if not data:
                raise RuntimeError("the proxy closed the connection early")
            left -= len(data)
            peak[0] = max(peak[0], rss_kib(pid))
    elapsed = time.perf_counter() - started
    writer.close()
    return elapsed


async def main(size: int) -> None:
    up_port, proxy_port = free_port(), free_port()
    server = await asyncio.start_server(lambda r, w: upstream(r, w, size), "127.0.0.1", up_port)
    proxy = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ferryman.proxy",
            "--port",
            str(proxy_port),
            "--upstream",
            f"http://127.0.0.1:{up_port}",
            "--set",
            "proxy.port=0",
        ],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", proxy_port), timeout=0.1).close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        before = rss_kib(proxy.pid)
        for upload in (False, True):
            peak = [before]
            elapsed = await transfer(proxy_port, size, upload, proxy.pid, peak)
            print(
                f"{'upload  ' if upload else 'download'} {size >> 20} MiB in {elapsed:.1f}s "
                f"({size / elapsed / 1e6:.0f} MB/s): proxy RSS before {before // 1024} MiB, "
                f"peak {peak[0] // 1024} MiB"
            )
    finally:
        proxy.terminate()
        proxy.wait(10)
        server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    asyncio.run(main(parser.parse_args().size_mib << 20))
