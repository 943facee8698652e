"""Auth flows: published test vectors, header parsing properties, and real servers (httpbin,
the edge echo server, a token server below) answering the requests the flows send."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote, unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.datastructures import Authorization

from ferryman import AsyncConnectionPool, ConnectionPool, Headers, Request, Response
from ferryman.client.auth import (
    Auth,
    BasicAuth,
    DigestAuth,
    FunctionAuth,
    OAuth1,
    OAuth2,
    _parse_challenges,
    oauth1_base_string,
    to_auth,
)
from ferryman.exceptions import StreamConsumedError, StreamError
from ferryman.http import IteratorByteStream
from tests.servers.edge import EdgeServer
from tests.servers.httpbin_server import HttpbinServer
from tests.servers.threaded import ThreadedStreamServer

# -- drivers: the client's auth loop, over the real transport ------------------------------------


async def send_with(auth: Auth, request: Request) -> tuple[Response, list[Headers]]:
    """Run ``auth``'s async flow as the client does; return the last response and the headers
    of every request that went out (copied: a retry mutates the same request)."""
    sent: list[Headers] = []
    async with AsyncConnectionPool() as pool:
        flow = auth.async_auth_flow(request)
        request = await flow.__anext__()
        while True:
            sent.append(request.headers.copy())
            response = await pool.handle_async_request(request)
            await response.aread()
            try:
                request = await flow.asend(response)
            except StopAsyncIteration:
                return response, sent


def send_with_sync(auth: Auth, request: Request) -> tuple[Response, list[Headers]]:
    sent: list[Headers] = []
    with ConnectionPool() as pool:
        flow = auth.auth_flow(request)
        request = next(flow)
        while True:
            sent.append(request.headers.copy())
            response = pool.handle_request(request)
            response.read()
            try:
                request = flow.send(response)
            except StopIteration:
                return response, sent


def answer(auth: Auth, request: Request, challenge: str) -> str:
    """The Authorization header ``auth`` sends after a 401 carrying ``challenge``."""
    flow = auth.auth_flow(request)
    next(flow)
    retried = flow.send(Response(401, headers=[("WWW-Authenticate", challenge)]))
    return retried.headers["Authorization"]


def digest_params(header: str) -> dict[str, str]:
    """Parse a Digest Authorization header with werkzeug, as a real server would."""
    parsed = Authorization.from_header(header)
    assert parsed is not None and parsed.type == "digest"
    return {name: value for name, value in parsed.parameters.items() if value is not None}


# -- to_auth, Basic, FunctionAuth -------------------------------------------------------------


def test_to_auth_accepts_what_users_pass() -> None:
    digest = DigestAuth("u", "p")
    assert to_auth(None) is None
    assert to_auth(digest) is digest
    assert isinstance(to_auth(("u", "p")), BasicAuth)
    assert isinstance(to_auth(lambda request: request), FunctionAuth)
    with pytest.raises(TypeError):
        to_auth(("u", "p", "x"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        to_auth("u:p")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("username", "password", "expected"),
    [
        ("Aladdin", "open sesame", "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),  # RFC 7617 section 2
        ("test", "123\u00a3", "Basic dGVzdDoxMjPCow=="),  # RFC 7617 section 2.1, UTF-8
        (b"test", b"123\xc2\xa3", "Basic dGVzdDoxMjPCow=="),
    ],
)
def test_basic_header_matches_rfc_7617(
    username: str | bytes, password: str | bytes, expected: str
) -> None:
    request = next(BasicAuth(username, password).auth_flow(Request("GET", "http://x/")))
    assert request.headers["Authorization"] == expected


def test_basic_refuses_a_colon_in_the_user_id() -> None:
    with pytest.raises(ValueError, match="':'"):
        BasicAuth("a:b", "c")


@pytest.mark.parametrize(
    ("path", "auth", "status"),
    [
        ("/basic-auth/user/passwd", ("user", "passwd"), 200),
        ("/basic-auth/user/passwd", ("user", "wrong"), 401),
        ("/hidden-basic-auth/user/passwd", ("user", "passwd"), 200),
        ("/hidden-basic-auth/user/passwd", ("user", "wrong"), 404),
        ("/basic-auth/us%C3%A9r/p%C3%A4ss%20w%C3%B6rd", ("us\u00e9r", "p\u00e4ss w\u00f6rd"), 200),
    ],
)
async def test_basic_against_httpbin(
    httpbin: HttpbinServer, path: str, auth: tuple[str, str], status: int
) -> None:
    basic = to_auth(auth)
    assert basic is not None
    response, sent = await send_with(basic, Request("GET", httpbin.url + path))
    assert response.status_code == status
    assert len(sent) == 1
    if status == 200:
        assert json.loads(response.content) == {"authenticated": True, "user": auth[0]}


def test_function_auth_sync_through_the_sync_pool(edge: EdgeServer) -> None:
    def api_key(request: Request) -> Request:
        request.headers["X-Api-Key"] = "k-123"
        return request

    auth = to_auth(api_key)
    assert auth is not None
    response, _ = send_with_sync(auth, Request("GET", edge.url + "/echo"))
    assert ["X-Api-Key", "k-123"] in json.loads(response.content)["headers"]


# -- WWW-Authenticate parsing -----------------------------------------------------------------

_tokens = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,8}", fullmatch=True)
# Printable ASCII with everything that trips naive splitting: quotes, backslashes, commas, "=".
_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)


def _render(params: dict[str, str]) -> str:
    escaped = {k: v.replace("\\", "\\\\").replace('"', '\\"') for k, v in params.items()}
    return ", ".join(f'{name}="{value}"' for name, value in escaped.items())


@given(
    st.lists(
        st.tuples(_tokens, st.dictionaries(_tokens.map(str.lower), _values, max_size=4)),
        min_size=1,
        max_size=3,
    ),
    st.booleans(),
)
def test_challenges_round_trip(
    challenges: list[tuple[str, dict[str, str]]], one_field: bool
) -> None:
    rendered = [f"{scheme} {_render(params)}".rstrip() for scheme, params in challenges]
    fields = [", ".join(rendered)] if one_field else rendered
    assert _parse_challenges(fields) == challenges


def test_challenges_tolerate_unquoted_values_and_spaces_around_equals() -> None:
    parsed = _parse_challenges(['Newauth realm="apps", type=1, title="Login to \\"apps\\""'])
    assert parsed == [("Newauth", {"realm": "apps", "type": "1", "title": 'Login to "apps"'})]
    parsed = _parse_challenges(["Digest nonce = abc , qop=auth, Bearer"])
    assert parsed == [("Digest", {"nonce": "abc", "qop": "auth"}), ("Bearer", {})]


# -- Digest: published vectors and header properties -------------------------------------------

RFC_7616_CHALLENGE = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm={algorithm}, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_digest_matches_rfc_7616_section_3_9_1(algorithm: str, expected: str) -> None:
    auth = DigestAuth(
        "Mufasa",
        "Circle of Life",
        cnonce_factory=lambda: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    )
    request = Request("GET", "http://www.example.org/dir/index.html")
    params = digest_params(answer(auth, request, RFC_7616_CHALLENGE.format(algorithm=algorithm)))
    assert params["response"] == expected
    assert params["uri"] == "/dir/index.html"
    assert (params["qop"], params["nc"], params["algorithm"]) == ("auth", "00000001", algorithm)
    assert params["opaque"] == "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"


def test_digest_matches_rfc_2617_and_rfc_2069_examples() -> None:
    challenge = (
        'Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    request = Request("GET", "http://www.nowhere.org/dir/index.html")
    # RFC 2617 section 3.5 (qop=auth).
    auth = DigestAuth("Mufasa", "Circle Of Life", cnonce_factory=lambda: "0a4f113b")
    params = digest_params(answer(auth, request, challenge + ', qop="auth,auth-int"'))
    assert params["response"] == "6629fae49393a05397450978507c4ef1"
    # RFC 2069 section 2.4 (no qop: no nc, no cnonce).
    params = digest_params(answer(DigestAuth("Mufasa", "CircleOfLife"), request, challenge))
    assert params["response"] == "1949323746fe6a43ef61f9606e7febea"
    assert "nc" not in params and "cnonce" not in params and "qop" not in params


def _server_side_response(params: dict[str, str], password: str, method: str, body: bytes) -> str:
    """RFC 7616 section 3.4.1, computed from what the server received."""
    name = params["algorithm"].upper().removesuffix("-SESS")
    algorithm = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}[name]

    def h(text: str | bytes) -> str:
        return hashlib.new(
            algorithm, text if isinstance(text, bytes) else text.encode()
        ).hexdigest()

    ha1 = h(f"{params['username']}:{params['realm']}:{password}")
    if params["algorithm"].upper().endswith("-SESS"):
        ha1 = h(f"{ha1}:{params['nonce']}:{params['cnonce']}")
    a2 = f"{method}:{params['uri']}"
    if params["qop"] == "auth-int":
        a2 += ":" + h(body)
    nonce, nc, cnonce, qop = params["nonce"], params["nc"], params["cnonce"], params["qop"]
    return h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{h(a2)}")


@pytest.mark.parametrize("algorithm", ["MD5-sess", "SHA-256-sess", "SHA-512-256"])
@pytest.mark.parametrize("qop", ["auth", "auth-int"])
def test_digest_sess_and_auth_int_as_a_server_checks_them(algorithm: str, qop: str) -> None:
    auth = DigestAuth("Mufasa", "Circle of Life")
    request = Request("POST", "http://h/dir/index.html?x=1", content=b"payload")
    challenge = f'Digest realm="r", nonce="n0", qop="{qop}", algorithm={algorithm}'
    params = digest_params(answer(auth, request, challenge))
    assert params["algorithm"] == algorithm and params["qop"] == qop
    assert params["uri"] == "/dir/index.html?x=1"
    expected = _server_side_response(params, "Circle of Life", "POST", b"payload")
    assert params["response"] == expected


@given(user=_values, realm=_values, nonce=_values, opaque=_values)
def test_digest_header_survives_a_real_parser(
    user: str, realm: str, nonce: str, opaque: str
) -> None:
    challenge = "Digest " + _render(
        {"realm": realm, "nonce": nonce, "opaque": opaque, "qop": "auth"}
    )
    params = digest_params(answer(DigestAuth(user, "pw"), Request("GET", "http://h/"), challenge))
    assert (params["username"], params["realm"]) == (user, realm)
    assert (params["nonce"], params["opaque"]) == (nonce, opaque)
    assert params["response"] == _server_side_response(
        {**params, "algorithm": "MD5"}, "pw", "GET", b""
    )


def test_digest_non_ascii_username_goes_in_rfc_8187_form() -> None:
    header = answer(
        DigestAuth("J\u00e4s\u00f8n Doe", "pw"), Request("GET", "http://h/"), 'Digest nonce="n"'
    )
    assert "username*=UTF-8''J%C3%A4s%C3%B8n%20Doe" in header
    assert 'username="' not in header


def test_digest_userhash_sends_the_hashed_name() -> None:
    challenge = 'Digest realm="api@example.org", nonce="n", algorithm=SHA-256, userhash=true'
    params = digest_params(
        answer(DigestAuth("J\u00e4s\u00f8n Doe", "pw"), Request("GET", "http://h/"), challenge)
    )
    # RFC 7616 section 3.4.4: username = H(unq(username) ":" unq(realm)).
    expected = hashlib.sha256("J\u00e4s\u00f8n Doe:api@example.org".encode()).hexdigest()
    assert params["username"] == expected and params["userhash"] == "true"


def test_digest_answers_the_strongest_challenge_and_ignores_unusable_ones() -> None:
    challenge = (
        'Basic realm="x", Digest realm="r", nonce="a", algorithm=MD5, qop="auth", '
        'Digest realm="r", nonce="b", algorithm=SHA-256, qop="auth", '
        'Digest realm="r", nonce="c", algorithm=UNKNOWN-HASH, qop="auth", '
        'Digest realm="r", nonce="d", algorithm=SHA-256, qop="auth-conf"'
    )
    params = digest_params(answer(DigestAuth("u", "p"), Request("GET", "http://h/"), challenge))
    assert (params["nonce"], params["algorithm"]) == ("b", "SHA-256")


def test_digest_gives_up_on_a_challenge_it_cannot_answer() -> None:
    flow = DigestAuth("u", "p").auth_flow(Request("GET", "http://h/"))
    next(flow)
    with pytest.raises(StopIteration):
        flow.send(Response(401, headers=[("WWW-Authenticate", 'Digest nonce="n", algorithm=X')]))


def test_digest_follows_nextnonce() -> None:
    auth = DigestAuth("u", "p")
    answer(auth, Request("GET", "http://h/"), 'Digest realm="r", nonce="first", qop="auth"')
    flow = auth.auth_flow(Request("GET", "http://h/"))
    assert digest_params(next(flow).headers["Authorization"])["nc"] == "00000002"
    info = [("Authentication-Info", 'qop=auth, nextnonce="second"')]
    with pytest.raises(StopIteration):
        flow.send(Response(200, headers=info))
    params = digest_params(
        next(auth.auth_flow(Request("GET", "http://h/"))).headers["Authorization"]
    )
    assert (params["nonce"], params["nc"]) == ("second", "00000001")


def test_digest_auth_int_cannot_hash_a_stream() -> None:
    auth = DigestAuth("u", "p")
    answer(auth, Request("GET", "http://h/"), 'Digest nonce="n", qop="auth-int"')
    with pytest.raises(StreamError, match="auth-int"):
        next(auth.auth_flow(Request("POST", "http://h/", content=iter([b"x"]))))


# -- Digest against httpbin -------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "SHA-512"])
@pytest.mark.parametrize("qop", ["auth", "auth-int"])
async def test_digest_against_httpbin(httpbin: HttpbinServer, qop: str, algorithm: str) -> None:
    auth = DigestAuth("user", "passwd")
    url = f"{httpbin.url}/digest-auth/{qop}/user/passwd/{algorithm}"
    response, sent = await send_with(auth, Request("GET", url))
    assert response.status_code == 200
    assert json.loads(response.content) == {"authenticated": True, "user": "user"}
    assert "authorization" not in sent[0]
    assert digest_params(sent[1]["Authorization"])["nc"] == "00000001"
    # The challenge is remembered: the next request authenticates up front, same nonce, nc 2.
    response, again = await send_with(auth, Request("GET", url))
    assert response.status_code == 200 and len(again) == 1
    first, second = (
        digest_params(sent[1]["Authorization"]),
        digest_params(again[0]["Authorization"]),
    )
    assert second["nonce"] == first["nonce"] and second["nc"] == "00000002"


async def test_digest_auth_int_hashes_the_body(httpbin: HttpbinServer) -> None:
    url = f"{httpbin.url}/digest-auth/auth-int/user/passwd/SHA-256"
    request = Request("GET", url, content=b"a body the server hashes too")
    response, sent = await send_with(DigestAuth("user", "passwd"), request)
    assert response.status_code == 200 and len(sent) == 2
    assert digest_params(sent[1]["Authorization"])["qop"] == "auth-int"


async def test_digest_wrong_password_returns_the_401(httpbin: HttpbinServer) -> None:
    auth = DigestAuth("user", "wrong")
    url = f"{httpbin.url}/digest-auth/auth/user/passwd"
    response, sent = await send_with(auth, Request("GET", url))
    assert response.status_code == 401 and len(sent) == 2


async def test_digest_carries_the_challenge_cookies(httpbin: HttpbinServer) -> None:
    # (httpbin's ``require-cookie`` switch cannot be used: it fails on any query string.)
    url = f"{httpbin.url}/digest-auth/auth/user/passwd/MD5"
    request = Request("GET", url, headers={"Cookie": "mine=kept; fake=old"})
    response, sent = await send_with(DigestAuth("user", "passwd"), request)
    assert response.status_code == 200
    assert sent[0]["Cookie"] == "mine=kept; fake=old"
    assert sent[1]["Cookie"] == "mine=kept; fake=fake_value; stale_after=never"


async def test_digest_retries_a_stale_nonce_once(httpbin: HttpbinServer) -> None:
    # stale_after=0: httpbin calls every answer stale, so the flow must stop after one retry.
    url = f"{httpbin.url}/digest-auth/auth/user/passwd/MD5/0"
    response, sent = await send_with(DigestAuth("user", "passwd"), Request("GET", url))
    assert response.status_code == 401 and len(sent) == 3
    assert "stale=true" in response.headers["WWW-Authenticate"].lower()
    nonces = [digest_params(headers["Authorization"])["nonce"] for headers in sent[1:]]
    assert nonces[0] != nonces[1]


async def test_digest_stale_nonce_then_success(httpbin: HttpbinServer) -> None:
    auth = DigestAuth("user", "passwd")
    url = f"{httpbin.url}/digest-auth/auth/user/passwd/MD5/1"
    response, _ = await send_with(auth, Request("GET", url))
    assert response.status_code == 200
    # A cookie jar would now send stale_after=0: httpbin says the remembered nonce is stale.
    jar = "; ".join(cookie.partition(";")[0] for cookie in response.headers.get_list("set-cookie"))
    response, sent = await send_with(auth, Request("GET", url, headers={"Cookie": jar}))
    assert response.status_code == 200 and len(sent) == 2
    assert digest_params(sent[0]["Authorization"])["nc"] == "00000002"
    assert digest_params(sent[1]["Authorization"])["nc"] == "00000001"


async def test_digest_cannot_resend_a_streamed_body(httpbin: HttpbinServer) -> None:
    url = f"{httpbin.url}/digest-auth/auth/user/passwd"
    # A declared length: Werkzeug refuses chunked requests.
    request = Request("GET", url, headers={"Content-Length": "8"}, content=iter([b"one-shot"]))
    with pytest.raises(StreamConsumedError, match="DigestAuth"):
        await send_with(DigestAuth("user", "passwd"), request)


def test_digest_sync_through_the_sync_pool(httpbin: HttpbinServer) -> None:
    url = f"{httpbin.url}/digest-auth/auth/user/passwd/SHA-256"
    response, sent = send_with_sync(DigestAuth("user", "passwd"), Request("GET", url))
    assert response.status_code == 200 and len(sent) == 2


# -- OAuth2 -----------------------------------------------------------------------------------


class TokenServer(ThreadedStreamServer):
    """Accepts only ``Bearer <valid>``; records every token it was shown and echoes the body
    length, so retries can be checked to carry their body."""

    def __init__(self) -> None:
        super().__init__()
        self.valid = "good"
        self.seen: list[str] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                fields = dict(
                    (name.lower(), value)
                    for name, _, value in (line.partition(": ") for line in head.split("\r\n")[1:])
                )
                body = await reader.readexactly(int(fields.get("content-length", "0")))
                token = fields.get("authorization", "").removeprefix("Bearer ")
                self.seen.append(token)
                if token == self.valid:
                    payload = json.dumps({"token": token, "body": len(body)}).encode()
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (len(payload), payload)
                    )
                else:
                    writer.write(
                        b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\n"
                        b"Content-Length: 0\r\n\r\n"
                    )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
def token_server() -> Iterator[TokenServer]:
    server = TokenServer().start()
    yield server
    server.stop()


def test_oauth2_needs_a_token_or_a_way_to_get_one() -> None:
    with pytest.raises(ValueError):
        OAuth2()


async def test_oauth2_sends_the_token_to_httpbin(httpbin: HttpbinServer) -> None:
    response, sent = await send_with(OAuth2("tok-1"), Request("GET", httpbin.url + "/bearer"))
    assert json.loads(response.content) == {"authenticated": True, "token": "tok-1"}
    assert len(sent) == 1


async def test_oauth2_fetches_a_first_token_once(token_server: TokenServer) -> None:
    threads: list[int] = []

    def refresh() -> str:  # A blocking callback: it must not run on the event loop.
        threads.append(threading.get_ident())
        return "good"

    auth = OAuth2(refresh=refresh)
    for _ in range(2):
        response, sent = await send_with(auth, Request("GET", token_server.url))
        assert response.status_code == 200 and len(sent) == 1
    assert len(threads) == 1 and auth.token == "good"
    assert threads[0] != threading.get_ident()


async def test_oauth2_concurrent_401s_share_one_refresh(token_server: TokenServer) -> None:
    calls: list[int] = []

    async def refresh() -> str:
        calls.append(1)
        await asyncio.sleep(0)  # Let the other requests pile up on the lock.
        return "good"

    auth = OAuth2("expired", refresh=refresh)
    results = await asyncio.gather(
        *(send_with(auth, Request("POST", token_server.url, content=b"abc")) for _ in range(5))
    )
    assert len(calls) == 1
    for response, sent in results:
        assert response.status_code == 200 and len(sent) == 2
        assert json.loads(response.content) == {"token": "good", "body": 3}
    assert sorted(token_server.seen) == ["expired"] * 5 + ["good"] * 5


async def test_oauth2_retries_only_once(token_server: TokenServer) -> None:
    auth = OAuth2("expired", refresh=lambda: "also-bad")
    response, sent = await send_with(auth, Request("GET", token_server.url))
    assert response.status_code == 401 and len(sent) == 2
    assert token_server.seen == ["expired", "also-bad"]


async def test_oauth2_without_refresh_returns_the_401(token_server: TokenServer) -> None:
    response, sent = await send_with(OAuth2("expired"), Request("GET", token_server.url))
    assert response.status_code == 401 and len(sent) == 1


async def test_oauth2_cannot_resend_a_streamed_body(token_server: TokenServer) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"one-shot"

    auth = OAuth2("expired", refresh=lambda: "good")
    with pytest.raises(StreamConsumedError, match="OAuth2"):
        await send_with(auth, Request("POST", token_server.url, content=body()))
    assert auth.token == "good"


def test_oauth2_sync_flow(token_server: TokenServer) -> None:
    auth = OAuth2("expired", refresh=lambda: "good", token_type="Bearer")
    response, sent = send_with_sync(auth, Request("GET", token_server.url))
    assert response.status_code == 200
    assert [headers["Authorization"] for headers in sent] == ["Bearer expired", "Bearer good"]


def test_oauth2_sync_flow_refuses_an_async_refresh() -> None:
    async def refresh() -> str:
        return "good"

    with pytest.raises(TypeError, match="async"):
        next(OAuth2(refresh=refresh).auth_flow(Request("GET", "http://h/")))


# -- OAuth1 -----------------------------------------------------------------------------------

PHOTOS_URL = "http://photos.example.net/photos?file=vacation.jpg&size=original"


def oauth_header(auth: OAuth1, request: Request) -> dict[str, str]:
    value = next(auth.auth_flow(request)).headers["Authorization"]
    assert value.startswith("OAuth ")
    pairs = re.findall(r'([\w]+)="([^"]*)"', value)
    return {name: unquote(raw) for name, raw in pairs}


def photos_auth(**options: Any) -> OAuth1:
    return OAuth1(
        "dpf43f3p2l4k3l03",
        "kd94hf93k423kf44",
        token="nnch734d00sl2jdk",
        token_secret="pfkkdhi9sl3r4s00",
        **options,
    )


def test_oauth1_matches_the_oauth_core_1_0_photos_example() -> None:
    # OAuth Core 1.0, appendix A.5 (with oauth_version, as OAuth Core 1.0 required).
    auth = photos_auth(nonce_factory=lambda: "kllo9940pd9333jh", clock=lambda: 1191242096)
    fields = oauth_header(auth, Request("GET", PHOTOS_URL))
    assert fields["oauth_signature"] == "tR3+Ty81lMeYAr/Fid0kMTYa/WM="
    assert fields["oauth_version"] == "1.0"


def test_oauth1_matches_rfc_5849_section_1_2() -> None:
    auth = photos_auth(
        nonce_factory=lambda: "chapoH",
        clock=lambda: 137131202,
        include_version=False,
        realm="Photos",
    )
    fields = oauth_header(auth, Request("GET", PHOTOS_URL))
    assert fields["oauth_signature"] == "MdpQcU8iPSUjWoN/UDMsK2sui9I="
    assert fields["realm"] == "Photos" and "oauth_version" not in fields


RFC_5849_BASE_STRING = (
    "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q"
    "%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_"
    "key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_m"
    "ethod%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk"
    "9d7dh3k39sjv7"
)


def rfc_5849_request() -> Request:
    return Request(
        "POST",
        "http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        content=b"c2&a3=2+q",
    )


def test_oauth1_base_string_matches_rfc_5849_section_3_4_1_1() -> None:
    oauth_params = [
        ("oauth_consumer_key", "9djdj82h48djs9d2"),
        ("oauth_token", "kkk9d7dh3k39sjv7"),
        ("oauth_signature_method", "HMAC-SHA1"),
        ("oauth_timestamp", "137131201"),
        ("oauth_nonce", "7d8f3e4a"),
    ]
    assert oauth1_base_string(rfc_5849_request(), oauth_params) == RFC_5849_BASE_STRING
    # The flow signs that same string (the RFC does not publish the secrets: any will do).
    auth = OAuth1(
        "9djdj82h48djs9d2",
        "client secret",
        token="kkk9d7dh3k39sjv7",
        token_secret="token secret",
        include_version=False,
        nonce_factory=lambda: "7d8f3e4a",
        clock=lambda: 137131201.9,
    )
    key = b"client%20secret&token%20secret"
    mac = hmac_sha1(key, RFC_5849_BASE_STRING.encode())
    assert oauth_header(auth, rfc_5849_request())["oauth_signature"] == mac


def hmac_sha1(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, "sha1").digest()).decode()


@pytest.mark.parametrize(
    ("url", "base_uri"),
    [  # RFC 5849 section 3.4.1.2.
        ("HTTP://EXAMPLE.COM:80/r%20v/X?id=123", "http://example.com/r%20v/X"),
        ("https://www.example.net:8080/?q=1", "https://www.example.net:8080/"),
        ("https://example.net:443", "https://example.net/"),
    ],
)
def test_oauth1_base_string_uri(url: str, base_uri: str) -> None:
    base_string = oauth1_base_string(Request("GET", url), [])
    assert unquote(base_string.split("&")[1]) == base_uri


def test_oauth1_plaintext_matches_rfc_5849_section_2_1() -> None:
    auth = OAuth1(
        "jd83jd92dhsh93js",
        "ja893SD9",
        signature_method="PLAINTEXT",
        callback="http://client.example.net/cb?x=1",
        realm="Example",
    )
    request = Request("POST", "https://server.example.com/request_temp_credentials")
    header = next(auth.auth_flow(request)).headers["Authorization"]
    assert 'oauth_signature="ja893SD9%26"' in header
    assert 'oauth_callback="http%3A%2F%2Fclient.example.net%2Fcb%3Fx%3D1"' in header


def test_oauth1_refuses_unknown_signature_methods() -> None:
    with pytest.raises(ValueError, match="RSA-SHA1"):
        OAuth1("k", "s", signature_method="RSA-SHA1")


def oauthlib_verifies(
    method: str, uri: str, body: str, authorization: str, client_secret: str, token_secret: str
) -> bool:
    """Check a signature with oauthlib, from the request as a server received it."""
    pytest.importorskip("oauthlib")
    from urllib.parse import urlsplit

    from oauthlib.oauth1.rfc5849 import signature  # type: ignore[import-untyped,unused-ignore]

    params = signature.collect_parameters(
        uri_query=urlsplit(uri).query, body=body, headers={"Authorization": authorization}
    )
    base_string = signature.signature_base_string(
        method, signature.base_string_uri(uri), signature.normalize_parameters(params)
    )
    sent = dict(re.findall(r'(\w+)="([^"]*)"', authorization))["oauth_signature"]
    client = type(
        "Client", (), {"client_secret": client_secret, "resource_owner_secret": token_secret}
    )
    return bool(signature.sign_hmac_sha1_with_client(base_string, client) == unquote(sent))


_pairs = st.lists(st.tuples(st.text(max_size=6), st.text(max_size=6)), max_size=4)


@given(query=_pairs, form=_pairs, method=st.sampled_from(["GET", "POST", "PATCH"]))
def test_oauth1_signature_agrees_with_oauthlib(
    query: list[tuple[str, str]], form: list[tuple[str, str]], method: str
) -> None:
    from urllib.parse import urlencode

    uri = "http://Example.com:8080/a%20path/"
    if query:
        uri += "?" + urlencode(query)
    body = urlencode(form)
    request = Request(
        method,
        uri,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        content=body,
    )
    auth = OAuth1("ck\u00e9y", "cs&=", token="t k", token_secret="ts/\u00fc")
    authorization = next(auth.auth_flow(request)).headers["Authorization"]
    assert oauthlib_verifies(method, uri, body, authorization, "cs&=", "ts/\u00fc")


async def test_oauth1_signs_a_streamed_form_body_a_server_can_verify(edge: EdgeServer) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"status=Hello%20"
        yield b"Ladies+%2B+Gentlemen&a=1"

    request = Request(
        "POST",
        edge.url + "/statuses/update.json?include_entities=true",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        content=body(),
    )
    secret = "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw"
    response, _ = await send_with(OAuth1("xvz1evFS4wEEPTGEFPHBog", secret), request)
    echoed = json.loads(response.content)
    assert echoed["body"] == "status=Hello%20Ladies+%2B+Gentlemen&a=1"
    received = {name.lower(): value for name, value in echoed["headers"]}
    assert received["content-length"] == "39" and "transfer-encoding" not in received
    uri = edge.url + echoed["target"]
    assert oauthlib_verifies("POST", uri, echoed["body"], received["authorization"], secret, "")


def test_oauth1_sync_streamed_form_body(edge: EdgeServer) -> None:
    request = Request(
        "PUT",
        edge.url + "/x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        content=iter([b"a=1&", b"b=%E2%9C%93"]),
    )
    auth = OAuth1("key", "secret", token="tok", token_secret="tsec", realm="r")
    response, _ = send_with_sync(auth, request)
    echoed = json.loads(response.content)
    received = {name.lower(): value for name, value in echoed["headers"]}
    assert echoed["body"] == "a=1&b=%E2%9C%93"
    assert oauthlib_verifies(
        "PUT", edge.url + "/x", echoed["body"], received["authorization"], "secret", "tsec"
    )


def test_oauth1_leaves_other_streamed_bodies_alone() -> None:
    request = Request(
        "POST", "http://h/", headers={"Content-Type": "application/json"}, content=iter([b"{}"])
    )
    signed = next(OAuth1("k", "s").auth_flow(request))
    assert signed.headers["Transfer-Encoding"] == "chunked"
    assert isinstance(signed.stream, IteratorByteStream)
    assert b"".join(signed.stream) == b"{}"


def test_oauth1_sync_flow_cannot_read_an_async_form_body() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"a=1"

    request = Request(
        "POST",
        "http://h/",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        content=body(),
    )
    with pytest.raises(TypeError, match="async"):
        next(OAuth1("k", "s").auth_flow(request))


@given(st.text() | st.binary())
def test_oauth1_percent_encoding_is_rfc_5849_section_3_6(value: str | bytes) -> None:
    from ferryman.client.auth import _oauth_escape

    escaped = _oauth_escape(value)
    assert re.fullmatch(r"(?:[A-Za-z0-9\-._~]|%[0-9A-F]{2})*", escaped)
    raw = value.encode() if isinstance(value, str) else value
    assert escaped == quote(raw, safe="~")
