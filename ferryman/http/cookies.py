"""Cookies kept across requests, on top of the standard library's ``http.cookiejar``.

Cookie policy (domain matching, default paths, ``Max-Age``/``Expires``, ``Secure``) is decades
of browser folklore; ``http.cookiejar`` already encodes it and is what requests and httpx use, so
ferryman only adapts its models to the urllib shapes the jar reads, and corrects the jar's policy
where it is older than RFC 6265:

- a host-only cookie (no ``Domain`` attribute) goes back to that exact host only, never to its
  subdomains (the stdlib sends it to subdomains unless a strict flag is set);
- ``localhost`` and other dot-less hosts: the stdlib names them ``localhost.local`` (RFC 2965),
  so a ``Domain=localhost`` cookie was stored but never sent back; now it round-trips.

A ``Cookies`` wrapping a jar the caller built keeps that jar's own policy.
"""

from __future__ import annotations

import contextlib
import email.message
import re
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from http.cookiejar import Cookie, CookieJar, DefaultCookiePolicy
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

from ferryman.exceptions import FerrymanError, LocalProtocolError

if TYPE_CHECKING:
    from http.client import HTTPResponse
    from urllib.request import Request as UrllibRequest

    from ferryman.http import Request, Response
    from ferryman.http.headers import Headers
    from ferryman.http.url import URL

__all__ = [
    "CookieConflict",
    "Cookies",
    "CookiesTypes",
    "FerrymanCookiePolicy",
    "cookies_from_response",
]

# RFC 6265 section 4.1.1: cookie-name = token.
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# What would split the Cookie header or smuggle a second cookie into it. RFC 6265 forbids more
# (spaces, commas, quotes), but servers set such values and browsers send them back as they are.
_UNSAFE_VALUE = re.compile(r"[\x00-\x1f\x7f;]")


class CookieConflict(FerrymanError, LookupError):
    """Several cookies answer to one name: the caller has to say which domain or path."""


class FerrymanCookiePolicy(DefaultCookiePolicy):
    """The stdlib's default policy with RFC 6265's domain matching (see the module docstring).

    Only the return side changes: which cookies are accepted from a response is the stdlib's
    rule, including its refusal of ``Domain=`` values that are a bare or well-known public suffix
    (``com``, ``co.uk``; there is no public-suffix list in the standard library).
    """

    def return_ok_domain(self, cookie: Cookie, request: UrllibRequest) -> bool:
        if cookie.version is not None and cookie.version > 0:
            return super().return_ok_domain(cookie, request)  # RFC 2965: the stdlib's home turf.
        domain = cookie.domain
        if not domain:
            # Set by the caller without a domain (``Cookies({"a": "1"})``): sent to every host,
            # as httpx and requests do with their ``cookies=`` argument.
            return True
        host = _request_host(request)
        if not cookie.domain_specified:
            # The stdlib stores a dot-less host under ``host.local``.
            return domain == host or domain == host + ".local"
        dotted = domain if domain.startswith(".") else "." + domain
        return ("." + host).endswith(dotted)


def _request_host(request: UrllibRequest) -> str:
    """The host the jar's cookie domains are compared with: lower case, no port, IPv6 in
    brackets (the spelling ``http.cookiejar`` stores for host-only cookies)."""
    host = getattr(request, "cookie_host", None)
    if isinstance(host, str):
        return host
    netloc = urlsplit(request.get_full_url()).netloc.rpartition("@")[2].lower()
    if netloc.endswith("]"):
        return netloc
    return netloc.rpartition(":")[0] if ":" in netloc else netloc


class _CookieJar(CookieJar):
    """The jar ferryman builds: it remembers whether it ever stored a cookie, so that the
    common case, a session that never meets a cookie, answers ``bool()`` with one attribute read.

    Every way into a ``CookieJar`` (``extract_cookies``, ``set_cookie_if_ok``, file loading)
    goes through ``set_cookie``. The flag is never reset: clearing it safely would need the
    jar's private lock, and an emptied jar still answers correctly, only a little slower.
    """

    has_stored_a_cookie = False

    def set_cookie(self, cookie: Cookie) -> None:
        super().set_cookie(cookie)
        self.has_stored_a_cookie = True


