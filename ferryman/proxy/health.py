"""Active health checks: one task per upstream asks it ``method path`` every ``interval``.

``unhealthy_after`` failed probes in a row (a status ``expect_status`` does not list, a refused
or timed out connection) take the upstream out of the balancer's choice, ``healthy_after`` good
ones in a row bring it back (:meth:`~ferryman.proxy.balancer.Balancer.health_changed`, which
logs and dispatches the change). The probes go through an http client of their own, with no
dispatcher (no filter events, nothing recorded), one connection per upstream kept alive
between probes, no redirects followed, bodies read up to 64 KiB and dropped.

Passive detection, from real traffic, is the circuit breakers' (:mod:`ferryman.proxy.breaker`):
probes tell when an idle upstream went down, breakers when a busy one fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

from ferryman.client.session import AsyncClient
from ferryman.exceptions import FerrymanError
from ferryman.proxy.balancer import Balancer, Upstream
from ferryman.proxy.settings_resilience import HealthCheckSettings

__all__ = ["HealthProbes"]

logger = logging.getLogger("ferryman.proxy")

#: Bytes of a probe's answer read (the rest is dropped with its connection).
MAX_PROBE_BODY: Final = 64 * 1024


class HealthProbes:
    """The probe tasks of one endpoint's upstreams."""

    def __init__(
        self, balancer: Balancer, settings: HealthCheckSettings, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.balancer = balancer
        self.settings = settings
        self.loop = loop
        self._tasks: list[asyncio.Task[None]] = []
        #: Probes sent, per upstream index (for tests and the API).
        self.sent = [0] * len(balancer.upstreams)

    def start(self) -> None:
        for upstream in self.balancer.upstreams:
            task = self.loop.create_task(
                self._probe_forever(upstream), name=f"health {upstream.origin}"
            )
            self._tasks.append(task)

    async def _probe_forever(self, upstream: Upstream) -> None:
        settings = self.settings
        good = bad = 0
        url = upstream.url.rstrip("/") + settings.path
        async with AsyncClient(
            timeout=settings.timeout,
            trust_env=False,
            store_cookies=False,
            decompress=False,
            max_redirects=0,
            pool_size=1,
            max_body_size=MAX_PROBE_BODY,
        ) as client:
            while True:
                healthy, why = await self._probe(client, url)
                self.sent[upstream.index] += 1
                if healthy:
                    good, bad = good + 1, 0
                    if good >= settings.healthy_after:
                        self.balancer.health_changed(
                            upstream, True, f"{good} health check(s) in a row passed"
                        )
                else:
                    good, bad = 0, bad + 1
                    if bad >= settings.unhealthy_after:
                        self.balancer.health_changed(
                            upstream,
                            False,
                            f"{bad} health check(s) in a row failed (the last: {why})",
                        )
                await asyncio.sleep(settings.interval)

    async def _probe(self, client: AsyncClient, url: str) -> tuple[bool, str]:
        settings = self.settings
        try:
            response = await client.request(
                settings.method, url, allow_redirects=False, stream=True
            )
        except FerrymanError as exc:
            return False, type(exc).__name__
        except OSError as exc:
            return False, exc.strerror or type(exc).__name__
        try:
            with contextlib.suppress(FerrymanError, OSError):
                await response.aread()
        finally:
            await response.aclose()
        if settings.healthy(response.status_code):
            return True, f"status {response.status_code}"
        return False, f"status {response.status_code}"

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def aclose(self) -> None:
        self.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
