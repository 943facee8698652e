"""Query parameters as an immutable, order-keeping multi-dict.

A plain ``dict`` can neither represent ``?tag=a&tag=b`` nor keep ``a=1&b=2&a=3`` in its original
order, and that order matters when a proxy or a signature scheme (OAuth 1, some webhook
signatures) depends on the exact parameter sequence. ``QueryParams`` keeps every pair in the
order it was given and is immutable so that a ``URL`` can hand it out without defensive copies.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, KeysView, Mapping, Sequence, ValuesView
from urllib.parse import parse_qsl, quote

__all__ = ["PrimitiveData", "QueryParams", "QueryParamsTypes"]

PrimitiveData = str | int | float | bool | None


def primitive_value_to_str(value: object) -> str:
    """Render a parameter the way web frameworks parse it back (``true``, not ``True``)."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    raise TypeError(
        "Query parameter keys and values must be str, int, float, bool or None, "
        f"not {type(value).__name__}"
    )


def _pairs_from(params: QueryParamsTypes | None) -> list[tuple[str, str]]:
    if params is None:
        return []
    if isinstance(params, str):
        return parse_qsl(params, keep_blank_values=True)
    if isinstance(params, bytes):
        return parse_qsl(params.decode("utf-8", "replace"), keep_blank_values=True)
    to_str = primitive_value_to_str
    pairs: list[tuple[str, str]] = []
    if isinstance(params, Mapping):
        for key, value in params.items():
            if isinstance(value, list | tuple):
                pairs.extend((to_str(key), to_str(item)) for item in value)
            else:
                pairs.append((to_str(key), to_str(value)))
        return pairs
    if isinstance(params, Sequence):
        for pair in params:
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise TypeError(f"Query parameters must be (key, value) pairs, got {pair!r}")
            pairs.append((to_str(pair[0]), to_str(pair[1])))
        return pairs
    raise TypeError(f"Cannot build QueryParams from {type(params).__name__}")


class QueryParams(Mapping[str, str]):
    """Immutable multi-dict of query parameters.

    The ``Mapping`` view (``[]``, ``keys()``, ``items()``, ``len()``) sees the *first* value of
    each key, which is what most callers want; ``get_list()`` and ``multi_items()`` expose the
    repeats. Every "mutating" method returns a new instance.
    """

    __slots__ = ("_first", "_items")

    _items: tuple[tuple[str, str], ...]
    _first: dict[str, str]

    def __init__(self, params: QueryParamsTypes | None = None) -> None:
        if isinstance(params, QueryParams):
            self._items = params._items
            self._first = params._first
            return
        self._set_items(tuple(_pairs_from(params)))

    def _set_items(self, items: tuple[tuple[str, str], ...]) -> None:
        first: dict[str, str] = {}
        for key, value in items:
            first.setdefault(key, value)
        self._items = items
        self._first = first

    @classmethod
    def _from_items(cls, items: tuple[tuple[str, str], ...]) -> QueryParams:
        instance = cls.__new__(cls)
        instance._set_items(items)
        return instance

    def keys(self) -> KeysView[str]:
        return self._first.keys()

    def values(self) -> ValuesView[str]:
        return self._first.values()

    def items(self) -> ItemsView[str, str]:
        return self._first.items()

    def multi_items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def get_list(self, key: str) -> list[str]:
        return [value for item_key, value in self._items if item_key == key]

    def set(self, key: str, value: PrimitiveData) -> QueryParams:
        """Replace every value of ``key`` with one value, at the position of its first use."""
        return self.merge([(key, value)])

    def add(self, key: str, value: PrimitiveData) -> QueryParams:
        pair = (primitive_value_to_str(key), primitive_value_to_str(value))
        return self._from_items((*self._items, pair))

    def remove(self, key: str) -> QueryParams:
        return self._from_items(tuple(item for item in self._items if item[0] != key))

    def merge(self, params: QueryParamsTypes | None = None) -> QueryParams:
        """Let the keys of ``params`` win while everything else keeps its place.

        A key present on both sides takes all of ``params``' values, placed where the key first
        appeared here; new keys are appended in their own order.
        """
        incoming_items = _pairs_from(params)
        if not incoming_items:
            return self
        incoming: dict[str, list[tuple[str, str]]] = {}
        for item in incoming_items:
            incoming.setdefault(item[0], []).append(item)
        merged: list[tuple[str, str]] = []
        placed: set[str] = set()
        for item in self._items:
            key = item[0]
            if key not in incoming:
                merged.append(item)
            elif key not in placed:
                placed.add(key)
                merged.extend(incoming[key])
        merged.extend(item for item in incoming_items if item[0] not in placed)
        return self._from_items(tuple(merged))

    def __getitem__(self, key: str) -> str:
        return self._first[key]

    def __contains__(self, key: object) -> bool:
        return key in self._first

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def __bool__(self) -> bool:
        return bool(self._items)

    def _grouped(self) -> dict[str, tuple[str, ...]]:
        groups: dict[str, list[str]] = {}
        for key, value in self._items:
            groups.setdefault(key, []).append(value)
        return {key: tuple(values) for key, values in groups.items()}

    def __eq__(self, other: object) -> bool:
        # Order between different keys carries no meaning for equality, but the order of
        # repeated values of one key does (``a=1&a=2`` is a list [1, 2], not a set).
        if not isinstance(other, QueryParams):
            try:
                other = QueryParams(other)  # type: ignore[arg-type]
            except TypeError:
                return NotImplemented
        return self._grouped() == other._grouped()

    def __hash__(self) -> int:
        return hash(frozenset(self._grouped().items()))

    def __str__(self) -> str:
        # ``safe=""`` so that ``&``, ``=``, ``+`` and ``%`` inside values survive a round trip;
        # spaces become ``%20`` (as browsers and httpx do) rather than ``+``.
        return "&".join(
            f"{quote(key, safe='')}={quote(value, safe='')}" for key, value in self._items
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


QueryParamsTypes = (
    QueryParams
    | Mapping[str, PrimitiveData | Sequence[PrimitiveData]]
    | Sequence[tuple[str, PrimitiveData]]
    | str
    | bytes
)
