"""A small service container: applications register services, the system asks for them by type.

Applications do not import each other's objects to wire them: during the bind phase each one
registers what it offers (``container.add(Storage, SqlStorage)``) and declares what it needs in
its constructor's annotations (``def __init__(self, storage: Storage)``). The container builds
each service the first time someone asks for it, feeding every parameter:

1. with the service registered for the parameter's annotated type (``X | None`` counts as ``X``);
2. else with the service registered under the parameter's name (``add("db", ...)``);
3. else the parameter keeps its default value, if it has one;
4. else the service cannot be built and :class:`~ferryman.system.errors.DependencyError` says
   which chain of services led there.

What is registered decides how it is built: a class is instantiated, a function (or
``functools.partial``) is called, and anything else is the instance itself. To register a function
*as* the service, wrap it: ``add("on_error", lambda: on_error)``. Registering a key again replaces
the previous service, so a later application can override an earlier one's choice.

Deliberately missing: scopes, async factories, configuration strings naming classes. Services
that need asynchronous set-up do it in their application's ``on_bound`` listener.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, TypeVar, overload

from ferryman.system.errors import DependencyError

__all__ = ["Container", "Lifetime", "ServiceKey"]

T = TypeVar("T")

#: ``"singleton"``: built once, on first use, then shared. ``"transient"``: built on every resolve.
Lifetime: TypeAlias = Literal["singleton", "transient"]
#: Services are found by type (the usual case) or by name (for values with no type of their own).
ServiceKey: TypeAlias = type[Any] | str

_UNBUILT: Any = object()


def _label(key: ServiceKey) -> str:
    return repr(key) if isinstance(key, str) else key.__qualname__


def _describe_annotation(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__qualname__
    return inspect.formatannotation(annotation)


def _is_factory(provider: object) -> bool:
    return (
        inspect.isclass(provider)
        or inspect.isroutine(provider)
        or isinstance(provider, functools.partial)
    )


def _enter(service: _Service, chain: tuple[_Service, ...]) -> tuple[_Service, ...]:
    """The chain with ``service`` appended, unless it is already in it (a cycle)."""
    if service in chain:
        names = tuple(s.label for s in (*chain[chain.index(service) :], service))
        raise DependencyError(f"dependency cycle: {' -> '.join(names)}", names)
    return (*chain, service)


def _unwrap_optional(annotation: Any) -> Any:
    """``Storage | None`` asks for a Storage, like ``Storage`` does."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        present = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(present) == 1:
            return present[0]
    return annotation


@dataclass(slots=True, eq=False)
class _Service:
    label: str
    factory: Callable[..., Any] | None
    lifetime: Lifetime
    instance: Any = _UNBUILT
    # Parameter name -> the service feeding it; filled on first use, reset when keys change.
    plan: dict[str, _Service] | None = field(default=None)


