"""The parent process of ``ferryman start --workers N`` and ``ferryman start --reload``.

It serves nothing itself: it runs children, each ``python -m ferryman.cli.main start`` with the
same configuration options (a fresh interpreter, so ``--reload`` picks up changed code), and:

* forwards the first SIGINT or SIGTERM to every child as SIGTERM (each finishes its in-flight
  requests within ``proxy.grace_period``), and a second one too (each child then exits at once);
  children ignore SIGINT themselves, because a terminal's Ctrl-C reaches the whole process group;
* with workers, reports a worker that exits on its own and starts another in its place, unless
  it died before it listened (bad configuration, port taken: each child says on a pipe when its
  ports listen), which stops them all, since restarting would fail the same way;
* with ``--reload``, polls once a second the modification times of the ``.py`` files under the
  ferryman package, the current directory and the ``--app-dir``, and of the configuration
  files, and restarts the child when one changed; a child that crashed is restarted at the next
  change.

Workers bind the same ports with SO_REUSEPORT and the kernel spreads connections among them.
A port 0 would give each worker a different port, so the supervisor picks the port first: it
binds a socket to port 0 with SO_REUSEPORT (never listening, so it takes no connection), passes
the port to the workers with ``--set``, and holds the socket until the end so nobody else takes it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

import ferryman
from ferryman.cli.errors import EXIT_USAGE
from ferryman.cli.logs import logger
from ferryman.cli.options import ConfigOptions

__all__ = ["Supervisor", "source_files"]

#: How often the loop wakes up to look at signals and children.
TICK = 0.1
#: How often ``--reload`` looks at modification times.
RELOAD_INTERVAL = 1.0
#: Seconds a child gets beyond the grace period before it is killed.
KILL_MARGIN = 5.0
#: Directories ``--reload`` does not look into.
SKIPPED_DIRECTORIES = frozenset({"__pycache__", "node_modules", "site-packages", "build", "dist"})


@dataclass(slots=True)
class _Child:
    number: int
    process: subprocess.Popen[bytes]
    started: float
    #: The read end of the pipe the child writes to once it listens; None once it did.
    ready_pipe: int | None
    #: Asked to stop (SIGTERM sent) at this time, by a shutdown or a reload.
    stopping_since: float | None = None


class Supervisor:
    """Runs and watches the children; :meth:`run` returns the exit code of ``ferryman start``."""

    def __init__(
        self,
        options: ConfigOptions,
        config: Mapping[str, Any],
        *,
        workers: int = 1,
        reload: bool = False,
        reuse_port: bool = False,
        loop: str = "auto",
    ) -> None:
        self.options = options
        self.event_loop = loop
        self.workers = workers
        self.reload = reload
        self.reuse_port = reuse_port
        self.grace_period = float(config["proxy"]["grace_period"])
        self._config = config
        self._reserved: list[socket.socket] = []
        self._children: list[_Child] = []
        self._signals: list[int] = []
        self._failed = False

    # -- the loop ---------------------------------------------------------------------------------

    def run(self) -> int:
        previous = {
            signum: signal.signal(signum, self._on_signal)
            for signum in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            if self.workers > 1:
                self._reserve_ports()
            return self._loop()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            for sock in self._reserved:
                sock.close()

    def _loop(self) -> int:
        snapshot = dict(self._snapshot()) if self.reload else {}
        next_scan = time.monotonic() + RELOAD_INTERVAL
        for number in range(1, self.workers + 1):
            self._children.append(self._spawn(number))
        stopping = False
        while True:
            while self._signals:
                signum = self._signals.pop(0)
                if stopping:
                    logger.warning(
                        "second %s: stopping the children at once", signal.Signals(signum).name
                    )
                    self._signal_children(signal.SIGTERM)
                    self._wait_all(KILL_MARGIN)
                    return 128 + signum
                stopping = True
                logger.info("%s: stopping the children", signal.Signals(signum).name)
                self._signal_children(signal.SIGTERM)
            for child in list(self._children):
                code = child.process.poll()
                if code is None:
                    self._check_ready(child)
                    self._kill_if_late(child)
                    continue
                started = self._check_ready(child)
                self._children.remove(child)
                if stopping:
                    if code != 0:
                        self._failed = True
                        logger.warning("%s exited with %s", self._name(child), _describe(code))
                    continue
                if self.reload and child.stopping_since is not None:
                    self._children.append(self._spawn(child.number))  # a restart we asked for
                    continue
                self._on_unexpected_exit(child, code, started)
                if self._failed and not self.reload:
                    stopping = True
                    self._signal_children(signal.SIGTERM)
            if stopping and not self._children:
                return 1 if self._failed else 0
            if self.reload and not stopping and time.monotonic() >= next_scan:
                next_scan = time.monotonic() + RELOAD_INTERVAL
                current = dict(self._snapshot())
                changed = _changes(snapshot, current)
                snapshot = current
                if changed:
                    self._restart(changed)
            time.sleep(TICK)

    def _on_unexpected_exit(self, child: _Child, code: int, started: bool) -> None:
        logger.warning("%s exited with %s", self._name(child), _describe(code))
        if self.reload:
            logger.warning("waiting for a file to change before starting again")
        elif code == EXIT_USAGE or not started:
            logger.error("%s could not start: stopping", self._name(child))
            self._failed = True
        else:
            self._children.append(self._spawn(child.number))

    def _restart(self, changed: list[str]) -> None:
        shown = ", ".join(changed[:3]) + (
            f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        )
        logger.info("%s changed: restarting", shown)
        if not self._children:  # it had crashed: start it again with the fixed files
            self._children.append(self._spawn(1))
            return
        for child in self._children:
            if child.stopping_since is None:
                child.stopping_since = time.monotonic()
                _send(child.process, signal.SIGTERM)

    # -- children ----------------------------------------------------------------------------------

    def _command(self, ready_fd: int) -> list[str]:
        command = [sys.executable, "-m", "ferryman.cli.main", "start", *self.options.argv()]
        command += ["--loop", self.event_loop, "--supervised", "--ready-fd", str(ready_fd)]
        if self.reuse_port:
            command.append("--reuse-port")
        return command

    def _spawn(self, number: int) -> _Child:
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        try:
            process = subprocess.Popen(
                self._command(write_end), stdin=subprocess.DEVNULL, pass_fds=(write_end,)
            )
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        child = _Child(number, process, time.monotonic(), read_end)
        logger.info("started %s", self._name(child))
        return child

    @staticmethod
    def _check_ready(child: _Child) -> bool:
        """Whether the child said it listens (reading its pipe without blocking)."""
        if child.ready_pipe is None:
            return True
        try:
            said = os.read(child.ready_pipe, 64)
        except BlockingIOError:
            return False
        os.close(child.ready_pipe)
        child.ready_pipe = None
        return bool(said)

    def _name(self, child: _Child) -> str:
        kind = f"worker {child.number}" if self.workers > 1 else "child"
        return f"{kind} (pid {child.process.pid})"

    def _signal_children(self, signum: int) -> None:
        now = time.monotonic()
        for child in self._children:
            if child.stopping_since is None:
                child.stopping_since = now
            _send(child.process, signum)

    def _kill_if_late(self, child: _Child) -> None:
        if child.stopping_since is None:
            return
        if time.monotonic() - child.stopping_since > self.grace_period + KILL_MARGIN:
            logger.warning("%s did not stop in time: killing it", self._name(child))
            _send(child.process, signal.SIGKILL)

    def _wait_all(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for child in self._children:
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _send(child.process, signal.SIGKILL)
                child.process.wait()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)

    # -- ports -------------------------------------------------------------------------------------

    def _reserve_ports(self) -> None:
        """Give every port 0 a real port, the same in every worker (see the module's docstring)."""
        proxy = self._config["proxy"]
        host = proxy["host"]
        extra: list[str] = []
        if proxy["port"] == 0:
            extra.append(f"proxy.port={self._reserve(host)}")
        for index, endpoint in enumerate(proxy["endpoints"]):
            if endpoint.get("port") == 0:
                extra.append(f"proxy.endpoints.{index}.port={self._reserve(host)}")
        if extra:
            self.options = replace(self.options, extra_sets=(*self.options.extra_sets, *extra))

    def _reserve(self, host: str) -> int:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        self._reserved.append(sock)
        port: int = sock.getsockname()[1]
        return port

    # -- files -------------------------------------------------------------------------------------

    def _snapshot(self) -> Iterator[tuple[str, int]]:
        roots = [Path(ferryman.__file__).parent, Path.cwd()]
        if self.options.app_dir is not None:
            roots.append(Path(self.options.app_dir))
        for path in source_files(roots):
            yield _mtime(path)
        for file in self.options.files:
            yield _mtime(Path(file))


def source_files(roots: list[Path]) -> Iterator[Path]:
    """The ``.py`` files under ``roots``, skipping hidden directories, caches and virtualenvs."""
    seen: set[Path] = set()
    stack = [root.resolve() for root in roots]
    while stack:
        directory = stack.pop()
        if directory in seen:
            continue
        seen.add(directory)
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        if any(entry.name == "pyvenv.cfg" for entry in entries):
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                if not entry.name.startswith(".") and entry.name not in SKIPPED_DIRECTORIES:
                    stack.append(Path(entry.path))
            elif entry.name.endswith(".py"):
                yield Path(entry.path)


def _mtime(path: Path) -> tuple[str, int]:
    try:
        return str(path), path.stat().st_mtime_ns
    except OSError:
        return str(path), -1


def _changes(before: Mapping[str, int], after: Mapping[str, int]) -> list[str]:
    return sorted(
        path for path in before.keys() | after.keys() if before.get(path) != after.get(path)
    )


def _send(process: subprocess.Popen[bytes], signum: int) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"
