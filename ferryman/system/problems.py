"""Configuration problems in words for people: the key, the reason, and where the value came from.

pydantic says ``Input should be a valid integer, unable to parse string as an integer``,
``Value error, ...`` and ``Extra inputs are not permitted [type=extra_forbidden,
input_value={...}]``. Someone who ran ``ferryman start`` wants to know which key is wrong, why,
in plain words, and which of the places a value can come from (a file, a ``FERRYMAN_*``
variable, ``--endpoint``, ``--set``...) to look at::

    proxy.port: must be a whole number (got 'abc' from FERRYMAN_PROXY__PORT)
    proxy.grace_periode: unknown key; did you mean 'grace_period'? (from ferryman.yml:4)

:class:`Sources` remembers which source set each value as the configuration is assembled;
:func:`describe_errors` turns a pydantic ``ValidationError`` into such lines.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Final, NamedTuple, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

__all__ = [
    "KeyPath",
    "Source",
    "Sources",
    "describe_errors",
    "show_value",
    "unknown_key",
    "with_source",
]

#: A key's place in the configuration: ``("proxy", "endpoints", "0", "port")``.
KeyPath = tuple[str, ...]

#: At most this many sources are named for a value assembled from several.
MAX_SOURCES: Final = 3

# pydantic's error types, said for a configuration: "{key}: <this>". The context (``le``...)
# fills the placeholders.
_REASONS: Final[Mapping[str, str]] = {
    "missing": "required, and not given",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "set_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping of settings",
    "model_attributes_type": "must be a mapping of settings",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be more than {gt}",
    "string_too_short": "must have at least {min_length} characters",
    "string_too_long": "must have at most {max_length} characters",
    "too_short": "must have at least {min_length} items",
    "too_long": "must have at most {max_length} items",
    "literal_error": "must be {expected}",
    "enum": "must be {expected}",
}
#: Errors where the value makes no sense to show.
_NO_VALUE_SHOWN: Final = frozenset({"missing", "extra_forbidden"})
#: Errors a validator raised (``ValueError``), whose message is the reason as it wrote it.
_OWN_WORDS: Final = frozenset({"value_error", "assertion_error"})


class Source(NamedTuple):
    """Where values came from: ``label`` says it exactly (``ferryman.yml:12``), ``name`` is the
    source alone (``ferryman.yml``), for a list of several."""

    label: str
    name: str


class Sources:
    """Which source set each value of a configuration, the last one winning as they apply.

    A value set at a path replaces whatever earlier sources set at or under it, and each value
    inside it (a list's items, a mapping's keys) is known to come from the same source. A
    problem at a path is blamed on the source of that value; a value assembled from several (a
    mapping files and variables both added to) names each of them.
    """

    def __init__(self) -> None:
        self._by_path: dict[KeyPath, Source] = {}

    def set(
        self, path: KeyPath, value: Any, name: str, lines: Mapping[KeyPath, int] | None = None
    ) -> None:
        """The source ``name`` set ``value`` at ``path``, replacing what was there and under
        it; ``lines`` (of a YAML file) give the line of each key, for the label."""
        self.forget(path)
        self._add(path, value, name, lines or {})

    def forget(self, path: KeyPath) -> None:
        """Nothing is known any more of where the values at and under ``path`` came from."""
        depth = len(path)
        for known in [known for known in self._by_path if known[:depth] == path]:
            del self._by_path[known]

    def of(self, path: KeyPath) -> list[Source]:
        """The sources of the value at ``path``: the one that set it, then those that set parts
        of it afterwards; for a mapping or list made on the way to a deeper value (``--set
        proxy.endpoints.2.port=1`` makes endpoint 2), those that set its parts; for a key below
        every value known, the source of the closest value around it. One per source."""
        below = self._below(path)
        exact = self._by_path.get(path)
        if exact is not None:
            return [exact, *(other for other in below if other.name != exact.name)]
        if below:
            return below
        for depth in range(len(path) - 1, 0, -1):
            around = self._by_path.get(path[:depth])
            if around is not None:
                return [around]
        return []

    def describe(self, path: KeyPath) -> str | None:
        """``FERRYMAN_PROXY__PORT``, ``ferryman.yml:4``, or ``a.yml, --endpoint api=...``."""
        sources = self.of(path)
        if not sources:
            return None
        if len(sources) == 1:
            return sources[0].label
        names = list(dict.fromkeys(source.name for source in sources))
        shown = ", ".join(names[:MAX_SOURCES])
        if len(names) > MAX_SOURCES:
            shown += f" and {len(names) - MAX_SOURCES} more"
        return shown

    def _add(self, path: KeyPath, value: Any, name: str, lines: Mapping[KeyPath, int]) -> None:
        line = lines.get(path)
        self._by_path[path] = Source(name if line is None else f"{name}:{line}", name)
        children: Iterable[tuple[Any, Any]] = ()
        if isinstance(value, Mapping):
            children = value.items()
        elif isinstance(value, list):
            children = enumerate(value)
        for key, child in children:
            self._add((*path, str(key)), child, name, lines)

    def _below(self, path: KeyPath) -> list[Source]:
        depth = len(path)
        found: dict[str, Source] = {}
        for known, source in self._by_path.items():
            if len(known) > depth and known[:depth] == path:
                found.setdefault(source.name, source)
        return list(found.values())


def describe_errors(
    error: ValidationError,
    prefix: str,
    model: type[BaseModel] | None = None,
    sources: Sources | None = None,
) -> list[str]:
    """One ``key: reason (got value from source)`` line per problem pydantic found.

    ``prefix`` is the key the validated data sits under (an application's name); ``model``,
    the class that validated it, lets an unknown key come with the known key it resembles.
    """
    lines = []
    for problem in error.errors(include_url=False):
        loc = tuple(str(part) for part in problem["loc"])
        kind = problem["type"]
        if kind == "extra_forbidden":
            known = None if model is None else keys_at(model, loc[:-1])
            reason = unknown_key(loc[-1], known or ())
        else:
            reason = _reason(kind, problem["msg"], problem.get("ctx") or {})
        value = None if kind in _NO_VALUE_SHOWN else show_value(problem["input"])
        # A validator's own reason may quote the value already, and a mapping or list is the
        # whole of what it judged (the key says which).
        if (
            kind in _OWN_WORDS
            and value is not None
            and (value in reason or isinstance(problem["input"], Mapping | list | tuple))
        ):
            value = None
        # A missing key has no source: the mapping it is missing from has.
        blamed = loc[:-1] if kind == "missing" else loc
        source = None if sources is None else sources.describe((prefix, *blamed))
        lines.append(f"{'.'.join((prefix, *loc))}: {reason}{_provenance(value, source)}")
    return lines


def unknown_key(key: str, known: Iterable[str], *, what: str = "unknown key") -> str:
    """``unknown key; did you mean 'grace_period'?``, or the keys there are when none is close."""
    known = list(known)
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return f"{what}; did you mean {close[0]!r}?"
    if known:
        return f"{what} (the keys here are {', '.join(known)})"
    return what


def show_value(value: object) -> str | None:
    """A value as its YAML spelling (``'abc'``, ``70000``, ``true``, ``null``); a mapping or
    list is not spelt out (the key says which it is, and the source shows it whole)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57]) + "..."
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, Sequence):
        return "a list"
    return None  # a Python object (a function...): not a configuration's value


