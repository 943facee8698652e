"""Middleware with phases, as aiorp has them: code around the upstream call, per handler.

A middleware takes the per-request :class:`~ferryman.proxy.context.ProxyContext` and is a
generator or async generator function: what comes before its ``yield`` runs on the way in,
what comes after on the way out::

    @handler.client_edge
    async def authenticate(ctx):
        if ctx.request.headers.get("authorization") != "Bearer s3cret":
            ctx.response = Response(401)   # answers at once: the upstream is not called
        yield
        ctx.response.headers["X-Checked"] = "yes"

Phases are numbers from 0 to 1000 (:class:`MiddlewarePhase` names ``CLIENT_EDGE`` = 0,
``PROXY`` = 500 and ``TARGET_EDGE`` = 1000). On the way in the phases run in ascending order,
on the way out in descending order, so ``CLIENT_EDGE`` is the outermost layer (nearest the
client) and ``TARGET_EDGE`` the innermost (nearest the upstream). The middlewares of one phase
run concurrently (``asyncio.gather``), in and out: split work into phases by what it needs to
have happened first, not by taste.

The rules, in order of precedence:

* A plain function (or coroutine function) that does not yield runs on the way in only.
* Setting ``ctx.response`` on the way in short-circuits: no later phase's way in, no upstream
  call; the way out of every middleware that already ran its way in still runs, descending.
* A middleware that raises (in or out) makes the answer an error (the handler's
  ``error_handler``, or a logged JSON 500); the ways out still pending run after it with that
  answer in ``ctx.response``, so a metrics or logging middleware sees every answer.
* A generator that yields twice is a bug, reported as such (a JSON 500).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeAlias

from ferryman.proxy.context import ProxyContext

__all__ = [
    "MAX_PHASE",
    "Middleware",
    "MiddlewareChain",
    "MiddlewarePhase",
    "ProxyMiddlewareDef",
]

MAX_PHASE = 1000

#: ``fn(ctx)``: a generator or async generator function (in, ``yield``, out), or a plain or
#: ``async`` function (in only).
Middleware: TypeAlias = Callable[[ProxyContext], Any]
#: Runs the step between the ways in and out (the upstream call); sets ``ctx.response``.
Inner: TypeAlias = Callable[[ProxyContext], Awaitable[None]]
#: Turns an exception raised by a middleware into the answer.
OnError: TypeAlias = Callable[[Exception, ProxyContext], Awaitable[None]]


class MiddlewarePhase(IntEnum):
    """The named phases: the client's edge (outermost), the proxy, the target's edge."""

    CLIENT_EDGE = 0
    PROXY = 500
    TARGET_EDGE = 1000


@dataclass(frozen=True, slots=True)
class ProxyMiddlewareDef:
    """A middleware and the phase (0..1000) it runs in."""

    phase: int
    middleware: Middleware

    def __post_init__(self) -> None:
        phase = self.phase
        if isinstance(phase, bool) or not isinstance(phase, int) or not 0 <= phase <= MAX_PHASE:
            raise ValueError(
                f"a middleware phase is an integer from 0 to {MAX_PHASE}, got {phase!r}"
            )
        if not callable(self.middleware):
            raise TypeError(f"a middleware is callable, got {self.middleware!r}")


# What the way in leaves to resume on the way out.
_Pending: TypeAlias = Generator[Any, Any, Any] | AsyncGenerator[Any, Any]


class MiddlewareChain:
    """The middlewares of one handler, grouped by phase, and the code that runs them."""

    __slots__ = ("phases",)

    def __init__(self) -> None:
        #: ``(phase, middlewares)``, ascending by phase; rebuilt on add (rare) so that a request
        #: only iterates (and the fast path gate, asking whether there are any, only reads it).
        self.phases: tuple[tuple[int, tuple[Middleware, ...]], ...] = ()

    def add(self, definition: ProxyMiddlewareDef) -> None:
        phases = dict(self.phases)
        phases[definition.phase] = (*phases.get(definition.phase, ()), definition.middleware)
        self.phases = tuple(sorted(phases.items()))

    @property
    def definitions(self) -> list[ProxyMiddlewareDef]:
        """Every middleware with its phase, in the order they run in."""
        return [
            ProxyMiddlewareDef(phase, middleware)
            for phase, middlewares in self.phases
            for middleware in middlewares
        ]

    def __bool__(self) -> bool:
        return bool(self.phases)

    def __len__(self) -> int:
        return sum(len(middlewares) for _, middlewares in self.phases)

    async def run(self, ctx: ProxyContext, inner: Inner, on_error: OnError) -> None:
        """The ways in, ``inner`` (unless short-circuited), the ways out; see the module doc."""
        entered: list[list[_Pending]] = []
        try:
            for _, middlewares in self.phases:
                pending, error = await _enter(middlewares, ctx)
                entered.append(pending)
                if error is not None:
                    await on_error(error, ctx)
                    break
                if ctx.response is not None:
                    break
            else:
                await inner(ctx)
            while entered:
                error = await _leave(entered[-1])
                entered.pop()
                if error is not None:
                    await on_error(error, ctx)
        except BaseException:
            # Cancelled (the client went away) or a failure outside the middlewares: the ways
            # out will not run, but their generators still get closed (``finally`` blocks).
            for pending in reversed(entered):
                await _close(pending)
            raise

    def __repr__(self) -> str:
        return f"MiddlewareChain({self.definitions!r})"


async def _enter(
    middlewares: tuple[Middleware, ...], ctx: ProxyContext
) -> tuple[list[_Pending], Exception | None]:
    """Run the ways in of one phase; give back what waits for the way out, and the first
    error."""
    if len(middlewares) == 1:
        try:
            step = await _enter_one(middlewares[0], ctx)
        except Exception as exc:
            return [], exc
        return ([] if step is None else [step]), None
    results = await asyncio.gather(
        *(_enter_one(middleware, ctx) for middleware in middlewares), return_exceptions=True
    )
    pending: list[_Pending] = []
    error: Exception | None = None
    for result in results:
        if isinstance(result, Exception):
            error = error or result
        elif isinstance(result, BaseException):
            raise result
        elif result is not None:
            pending.append(result)
    return pending, error


async def _enter_one(middleware: Middleware, ctx: ProxyContext) -> _Pending | None:
    result = middleware(ctx)
    if inspect.isgenerator(result):
        try:
            next(result)
        except StopIteration:
            return None
        return result
    if inspect.isasyncgen(result):
        try:
            await result.__anext__()
        except StopAsyncIteration:
            return None
        return result
    if inspect.isawaitable(result):
        await result
    return None


async def _leave(pending: list[_Pending]) -> Exception | None:
    """Run the ways out of one phase; give back the first error."""
    if not pending:
        return None
    if len(pending) == 1:
        try:
            await _leave_one(pending[0])
        except Exception as exc:
            return exc
        return None
    results = await asyncio.gather(*(_leave_one(step) for step in pending), return_exceptions=True)
    error: Exception | None = None
    for result in results:
        if isinstance(result, Exception):
            error = error or result
        elif isinstance(result, BaseException):
            raise result
    return error


async def _leave_one(step: _Pending) -> None:
    if isinstance(step, Generator):
        try:
            next(step)
        except StopIteration:
            return
        step.close()
    else:
        try:
            await step.__anext__()
        except StopAsyncIteration:
            return
        await step.aclose()
    raise RuntimeError(
        f"the proxy middleware {_name(step)} yielded more than once; it must yield exactly once"
    )


async def _close(pending: list[_Pending]) -> None:
    for step in pending:
        try:
            if isinstance(step, Generator):
                step.close()
            else:
                await step.aclose()
        except Exception:
            pass


def _name(step: _Pending) -> str:
    code = getattr(step, "gi_code", None) or getattr(step, "ag_code", None)
    return str(getattr(code, "co_qualname", step))
