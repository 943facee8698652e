"""httpbin (the PyPI package) served by Werkzeug's threaded WSGI server in a background thread.

httpbin is the reference peer for client behaviour (redirects, cookies, auth, compression,
multipart, streaming); serving it in-process on port 0 keeps the test session self-contained.
"""

from __future__ import annotations

import logging
import threading
import warnings

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class _KeepAliveHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"  # Werkzeug's default, 1.0, would close every connection


class HttpbinServer:
    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.getLogger("httpbin").setLevel(logging.ERROR)
            from httpbin import app
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, app, threaded=True, request_handler=_KeepAliveHandler
        )
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HttpbinServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
