"""HTTP/2 servers for the transport tests: a scripted one that misbehaves, and the scripted
HTTP/1.1 upstream (nginx stands in front of it: ``start_nginx`` in tests/conftest.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import h2.config
import h2.connection
import h2.events
import pytest
from h2.settings import SettingCodes
from hyperframe.frame import GoAwayFrame

from tests.servers.slow_upstream import ScriptedUpstream


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    """The proxy tests' scripted HTTP/1.1 upstream: answers cut, closed, oversized on request."""
    server = ScriptedUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def scripted_h2() -> Iterator[ScriptedH2Server]:
    server = ScriptedH2Server().start()
    yield server
    server.stop()


class ScriptedH2Server:
    """An h2c server (prior knowledge) whose paths each break HTTP/2 in one way.

    ``/ok``: 200 naming the connection; ``/reset``: part of a body, then RST_STREAM;
    ``/refused``: REFUSED_STREAM the first time, 200 afterwards;
    ``/goaway-after-first``: the first stream of a connection is answered, a later one gets
    GOAWAY naming the first as the last processed; ``/close-mid``: part of a body, then the
    socket closes; ``/goaway-error``: part of a body, then GOAWAY(PROTOCOL_ERROR);
    ``/bad-head``: a header value with CR LF in it; ``/never``: no answer at all;
    ``/no-window``: no answer, and uploaded data is never acknowledged (the flow-control
    window stays shut); ``/disown``: part of a body, then a GOAWAY whose last stream id (0)
    says the stream was never processed (``disowned`` counts them); ``/big-head``: a head
    whose header list is ``size`` bytes by HPACK's measure (default 70000); ``/many-headers``:
    a head with ``n`` fields (default 150). ``header_list_sizes`` lists the
    SETTINGS_MAX_HEADER_LIST_SIZE each connection's client announced (None: none).

    ``/graceful`` is a server going away politely, as nginx does on a reload: once the first
    connection has ``graceful_batch`` such streams, a GOAWAY names the second as the last it
    took, and then (in writes of their own: head, then body) those up to it are answered; the
    ones above get nothing. ``/graceful-cut``: the same GOAWAY, then the socket closes with the
    taken streams unanswered. Later connections answer both at once. ``executed`` lists what
    was acted on: (connection, path and query).
    """

    def __init__(self) -> None:
        self.connections = 0
        self.refused = 0
        self.disowned = 0
        self.header_list_sizes: list[int | None] = []
        self.graceful_batch = 4
        self.executed: list[tuple[int, bytes]] = []
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scripted-h2", daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._server.close()
        self._loop.run_until_complete(self._server.wait_closed())
        self._loop.close()

    def start(self) -> ScriptedH2Server:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        config = h2.config.H2Configuration(
            client_side=False, header_encoding=None, validate_outbound_headers=False
        )
        conn = h2.connection.H2Connection(config=config)
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        first_stream = 0
        paths: dict[int, bytes] = {}
        graceful: list[tuple[int, bytes]] = []
        try:
            while data := await reader.read(65536):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RemoteSettingsChanged):
                        changed = event.changed_settings.get(SettingCodes.MAX_HEADER_LIST_SIZE)
                        self.header_list_sizes.append(
                            None if changed is None else changed.new_value
                        )
                    if (
                        isinstance(event, h2.events.DataReceived)
                        and paths.get(event.stream_id) != b"/no-window"
                    ):
                        conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                    if not isinstance(event, h2.events.RequestReceived):
                        continue
                    stream_id = event.stream_id
                    target = dict(event.headers)[b":path"]
                    path = paths[stream_id] = target.partition(b"?")[0]
                    if path in (b"/graceful", b"/graceful-cut"):
                        if number > 1:
                            self._answer(conn, number, stream_id, target)
                            continue
                        graceful.append((stream_id, target))
                        if len(graceful) == self.graceful_batch:
                            await self._go_away_gracefully(conn, writer, number, graceful)
                            if path == b"/graceful-cut":
                                return
                        continue
                    if path == b"/goaway-after-first" and first_stream:
                        conn.close_connection(last_stream_id=first_stream)
                        return
                    first_stream = first_stream or stream_id
                    if path in (b"/never", b"/no-window"):
                        continue
                    if path == b"/refused" and not self.refused:
                        self.refused += 1
                        conn.reset_stream(stream_id, error_code=7)
                        continue
                    if path in (b"/big-head", b"/many-headers"):
                        query = dict(
                            pair.split(b"=")
                            for pair in target.partition(b"?")[2].split(b"&")
                            if pair
                        )
                        if path == b"/big-head":
                            # HPACK counts each field as its name and value and 32 bytes.
                            size = int(query.get(b"size", b"70000"))
                            fields = [(b"x-pad", b"p" * (size - 32 - 5 - 32 - 7 - 3))]
                        else:
                            fields = [
                                (b"x-%d" % n, b"v") for n in range(int(query.get(b"n", b"150")))
                            ]
                        conn.send_headers(stream_id, [(b":status", b"200"), *fields])
                        conn.send_data(stream_id, b"ok", end_stream=True)
                        continue
                    if path == b"/bad-head":
                        fields = [(b":status", b"200"), (b"x-split", b"a\r\nb")]
                        conn.send_headers(stream_id, fields, end_stream=True)
                        continue
                    if path in (b"/ok", b"/refused", b"/goaway-after-first"):
                        body = b"connection %d" % number
                        conn.send_headers(stream_id, [(b":status", b"200")])
                        conn.send_data(stream_id, body, end_stream=True)
                        continue
                    conn.send_headers(stream_id, [(b":status", b"200")])
                    conn.send_data(stream_id, b"partial body")
                    if path == b"/disown":
                        # A GOAWAY that claims the stream unprocessed after answering it.
                        self.disowned += 1
                        conn.close_connection(last_stream_id=0)
                        return
                    if path == b"/reset":
                        conn.reset_stream(stream_id, error_code=2)
                    elif path == b"/goaway-error":
                        conn.close_connection(error_code=1, last_stream_id=stream_id)
                        return
                    else:  # /close-mid
                        return
                writer.write(conn.data_to_send())
        except ConnectionError:
            return
        finally:
            if not writer.is_closing():
                writer.write(conn.data_to_send())
                writer.close()

    def _answer(
        self, conn: h2.connection.H2Connection, number: int, stream_id: int, target: bytes
    ) -> None:
        self.executed.append((number, target))
        conn.send_headers(stream_id, [(b":status", b"200")])
        conn.send_data(stream_id, b"%s on connection %d" % (target, number), end_stream=True)

    async def _go_away_gracefully(
        self,
        conn: h2.connection.H2Connection,
        writer: asyncio.StreamWriter,
        number: int,
        streams: list[tuple[int, bytes]],
    ) -> None:
        """GOAWAY naming the second stream as the last taken, written by hand: h2 would close
        its own state machine and refuse to answer the streams the GOAWAY promises."""
        last = sorted(stream_id for stream_id, _ in streams)[1]
        writer.write(conn.data_to_send() + GoAwayFrame(0, last_stream_id=last).serialize())
        await writer.drain()
        taken = [(stream_id, target) for stream_id, target in streams if stream_id <= last]
        if taken[0][1].startswith(b"/graceful-cut"):
            self.executed += [(number, target) for _, target in taken]  # then the crash
            return
        await asyncio.sleep(0.05)  # the answers come in reads of their own, after the GOAWAY
        for stream_id, _ in taken:
            conn.send_headers(stream_id, [(b":status", b"200")])
        writer.write(conn.data_to_send())
        await writer.drain()
        await asyncio.sleep(0.05)
        for stream_id, target in taken:
            self.executed.append((number, target))
            conn.send_data(stream_id, b"%s on connection %d" % (target, number), end_stream=True)
        writer.write(conn.data_to_send())
        await writer.drain()