class _CookieRequest:
    """A ferryman request (headers and URL) seen as the ``urllib.request.Request`` that
    ``http.cookiejar`` reads: these attributes and methods are all it touches.

    The URL handed to the jar has no userinfo: the stdlib reads the host out of the netloc
    without removing ``user:password@``.
    """

    __slots__ = ("_headers", "cookie_host", "full_url", "host", "origin_req_host", "type")

    unverifiable = False  # A caller-driven request, not an image pulled in by a page.

    def __init__(self, headers: Headers, url: URL) -> None:
        raw_host = url.raw_host.decode("ascii")
        self._headers = headers
        self.type = url.scheme
        self.host = url.netloc.decode("ascii")
        self.cookie_host = f"[{raw_host}]" if ":" in raw_host else raw_host
        self.origin_req_host = self.cookie_host
        self.full_url = f"{url.scheme}://{self.host}{url.raw_path.decode('ascii')}"

    def get_full_url(self) -> str:
        return self.full_url

    def is_unverifiable(self) -> bool:
        return self.unverifiable

    def get_origin_req_host(self) -> str:
        return self.origin_req_host

    def has_header(self, name: str) -> bool:
        return name in self._headers

    def get_header(self, name: str, default: str | None = None) -> str | None:
        return self._headers.get(name, default)

    def add_unredirected_header(self, name: str, value: str) -> None:
        self._headers.add(name, value)


class _CookieResponse:
    """A ferryman ``Response`` seen as the ``http.client.HTTPResponse`` the jar reads: only
    ``info()``, holding just the ``Set-Cookie`` fields (built once; the jar calls it twice)."""

    __slots__ = ("_message",)

    def __init__(self, set_cookie_values: list[str]) -> None:
        message = email.message.Message()
        for value in set_cookie_values:
            message["Set-Cookie"] = value  # Appends: Message keeps repeated fields.
        self._message = message

    def info(self) -> email.message.Message:
        return self._message


