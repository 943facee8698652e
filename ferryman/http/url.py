"""An immutable, RFC 3986 URL that never rewrites what it does not have to.

ferryman sits between applications and the APIs they call, so the request target it sends must
be the one it was given: ``/a%2Fb`` means something different from ``/a/b`` to many servers, and
normalising ``%7E`` to ``~`` breaks request signatures. The URL therefore stores every component
in its *encoded* form, only percent-encodes characters that cannot appear on the wire, and keeps
existing ``%XX`` escapes byte for byte. Decoded views (``path``, ``username``...) are computed on
access.

Parsing is done with ``str.partition``/``find`` and a few anchored, backtracking-free regexes
because the client builds a URL for every request.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from typing import Any, Final
from urllib.parse import quote, unquote

from ferryman.exceptions import InvalidURL
from ferryman.http.params import PrimitiveData, QueryParams, QueryParamsTypes

__all__ = ["DEFAULT_PORTS", "URL", "QueryParams", "QueryParamsTypes"]

DEFAULT_PORTS: Final[dict[str, int]] = {"http": 80, "https": 443, "ws": 80, "wss": 443}

# Far beyond what any server accepts; the limit only bounds the work a hostile string can cause.
MAX_URL_LENGTH: Final = 65536

_SUB_DELIMS = "!$&'()*+,;="
# ``[`` and ``]`` stay unencoded in paths and queries: httpx and browsers leave them alone and
# servers (PHP-style ``a[]=1``) expect them verbatim.
_PATH_SAFE = _SUB_DELIMS + ":@/[]"
_QUERY_SAFE = _SUB_DELIMS + ":@/?[]"
_USERINFO_SAFE = _SUB_DELIMS + ":"
_USERNAME_SAFE = _SUB_DELIMS
_PASSWORD_SAFE = _SUB_DELIMS + ":"


def _needs_quoting_pattern(safe: str) -> re.Pattern[str]:
    # One pass, no nested quantifiers: matches a character that must be encoded, or a ``%`` that
    # does not start a valid escape.
    return re.compile(r"[^A-Za-z0-9._~%\-" + re.escape(safe) + r"]|%(?![0-9A-Fa-f]{2})")


_PATH_NEEDS_QUOTING = _needs_quoting_pattern(_PATH_SAFE)
_QUERY_NEEDS_QUOTING = _needs_quoting_pattern(_QUERY_SAFE)
_USERINFO_NEEDS_QUOTING = _needs_quoting_pattern(_USERINFO_SAFE)
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_NON_PRINTABLE = re.compile(r"[\x00-\x1f\x7f]")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
# RFC 3986 reg-name without pct-encoded: a percent sign in a host is almost always an attempt to
# smuggle something past a resolver, so it is refused rather than interpreted.
_REG_NAME = re.compile(r"[a-z0-9\-._~!$&'()*+,;=]*")
_HEX_DIGITS = frozenset("0123456789abcdef")


def _quote(value: str, safe: str, needs_quoting: re.Pattern[str]) -> str:
    """Percent-encode what must be encoded, keeping every valid ``%XX`` escape as it is."""
    if needs_quoting.search(value) is None:
        return value
    parts: list[str] = []
    position = 0
    try:
        for match in _PERCENT_ESCAPE.finditer(value):
            start = match.start()
            if start > position:
                parts.append(quote(value[position:start], safe=safe))
            parts.append(match.group())
            position = match.end()
        if position < len(value):
            parts.append(quote(value[position:], safe=safe))
    except UnicodeEncodeError:
        raise InvalidURL(f"URL contains a character that cannot be encoded: {value!r}") from None
    return "".join(parts)


def _check_printable(value: str, component: str) -> None:
    match = _NON_PRINTABLE.search(value)
    if match is not None:
        raise InvalidURL(
            f"Invalid non-printable ASCII character in URL {component}, "
            f"{match.group()!r} at position {match.start()}."
        )


def _bytes_to_text(value: bytes, component: str, safe: str) -> str:
    """Turn raw wire bytes into URL text, percent-encoding non-ASCII bytes exactly as they are."""
    if value.isascii():
        return value.decode("ascii")
    _check_printable(value.decode("latin-1"), component)
    return quote(value, safe=safe + "%")


def _parse_port(port: str) -> int | None:
    if not port:
        return None  # "http://host:/" is allowed by RFC 3986 and means "default port".
    if not (port.isascii() and port.isdigit()):
        raise InvalidURL(f"Invalid port: {port!r}")
    if len(port) > 5 or int(port) > 65535:
        raise InvalidURL(f"Invalid port: {port!r} is out of range 0..65535")
    return int(port)


def _check_port(port: object) -> int:
    if not isinstance(port, int) or isinstance(port, bool):
        raise InvalidURL(f"Invalid port: {port!r} is not an integer")
    if not 0 <= port <= 65535:
        raise InvalidURL(f"Invalid port: {port!r} is out of range 0..65535")
    return port


def _ends_in_number(host: str) -> bool:
    # WHATWG's rule: resolvers (inet_aton) read "1.2.3", "0x7f.1" or "2130706433" as IPv4, so any
    # host whose last label is numeric must be a canonical dotted quad or it is refused.
    last = host[:-1] if host.endswith(".") else host
    last = last.rpartition(".")[2]
    if not last:
        return False
    if last.isdigit():
        return True
    return last.startswith("0x") and _HEX_DIGITS.issuperset(last[2:])


def _check_reg_name(ascii_host: str, original: str) -> None:
    if _REG_NAME.fullmatch(ascii_host) is None:
        bad = next(char for char in ascii_host if _REG_NAME.fullmatch(char) is None)
        raise InvalidURL(f"Invalid character {bad!r} in host {original!r}")
    if _ends_in_number(ascii_host):
        try:
            ipaddress.IPv4Address(ascii_host)
        except ValueError:
            raise InvalidURL(f"Invalid IPv4 address: {original!r}") from None


def _encode_host(host: str, bracketed: bool) -> tuple[str, bytes]:
    """Return ``(host, raw_host)``: the unicode form people read, the ASCII form resolvers use."""
    if not host:
        if bracketed:
            raise InvalidURL("Invalid IPv6 address: empty brackets")
        return "", b""
    if bracketed or ":" in host:
        if "%" in host:
            raise InvalidURL(f"IPv6 zone identifiers are not supported: {host!r}")
        if not host.isascii():
            raise InvalidURL(f"Invalid IPv6 address: {host!r}")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise InvalidURL(f"Invalid IPv6 address: {host!r}") from None
        lowered = host.lower()
        return lowered, lowered.encode("ascii")
    if host.isascii():
        lowered = host.lower()
        _check_reg_name(lowered, host)
        if "xn--" not in lowered:
            return lowered, lowered.encode("ascii")
        raw = lowered.encode("ascii")
    else:
        _check_printable(host, "host")
        try:
            raw = host.encode("idna").lower()
        except UnicodeError as exc:
            raise InvalidURL(f"Invalid IDNA hostname {host!r}: {exc}") from None
        _check_reg_name(raw.decode("ascii"), host)
    try:
        return raw.decode("idna"), raw
    except UnicodeError as exc:
        raise InvalidURL(f"Invalid IDNA hostname {host!r}: {exc}") from None


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4, in linear time (the literal buffer algorithm is quadratic)."""
    if not path.startswith(".") and "/." not in path:
        return path
    start = 0
    while True:  # Step A: drop leading "../" and "./".
        if path.startswith("../", start):
            start += 3
        elif path.startswith("./", start):
            start += 2
        else:
            break
    segments = path[start:].split("/")
    first = segments[0]
    if len(segments) == 1 and first in (".", ".."):
        return ""
    # Output pieces are "/segment" (or the leading segment of a rootless path), so popping one
    # removes "the last segment and its preceding '/'" exactly as the RFC describes.
    output: list[str] = [first] if first else []
    last_index = len(segments) - 2
    for index, segment in enumerate(segments[1:]):
        if segment == ".":
            if index == last_index:
                output.append("/")
        elif segment == "..":
            if output:
                output.pop()
            if index == last_index:
                output.append("/")
        else:
            output.append("/" + segment)
    return "".join(output)


