"""Tests for ferryman.http.links: RFC 8288 Link header parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ferryman.http.links import links_by_rel, parse_link_header

# -- examples --------------------------------------------------------------------------------


def test_github_style_pagination() -> None:
    value = (
        '<https://api.example.com/items?page=2>; rel="next", '
        '<https://api.example.com/items?page=9>; rel="last"'
    )
    assert parse_link_header(value) == [
        {"url": "https://api.example.com/items?page=2", "rel": "next"},
        {"url": "https://api.example.com/items?page=9", "rel": "last"},
    ]


def test_unquoted_values_and_several_params() -> None:
    assert parse_link_header('<http://a/x>; rel=next; title="x"; type=text/html') == [
        {"url": "http://a/x", "rel": "next", "title": "x", "type": "text/html"}
    ]


@pytest.mark.parametrize(
    "value",
    [
        '<http://a/x>;rel="next"',
        '<http://a/x> ; rel = "next" ',
        "  <http://a/x>\t;\trel=next  ",
        '< http://a/x >; rel="next"',
        ',, <http://a/x>; rel="next",,',
    ],
)
def test_tolerates_spacing_and_empty_elements(value: str) -> None:
    assert parse_link_header(value) == [{"url": "http://a/x", "rel": "next"}]


def test_commas_and_semicolons_inside_url_and_quotes() -> None:
    value = '<http://a/?ids=1,2;3>; rel="next"; title="a, b; c", <http://b/>; rel=prev'
    assert parse_link_header(value) == [
        {"url": "http://a/?ids=1,2;3", "rel": "next", "title": "a, b; c"},
        {"url": "http://b/", "rel": "prev"},
    ]


def test_escaped_quote_in_quoted_string() -> None:
    assert parse_link_header(r'<u>; title="say \"hi\", then \\ go"') == [
        {"url": "u", "title": 'say "hi", then \\ go'}
    ]


def test_param_names_are_case_insensitive_and_first_occurrence_wins() -> None:
    assert parse_link_header('<u>; REL="next"; rel="prev"; Title=t') == [
        {"url": "u", "rel": "next", "title": "t"}
    ]


def test_param_named_url_does_not_replace_the_link() -> None:
    assert parse_link_header('<http://real/>; url="http://evil/"') == [{"url": "http://real/"}]


def test_param_without_value() -> None:
    assert parse_link_header("<u>; crossorigin; rel=preload") == [
        {"url": "u", "crossorigin": "", "rel": "preload"}
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", []),
        ("   ", []),
        ("garbage", []),
        ('garbage, <u>; rel="next"', [{"url": "u", "rel": "next"}]),
        (
            '<u>; rel="next" junk, <v>; rel=last',
            [{"url": "u", "rel": "next"}, {"url": "v", "rel": "last"}],
        ),
        ('"quoted, junk", <v>', [{"url": "v"}]),
        ("<unterminated; rel=next", []),
        ('<u>; title="unterminated, <v>', [{"url": "u", "title": "unterminated, <v>"}]),
    ],
)
def test_malformed_input_recovers_at_the_next_link(
    value: str, expected: list[dict[str, str]]
) -> None:
    assert parse_link_header(value) == expected


# -- links_by_rel ----------------------------------------------------------------------------


def test_links_by_rel_merges_fields_and_falls_back_to_url() -> None:
    links = links_by_rel(['<http://a/2>; rel="next"', '<http://a/9>; rel="last", <http://a/x>'])
    assert links == {
        "next": {"url": "http://a/2", "rel": "next"},
        "last": {"url": "http://a/9", "rel": "last"},
        "http://a/x": {"url": "http://a/x"},
    }


def test_links_by_rel_files_multiple_relation_types_under_each() -> None:
    link = {"url": "http://a/9", "rel": "next last"}
    assert links_by_rel(['<http://a/9>; rel="next last"']) == {
        "next last": link,
        "next": link,
        "last": link,
    }


def test_links_by_rel_later_link_replaces_earlier() -> None:
    links = links_by_rel(['<http://a/1>; rel="next"', '<http://a/2>; rel="next"'])
    assert links["next"]["url"] == "http://a/2"


def test_links_by_rel_empty() -> None:
    assert links_by_rel([]) == {}


# -- properties ------------------------------------------------------------------------------

_TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
_tokens = st.text(alphabet=_TOKEN_CHARS, min_size=1, max_size=12)
# Anything printable but '>' (which ends the URL) and surrounding spaces (which are trimmed).
_urls = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters=">"),
    min_size=1,
    max_size=40,
)
_quoted_contents = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30
)
_spaces = st.text(alphabet=" \t", max_size=2)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def _links(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    url = draw(_urls)
    names = draw(st.lists(_tokens.filter(lambda name: name != "url"), unique=True, max_size=4))
    rendered = [f"<{url}>"]
    expected = {"url": url}
    for name in names:
        if draw(st.booleans()):
            param = draw(_quoted_contents)
            text = _quote(param)
        else:
            param = draw(_tokens)
            text = param
        space = draw(_spaces)
        rendered.append(f"{space};{draw(_spaces)}{name}{space}={draw(_spaces)}{text}")
        expected[name] = param
    return "".join(rendered), expected


@given(st.lists(_links(), max_size=5), _spaces)
def test_rendered_links_parse_back(links: list[tuple[str, dict[str, str]]], space: str) -> None:
    value = f"{space},{space}".join(rendered for rendered, _ in links)
    assert parse_link_header(value) == [expected for _, expected in links]


@given(st.text(max_size=200))
def test_any_text_parses_without_error(value: str) -> None:
    links = parse_link_header(value)
    assert all(isinstance(link["url"], str) for link in links)
    assert len(links) <= value.count("<")


@given(st.lists(st.tuples(_urls, st.none() | _tokens), min_size=1, max_size=6))
def test_links_by_rel_files_each_link_under_its_rel_or_url(
    links: list[tuple[str, str | None]],
) -> None:
    values = [f"<{url}>" + (f"; rel={rel}" if rel else "") for url, rel in links]
    expected: dict[str, dict[str, str]] = {}
    for url, rel in links:
        expected[rel or url] = {"url": url, "rel": rel} if rel else {"url": url}
    assert links_by_rel(values) == expected