class Container:
    """Holds the services of one system; built during bind, read from bound onwards."""

    __slots__ = ("_services",)

    def __init__(self) -> None:
        self._services: dict[ServiceKey, _Service] = {}

    @overload
    def add(
        self,
        key: type[T],
        provider: Callable[..., T] | T | None = None,
        *,
        name: str | None = None,
        lifetime: Lifetime = "singleton",
    ) -> None: ...
    @overload
    def add(
        self,
        key: str,
        provider: object,
        *,
        name: str | None = None,
        lifetime: Lifetime = "singleton",
    ) -> None: ...

    def add(
        self,
        key: ServiceKey,
        provider: object = None,
        *,
        name: str | None = None,
        lifetime: Lifetime = "singleton",
    ) -> None:
        """Register ``provider`` (class, factory or instance) under ``key``, and ``name`` too.

        ``add(Storage)`` registers the class itself. A name makes a typed service reachable by
        parameter name as well (``add(Storage, SqlStorage, name="storage")``).
        """
        if provider is None:
            if isinstance(key, str):
                raise TypeError(f"service {key!r} needs a provider: a class, factory or instance")
            provider = key
        if lifetime not in ("singleton", "transient"):
            raise ValueError(f"lifetime must be 'singleton' or 'transient', got {lifetime!r}")
        if _is_factory(provider):
            service = _Service(_label(key), typing.cast(Callable[..., Any], provider), lifetime)
        elif lifetime == "transient":
            raise ValueError(
                f"service {_label(key)} is an instance, which cannot be built again per resolve; "
                "register a class or factory for a transient service"
            )
        else:
            service = _Service(_label(key), None, lifetime, instance=provider)
        self._services[key] = service
        if name is not None:
            self._services[name] = service
        # What a parameter resolves to may have changed: plan again on next use.
        for registered in self._services.values():
            registered.plan = None

    def __contains__(self, key: object) -> bool:
        return key in self._services

    @overload
    def resolve(self, key: type[T]) -> T: ...
    @overload
    def resolve(self, key: str) -> Any: ...

    def resolve(self, key: ServiceKey) -> Any:
        """The service registered under ``key``, built (with its dependencies) if needed."""
        service = self._services.get(key)
        if service is None:
            raise DependencyError(f"no service registered for {_label(key)}", ())
        return self._build(service, ())

    def check(self) -> None:
        """Raise the error a resolve would, for every service, without building any of them.

        Run once after every application registered its services, so a missing or cyclic
        dependency stops the start-up instead of the first request that needs it.
        """
        for service in {id(s): s for s in self._services.values()}.values():
            self._check(service, ())

    def _check(self, service: _Service, chain: tuple[_Service, ...]) -> None:
        if service.factory is not None:
            chain = _enter(service, chain)
            for dependency in self._plan(service, chain).values():
                self._check(dependency, chain)

    def _build(self, service: _Service, chain: tuple[_Service, ...]) -> Any:
        if service.instance is not _UNBUILT:
            return service.instance
        assert service.factory is not None  # only instances are registered without one
        chain = _enter(service, chain)
        arguments = {
            parameter: self._build(dependency, chain)
            for parameter, dependency in self._plan(service, chain).items()
        }
        try:
            instance = service.factory(**arguments)
        except DependencyError:
            raise
        except Exception as exc:
            names = tuple(s.label for s in chain)
            raise DependencyError(
                f"cannot build {' -> '.join(names)}: {type(exc).__name__}: {exc}", names
            ) from exc
        if service.lifetime == "singleton":
            service.instance = instance
        return instance

    def _plan(self, service: _Service, chain: tuple[_Service, ...]) -> dict[str, _Service]:
        """Match each parameter of the service's factory with the service that feeds it."""
        if service.plan is not None:
            return service.plan
        assert service.factory is not None
        names = tuple(s.label for s in chain)
        try:
            signature = inspect.signature(service.factory, eval_str=True)
        except (NameError, TypeError, ValueError) as exc:
            raise DependencyError(
                f"cannot read the parameters of {' -> '.join(names)}: {exc}", names
            ) from exc
        plan: dict[str, _Service] = {}
        for parameter in signature.parameters.values():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            annotation = _unwrap_optional(parameter.annotation)
            dependency = (
                self._services.get(annotation) if isinstance(annotation, type) else None
            ) or self._services.get(parameter.name)
            if dependency is None:
                if parameter.default is not parameter.empty:
                    continue
                wanted = parameter.name
                if parameter.annotation is not parameter.empty:
                    wanted += f": {_describe_annotation(parameter.annotation)}"
                raise DependencyError(
                    f"cannot build {' -> '.join(names)}: nothing registered for parameter "
                    f"'{wanted}' of {service.label}",
                    names,
                )
            if parameter.kind is parameter.POSITIONAL_ONLY:
                raise DependencyError(
                    f"cannot build {' -> '.join(names)}: parameter '{parameter.name}' of "
                    f"{service.label} is positional-only and cannot be injected",
                    names,
                )
            plan[parameter.name] = dependency
        service.plan = plan
        return plan
