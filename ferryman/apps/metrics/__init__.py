"""The ``metrics`` application: Prometheus exposition at ``/metrics`` on the kernel's port.

In the default ``applications``. It counts on the hot path in plain numbers (one
``proxy.transaction.finished`` listener: :mod:`~ferryman.apps.metrics.counters`) and builds the
exposition when scraped (:mod:`~ferryman.apps.metrics.collector`), with ``prometheus_client``'s
text (or OpenMetrics, when the scraper asks for it) encoders and its process collectors.

.. code-block:: yaml

    metrics:
      path: /metrics            # where on proxy.port (the kernel's port) it answers

With ``ferryman start --workers N`` each worker counts its own requests and a scrape of the
shared port reaches one of them (whichever the kernel hands the connection to): every series is
that worker's. ``ferryman_info`` carries the worker's ``pid`` so scrapes can be told apart.
prometheus_client's multiprocess mode is not used: it keeps every value in a memory-mapped file
updated per request, the cost this application avoids.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Annotated, Any, ClassVar

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from pydantic import Field, field_validator

from ferryman._version import __version__
from ferryman.apps.metrics.collector import ProxyCollector
from ferryman.apps.metrics.counters import TransactionCounters
from ferryman.events import EventDispatcher
from ferryman.proxy.application import ProxyEndpoints
from ferryman.proxy.transactions import EVENT_TRANSACTION_FINISHED
from ferryman.server import ASGIApp
from ferryman.system import Application, OnBindEvent, OnBoundEvent, Settings

__all__ = ["MetricsApp", "MetricsApplication", "MetricsSettings", "application"]


class MetricsSettings(Settings):
    """Validated ``metrics`` settings."""

    path: Annotated[str, Field(min_length=2)] = "/metrics"

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or "?" in value or "#" in value:
            raise ValueError("must be a path starting with '/' (no query)")
        return value.rstrip("/") or "/"


class _Info(Collector):
    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "ferryman_info",
            "This process: its pid (each --workers process counts its own requests).",
            labels=["version", "pid"],
        )
        info.add_metric([__version__, str(os.getpid())], 1)
        yield info


class MetricsApp:
    """The ASGI app answering ``GET path``: the registry's exposition."""

    def __init__(self, registry: CollectorRegistry, path: str) -> None:
        self.registry = registry
        self.path = path

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"].rstrip("/") != self.path:
            await _answer(send, 404, b"text/plain; charset=utf-8", b"not found\n")
            return
        if scope["method"] not in ("GET", "HEAD"):
            await _answer(send, 405, b"text/plain; charset=utf-8", b"method not allowed\n")
            return
        accept = ""
        for name, value in scope["headers"]:
            if name.lower() == b"accept":
                accept = value.decode("latin-1")
        encode, content_type = choose_encoder(accept)
        body = encode(self.registry)
        await _answer(
            send,
            200,
            content_type.encode("latin-1"),
            b"" if scope["method"] == "HEAD" else body,
            len(body),
        )


async def _answer(
    send: Any, status: int, content_type: bytes, body: bytes, length: int | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body) if length is None else length).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class MetricsApplication(Application):
    """Counts every transaction and serves the exposition; see the module documentation."""

    name: ClassVar[str] = "metrics"
    settings_type = MetricsSettings
    settings: MetricsSettings

    def on_bind(self, event: OnBindEvent) -> None:
        event.container.add(TransactionCounters)

    def on_bound(self, event: OnBoundEvent) -> None:
        provider = event.provider
        endpoints = provider.resolve(ProxyEndpoints) if ProxyEndpoints in provider else None
        counters = provider.resolve(TransactionCounters)
        for name in endpoints or ():
            counters.add(name)  # its series exist, at zero, before its first request
        registry = CollectorRegistry(auto_describe=False)
        registry.register(ProxyCollector(counters, provider))
        registry.register(_Info())
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        provider.resolve(EventDispatcher).add_listener(
            EVENT_TRANSACTION_FINISHED, counters.on_finished
        )
        if endpoints is not None:
            endpoints.mount(self.settings.path, ASGIApp(MetricsApp(registry, self.settings.path)))


application = MetricsApplication
