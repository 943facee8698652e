"""An nginx of the benchmarks' own, on a free port: the configuration they share.

``config(workdir, port, locations)`` is a one-worker, keep-alive, no-access-log nginx serving
``locations`` (nginx ``location`` blocks) on ``127.0.0.1:port``, with its temporary files under
``workdir`` (made by :func:`prepare`), so that no root or system nginx is needed.
"""

from __future__ import annotations

from pathlib import Path

TEMPLATE = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
{locations}
    }}
}}
"""


def prepare(workdir: Path, port: int, locations: str) -> Path:
    """Write the configuration (and nginx's temporary directories) under ``workdir``; its path."""
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (workdir / sub).mkdir(exist_ok=True)
    path = workdir / "nginx.conf"
    path.write_text(TEMPLATE.format(dir=workdir, port=port, locations=locations))
    return path
