"""Redirects, cookies and auth through AsyncClient, against httpbin."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import ferryman
from tests.servers.httpbin_server import HttpbinServer
from tests.servers.uvicorn_server import UvicornServer


@pytest.fixture
async def client() -> AsyncIterator[ferryman.AsyncClient]:
    async with ferryman.AsyncClient(trust_env=False) as client:
        yield client


# -- redirects ---------------------------------------------------------------------------------


async def test_redirects_are_followed_with_history_oldest_first(
    client: ferryman.AsyncClient, httpbin: HttpbinServer
) -> None:
    response = await client.get(f"{httpbin.url}/redirect/3")
    assert response.status_code == 200
    assert str(response.url) == f"{httpbin.url}/get"
    assert [r.status_code for r in response.history] == [302, 302, 302]
    assert [str(r.url) for r in response.history] == [
        f"{httpbin.url}/redirect/3",
        f"{httpbin.url}/relative-redirect/2",
        f"{httpbin.url}/relative-redirect/1",
    ]


async def test_allow_redirects_false(client: ferryman.AsyncClient, httpbin: HttpbinServer) -> None:
    response = await client.get(f"{httpbin.url}/redirect/1", allow_redirects=False)
    assert response.status_code == 302
    assert response.history == []
    assert response.is_redirect


async def test_head_is_not_redirected_by_default(
    client: ferryman.AsyncClient, httpbin: HttpbinServer
) -> None:
    response = await client.head(f"{httpbin.url}/redirect/1")
    assert response.status_code == 302
    response = await client.head(f"{httpbin.url}/redirect/1", allow_redirects=True)
    assert response.status_code == 200


async def test_max_redirects_raises_a_clear_error(httpbin: HttpbinServer) -> None:
    async with ferryman.AsyncClient(max_redirects=2, trust_env=False) as client:
        with pytest.raises(ferryman.TooManyRedirects, match="max_redirects=2") as caught:
            await client.get(f"{httpbin.url}/redirect/5")
        assert len(caught.value.history) == 3
        response = await client.get(f"{httpbin.url}/redirect/5", max_redirects=5)
        assert response.status_code == 200


@pytest.mark.parametrize("status", [301, 302, 303])
async def test_post_becomes_get_without_body(
    client: ferryman.AsyncClient, httpbin: HttpbinServer, status: int
) -> None:
    response = await client.post(
        f"{httpbin.url}/redirect-to",
        params={"url": "/anything", "status_code": status},
        data=b"payload",
    )
    body = response.json()
    assert body["method"] == "GET"
    assert body["data"] == ""
    assert "Content-Length" not in body["headers"]


@pytest.mark.parametrize("status", [307, 308])
async def test_307_and_308_keep_method_and_body(
    client: ferryman.AsyncClient, httpbin: HttpbinServer, status: int
) -> None:
    response = await client.post(
        f"{httpbin.url}/redirect-to",
        params={"url": "/anything", "status_code": status},
        data=b"payload",
    )
    body = response.json()
    assert body["method"] == "POST"
    assert body["data"] == "payload"


async def test_put_and_delete_are_redirected_too(
    client: ferryman.AsyncClient, httpbin: HttpbinServer
) -> None:
    for verb in ("put", "delete", "patch"):
        response = await getattr(client, verb)(
            f"{httpbin.url}/redirect-to", params={"url": "/anything", "status_code": 307}
        )
        assert response.json()["method"] == verb.upper()


async def test_authorization_is_dropped_across_origins(
    client: ferryman.AsyncClient, httpbin: HttpbinServer
) -> None:
    # 127.0.0.1 and localhost are different origins for the same server.
    other = f"http://localhost:{httpbin.port}/headers"
    response = await client.get(
        f"{httpbin.url}/redirect-to",
        params={"url": other},
        headers={"Authorization": "Bearer secret"},
    )
    assert str(response.url) == other
    assert "Authorization" not in response.json()["headers"]
    same = await client.get(
        f"{httpbin.url}/redirect-to",
        params={"url": "/headers"},
        headers={"Authorization": "Bearer secret"},
    )
    assert same.json()["headers"]["Authorization"] == "Bearer secret"


async def test_streamed_body_cannot_be_resent_on_307(
    client: ferryman.AsyncClient, uvicorn_server: UvicornServer
) -> None:
    # uvicorn, since httpbin's Werkzeug refuses chunked request bodies.
    with pytest.raises(ferryman.StreamConsumedError, match="redirect"):
        await client.post(
            f"{uvicorn_server.url}/redirect",
            params={"url": "/echo", "status": 307},
            data=(b"x" for _ in range(3)),
        )
    response = await client.post(
        f"{uvicorn_server.url}/redirect",
        params={"url": "/echo", "status": 303},
        data=(b"x" for _ in range(3)),
    )
    assert response.json()["method"] == "GET"


# -- cookies -----------------------------------------------------------------------------------


async def test_response_cookies_are_stored_and_sent_back(
    client: ferryman.AsyncClient, httpbin: HttpbinServer
) -> None:
    response = await client.get(f"{httpbin.url}/cookies/set", params={"session": "abc"})
    assert response.json() == {"cookies": {"session": "abc"}}  # sent on the redirect already
    assert response.history[0].cookies["session"] == "abc"
    assert client.cookies["session"] == "abc"
    assert (await client.get(f"{httpbin.url}/cookies")).json() == {"cookies": {"session": "abc"}}
    await client.get(f"{httpbin.url}/cookies/delete", params={"session": ""})
    assert (await client.get(f"{httpbin.url}/cookies")).json() == {"cookies": {}}


async def test_store_cookies_false(httpbin: HttpbinServer) -> None:
    async with ferryman.AsyncClient(store_cookies=False, trust_env=False) as client:
        response = await client.get(f"{httpbin.url}/cookies/set", params={"a": "1"})
        assert response.json() == {"cookies": {}}
        assert len(client.cookies) == 0


async def test_session_and_request_cookies(httpbin: HttpbinServer) -> None:
    async with ferryman.AsyncClient(cookies={"team": "core"}, trust_env=False) as client:
        got = (await client.get(f"{httpbin.url}/cookies", cookies={"extra": "1"})).json()
        assert got == {"cookies": {"team": "core", "extra": "1"}}
        got = (await client.get(f"{httpbin.url}/cookies")).json()
        assert got == {"cookies": {"team": "core"}}  # request cookies are not stored


# -- auth --------------------------------------------------------------------------------------


async def test_basic_auth_tuple_and_object(
    client: ferryman.AsyncClient, httpbin: HttpbinServer
) -> None:
    url = f"{httpbin.url}/basic-auth/user/pass word"
    assert (await client.get(url)).status_code == 401
    assert (await client.get(url, auth=("user", "pass word"))).json()["authenticated"]
    response = await client.get(url, auth=ferryman.BasicAuth("user", "pass word"))
    assert response.status_code == 200


async def test_session_auth_and_credentials_in_the_url(httpbin: HttpbinServer) -> None:
    async with ferryman.AsyncClient(auth=("user", "pw"), trust_env=False) as client:
        assert (await client.get(f"{httpbin.url}/basic-auth/user/pw")).status_code == 200
        assert (await client.get(f"{httpbin.url}/basic-auth/user/pw", auth=None)).status_code == 401
    async with ferryman.AsyncClient(trust_env=False) as client:
        url = f"http://user:pw@127.0.0.1:{httpbin.port}/basic-auth/user/pw"
        response = await client.get(url)
        assert response.status_code == 200
        assert response.url is not None and response.url.userinfo == b""


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
async def test_digest_auth(
    client: ferryman.AsyncClient, httpbin: HttpbinServer, algorithm: str
) -> None:
    url = f"{httpbin.url}/digest-auth/auth/user/passwd/{algorithm}"
    response = await client.get(url, auth=ferryman.DigestAuth("user", "passwd"))
    assert response.status_code == 200
    assert response.json() == {"authenticated": True, "user": "user"}
    assert [r.status_code for r in response.history] == [401]
    wrong = await client.get(url, auth=ferryman.DigestAuth("user", "nope"))
    assert wrong.status_code == 401


async def test_oauth2_bearer_refreshes_on_401(
    client: ferryman.AsyncClient, httpbin: HttpbinServer
) -> None:
    calls = []

    async def refresh() -> str:
        calls.append(1)
        return "fresh-token"

    auth = ferryman.OAuth2(refresh=refresh)
    response = await client.get(f"{httpbin.url}/bearer", auth=auth)
    assert response.json() == {"authenticated": True, "token": "fresh-token"}
    assert calls == [1]


async def test_callable_auth(client: ferryman.AsyncClient, httpbin: HttpbinServer) -> None:
    def sign(request: ferryman.Request) -> ferryman.Request:
        request.headers["X-Api-Key"] = "k-123"
        return request

    response = await client.get(f"{httpbin.url}/headers", auth=sign)
    assert response.json()["headers"]["X-Api-Key"] == "k-123"