def _check_structure(scheme: str, host: str | None, path: str) -> None:
    """Refuse component combinations whose string form would parse back differently."""
    if host is not None:
        if path and not path.startswith("/"):
            raise InvalidURL("For URLs with a host, the path must be empty or start with '/'")
    elif path.startswith("//"):
        raise InvalidURL("URLs without a host cannot have a path starting with '//'")
    elif not scheme and ":" in path.partition("/")[0]:
        raise InvalidURL("Relative URLs cannot have a ':' in their first path segment")


class _Unset(enum.Enum):
    TOKEN = 0


_UNSET: Final = _Unset.TOKEN


class URL:
    """An absolute URL or a relative reference, immutable and hashable.

    ``URL("http://a/ä b")`` keeps ``/%C3%A4%20b`` on the wire and shows ``/ä b`` in ``path``.
    Nothing is normalised beyond lower-casing the scheme and host: an explicit default port,
    dot segments and the case of existing escapes are all kept, so ``str(URL(s)) == s`` for any
    already-encoded ``s`` whose scheme and host are lower-case.
    """

    __slots__ = (
        "_fragment",
        "_host",
        "_host_header",
        "_origin",
        "_path",
        "_port",
        "_query",
        "_raw_host",
        "_raw_path",
        "_scheme",
        "_str",
        "_userinfo",
    )

    _scheme: str
    _userinfo: str
    _host: str | None  # None when the URL has no authority component at all.
    _raw_host: bytes
    _port: int | None
    _path: str
    _query: str | None
    _fragment: str | None
    _origin: tuple[str, bytes, int]
    _host_header: bytes
    _raw_path: bytes
    _str: str

    def __init__(self, url: str | URL = "", *, params: QueryParamsTypes | None = None) -> None:
        if isinstance(url, str):
            self._parse(url)
        elif isinstance(url, URL):
            self._scheme = url._scheme
            self._userinfo = url._userinfo
            self._host = url._host
            self._raw_host = url._raw_host
            self._port = url._port
            self._path = url._path
            self._query = url._query
            self._fragment = url._fragment
        else:
            raise TypeError(f"URL must be a str or URL, not {type(url).__name__}")
        if params:
            merged = self.params.merge(params)
            self._query = str(merged)

    def _parse(self, url: str) -> None:
        if len(url) > MAX_URL_LENGTH:
            raise InvalidURL(f"URL too long: {len(url)} characters (limit {MAX_URL_LENGTH})")
        match = _NON_PRINTABLE.search(url)
        if match is not None:
            raise InvalidURL(
                f"Invalid non-printable ASCII character in URL, "
                f"{match.group()!r} at position {match.start()}."
            )
        rest, hash_sign, fragment = url.partition("#")
        rest, question_mark, query = rest.partition("?")

        scheme = ""
        colon = rest.find(":")
        if colon != -1 and rest.find("/", 0, colon) == -1:
            candidate = rest[:colon]
            if _SCHEME.fullmatch(candidate) is None:
                raise InvalidURL(
                    f"Invalid URL scheme {candidate!r} (a relative URL cannot have ':' in "
                    "its first path segment)"
                )
            scheme = candidate.lower()
            rest = rest[colon + 1 :]

        userinfo = ""
        host: str | None = None
        raw_host = b""
        port = None
        if rest.startswith("//"):
            end = rest.find("/", 2)
            if end == -1:
                authority, path = rest[2:], ""
            else:
                authority, path = rest[2:end], rest[end:]
            userinfo, _, hostport = authority.rpartition("@")
            if hostport.startswith("["):
                close = hostport.find("]")
                if close == -1:
                    raise InvalidURL(f"Invalid IPv6 address: missing ']' in {hostport!r}")
                after = hostport[close + 1 :]
                if after and not after.startswith(":"):
                    raise InvalidURL(f"Invalid characters after IPv6 address in {hostport!r}")
                host, raw_host = _encode_host(hostport[1:close], bracketed=True)
                port = _parse_port(after[1:])
            else:
                host_part, _, port_part = hostport.partition(":")
                port = _parse_port(port_part)
                host, raw_host = _encode_host(host_part, bracketed=False)
            if userinfo:
                userinfo = _quote(userinfo, _USERINFO_SAFE, _USERINFO_NEEDS_QUOTING)
        else:
            path = rest

        self._scheme = scheme
        self._userinfo = userinfo
        self._host = host
        self._raw_host = raw_host
        self._port = port
        self._path = _quote(path, _PATH_SAFE, _PATH_NEEDS_QUOTING)
        self._query = _quote(query, _QUERY_SAFE, _QUERY_NEEDS_QUOTING) if question_mark else None
        self._fragment = _quote(fragment, _QUERY_SAFE, _QUERY_NEEDS_QUOTING) if hash_sign else None

    @classmethod
    def _from_parts(
        cls,
        scheme: str,
        userinfo: str,
        host: str | None,
        raw_host: bytes,
        port: int | None,
        path: str,
        query: str | None,
        fragment: str | None,
    ) -> URL:
        url = cls.__new__(cls)
        url._scheme = scheme
        url._userinfo = userinfo
        url._host = host
        url._raw_host = raw_host
        url._port = port
        url._path = path
        url._query = query
        url._fragment = fragment
        return url

    # -- components ------------------------------------------------------------------------

    @property
    def scheme(self) -> str:
        return self._scheme

    @property
    def userinfo(self) -> bytes:
        return self._userinfo.encode("ascii")

    @property
    def username(self) -> str:
        return unquote(self._userinfo.partition(":")[0])

    @property
    def password(self) -> str:
        return unquote(self._userinfo.partition(":")[2])

    @property
    def host(self) -> str:
        return self._host or ""

    @property
    def raw_host(self) -> bytes:
        return self._raw_host

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def effective_port(self) -> int | None:
        if self._port is not None:
            return self._port
        return DEFAULT_PORTS.get(self._scheme)

    @property
    def netloc(self) -> bytes:
        """``host[:port]`` as it goes in a ``Host`` header."""
        host = self._raw_host
        if b":" in host:
            host = b"[" + host + b"]"
        if self._port is not None:
            return host + b":" + str(self._port).encode("ascii")
        return host

    @property
    def origin(self) -> tuple[str, bytes, int]:
        """The connection-pool key; cached because the transport asks for it on every request."""
        try:
            return self._origin
        except AttributeError:
            pass
        if not self._scheme or not self._raw_host:
            raise InvalidURL(f"URL has no origin (scheme and host required): {self!r}")
        port = self.effective_port
        if port is None:
            raise InvalidURL(f"URL has no port and {self._scheme!r} has no default port")
        self._origin = (self._scheme, self._raw_host, port)
        return self._origin

    @property
    def path(self) -> str:
        if not self._path and self._host:
            return "/"
        return unquote(self._path)

    @property
    def host_header(self) -> bytes:
        """The ``Host`` header value: ``host[:port]``, the port left out when it is the
        scheme's default (RFC 9110 7.2). Cached: every request sends it."""
        try:
            return self._host_header
        except AttributeError:
            pass
        host = self._raw_host
        if b":" in host:
            host = b"[" + host + b"]"
        port = self._port
        if port is not None and port != DEFAULT_PORTS.get(self._scheme):
            host = host + b":" + str(port).encode("ascii")
        self._host_header = host
        return host

    @property
    def raw_path(self) -> bytes:
        """The origin-form request target: encoded path (``/`` if empty) plus ``?query``.

        Cached: the transport writes it for every request."""
        try:
            return self._raw_path
        except AttributeError:
            pass
        self._raw_path = self._compute_raw_path()
        return self._raw_path

    def _compute_raw_path(self) -> bytes:
        path = self._path
        if not path and self._host:
            path = "/"
        if self._query is not None:
            path = f"{path}?{self._query}"
        return path.encode("ascii")

    @property
    def query(self) -> bytes:
        return self._query.encode("ascii") if self._query is not None else b""

    @property
    def params(self) -> QueryParams:
        return QueryParams(self._query or "")

    @property
    def fragment(self) -> str:
        return unquote(self._fragment) if self._fragment is not None else ""

    @property
    def is_absolute_url(self) -> bool:
        return bool(self._scheme and self._host)

    @property
    def is_relative_url(self) -> bool:
        return not self.is_absolute_url

    # -- derived URLs ----------------------------------------------------------------------

    def copy_with(
        self,
        *,
        scheme: str | _Unset | None = _UNSET,
        username: str | _Unset | None = _UNSET,
        password: str | _Unset | None = _UNSET,
        host: str | _Unset | None = _UNSET,
        port: int | _Unset | None = _UNSET,
        path: str | _Unset | None = _UNSET,
        raw_path: bytes | _Unset | None = _UNSET,
        query: bytes | str | _Unset | None = _UNSET,
        params: QueryParamsTypes | None = None,
        fragment: str | _Unset | None = _UNSET,
    ) -> URL:
        """Return a URL with some components replaced; ``None`` removes a component.

        ``path``, ``query`` and ``fragment`` may already be percent-encoded (escapes are kept);
        ``username`` and ``password`` are taken literally and fully encoded, so that
        ``copy_with(password=url.password)`` round-trips.
        """
        new_scheme = self._scheme
        userinfo = self._userinfo
        new_host, raw_host = self._host, self._raw_host
        new_port = self._port
        new_path, new_query, new_fragment = self._path, self._query, self._fragment

        if not isinstance(scheme, _Unset):
            new_scheme = scheme or ""
            if new_scheme and _SCHEME.fullmatch(new_scheme) is None:
                raise InvalidURL(f"Invalid URL scheme {new_scheme!r}")
            new_scheme = new_scheme.lower()
        if not isinstance(username, _Unset) or not isinstance(password, _Unset):
            old_user, _, old_password = userinfo.partition(":")
            user = (
                old_user if isinstance(username, _Unset) else quote(username or "", _USERNAME_SAFE)
            )
            secret = (
                old_password
                if isinstance(password, _Unset)
                else quote(password or "", _PASSWORD_SAFE)
            )
            userinfo = f"{user}:{secret}" if secret else user
        if not isinstance(host, _Unset):
            if host is None:
                new_host, raw_host = None, b""
            else:
                bracketed = host.startswith("[") and host.endswith("]")
                new_host, raw_host = _encode_host(host[1:-1] if bracketed else host, bracketed)
        if not isinstance(port, _Unset):
            new_port = None if port is None else _check_port(port)
        if not isinstance(raw_path, _Unset):
            if not isinstance(path, _Unset) or not isinstance(query, _Unset):
                raise TypeError("copy_with() takes raw_path or path/query, not both")
            text = _bytes_to_text(raw_path or b"", "path", _QUERY_SAFE)
            path, question_mark, query_text = text.partition("?")
            query = query_text if question_mark else None
        if not isinstance(path, _Unset):
            _check_printable(path or "", "path")
            new_path = _quote(path or "", _PATH_SAFE, _PATH_NEEDS_QUOTING)
        if params is not None:
            if not isinstance(query, _Unset):
                raise TypeError("copy_with() takes query or params, not both")
            query = str(QueryParams(params)) or None  # No params, no "?".
        if not isinstance(query, _Unset):
            if isinstance(query, bytes):
                query = _bytes_to_text(query, "query", _QUERY_SAFE)
            if query is not None:
                _check_printable(query, "query")
                new_query = _quote(query, _QUERY_SAFE, _QUERY_NEEDS_QUOTING)
            else:
                new_query = None
        if not isinstance(fragment, _Unset):
            if fragment is None:
                new_fragment = None
            else:
                _check_printable(fragment, "fragment")
                new_fragment = _quote(fragment, _QUERY_SAFE, _QUERY_NEEDS_QUOTING)

        if new_host is None and (userinfo or new_port is not None):
            raise InvalidURL("A URL without a host cannot have a username, password or port")
        _check_structure(new_scheme, new_host, new_path)
        return self._from_parts(
            new_scheme, userinfo, new_host, raw_host, new_port, new_path, new_query, new_fragment
        )

    def copy_merge_params(self, params: QueryParamsTypes) -> URL:
        return self.copy_with(params=self.params.merge(params))

    def copy_set_param(self, key: str, value: PrimitiveData) -> URL:
        return self.copy_with(params=self.params.set(key, value))

    def copy_add_param(self, key: str, value: PrimitiveData) -> URL:
        return self.copy_with(params=self.params.add(key, value))

    def copy_remove_param(self, key: str) -> URL:
        return self.copy_with(params=self.params.remove(key))

    def join(self, url: str | URL) -> URL:
        """Resolve a reference against this URL (RFC 3986 section 5.2, strict parser)."""
        ref = url if isinstance(url, URL) else URL(url)
        if ref._scheme or ref._host is not None:
            base = ref
            path, query = _remove_dot_segments(ref._path), ref._query
        else:
            base = self
            if not ref._path:
                path = self._path
                query = ref._query if ref._query is not None else self._query
            else:
                if ref._path.startswith("/"):
                    path = _remove_dot_segments(ref._path)
                elif self._host is not None and not self._path:
                    path = _remove_dot_segments("/" + ref._path)
                else:
                    merged = self._path[: self._path.rfind("/") + 1] + ref._path
                    path = _remove_dot_segments(merged)
                query = ref._query
        if base._host is None and path.startswith("//"):
            path = "/." + path  # Keep "//x" from being read back as an authority.
        return self._from_parts(
            ref._scheme or self._scheme,
            base._userinfo,
            base._host,
            base._raw_host,
            base._port,
            path,
            query,
            ref._fragment,
        )

    # -- dunder ----------------------------------------------------------------------------

    def __str__(self) -> str:
        try:
            return self._str
        except AttributeError:
            pass
        parts: list[str] = []
        if self._scheme:
            parts.append(self._scheme + ":")
        if self._host is not None:
            parts.append("//")
            if self._userinfo:
                parts.append(self._userinfo + "@")
            parts.append(self.netloc.decode("ascii"))
        parts.append(self._path)
        if self._query is not None:
            parts.append("?" + self._query)
        if self._fragment is not None:
            parts.append("#" + self._fragment)
        self._str = "".join(parts)
        return self._str

    def __repr__(self) -> str:
        if ":" in self._userinfo:
            user = self._userinfo.partition(":")[0]
            masked = self._from_parts(
                self._scheme,
                f"{user}:[secure]",
                self._host,
                self._raw_host,
                self._port,
                self._path,
                self._query,
                self._fragment,
            )
            return f"{type(self).__name__}({str(masked)!r})"
        return f"{type(self).__name__}({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, URL):
            return str(self) == str(other)
        if isinstance(other, str):
            try:
                return str(self) == str(URL(other))
            except InvalidURL:
                return False
        return NotImplemented

    def __hash__(self) -> int:
        return hash(str(self))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self),))
