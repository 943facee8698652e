"""nginx (``/usr/sbin/nginx``) serving HTTP/2 over TLS on 127.0.0.1, in front of an upstream.

The HTTP/2 tests need a server that goes away the way production servers do: a reload
(``SIGHUP``: the old worker sends GOAWAY on its connections and finishes the streams it took)
and ``keepalive_requests`` (GOAWAY once a connection has served that many streams). nginx runs
in the foreground as a child of the test process, with its whole prefix (configuration, logs,
pid, temp files) in a temporary directory, and proxies every request to ``upstream_port``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

NGINX = "/usr/sbin/nginx"

_CONFIG = """\
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
daemon off;
master_process on;
{user}
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests {keepalive_requests};
    server {{
        listen 127.0.0.1:{port} ssl {http2};
        {http2_on}
        ssl_certificate {certfile};
        ssl_certificate_key {keyfile};
        location / {{
            proxy_pass http://127.0.0.1:{upstream_port};
            proxy_read_timeout 30s;
        }}
    }}
}}
"""


def nginx_available() -> bool:
    return os.access(NGINX, os.X_OK)


def _version() -> tuple[int, ...]:
    out = subprocess.run([NGINX, "-v"], capture_output=True, text=True, check=True).stderr
    return tuple(int(part) for part in out.strip().rsplit("/", 1)[-1].split("."))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class NginxServer:
    """``start()`` returns once nginx listens; ``reload()`` is ``nginx -s reload``."""

    def __init__(
        self, upstream_port: int, certfile: str, keyfile: str, *, keepalive_requests: int = 1000
    ) -> None:
        self.prefix = Path(tempfile.mkdtemp(prefix="ferryman-nginx-"))
        self.port = _free_port()
        # ``http2 on;`` is nginx 1.25.1's spelling; before it, a flag of ``listen``.
        new_syntax = _version() >= (1, 25, 1)
        config = _CONFIG.format(
            prefix=self.prefix,
            # Run as root, workers stay root: they read the test's files in /tmp.
            user="user root;" if os.geteuid() == 0 else "",
            port=self.port,
            http2="" if new_syntax else "http2",
            http2_on="http2 on;" if new_syntax else "",
            certfile=certfile,
            keyfile=keyfile,
            upstream_port=upstream_port,
            keepalive_requests=keepalive_requests,
        )
        self.config = self.prefix / "nginx.conf"
        self.config.write_text(config)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> NginxServer:
        self._process = subprocess.Popen(
            [NGINX, "-p", str(self.prefix), "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while True:
            if self._process.poll() is not None:
                stderr = self._process.stderr.read() if self._process.stderr else b""
                raise RuntimeError(f"nginx did not start: {stderr.decode(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("nginx did not listen within 10 s") from None
                time.sleep(0.02)

    def reload(self) -> None:
        """What ``nginx -s reload`` does: new workers take new connections, and the old ones
        send GOAWAY on theirs, finish the streams they took, then exit."""
        assert self._process is not None
        self._process.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)  # fast shutdown: do not wait for old workers
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process is not None and process.stderr is not None:
            process.stderr.close()
        shutil.rmtree(self.prefix, ignore_errors=True)

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""
