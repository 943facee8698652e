"""The ``storage`` application: records every transaction, and serves them at ``/api``.

In ``applications`` by default (after ``proxy``). On bind it registers :class:`Storage`; on bound
it migrates the database, starts the writer process (which also runs the janitor), listens to
the transaction events and mounts :class:`~ferryman.apps.storage.api.StorageAPI` on the kernel's
port; on shutdown it sends what is still queued, lets the writer store it and exit, and closes
the database. With ``ferryman start --workers N`` each worker has a writer process of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from ferryman._version import __version__
from ferryman.apps.storage.api import PREFIX, StorageAPI
from ferryman.apps.storage.recorder import Storage
from ferryman.apps.storage.redaction import redact_json
from ferryman.apps.storage.replay import Replayer
from ferryman.apps.storage.settings import StorageSettings
from ferryman.events import EventDispatcher
from ferryman.proxy.application import ProxyEndpoints
from ferryman.proxy.pools import UpstreamPools
from ferryman.proxy.settings import is_loopback
from ferryman.proxy.transactions import EVENT_TRANSACTION_FINISHED, EVENT_TRANSACTION_STARTED
from ferryman.server.controllers import ASGIApp, Scope
from ferryman.system.applications import Application, Settings
from ferryman.system.events import OnBindEvent, OnBoundEvent, OnShutdownEvent

__all__ = ["StorageApplication", "masked_settings"]

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):[^@/\s]*@")


def _mask_urls(value: Any) -> Any:
    if isinstance(value, str):
        return _USERINFO.sub(r"\g<scheme>:***@", value)
    if isinstance(value, list):
        return [_mask_urls(item) for item in value]
    if isinstance(value, dict):
        return {key: _mask_urls(item) for key, item in value.items()}
    return value


def masked_settings(settings: Mapping[str, Any], keys: frozenset[str]) -> dict[str, Any]:
    """The effective settings as JSON data, secrets masked: ``SecretStr`` values, passwords in
    URLs, and the values of keys that name secrets (the redacted headers and JSON keys)."""
    data: dict[str, Any] = {}
    for name, model in settings.items():
        dump = getattr(model, "model_dump", None)
        data[name] = dump(mode="json") if dump is not None else model
    masked, _ = redact_json(_mask_urls(data), keys)
    return dict(masked)


class StorageApplication(Application):
    name: ClassVar[str] = "storage"
    settings_type = StorageSettings
    settings: StorageSettings

    def __init__(self, settings: StorageSettings | None = None) -> None:
        super().__init__(settings)
        self.storage: Storage | None = None

    @classmethod
    def check_settings(
        cls, settings: Mapping[str, Any], source: Callable[[str], str | None]
    ) -> list[str]:
        """The recorded traffic's API (``/api`` on ``proxy.port``) has no guard of its own: the
        dashboard application's auth guards it. Without the dashboard, beyond loopback, the
        start is refused (with it, the dashboard's own check applies)."""
        proxy = settings.get("proxy")
        storage = settings.get("storage")
        if proxy is None or "dashboard" in settings:
            return []
        if not isinstance(storage, StorageSettings) or not storage.enabled:
            return []
        host = str(getattr(proxy, "host", "127.0.0.1"))
        if is_loopback(host):
            return []
        where = source("proxy.host")
        got = f"{host!r}" + (f" from {where}" if where else "")
        return [
            f"applications: storage serves the recorded traffic at /api on proxy.port, which "
            f"is not a loopback address (got {got}), with no auth: add the dashboard "
            "application with dashboard.auth, or bind proxy.host to 127.0.0.1"
        ]

    def on_bind(self, event: OnBindEvent) -> None:
        # Headers other applications' settings make secrets (an API key a rate limit is keyed
        # by) are redacted too: without it the key went into every stored request in clear.
        own = {name.lower() for name in self.settings.redact_headers}
        secret = {
            name
            for other in event.settings.values()
            if isinstance(other, Settings)
            for name in other.secret_headers
        }
        if secret - own:
            self.settings.redact_headers = [*self.settings.redact_headers, *sorted(secret - own)]
        event.container.add(Storage)

    async def on_bound(self, event: OnBoundEvent) -> None:
        if not self.settings.enabled:
            return
        provider = event.provider
        storage = self.storage = provider.resolve(Storage)
        await storage.start()
        dispatcher = provider.resolve(EventDispatcher)
        dispatcher.add_listener(EVENT_TRANSACTION_STARTED, storage.on_started)
        dispatcher.add_listener(EVENT_TRANSACTION_FINISHED, storage.on_finished)
        if ProxyEndpoints not in provider:
            return
        endpoints = provider.resolve(ProxyEndpoints)
        pools = provider.resolve(UpstreamPools) if UpstreamPools in provider else None
        settings = event.settings
        secret_keys = self.settings.header_names | self.settings.json_keys | {"password"}

        def system() -> dict[str, Any]:
            states = {} if pools is None else pools.upstream_states()
            return {
                "version": __version__,
                "endpoints": [
                    {
                        "name": endpoint.name,
                        "listen": (
                            f"port {endpoint.port}"
                            if endpoint.port is not None
                            else f"path {endpoint.path}"
                        ),
                        "upstreams": [_mask_urls(url) for url in endpoint.url],
                        "upstream_states": _mask_urls(states.get(endpoint.name, [])),
                        "record": self.settings.record(endpoint.name).value,
                    }
                    for endpoint in endpoints.settings.endpoints
                ],
                "settings": masked_settings(settings, frozenset(secret_keys)),
            }

        def address_of(name: str, scope: Scope) -> str | None:
            host = (scope.get("server") or ("127.0.0.1", endpoints.settings.port))[0]
            if ":" in host:
                host = f"[{host}]"
            for endpoint in endpoints.settings.endpoints:
                if endpoint.name != name:
                    continue
                if endpoint.path is not None:
                    port = (scope.get("server") or (host, endpoints.settings.port))[1]
                    return f"http://{host}:{port}"  # the target carries the path prefix
                handler = endpoints.get(name)
                for port, target in endpoints.resolver.ports.items():
                    if target is handler:
                        return f"http://{host}:{port}"
                return f"http://{host}:{endpoint.port}"
            return None

        api = StorageAPI(storage, Replayer(storage, address_of), system)
        endpoints.mount(PREFIX, ASGIApp(api))

    async def on_shutdown(self, event: OnShutdownEvent) -> None:
        if self.storage is not None:
            await self.storage.close()