class Cookies(MutableMapping[str, str]):
    """A cookie jar: a name -> value mapping on top, an ``http.cookiejar.CookieJar`` (``jar``)
    underneath with every cookie's domain, path, expiry and flags.

    The mapping is by name: a name set by two domains is one key, and reading it raises
    ``CookieConflict`` (use ``get(name, domain=...)``). ``len()`` counts names, not cookies.

    A ``domain`` argument (``get``, ``delete``, ``clear``) written without a leading dot also
    finds the spellings the jar stores for that host: ``.example.com`` (``Domain=example.com``)
    and ``localhost.local`` (a host-only cookie of ``localhost``). With a leading dot it only
    finds that exact domain.
    """

    __slots__ = ("jar",)

    jar: CookieJar

    def __init__(self, cookies: CookiesTypes | None = None) -> None:
        if isinstance(cookies, CookieJar):
            # Shared, not copied, with its own policy: a requests or httpx jar keeps working.
            self.jar = cookies
            return
        self.jar = _CookieJar(policy=FerrymanCookiePolicy())
        if cookies is not None:
            self.update(cookies)

    # -- exchanging cookies with requests and responses ------------------------------------

    def extract_cookies(self, response: Response) -> None:
        """Store the cookies a response sets, under the jar's rules; ``Max-Age=0`` or an
        ``Expires`` in the past deletes the cookie. The URL comes from ``response.request``."""
        if not response.has_header(b"set-cookie"):
            return
        request = response.request
        if request is None:
            raise ValueError("the response has no request: cookies need the URL that set them")
        self.jar.extract_cookies(
            cast("HTTPResponse", _CookieResponse(response.headers.get_list("set-cookie"))),
            cast("UrllibRequest", _CookieRequest(request.headers, request.url)),
        )

    def set_cookie_header(self, request: Request) -> None:
        """Add a ``Cookie`` header with the cookies the request's URL may receive.

        A ``Cookie`` header the caller already set wins: it is left as it is and nothing is
        added to it, since merging could send a cookie twice with two values. An empty jar
        costs one check (see ``__bool__``).
        """
        self.set_cookie_header_on(request.headers, request.url)

    def set_cookie_header_on(self, headers: Headers, url: URL) -> None:
        """``set_cookie_header`` for a request still being assembled: its headers and URL."""
        if not self or "cookie" in headers:
            return
        self.jar.add_cookie_header(cast("UrllibRequest", _CookieRequest(headers, url)))

    # -- the cookie-level API --------------------------------------------------------------

    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        """Set a session cookie; without a ``domain`` it is sent to every host."""
        if _COOKIE_NAME.fullmatch(name) is None:
            raise LocalProtocolError(f"Invalid cookie name {name!r}: must be an RFC 6265 token")
        if _UNSAFE_VALUE.search(value) is not None:
            # The value is left out: cookies are credentials.
            raise LocalProtocolError(
                f"Invalid value for cookie {name!r}: contains a control character or ';'"
            )
        domain = domain.lower()
        cookie = Cookie(
            version=0,
            name=name,
            value=value,
            port=None,
            port_specified=False,
            domain=domain,
            domain_specified=bool(domain),
            domain_initial_dot=domain.startswith("."),
            path=path,
            path_specified=bool(path),
            secure=False,
            expires=None,
            discard=True,
            comment=None,
            comment_url=None,
            rest={},
        )
        self.jar.set_cookie(cookie)

    def get(  # type: ignore[override]
        self,
        name: str,
        default: str | None = None,
        domain: str | None = None,
        path: str | None = None,
    ) -> str | None:
        """The value of the one cookie named ``name`` (optionally of ``domain`` and ``path``).

        Raises ``CookieConflict`` when several match, naming their domains and paths.
        """
        matches = self._select(name, domain, path)
        if not matches:
            return default
        if len(matches) > 1:
            found = ", ".join(
                f"domain {cookie.domain or '(any)'!r} path {cookie.path!r}" for cookie in matches
            )
            raise CookieConflict(
                f"{len(matches)} cookies are named {name!r} ({found}); "
                "pass domain= and/or path= to choose one"
            )
        return matches[0].value or ""

    def delete(self, name: str, domain: str | None = None, path: str | None = None) -> None:
        """Remove every cookie named ``name`` (of ``domain`` and ``path`` when given)."""
        self._remove(self._select(name, domain, path))

    def clear(self, domain: str | None = None, path: str | None = None) -> None:
        """Remove all cookies, or those of ``domain`` and/or ``path``."""
        if domain is None and path is None:
            self.jar.clear()
        else:
            self._remove(self._select(None, domain, path))

    def update(self, cookies: CookiesTypes | None = None) -> None:  # type: ignore[override]
        """Add cookies: those of a jar keep their domain, path and flags; plain names and values
        become cookies for every host (``set(name, value)``)."""
        if cookies is None:
            return
        if isinstance(cookies, Cookies | CookieJar):
            jar = cookies.jar if isinstance(cookies, Cookies) else cookies
            for cookie in list(jar):
                self.jar.set_cookie(cookie)
            return
        pairs = cookies.items() if isinstance(cookies, Mapping) else cookies
        for name, value in pairs:
            self.set(name, value)

    def _select(self, name: str | None, domain: str | None, path: str | None) -> list[Cookie]:
        spellings = _domain_spellings(domain) if domain is not None else None
        return [
            cookie
            for cookie in self.jar
            if (name is None or cookie.name == name)
            and (path is None or cookie.path == path)
            and (spellings is None or cookie.domain in spellings)
        ]

    def _remove(self, cookies: list[Cookie]) -> None:
        for cookie in cookies:
            # KeyError: expired and swept by another thread in between.
            with contextlib.suppress(KeyError):
                self.jar.clear(cookie.domain, cookie.path, cookie.name)

    # -- MutableMapping --------------------------------------------------------------------

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: str) -> None:
        self.set(name, value)

    def __delitem__(self, name: str) -> None:
        matches = self._select(name, None, None)
        if not matches:
            raise KeyError(name)
        self._remove(matches)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(cookie.name for cookie in self.jar))

    def __len__(self) -> int:
        return len({cookie.name for cookie in self.jar})

    def __bool__(self) -> bool:
        """Whether the jar holds any cookie, without counting them.

        The client asks this before every request, and ``CookieJar.__len__`` walks every
        cookie. A jar built here that never stored a cookie answers with one attribute read;
        otherwise the jar's lazy iterator stops at the first cookie (it copies the list of
        domains, never walks the cookies).
        """
        jar = self.jar
        if type(jar) is _CookieJar and not jar.has_stored_a_cookie:
            return False
        for _ in jar:
            return True
        return False

    def __repr__(self) -> str:
        # Names and domains only: values are credentials, and repr() ends up in logs.
        listed = ", ".join(f"{cookie.name} for {cookie.domain or '(any)'}" for cookie in self.jar)
        return f"<Cookies [{listed}]>"


CookiesTypes = Cookies | Mapping[str, str] | Iterable[tuple[str, str]] | CookieJar


def _domain_spellings(domain: str) -> frozenset[str]:
    domain = domain.lower()
    if domain.startswith("."):
        return frozenset({domain})
    spellings = {domain, "." + domain}
    if "." not in domain:
        spellings.add(domain + ".local")
    return frozenset(spellings)


def cookies_from_response(response: Response) -> Cookies:
    """The cookies one response set (for ``response.cookies``), judged by the same rules as a
    session's jar: a cookie the jar would refuse is not in there either."""
    cookies = Cookies()
    cookies.extract_cookies(response)
    return cookies
