"""What the kernel charges a proxy for moving a 1 MiB body, with and without a copy through
user space: ``python benchmarks/relay_copy_vs_splice.py copy|splice [N]``.

The process fetches nginx's ``/1m`` (shared/bench's upstream, 127.0.0.1:18080) N times and
moves each body to a second socket whose reader, a child process, drops it: the two sockets
of a proxy relaying one response. ``copy`` receives into a 256 KiB buffer and sends from it,
as ferryman's relay does; ``splice`` moves the bytes socket -> pipe -> socket with
``os.splice`` and never touches them. It prints the mover's user and system CPU per MiB.

It answers whether a zero-copy relay is worth its complexity (taking the sockets away from
the event loop's transports while a body streams). Measured here (2026-11-21), pinned with
``taskset -c 1`` and nginx on CPU 0, 1,000 MiB a run: copy 415-438 system µs per MiB (user
59-75), splice 343-358 (user 27-60); an hour later, the machine busier, copy 584 (user
88-121), splice 520-530 (user 74-78); later still (300 MiB), copy 500 (user 121), splice 500
(user 50). Most of the kernel's cost is TCP, not the copies: splice would save 0-15% of a
1 MiB relay's CPU.
"""

from __future__ import annotations

import fcntl
import os
import resource
import socket
import sys
import time

MIB = 1 << 20
F_SETPIPE_SZ = 1031
REQUEST = b"GET /1m HTTP/1.1\r\nHost: 127.0.0.1:18080\r\n\r\n"


def start_sink() -> socket.socket:
    """A connected socket whose peer, a child process on CPU 0, reads and drops everything."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    if os.fork() == 0:
        os.sched_setaffinity(0, {0})
        peer, _ = listener.accept()
        drop = bytearray(1 << 18)
        while peer.recv_into(drop):
            pass
        os._exit(0)
    return socket.create_connection(listener.getsockname())


def skip_head(upstream: socket.socket) -> None:
    head = b""
    while b"\r\n\r\n" not in head:
        head = upstream.recv(4096, socket.MSG_PEEK)
    upstream.recv(head.index(b"\r\n\r\n") + 4)


def relay_copy(upstream: socket.socket, sink: socket.socket, view: memoryview) -> None:
    left = MIB
    while left:
        n = upstream.recv_into(view[: min(left, len(view))])
        if n == 0:
            raise SystemExit("the upstream closed the connection mid-body")
        sink.sendall(view[:n])
        left -= n


def relay_splice(upstream: socket.socket, sink: socket.socket, pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    left, in_pipe = MIB, 0
    flags = os.SPLICE_F_MOVE | os.SPLICE_F_MORE
    while left or in_pipe:
        if left:
            n = os.splice(upstream.fileno(), write_end, left, flags=flags)
            if n == 0:
                raise SystemExit("the upstream closed the connection mid-body")
            left -= n
            in_pipe += n
        while in_pipe:
            in_pipe -= os.splice(read_end, sink.fileno(), in_pipe, flags=flags)


def main(mode: str, n: int) -> None:
    sink = start_sink()
    upstream = socket.create_connection(("127.0.0.1", 18080))
    view = memoryview(bytearray(256 * 1024))
    pipe = os.pipe()
    fcntl.fcntl(pipe[1], F_SETPIPE_SZ, MIB)

    def once() -> None:
        upstream.sendall(REQUEST)
        skip_head(upstream)
        if mode == "copy":
            relay_copy(upstream, sink, view)
        else:
            relay_splice(upstream, sink, pipe)

    for _ in range(50):
        once()
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(n):
        once()
    seconds, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    print(
        f"{mode}: {n / seconds:.0f} MiB/s; per MiB: user"
        f" {1e6 * (after.ru_utime - before.ru_utime) / n:.0f} µs,"
        f" system {1e6 * (after.ru_stime - before.ru_stime) / n:.0f} µs"
    )
    sink.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1000)
