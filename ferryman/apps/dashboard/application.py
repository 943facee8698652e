"""The ``dashboard`` application: the pages at ``/`` on the kernel's port, and basic auth in
front of every app mounted there (the pages, the storage's ``/api``, the metrics' ``/metrics``).

The storage application mounts its own API; rather than mount it a second time, the dashboard
asks the endpoints to guard every mount (:meth:`ProxyEndpoints.guard`), which covers apps
mounted before and after it, in whatever order ``applications`` lists them. Proxied traffic is
never guarded. :meth:`check_settings` refuses a host beyond loopback without auth.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from ferryman.apps.dashboard.auth import BasicAuth
from ferryman.apps.dashboard.pages import Pages
from ferryman.apps.dashboard.settings import DashboardSettings, refusal
from ferryman.proxy.application import ProxyEndpoints
from ferryman.server.controllers import ASGIApp
from ferryman.system.applications import Application
from ferryman.system.events import OnBoundEvent

__all__ = ["PREFIX", "DashboardApplication"]

PREFIX = "/"


class DashboardApplication(Application):
    name: ClassVar[str] = "dashboard"
    settings_type = DashboardSettings
    settings: DashboardSettings

    @classmethod
    def check_settings(
        cls, settings: Mapping[str, Any], source: Callable[[str], str | None]
    ) -> list[str]:
        return refusal(settings, source)

    def on_bound(self, event: OnBoundEvent) -> None:
        if ProxyEndpoints not in event.provider:
            return
        endpoints = event.provider.resolve(ProxyEndpoints)
        if self.settings.auth is not None:
            endpoints.guard(BasicAuth(self.settings.auth).guard)
        if self.settings.enabled:
            endpoints.mount(PREFIX, ASGIApp(Pages()))
