"""``Link`` header fields (RFC 8288): the pagination links of most JSON APIs.

The usual parser splits on ``,`` and ``;``, which breaks on a URL or a quoted title that holds
one (``<https://x/?ids=1,2>``, ``title="a, b"``). This one scans the value once, respecting
``<...>`` and quoted strings, and recovers at the next link when a link is malformed, so a bad
header never raises.
"""

from __future__ import annotations

__all__ = ["links_by_rel", "parse_link_header"]

_WHITESPACE = " \t"


def parse_link_header(value: str) -> list[dict[str, str]]:
    """Every link of one ``Link`` field value, as ``{"url": ..., param: value}``.

    Parameter names are lower-cased (they are case-insensitive); values are unquoted but
    otherwise as sent. A parameter that appears twice keeps its first value (RFC 8288 section
    3.3 says so for ``rel``), and a parameter called ``url`` cannot replace the link's URL.
    """
    links: list[dict[str, str]] = []
    length = len(value)
    position = 0
    while position < length:
        char = value[position]
        if char in _WHITESPACE or char == ",":
            position += 1
            continue
        if char != "<":
            position = _after_next_separator(value, position)
            continue
        end = value.find(">", position + 1)
        if end == -1:
            break  # An unterminated URL: nothing after it can be trusted.
        link = {"url": value[position + 1 : end].strip(_WHITESPACE)}
        position = _parse_params(value, end + 1, link)
        links.append(link)
    return links


def _parse_params(value: str, position: int, link: dict[str, str]) -> int:
    """Read ``; name=value`` parameters into ``link``; return where the next link may start."""
    length = len(value)
    while True:
        position = _skip_whitespace(value, position)
        if position >= length or value[position] == ",":
            return position
        if value[position] != ";":
            return _after_next_separator(value, position)
        position = _skip_whitespace(value, position + 1)
        start = position
        while position < length and value[position] not in "=;, \t":
            position += 1
        name = value[start:position].lower()
        position = _skip_whitespace(value, position)
        param = ""
        if position < length and value[position] == "=":
            position = _skip_whitespace(value, position + 1)
            if position < length and value[position] == '"':
                param, position = _read_quoted(value, position + 1)
            else:
                start = position
                while position < length and value[position] not in ";,":
                    position += 1
                param = value[start:position].strip(_WHITESPACE)
        if name and name not in link:
            link[name] = param


def _read_quoted(value: str, position: int) -> tuple[str, int]:
    """The content of a quoted-string whose opening quote is just before ``position``, with
    backslash escapes undone; an unterminated string runs to the end of the value."""
    parts: list[str] = []
    length = len(value)
    while position < length:
        char = value[position]
        if char == '"':
            return "".join(parts), position + 1
        if char == "\\" and position + 1 < length:
            position += 1
            char = value[position]
        parts.append(char)
        position += 1
    return "".join(parts), position


def _skip_whitespace(value: str, position: int) -> int:
    length = len(value)
    while position < length and value[position] in _WHITESPACE:
        position += 1
    return position


def _after_next_separator(value: str, position: int) -> int:
    """Skip a malformed part up to the next ``,`` that is outside ``<...>`` and quotes."""
    length = len(value)
    while position < length:
        char = value[position]
        if char == ",":
            return position + 1
        if char == '"':
            position = _read_quoted(value, position + 1)[1]
            continue
        if char == "<":
            end = value.find(">", position + 1)
            if end == -1:
                return length
            position = end
        position += 1
    return length


def links_by_rel(header_values: list[str]) -> dict[str, dict[str, str]]:
    """The links of all ``Link`` fields, keyed by relation type (else by URL), as requests'
    ``response.links``: ``links_by_rel(values)["next"]["url"]``.

    A ``rel`` of several types (``rel="next last"``) is filed under each type as well as under
    the whole string (the requests key). A later link with the same key replaces an earlier one.
    """
    links: dict[str, dict[str, str]] = {}
    for value in header_values:
        for link in parse_link_header(value):
            rel = link.get("rel")
            if not rel:
                links[link["url"]] = link
                continue
            links[rel] = link
            types = rel.split()
            if len(types) > 1:
                for relation_type in types:
                    links[relation_type] = link
    return links
