"""One serving process: build the system, listen, wait for a signal, shut down gracefully.

``serve(config)`` is what ``ferryman start`` runs when it has a single process, and what each
worker process of ``--workers N`` and the child of ``--reload`` run. It raises the process's
open-file limit first, and installs the event loop's exception handler that keeps a server out
of file descriptors serving and its log readable (:mod:`ferryman.cli.resources`).

Signals: the first SIGINT or SIGTERM stops accepting connections and lets the requests in
flight finish for up to ``proxy.grace_period`` seconds, then the process exits 0. A second
signal exits at once, with 128 + the signal number (130 for SIGINT, 143 for SIGTERM), as shells
report a process killed by that signal. A *supervised* process (a worker, or the child of
``--reload``) ignores SIGINT, because Ctrl-C in a terminal reaches the whole process group and the
supervisor forwards it once as SIGTERM; it also stops when its supervisor disappears.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import Any

from ferryman import _compiled
from ferryman.cli.logs import logger
from ferryman.http.url import URL
from ferryman.system.problems import Sources

__all__ = ["LOOPS", "describe_addresses", "describe_listen_error", "loop_factory", "run", "serve"]

#: The choices of ``--loop``.
LOOPS = ("auto", "asyncio", "uvloop")

#: How often a supervised process checks that its supervisor is still there.
PARENT_CHECK_INTERVAL = 1.0


def run(
    config: Mapping[str, Any],
    *,
    reuse_port: bool = False,
    supervised: bool = False,
    ready_fd: int | None = None,
    loop: str = "auto",
    sources: Sources | None = None,
) -> int:
    """Serve ``config`` until a signal stops it; the process's exit code.

    ``loop``: ``"uvloop"``, ``"asyncio"``, or ``"auto"`` for uvloop when it is installed.
    ``sources`` (where each setting came from) lets a port that cannot listen name its source.
    """
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        return runner.run(
            serve(
                config,
                reuse_port=reuse_port,
                supervised=supervised,
                ready_fd=ready_fd,
                sources=sources,
            )
        )


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop ``--loop`` names (``None``: asyncio's own)."""
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if name == "uvloop":
            raise
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


async def serve(
    config: Mapping[str, Any],
    *,
    reuse_port: bool = False,
    supervised: bool = False,
    ready_fd: int | None = None,
    sources: Sources | None = None,
) -> int:
    """Build the system from a validated ``config``, serve it, and dispose of it at the end.

    ``ready_fd``, a pipe from a supervisor, gets one line and is closed once every port listens:
    that is how the supervisor tells a worker that could not start from one that crashed later.
    """
    # Imported here: the proxy (and what it pulls in) is only needed by a process that serves.
    from ferryman.cli.resources import LoopErrors, raise_open_file_limit, watch_open_files
    from ferryman.proxy.application import build_kernel
    from ferryman.proxy.logs import upstream_log
    from ferryman.proxy.server import ProxyServer
    from ferryman.system import SystemBuilder

    proxy = config["proxy"]
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    raise_open_file_limit()
    loop_errors = LoopErrors()
    loop_errors.install(loop)
    # asyncio reports failed accepts to the handler; uvloop says nothing: look for it instead.
    probe = None
    if not isinstance(loop, asyncio.BaseEventLoop):
        probe = asyncio.create_task(watch_open_files(loop_errors))
    _install_signal_handlers(loop, stopping, supervised=supervised)
    watchdog = asyncio.create_task(_watch_parent(stopping)) if supervised else None
    system = await SystemBuilder(config).build(build_kernel)
    try:
        server = ProxyServer(system, host=proxy["host"], reuse_port=reuse_port)
        try:
            await server.start()
        except OSError as exc:
            logger.error("%s", describe_listen_error(exc, proxy, sources))
            with suppress(Exception):  # release the ports bound before the one that failed
                await server.shutdown(0)
            return 1
        for line in describe_addresses(proxy, server.addresses):
            logger.info("%s", line)
        if _compiled.mode != "compiled":  # the build does not say so unless pip is verbose
            logger.info("the relay runs as %s", _compiled.mode)
        logger.info(
            "serving (pid %d); %s stops it", os.getpid(), "SIGTERM" if supervised else "Ctrl-C"
        )
        # Everything built so far (modules, the system, its applications) lives as long as
        # the process: kept out of the collector's full walks, whose length grew with it.
        gc.freeze()
        if ready_fd is not None:
            with suppress(OSError):  # the supervisor is gone: the watchdog will notice
                os.write(ready_fd, b"ready\n")
            os.close(ready_fd)
        await stopping.wait()
        grace_period = float(proxy["grace_period"])
        logger.info("shutting down: in-flight requests get up to %gs to finish", grace_period)
        await server.shutdown(grace_period)
    finally:
        if watchdog is not None:
            watchdog.cancel()
        if probe is not None:
            probe.cancel()
        await system.dispose()
        loop_errors.flush()  # the counts of repeated failures not written yet
        upstream_log.flush()
    logger.info("stopped (pid %d)", os.getpid())
    return 0