def keys_at(model: type[BaseModel], loc: Sequence[str]) -> list[str] | None:
    """The keys the settings at ``loc`` under ``model`` may have, when a model validates them."""
    annotation: Any = model
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields = {field.alias or name: field for name, field in annotation.model_fields.items()}
            if part not in fields:
                return None
            annotation = fields[part].annotation
            continue
        origin, arguments = get_origin(annotation), get_args(annotation)
        if origin in (list, tuple, set, frozenset) and arguments:
            annotation = arguments[0]
        elif origin is dict and len(arguments) == 2:
            annotation = arguments[1]
        else:
            return None
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [field.alias or name for name, field in annotation.model_fields.items()]
    return None


def _unwrap(annotation: Any) -> Any:
    """``Annotated[X, ...]`` and ``X | None`` -> ``X``; a union of several stays as it is."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [member for member in get_args(annotation) if member is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _reason(kind: str, message: str, context: Mapping[str, Any]) -> str:
    if kind in _OWN_WORDS and "error" in context:
        return str(context["error"])
    template = _REASONS.get(kind)
    if template is not None:
        if kind == "string_too_short" and context.get("min_length") == 1:
            return "must not be empty"
        try:
            return template.format(**{key: _number(value) for key, value in context.items()})
        except (KeyError, IndexError):
            pass
    # An error type without words of its own: pydantic's, in the same voice as the others.
    for opening in ("Input should be ", "Value should be "):
        if message.startswith(opening):
            return "must be " + message.removeprefix(opening)
    return message[:1].lower() + message[1:]


def _number(value: Any) -> Any:
    """``0.0`` -> ``0``: a bound reads as the user wrote it."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _provenance(value: str | None, source: str | None) -> str:
    if value is not None and source is not None:
        return f" (got {value} from {source})"
    if value is not None:
        return f" (got {value})"
    if source is not None:
        return f" (from {source})"
    return ""


def with_source(line: str, source: str | None) -> str:
    """A problem's line, and where the value came from when that is known (for an
    application's ``check_settings``, with the ``source`` it is given)."""
    return line if source is None else f"{line} (from {source})"
