"""The ``rules`` settings: which functions listen to which events, for which requests.

.. code-block:: yaml

    applications: [proxy, accesslog, metrics, rules]
    rules:
      module: myrules                # where bare function names are looked up
      attach:
        - endpoint: payments         # a glob of endpoint names ("*": every one, the default)
          route: "GET /users/*"      # a route glob: method (or *) and a path glob
          on_request: tag_user       # proxy.filter.request
          on_response: [strip_server, "audit.hooks:record"]   # proxy.filter.response
          on_upstream_request: sign  # http_client.filter.request
          on_upstream_response: []   # http_client.filter.response

A function is named ``name`` (in ``rules.module``) or ``module:name`` (``module:obj.attr``
too); modules are imported, as applications are, from the application directory first
(``--app-dir``, the current directory by default): nothing in a configuration is ever passed to
``exec``. Each function takes the event, as any listener of that event does, and may be
``async def``. Functions that cannot be found are configuration errors
(:func:`resolve_function`, checked before anything starts).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Final

from pydantic import field_validator

from ferryman.apps.rules.routes import Route
from ferryman.client.filtering import (
    EVENT_FILTER_HTTP_CLIENT_REQUEST,
    EVENT_FILTER_HTTP_CLIENT_RESPONSE,
)
from ferryman.proxy.events import EVENT_FILTER_PROXY_REQUEST, EVENT_FILTER_PROXY_RESPONSE
from ferryman.system.applications import Settings

__all__ = ["HOOKS", "RuleSettings", "RulesSettings", "resolve_function"]

#: A rule's keys, and the event each attaches its functions to.
HOOKS: Final = {
    "on_request": EVENT_FILTER_PROXY_REQUEST,
    "on_response": EVENT_FILTER_PROXY_RESPONSE,
    "on_upstream_request": EVENT_FILTER_HTTP_CLIENT_REQUEST,
    "on_upstream_response": EVENT_FILTER_HTTP_CLIENT_RESPONSE,
}


class RuleSettings(Settings):
    """Functions attached to the events of one endpoint glob and route glob."""

    endpoint: str = "*"
    route: str = "/*"
    on_request: list[str] = []
    on_response: list[str] = []
    on_upstream_request: list[str] = []
    on_upstream_response: list[str] = []

    @field_validator(*HOOKS, mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("route")
    @classmethod
    def _route(cls, value: str) -> str:
        Route(value)  # raises ValueError with the reason
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if not value or value.count("[") != value.count("]"):
            raise ValueError(f"{value!r} is not a glob of endpoint names")
        return value

    def functions(self) -> dict[str, list[str]]:
        """Hook key -> the function names given for it."""
        return {hook: list(getattr(self, hook)) for hook in HOOKS if getattr(self, hook)}


class RulesSettings(Settings):
    """Validated ``rules`` settings (see the module documentation)."""

    module: str | None = None
    attach: list[RuleSettings] = []


def resolve_function(name: str, module: str | None) -> Callable[..., Any]:
    """The function ``name`` refers to; ``ValueError`` saying why when there is none."""
    module_name, colon, attribute = name.partition(":")
    if not colon:
        if module is None:
            raise ValueError(
                f"{name!r} names no module, and rules.module is not set: write "
                f"'module:{name}' or set rules.module"
            )
        module_name, attribute = module, name
    if not module_name or not attribute:
        raise ValueError(f"{name!r} is not a function name: 'name' or 'module:name'")
    try:
        found: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            raise ValueError(
                f"there is no module {module_name!r} (looked for in the application "
                "directory, then on Python's path)"
            ) from None
        raise ValueError(f"module {module_name!r} cannot be imported: {exc!r}") from None
    except Exception as exc:
        raise ValueError(f"module {module_name!r} cannot be imported: {exc!r}") from None
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ValueError(f"module {module_name!r} has no {attribute!r}") from None
    if not callable(found):
        raise ValueError(f"{module_name}:{attribute} is {found!r}, not a function")
    return found  # type: ignore[no-any-return]