def describe_listen_error(
    exc: OSError, proxy: Mapping[str, Any], sources: Sources | None = None
) -> str:
    """Why a socket could not listen, naming the setting that chose its address: ``cannot
    listen on 127.0.0.1:4000: address already in use; the port is proxy.endpoints.0.port
    (endpoint 'api', from --endpoint api=4000:...)``."""
    from ferryman.proxy.server import KERNEL, ListenError

    if not isinstance(exc, ListenError):
        return f"cannot listen: {exc.strerror or exc}"
    cause = exc.error
    key: tuple[str, ...]
    whose: str | None
    if isinstance(cause, socket.gaierror):
        reason, key, whose = f"cannot resolve {exc.host}", ("proxy", "host"), None
    else:
        reason = os.strerror(exc.errno).lower() if exc.errno else str(cause)
        if exc.errno == errno.EADDRNOTAVAIL:  # not an address of this machine
            key, whose = ("proxy", "host"), None
        elif exc.listener == KERNEL:
            key, whose = ("proxy", "port"), "the kernel's port"
        else:
            names = [endpoint["name"] for endpoint in proxy["endpoints"]]
            index = names.index(exc.listener) if exc.listener in names else 0
            key, whose = ("proxy", "endpoints", str(index), "port"), f"endpoint {exc.listener!r}"
    source = None if sources is None else sources.describe(key)
    about = [part for part in (whose, f"from {source}" if source else "the default") if part]
    setting = "host" if key[-1] == "host" else "port"
    where = f"[{exc.host}]" if ":" in exc.host else exc.host
    return (
        f"cannot listen on {where}:{exc.port}: {reason}; the {setting} is {'.'.join(key)} "
        f"({', '.join(about)})"
    )


def describe_addresses(
    proxy: Mapping[str, Any], addresses: Mapping[str, tuple[str, int]]
) -> list[str]:
    """One line per listening socket: each endpoint on its own port, then the kernel's port
    with the endpoints served under a path prefix there."""
    lines = []
    kernel = addresses.get("kernel")
    for endpoint in proxy["endpoints"]:
        upstream = ", ".join(_display_url(url) for url in endpoint["url"])
        if endpoint.get("port") is not None and endpoint["name"] in addresses:
            where = _http_url(addresses[endpoint["name"]])
        elif kernel is not None:
            where = _http_url(kernel) + endpoint["path"]
        else:  # pragma: no cover - the server always reports the kernel's port
            continue
        lines.append(f"endpoint {endpoint['name']} on {where} -> {upstream}")
    if kernel is not None:
        lines.append(f"kernel on {_http_url(kernel)}")
    return lines


def _http_url(address: tuple[str, int]) -> str:
    host, port = address[0], address[1]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _display_url(text: str) -> str:
    """The upstream URL without its credentials: start-up lines end up in shared logs."""
    url = URL(text)
    if not url.userinfo:
        return text
    netloc = url.netloc.decode("ascii").rpartition("@")[2]
    return f"{url.scheme}://{netloc}{url.raw_path.decode('ascii')}"


def _install_signal_handlers(
    loop: asyncio.AbstractEventLoop, stopping: asyncio.Event, *, supervised: bool
) -> None:
    def on_signal(signum: int) -> None:
        if stopping.is_set():
            logger.warning("second %s: exiting now", signal.Signals(signum).name)
            sys.stderr.flush()
            os._exit(128 + signum)
        stopping.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        if supervised and signum == signal.SIGINT:
            signal.signal(signum, signal.SIG_IGN)
            continue
        loop.add_signal_handler(signum, on_signal, signum)


async def _watch_parent(stopping: asyncio.Event) -> None:
    """Stop when the supervisor is gone (killed with SIGKILL, say): no orphan keeps the ports."""
    parent = os.getppid()
    while not stopping.is_set():
        await asyncio.sleep(PARENT_CHECK_INTERVAL)
        if os.getppid() != parent:
            logger.warning("the supervisor (pid %d) is gone: shutting down", parent)
            stopping.set()
