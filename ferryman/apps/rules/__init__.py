"""The ``rules`` application: Python functions attached to the filter events, per endpoint and
route, named by the configuration (see :mod:`~ferryman.apps.rules.settings`).

``ferryman rules`` (:mod:`ferryman.cli.rules`) lists what is attached where. A rule on a
``proxy.filter.*`` event makes every endpoint's requests go through the relay's filtering
(about 0.9x the plain relay's rate, for the events have one dispatcher); one on an
``http_client.filter.*`` event sends every request down the general path (ASGI kernel, client
session), at several times the CPU: see the README's "What runs where".
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from ferryman.apps.rules.listeners import AttachedRule, RuleListener, attach_rules
from ferryman.apps.rules.routes import Route
from ferryman.apps.rules.settings import HOOKS, RulesSettings, resolve_function
from ferryman.events import EventDispatcher
from ferryman.proxy.settings import ProxySettings
from ferryman.system import Application, OnBoundEvent
from ferryman.system.problems import with_source

__all__ = ["RulesApplication", "application", "attached_rules", "upstream_origins"]


def attached_rules(settings: RulesSettings) -> list[AttachedRule]:
    """Every rule's functions, resolved (``ValueError`` naming the function when one is not
    there: :meth:`RulesApplication.check_settings` reports it before anything starts)."""
    attached = []
    for rule in settings.attach:
        route = Route(rule.route)
        for hook, names in rule.functions().items():
            functions = tuple(resolve_function(name, settings.module) for name in names)
            attached.append(AttachedRule(rule.endpoint, route, HOOKS[hook], functions))
    return attached


def upstream_origins(proxy: ProxySettings | None) -> dict[str, tuple[str, ...]]:
    """Upstream origin -> the endpoints relaying there (what client events are matched by)."""
    origins: dict[str, tuple[str, ...]] = {}
    for endpoint in [] if proxy is None else proxy.endpoints:
        for url in endpoint.upstreams:
            origin = f"{url.scheme}://{url.host_header.decode('ascii')}"
            origins[origin] = (*origins.get(origin, ()), endpoint.name)
    return origins


class RulesApplication(Application):
    """Attaches the configured functions to the system's dispatcher on bound."""

    name: ClassVar[str] = "rules"
    settings_type = RulesSettings
    settings: RulesSettings

    @classmethod
    def check_settings(
        cls, settings: Mapping[str, Any], source: Callable[[str], str | None]
    ) -> list[str]:
        """Every function must be there, and an endpoint glob must match an endpoint."""
        own = settings.get(cls.name)
        if not isinstance(own, RulesSettings):
            return []
        proxy = settings.get("proxy")
        names = [e.name for e in proxy.endpoints] if isinstance(proxy, ProxySettings) else None
        problems = []
        for index, rule in enumerate(own.attach):
            key = f"rules.attach.{index}"
            if names is not None and rule.endpoint != "*" and not _any_match(rule.endpoint, names):
                problems.append(
                    with_source(
                        f"{key}.endpoint: {rule.endpoint!r} matches no endpoint (they are "
                        f"{', '.join(map(repr, names)) or 'none'})",
                        source(f"{key}.endpoint"),
                    )
                )
            for hook, functions in rule.functions().items():
                for position, name in enumerate(functions):
                    try:
                        resolve_function(name, own.module)
                    except ValueError as exc:
                        where = f"{key}.{hook}" + (f".{position}" if len(functions) > 1 else "")
                        problems.append(with_source(f"{where}: {exc}", source(where)))
        return problems

    def on_bound(self, event: OnBoundEvent) -> None:
        proxy = event.settings.get("proxy")
        self.listeners: dict[str, RuleListener] = attach_rules(
            event.provider.resolve(EventDispatcher),
            attached_rules(self.settings),
            upstream_origins(proxy if isinstance(proxy, ProxySettings) else None),
        )


def _any_match(glob: str, names: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, glob) for name in names)


application = RulesApplication
