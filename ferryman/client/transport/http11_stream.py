"""The body of an HTTP/1.1 response, as its reader sees it: read once, whole or in chunks.

The bytes themselves stay with the connection (``http11.py``), which receives them; this
object is the reader's handle on them and gives the connection back to its pool once the
body is read or closed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ferryman.client.transport import _trace
from ferryman.client.transport.http11_state import ACTIVE, DETACHED
from ferryman.exceptions import StreamConsumedError
from ferryman.http.streams import AsyncByteStream

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ferryman.client.transport.http11 import AsyncHTTP11Connection
    from ferryman.http.models import Request

__all__ = ["HTTP11ResponseStream"]


class HTTP11ResponseStream(AsyncByteStream):
    """The body of one response, read from its connection; closing it releases the connection."""

    __slots__ = ("_closed", "_conn", "_read_timeout", "_request", "_started", "_trace")

    def __init__(
        self,
        conn: AsyncHTTP11Connection,
        request: Request,
        read_timeout: float | None,
        trace: _trace.TraceCallback | None,
    ) -> None:
        self._conn = conn
        self._request = request
        self._read_timeout = read_timeout
        self._trace = trace
        self._started = False
        self._closed = False

    def _claim(self) -> None:
        if self._started:
            raise StreamConsumedError()
        self._started = True

    def read_if_complete(self) -> bytes | None:
        """The whole body without waiting, when it has all arrived (small responses usually
        arrive with their head): read and closed in one step, with no coroutine."""
        conn = self._conn
        if self._started or self._trace is not None or not conn._message_complete:
            return None
        if conn.state != ACTIVE:
            return None
        self._started = self._closed = True
        data = conn._take_body()
        conn._response_closed()
        return data

    async def aread(self) -> bytes:
        self._claim()
        conn = self._conn
        if conn.state == DETACHED:
            return b""
        trace = self._trace
        if trace is None:
            if conn._message_complete:
                data = conn._take_body()
            else:
                data = await conn._read_body(self._read_timeout)
        else:
            data = await _trace.traced(
                trace,
                _trace.HTTP11_RECEIVE_RESPONSE_BODY,
                {"request": self._request},
                lambda: conn._read_body(self._read_timeout),
            )
        return data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self._claim()
        conn = self._conn
        if conn.state == DETACHED:
            return
        trace = self._trace
        if trace is not None:
            await _trace.emit(
                trace,
                f"{_trace.HTTP11_RECEIVE_RESPONSE_BODY}.started",
                {"request": self._request},
            )
        try:
            conn._streaming = True
            while True:
                if conn._has_body_data():
                    yield conn._take_chunk()
                elif conn._message_complete:
                    break
                else:
                    conn._progress_wanted = True
                    try:
                        await conn._wait(self._read_timeout)
                    finally:
                        conn._progress_wanted = False
        except BaseException as exc:
            if trace is not None:
                await _trace.emit(
                    trace, f"{_trace.HTTP11_RECEIVE_RESPONSE_BODY}.failed", {"exception": exc}
                )
            raise
        if trace is not None:
            await _trace.emit(
                trace, f"{_trace.HTTP11_RECEIVE_RESPONSE_BODY}.complete", {"return_value": None}
            )

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        trace = self._trace
        if trace is None:
            self._conn._response_closed()
        else:

            async def close() -> None:
                self._conn._response_closed()

            await _trace.traced(trace, _trace.HTTP11_RESPONSE_CLOSED, {}, close)
