"""A serving process and its open files: as many as the system allows, and a server that keeps
serving, and says so once per interval, when it runs out.

A proxy holds two sockets per request in flight, so the usual soft limit of 1,024 open files
is what caps it first. :func:`raise_open_file_limit` lifts the soft limit to the hard one at
start, as nginx's ``worker_rlimit_nofile`` or systemd's ``LimitNOFILE`` would.

When the limit is reached anyway, new connections cannot be accepted, and each event loop
handles that its own way:

- asyncio's stops accepting for a second, then tries again, and reports every failed
  ``accept()`` (about a thousand a second, each with a traceback: CPython's accept loop goes
  on after the failure, scheduling a retry each time) to the loop's exception handler; the
  retries still pending when the server closes fail on its closed socket, harmlessly;
- uvloop's (libuv) accepts the waiting connections with a spare descriptor it keeps for this
  and closes them at once, reporting nothing at all.

:class:`LoopErrors` is the exception handler ``serve`` installs: an accept that failed for
want of descriptors becomes one line per interval, in words, and any other error the loop
reports is written in full the first time and counted after that. :func:`watch_open_files`
covers uvloop's silence: once a second it opens and closes one file, and a failure for want
of descriptors is reported the same way. Neither stops serving: the server accepts again as
soon as connections close.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from typing import Any, Final

from ferryman.proxy.logs import RateLimitedLog

__all__ = [
    "ACCEPT_FAILURE",
    "PROBE_INTERVAL",
    "LoopErrors",
    "raise_open_file_limit",
    "watch_open_files",
]

logger = logging.getLogger("ferryman.cli")

#: The kind of event (in words) an accept that failed for want of resources is logged as.
ACCEPT_FAILURE: Final = "accept failure"
#: Seconds between two looks at whether a file can still be opened (uvloop's case).
PROBE_INTERVAL: Final = 1.0
#: ``accept()`` failures that mean "out of resources", as asyncio lists them.
_OUT_OF_RESOURCES: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def raise_open_file_limit() -> tuple[int, int] | None:
    """Raise the soft limit on open files to the hard one; the ``(before, after)`` soft
    limits, or ``None`` where there is no such limit (Windows)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        # (macOS allows no soft limit above OPEN_MAX; Linux caps the hard one anyway)
        target = max(soft, 10240) if soft != resource.RLIM_INFINITY else soft
    if target != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError) as exc:
            logger.debug(
                "the open-file limit stays %d: raising it to %d failed (%s)", soft, target, exc
            )
            return soft, soft
    logger.debug("open-file limit: %d (it was %d; the hard limit is %s)", target, soft, hard)
    return soft, target


def _open_file_limit() -> str:
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return "unknown"
    return str(resource.getrlimit(resource.RLIMIT_NOFILE)[0])


class LoopErrors:
    """The event loop's exception handler: rate-limited lines instead of a traceback per event.

    ``log`` is the rate limiter lines go through (one per kind and source per interval).
    """

    def __init__(self, log: RateLimitedLog | None = None) -> None:
        self.log = log if log is not None else RateLimitedLog(logger)

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.set_exception_handler(self)

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in _OUT_OF_RESOURCES:
            self.out_of_resources(exc)
            return
        if _late_accept_retry(context):
            return
        message = str(context.get("message") or "unexpected error in the event loop")
        source = message if exc is None else f"{message} ({type(exc).__name__})"
        if self.log.admit("event loop error", source):
            loop.default_exception_handler(context)  # the first one whole, traceback included

    def out_of_resources(self, exc: OSError) -> None:
        """New connections cannot be accepted: ``exc`` says why (``EMFILE``...)."""
        words = (exc.strerror or os.strerror(exc.errno or 0)).lower()
        if exc.errno in (errno.EMFILE, errno.ENFILE):
            words += f" (the open-file limit is {_open_file_limit()})"
        self.log.report(
            ACCEPT_FAILURE,
            words,
            f"new connections cannot be accepted: {words}; serving goes on, and accepting "
            "resumes as connections close",
        )

    def flush(self) -> None:
        """Write the counts not written yet (the process is about to exit)."""
        self.log.flush()


def _late_accept_retry(context: dict[str, Any]) -> bool:
    """asyncio's retry of a failed accept, run after its server closed (CPython schedules one
    per pending connection, and none is cancelled by the close): nothing is wrong."""
    callback = getattr(context.get("handle"), "_callback", None)
    return getattr(callback, "__name__", "") == "_start_serving" and isinstance(
        context.get("exception"), ValueError
    )


async def watch_open_files(errors: LoopErrors, interval: float = PROBE_INTERVAL) -> None:
    """Until cancelled, check every ``interval`` s that a file can be opened, and report
    through ``errors`` when it cannot: the only sign of refused connections under uvloop."""
    while True:
        await asyncio.sleep(interval)
        try:
            fd = os.open(os.devnull, os.O_RDONLY)
        except OSError as exc:
            if exc.errno in _OUT_OF_RESOURCES:
                errors.out_of_resources(exc)
            continue
        os.close(fd)
