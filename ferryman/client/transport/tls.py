"""TLS contexts for the client: verified by default against certifi's bundle.

Building an ``SSLContext`` loads a CA bundle (milliseconds), so a pool builds one and reuses it
for every connection.
"""

from __future__ import annotations

import os
import ssl

import certifi

__all__ = ["CertTypes", "VerifyTypes", "create_ssl_context"]

VerifyTypes = bool | str | os.PathLike[str] | ssl.SSLContext
CertTypes = str | os.PathLike[str] | tuple[str, str] | tuple[str, str, str]


def create_ssl_context(
    verify: VerifyTypes = True,
    cert: CertTypes | None = None,
    *,
    alpn_protocols: tuple[str, ...] = ("http/1.1",),
    trust_env: bool = False,
) -> ssl.SSLContext:
    """Make the client's TLS context.

    ``verify`` is True (certifi's bundle; ``SSL_CERT_FILE``/``SSL_CERT_DIR`` instead when
    ``trust_env``), False (no verification: for tests against self-signed servers only), a path
    to a CA bundle file or a directory of hashed certificates, or a ready ``SSLContext`` (used as
    is). ``cert`` is a client certificate: one PEM file holding certificate and key, or a
    ``(cert, key)`` or ``(cert, key, password)`` tuple.
    """
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is False:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif verify is True:
        cafile, capath = certifi.where(), None
        if trust_env:
            cafile = os.environ.get("SSL_CERT_FILE") or cafile
            capath = os.environ.get("SSL_CERT_DIR") or None
        context = ssl.create_default_context(cafile=cafile, capath=capath)
    else:
        path = os.fspath(verify)
        if os.path.isdir(path):
            context = ssl.create_default_context(capath=path)
        elif os.path.isfile(path):
            context = ssl.create_default_context(cafile=path)
        else:
            raise FileNotFoundError(f"verify={path!r}: no CA bundle file or directory there")
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if alpn_protocols:
        context.set_alpn_protocols(list(alpn_protocols))
    if cert is not None:
        if isinstance(cert, tuple):
            context.load_cert_chain(*cert)
        else:
            context.load_cert_chain(os.fspath(cert))
    return context
