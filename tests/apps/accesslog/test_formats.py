"""The access log's lines, from transactions as the relay fills them: every field where a
reader looks for it, quoting that keeps a line one line, secrets in queries redacted, JSON that
parses."""

from __future__ import annotations

import json
import re

import pytest

from ferryman.apps.accesslog.formats import LineFormatter, escape, milliseconds, query_redactor
from ferryman.apps.accesslog.settings import DEFAULT_REDACTED_PARAMETERS
from ferryman.proxy.transactions import Transaction

TEXT = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (?P<client>\S+) (?P<endpoint>\S+) "
    r'"(?P<method>\S+) (?P<target>(?:[^"\\]|\\.)*) HTTP/(?P<version>[\d.]+)" (?P<status>\d+) '
    r"(?P<bytes>\d+) (?P<duration>[\d.]+ms|-) (?P<upstream>\S+)"
    r"(?: cache=(?P<cache>\S+))?"
    r'(?: attempts=(?P<attempts>\d+) tried="(?P<tried>(?:[^"\\]|\\.)*)")?'
    r"(?: error=\"(?P<error>(?:[^\"\\]|\\.)*)\")?\n$"
)


def finished(
    target: bytes = b"/users?id=1",
    *,
    status: int = 200,
    error: str | None = None,
    cache: str | None = None,
    upstream: bool = True,
    client: tuple[str, int] | None = ("127.0.0.1", 52334),
) -> Transaction:
    transaction = Transaction("api", b"GET", target, [(b"Host", b"x")], "1.1", client)
    transaction.started_at = 1767608132.123456  # 2026-01-05T10:15:32.123Z
    transaction.t_start = 100.0
    if upstream:
        transaction.upstream_origin = "http://10.0.0.5:9000"
        transaction.raw_upstream_head = b"GET /v2" + target + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    transaction.status = status
    transaction.response_body_size = 213
    transaction.request_body_size = 5
    transaction.t_end = 100.0032
    transaction.error = error
    transaction.cache = cache
    return transaction


def test_a_text_line_has_every_field_in_its_place() -> None:
    line = LineFormatter("text")(finished())
    match = TEXT.match(line)
    assert match is not None, line
    assert match.groupdict() == {
        "time": "2026-01-05T10:15:32.123Z",
        "client": "127.0.0.1:52334",
        "endpoint": "api",
        "method": "GET",
        "target": "/users?id=1",
        "version": "1.1",
        "status": "200",
        "bytes": "213",
        "duration": "3.2ms",
        "upstream": "http://10.0.0.5:9000/v2/users?id=1",
        "cache": None,
        "attempts": None,
        "tried": None,
        "error": None,
    }


def test_cache_and_error_are_there_when_there_is_one() -> None:
    failed = finished(status=502, error='the upstream "x" refused the connection', upstream=False)
    match = TEXT.match(LineFormatter("text")(failed))
    assert match is not None
    assert match["upstream"] == "-"
    assert match["error"] == 'the upstream \\"x\\" refused the connection'
    hit = TEXT.match(LineFormatter("text")(finished(cache="HIT")))
    assert hit is not None and hit["cache"] == "HIT"


def test_a_request_that_went_again_shows_its_attempts_in_both_formats() -> None:
    transaction = finished(error='the upstream "b" timed out')
    transaction.attempt_failed("http://10.0.0.5:9000", "connect error")
    transaction.attempt_failed("http://10.0.0.6:9000", 'answered 503 "busy"')
    line = LineFormatter("text")(transaction)
    match = TEXT.match(line)
    assert match is not None, line
    assert match["attempts"] == "3"
    assert match["tried"] == (
        'http://10.0.0.5:9000 connect error; http://10.0.0.6:9000 answered 503 \\"busy\\"'
    )
    assert match["error"] == 'the upstream \\"b\\" timed out'
    data = json.loads(LineFormatter("json")(transaction))
    assert data["attempts"] == 3
    assert data["tried"] == [
        {"upstream": "http://10.0.0.5:9000", "failure": "connect error"},
        {"upstream": "http://10.0.0.6:9000", "failure": 'answered 503 "busy"'},
    ]


def test_a_target_cannot_forge_a_line_or_break_the_quotes() -> None:
    line = LineFormatter("text")(finished(b'/a"b\\c\nfake\x7f\xe9'))
    assert line.count("\n") == 1 and line.endswith("\n")
    match = TEXT.match(line)
    assert match is not None
    assert match["target"] == '/a\\"b\\\\c\\x0afake\\x7f\xe9'
    assert escape("/plain") == "/plain"


def test_ipv6_clients_are_bracketed_and_an_unknown_one_is_a_dash() -> None:
    assert " [::1]:4000 api " in LineFormatter("text")(finished(client=("::1", 4000)))
    assert " - api " in LineFormatter("text")(finished(client=None))


def test_secrets_in_the_query_are_redacted_in_target_and_upstream() -> None:
    redact = query_redactor(DEFAULT_REDACTED_PARAMETERS)
    line = LineFormatter("text", redact)(finished(b"/x?API_KEY=s3cret&page=2&token=t0k"))
    assert "s3cret" not in line and "t0k" not in line
    assert '"GET /x?API_KEY=[redacted]&page=2&token=[redacted] HTTP/1.1"' in line
    assert "/v2/x?API_KEY=[redacted]&page=2&token=[redacted]" in line
    assert query_redactor([]) is None
    assert redact is not None and redact("/keys?monkey=1") == "/keys?monkey=1"


def test_a_json_line_is_one_object_with_the_same_fields() -> None:
    text = LineFormatter("json", query_redactor(["token"]))(
        finished(b"/\xe9?token=x", status=504, error='timed "out"\n', cache="MISS")
    )
    assert text.endswith("}\n") and text.count("\n") == 1
    data = json.loads(text)
    assert data == {
        "time": "2026-01-05T10:15:32.123Z",
        "id": data["id"],
        "client": "127.0.0.1:52334",
        "endpoint": "api",
        "method": "GET",
        "target": "/\xe9?token=[redacted]",
        "http_version": "1.1",
        "status": 504,
        "bytes": 213,
        "request_bytes": 5,
        "duration_ms": 3.2,
        "upstream": "http://10.0.0.5:9000/v2/\xe9?token=[redacted]",
        "cache": "MISS",
        "attempts": 1,
        "tried": None,
        "error": 'timed "out"\n',
    }
    assert re.fullmatch(r"[0-9a-f]{32}", data["id"])
    empty = json.loads(LineFormatter("json")(finished(upstream=False, client=None)))
    assert empty["upstream"] is None and empty["client"] is None and empty["error"] is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0.0ms"),
        (0.00324, "3.2ms"),
        (0.00326, "3.3ms"),
        (0.0001, "0.1ms"),
        (12.34567, "12345.7ms"),
        (-0.002, "-2.0ms"),  # (a clock stepped back: still a number, never a crash)
    ],
)
def test_durations_are_milliseconds_in_tenths(seconds: float, text: str) -> None:
    assert milliseconds(seconds) == text
