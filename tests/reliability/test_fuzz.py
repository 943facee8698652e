"""A fuzz target over the proxy's framing, both ways: hypothesis writes the heads and bodies.

Requests: valid and mutated heads and bodies (Content-Length variants, Transfer-Encoding
variants, Content-Length beside chunked, chunk sizes in every spelling, extensions, trailers,
bare LF and CR, obs-fold, spaces before a colon, control characters, huge values), some
carrying a second request inside their body, go through ``ferryman start`` to
:class:`~tests.reliability.strict_upstream.StrictUpstream`. The invariants:

* the proxy answers (never silence), and its answer is one well-framed message;
* a request it must refuse (ambiguous framing) is refused and never reaches the upstream; a
  valid one reaches it; where the RFC lets a recipient choose (obs-fold, bare LF, repeated equal
  lengths), either;
* what reaches the upstream is exactly one strictly well-framed request whose body is the one
  the client meant, never two, and never the request hidden in the body.

Answers: the upstream sends mutated answers (the same mutations, close-delimited and short
bodies, bytes after the answer, interim 1xx); the client gets the answer as meant, or a 502, or
(once an answer has started) a cut connection, never a malformed or desynchronised stream: the
next request, on the same connection and on a new one, gets its own answer.

Bounded in CI: ``FERRYMAN_FUZZ_EXAMPLES`` examples per target and road (40 by default), without
shrinking. By hand, longer and with shrinking to a minimal failing example::

    FERRYMAN_FUZZ_EXAMPLES=5000 python -m pytest tests/reliability/test_fuzz.py
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import DrawFn

from tests.reliability.ledger import LEDGER
from tests.reliability.proxies import ROADS, RunningProxy, endpoint_name
from tests.reliability.strict_http import Malformed, Message, parse
from tests.reliability.strict_upstream import Script, StrictUpstream

EXAMPLES = int(os.environ.get("FERRYMAN_FUZZ_EXAMPLES", "40"))
BY_HAND = "FERRYMAN_FUZZ_EXAMPLES" in os.environ
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    phases=list(Phase) if BY_HAND else [Phase.explicit, Phase.reuse, Phase.generate],
    report_multiple_bugs=False,
    derandomize=not BY_HAND,  # CI runs the same examples each time; by hand, new ones
)
#: pytest-timeout's bound for one target: about a second an example, for long runs by hand.
TIMEOUT = pytest.mark.timeout(60 + EXAMPLES)
#: Seconds a client waits for the proxy's answer: silence past it is a violation.
ANSWER_WAIT = 3.0

# Markers have a fixed length, so lengths computed on a template stay right once they are in.
RID = b"@@rid@@@@@@"
SMUGGLED = b"@@smuggled@"
_numbers = itertools.count(1)


def marker(kind: str) -> bytes:
    return b"%s%010d" % (kind[0].encode(), next(_numbers))


# -- verdicts --------------------------------------------------------------------------------

RELAY, EITHER, REFUSE = 0, 1, 2
VERDICTS = {RELAY: "must relay", EITHER: "may relay or refuse", REFUSE: "must refuse"}


@dataclass
class Case:
    """A message template, what it means, and how strict the proxy must be with it."""

    data: bytes
    meant: bytes
    verdict: int = RELAY
    notes: list[str] = field(default_factory=list)
    #: A request (the proxy is its server) or an answer (the proxy is its client).
    request: bool = True
    status: int = 200
    close: bool = False
    head: bool = False

    def __repr__(self) -> str:  # hypothesis prints failing examples: keep them readable
        data = self.data if len(self.data) <= 400 else self.data[:400] + b"..."
        return f"Case({VERDICTS[self.verdict]}; {'; '.join(self.notes)}; {data!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def mark(self, note: str, verdict: int) -> None:
        self.notes.append(note)
        self.verdict = max(self.verdict, verdict)


def _content_length(draw: DrawFn, case: Case, size: int) -> bytes:
    spelling, verdict = draw(
        st.sampled_from(
            [
                (b"%d" % size, RELAY),
                (b"000%d" % size, RELAY),
                (b" %d " % size, RELAY),
                (b"%d, %d" % (size, size), EITHER),
                (b"%d, %d" % (size, size + 1), REFUSE),
                (b"+%d" % size, REFUSE),
                (b"-%d" % size, REFUSE),
                (b"%d %d" % (size, size), REFUSE),
                (b"0x%x" % size, REFUSE),
                (b"%d.0" % size, REFUSE),
            ]
        )
    )
    case.mark(f"Content-Length: {spelling!r}", verdict)
    return spelling


def _chunked(draw: DrawFn, case: Case, body: bytes) -> bytes:
    """``body`` chunked, every size line and ending spelled by hypothesis."""
    wire = b""
    at = 0
    while at < len(body):
        size = draw(st.integers(1, max(1, len(body) - at)))
        piece = body[at : at + size]
        at += size
        spelling, verdict = draw(
            st.sampled_from(
                [
                    (b"%x" % size, RELAY),
                    (b"%X" % size, RELAY),
                    (b"000%x" % size, RELAY),
                    (b"%x;ext=1" % size, RELAY),
                    (b'%x;name="quoted value"' % size, RELAY),
                    (b"%x ;ext" % size, EITHER),
                    (b"0x%x" % size, REFUSE),
                    (b"-%x" % size, REFUSE),
                    (b"%x %x" % (size, size), REFUSE),
                    (b"", REFUSE),
                ]
            )
        )
        case.mark(f"chunk size {spelling!r}", verdict)
        if verdict == RELAY and draw(st.integers(0, 9)) == 0:
            case.mark("chunk shorter than its data", REFUSE)
            piece += b"Z"  # read as the next size line: not hex
        end = draw(st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n"]))
        if end == b"\n":
            case.mark("bare LF after chunk data", EITHER)
        wire += spelling + b"\r\n" + piece + end
    last = draw(st.sampled_from([b"0", b"000", b"0;last=yes"]))
    case.notes.append(f"last chunk {last!r}")
    trailers = draw(st.sampled_from([b"", b"X-Trailer: yes\r\n", b"X-A: 1\r\nX-B: 2\r\n"]))
    if trailers:
        case.notes.append("trailers")
    return wire + last + b"\r\n" + trailers + b"\r\n"


def _transfer_encoding(draw: DrawFn, case: Case) -> bytes:
    spellings = [
        (b"chunked", RELAY),
        (b"Chunked", RELAY),
        (b"CHUNKED", RELAY),
        (b" chunked ", RELAY),
        (b"chunked, chunked", REFUSE),
    ]
    if case.request:  # an answer's other codings are the client's business (and not asked for)
        spellings += [
            (b"gzip, chunked", REFUSE),
            (b"identity", REFUSE),
            (b"xchunked", REFUSE),
            (b"chunked;q=1", REFUSE),
            (b"chunked\x0b", REFUSE),
        ]
    spelling, verdict = draw(st.sampled_from(spellings))
    case.mark(f"Transfer-Encoding: {spelling!r}", verdict)
    return spelling


def _extra_headers(draw: DrawFn, case: Case) -> list[bytes]:
    lines: list[bytes] = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(
            st.sampled_from(
                ["plain", "duplicate", "obs-fold", "bare CR", "space before colon", "NUL", "huge"]
            )
        )
        value = draw(st.text("abcxyz0123-_. ", min_size=1, max_size=20)).encode().strip() or b"v"
        if kind == "plain":
            lines.append(b"X-Fuzz: " + value)
        elif kind == "duplicate":
            lines += [b"X-Twice: " + value, b"X-Twice: " + value]
        elif kind == "obs-fold":
            case.mark("obs-fold", EITHER)
            lines.append(b"X-Folded: " + value + b"\r\n  continued")
        elif kind == "bare CR":  # RFC 9110 5.5: reject, or replace it with SP
            case.mark("bare CR in a value", EITHER)
            lines.append(b"X-CR: a\rb")
        elif kind == "space before colon":  # RFC 9112 5.1: a server rejects, a proxy removes
            case.mark("space before a colon", REFUSE if case.request else EITHER)
            lines.append(b"X-Spaced : " + value)
        elif kind == "NUL":
            case.mark("NUL in a value", EITHER)
            lines.append(b"X-Nul: a\x00b")
        else:
            size = draw(st.sampled_from([7000, 9000, 70000]))
            too_big = size > (8192 if case.request else 65536)
            case.mark(f"a header of {size} bytes", REFUSE if too_big else RELAY)
            lines.append(b"X-Huge: " + b"h" * size)
    return lines


def _join(draw: DrawFn, case: Case, lines: list[bytes]) -> bytes:
    """Head lines joined by CRLF, or (sometimes) one of them ended by a bare LF."""
    if len(lines) > 2 and draw(st.integers(0, 7)) == 0:
        at = draw(st.integers(1, len(lines) - 1))
        case.mark("a head line ended by a bare LF", EITHER)
        return b"\r\n".join(lines[:at]) + b"\n" + b"\r\n".join(lines[at:]) + b"\r\n\r\n"
    return b"\r\n".join(lines) + b"\r\n\r\n"


#: A request the proxy must never send: hidden in a body, or after a chunked body that a
#: Content-Length beside it covers (CL.TE).
HIDDEN = b"GET /fuzz/echo?rid=" + SMUGGLED + b" HTTP/1.1\r\nHost: proxy.test\r\n\r\n"


@st.composite
def requests(draw: DrawFn) -> Case:
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"FOO"]))
    body = draw(st.binary(max_size=200))
    if draw(st.integers(0, 4)) == 0:
        body += b"0\r\n\r\n" + HIDDEN
    case = Case(b"", body)
    case.notes.append(method.decode())
    lines = [b"%s /fuzz/echo?rid=%s HTTP/1.1" % (method, RID), b"Host: proxy.test"]
    framing = draw(st.sampled_from(["length", "chunked", "both", "none"]))
    wire = b""
    if framing == "none":
        case.meant = b""
    elif framing == "length":
        lines.append(b"Content-Length: " + _content_length(draw, case, len(body)))
        wire = body
    else:
        lines.append(b"Transfer-Encoding: " + _transfer_encoding(draw, case))
        wire = _chunked(draw, case, body)
        if framing == "both":
            case.mark("Content-Length beside chunked", EITHER)
            if draw(st.booleans()):
                case.notes.append("a request after the chunked body, inside the length")
                wire += HIDDEN
            size = draw(st.sampled_from([len(wire), len(body), 0]))
            lines.insert(draw(st.integers(1, len(lines))), b"Content-Length: %d" % size)
    lines += _extra_headers(draw, case)
    case.data = _join(draw, case, lines) + wire
    return case


STATUSES = [(200, b"OK"), (201, b"Created"), (404, b""), (500, b"Oops"), (204, b"No Content")]


@st.composite
def answers(draw: DrawFn) -> Case:
    status, reason = draw(st.sampled_from([*STATUSES, (304, b"Not Modified")]))
    body = draw(st.binary(max_size=200))
    head = draw(st.integers(0, 5)) == 0
    case = Case(b"", body, request=False, status=status, head=head)
    case.notes.append(f"{status}{' to HEAD' if head else ''}")
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"]))
    lines = [b"%s %d %s" % (version, status, reason), b"X-Upstream: fuzz"]
    bodiless = status in (204, 304)
    if bodiless:
        framing = "none"
    elif head:  # the framing of an answer to HEAD is only words: no body follows
        framing = "head"
    else:
        framing = draw(st.sampled_from(["length", "chunked", "both", "close", "short"]))
    case.notes.append(framing)
    wire = b""
    if framing == "length":
        lines.append(b"Content-Length: " + _content_length(draw, case, len(body)))
        wire = body
    elif framing in ("chunked", "both"):
        if version == b"HTTP/1.0":
            lines[0] = b"HTTP/1.1" + lines[0][8:]
        lines.append(b"Transfer-Encoding: " + _transfer_encoding(draw, case))
        wire = _chunked(draw, case, body)
        if framing == "both":
            case.mark("Content-Length beside chunked", EITHER)
            lines.append(b"Content-Length: %d" % len(body))
    elif framing == "close":
        wire, case.close = body, True
    elif framing == "head":
        lines.append(b"Content-Length: %d" % len(body))
    elif framing == "short":
        lines.append(b"Content-Length: %d" % (len(body) + 5))
        wire, case.close = body, True
        case.mark("shorter than its Content-Length", REFUSE)
    else:
        case.meant = b""
    if version == b"HTTP/1.0" and not case.close:
        lines.append(b"Connection: keep-alive")
    lines += _extra_headers(draw, case)
    if draw(st.integers(0, 5)) == 0:
        count = draw(st.sampled_from([50, 101]))
        case.mark(f"{count} more headers", RELAY if count < 90 else REFUSE)
        lines += [b"X-Many-%d: m" % i for i in range(count)]
    interim = b""
    if draw(st.integers(0, 5)) == 0:
        interim = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
        case.notes.append("interim 103")
    case.data = interim + _join(draw, case, lines) + (b"" if head else wire)
    if head or bodiless:
        case.meant = b""
    if not case.close and draw(st.integers(0, 5)) == 0:
        case.notes.append("bytes after the answer")
        case.data += b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"
    return case


# -- a client that reads strictly --------------------------------------------------------------


@dataclass
class Reply:
    message: Message | None = None
    #: The connection ended before a whole message (after some bytes of one, or none).
    cut: bool = False
    malformed: str = ""
    silent: bool = False

    def describe(self) -> str:
        if self.message is not None:
            return f"{self.message.status} {self.message.body[:120]!r}"
        return self.malformed or ("silence" if self.silent else "connection cut")


def read_reply(sock: socket.socket, *, head: bool = False) -> Reply:
    """One final answer (interim ones skipped), read strictly."""
    buffer = b""
    eof = False
    deadline = time.monotonic() + ANSWER_WAIT
    while True:
        try:
            found = parse(buffer, request=False, head_request=head, eof=eof)
        except Malformed as exc:
            if eof and (not buffer or "the connection ended" in str(exc)):
                return Reply(cut=True)
            return Reply(malformed=f"malformed answer: {exc}")
        if found is not None:
            message, taken = found
            buffer = buffer[taken:]
            if 100 <= message.status < 200 and message.status != 101:
                continue
            return Reply(message)
        if eof:
            return Reply(cut=True)
        left = deadline - time.monotonic()
        if left <= 0:
            return Reply(silent=True)
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            return Reply(silent=True)
        except ConnectionError:
            data = b""
        eof = not data
        buffer += data


def send(port: int, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WAIT)
    with contextlib.suppress(ConnectionError):  # refused early: its answer is there to read
        sock.sendall(data)
    return sock


def own_answer(sock: socket.socket, kind: str) -> str | None:
    """A normal request on ``sock``: None if it got its own answer (or the connection had been
    closed by the proxy), else what it got instead."""
    rid = marker(kind)
    try:
        sock.sendall(b"GET /fuzz/echo?rid=%s HTTP/1.1\r\nHost: proxy.test\r\n\r\n" % rid)
    except OSError:
        return None
    reply = read_reply(sock)
    if reply.message is None:
        return None if reply.cut else reply.describe()
    if reply.message.status == 200 and reply.message.body.startswith(rid):
        return None
    return reply.describe()


# -- the targets -------------------------------------------------------------------------------


def settle(strict: StrictUpstream) -> None:
    """Wait (briefly) until the upstream holds no part of a request: one the proxy cut off
    reaches the violations first, and one it left hanging counts as a violation too."""
    deadline = time.monotonic() + 0.5
    while not strict.quiet():
        if time.monotonic() > deadline:
            strict.violations.append("part of a request was left open on the upstream")
            return
        time.sleep(0.005)


def _fail(case: Case, problem: str, reply: Reply) -> None:
    pytest.fail(
        f"{problem}\n  case: {VERDICTS[case.verdict]}; {'; '.join(case.notes)}\n"
        f"  sent: {case.data[:600]!r}\n  got: {reply.describe()}"
    )


@TIMEOUT
@pytest.mark.parametrize("road", ROADS)
@FUZZ
@given(case=requests())
def test_a_request_reaches_the_upstream_once_well_framed_or_is_refused(
    plain: RunningProxy, strict: StrictUpstream, road: str, case: Case
) -> None:
    port = plain.port(endpoint_name("fuzz", road))
    rid, smuggled = marker("request"), marker("smuggled")
    violations = len(strict.violations)
    data = case.data.replace(RID, rid).replace(SMUGGLED, smuggled)
    meant = case.meant.replace(SMUGGLED, smuggled)
    LEDGER.fuzz_examples += 1
    with send(port, data) as sock:
        reply = read_reply(sock)
    time.sleep(0.1 if SMUGGLED in case.data else 0.01)  # a second request would be on its way
    settle(strict)
    seen = strict.seen(rid.decode())
    if len(seen) > 1:
        LEDGER.executed_twice.append(f"fuzz {rid.decode()}")
        _fail(case, f"the upstream got the request {len(seen)} times", reply)
    if strict.seen(smuggled.decode()):
        _fail(case, "the request hidden in the body reached the upstream", reply)
    if len(strict.violations) > violations:
        _fail(case, strict.violations[-1], reply)
    if reply.malformed or reply.silent:
        _fail(case, "the proxy's answer", reply)
    message = reply.message
    relayed = message is not None and message.status == 200 and bool(seen)
    refused = not seen and (reply.cut or (message is not None and message.status >= 400))
    if case.verdict == REFUSE and not refused:
        if seen:
            LEDGER.reached_upstream.append(f"fuzz: {'; '.join(case.notes)}")
        _fail(case, "a request the proxy must refuse was not refused", reply)
    if case.verdict == RELAY and not relayed:
        _fail(case, "a valid request was not relayed", reply)
    if not (relayed or refused):
        _fail(case, "neither relayed nor refused", reply)
    if relayed and seen[0].message.body != meant:
        _fail(case, f"the upstream got the body {seen[0].message.body[:200]!r}", reply)


@TIMEOUT
@pytest.mark.parametrize("road", ROADS)
@FUZZ
@given(case=answers())
def test_an_answer_reaches_the_client_well_framed_or_as_a_502_or_a_cut(
    plain: RunningProxy, strict: StrictUpstream, road: str, case: Case
) -> None:
    port = plain.port(endpoint_name("fuzz", road))
    rid = marker("answer")
    strict.scripts[rid.decode()] = Script(case.data, case.close)
    method = b"HEAD" if case.head else b"GET"
    LEDGER.fuzz_examples += 1
    with send(
        port, b"%s /fuzz/scripted?rid=%s HTTP/1.1\r\nHost: proxy.test\r\n\r\n" % (method, rid)
    ) as sock:
        reply = read_reply(sock, head=case.head)
        same_connection = None
        if reply.message is not None and reply.message.header(b"connection") != b"close":
            same_connection = own_answer(sock, "next")
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WAIT) as sock:
        new_connection = own_answer(sock, "fresh")
    del strict.scripts[rid.decode()]
    settle(strict)
    seen = len(strict.seen(rid.decode()))
    if seen > 1:
        LEDGER.executed_twice.append(f"fuzz {rid.decode()}")
        _fail(case, f"the upstream got the request {seen} times", reply)
    if reply.malformed or reply.silent:
        _fail(case, "the proxy's answer", reply)
    message = reply.message
    passed_on = message is not None and message.status == case.status and message.body == case.meant
    refused = reply.cut or (message is not None and message.status == 502)
    if case.verdict == RELAY and not passed_on:
        _fail(case, "a valid answer was not passed on as it was", reply)
    if case.verdict == REFUSE and not refused:
        _fail(case, "an answer the proxy must not pass on was passed on", reply)
    if not (passed_on or refused):
        _fail(case, "neither passed on nor refused", reply)
    if same_connection is not None:
        _fail(case, f"the next request on the connection got: {same_connection}", reply)
    if new_connection is not None:
        _fail(case, f"a request on a new connection got: {new_connection}", reply)
