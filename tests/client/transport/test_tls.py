"""TLS: verification on by default, CA bundles, verify=False, client certificates, ALPN, SNI."""

from __future__ import annotations

import json
import ssl

import pytest
import trustme

from ferryman import AsyncConnectionPool, ConnectError, Request, TransportError
from ferryman.client.transport import create_ssl_context
from tests.servers.edge import EdgeServer


async def test_default_pool_refuses_an_unknown_ca(tls_edge: EdgeServer) -> None:
    async with AsyncConnectionPool() as pool:
        with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await pool.handle_async_request(Request("GET", tls_edge.url + "/echo"))


async def test_verify_false_accepts_it(tls_edge: EdgeServer) -> None:
    async with AsyncConnectionPool(verify=False) as pool:
        response = await pool.handle_async_request(Request("GET", tls_edge.url + "/echo"))
        assert response.status_code == 200
        await response.aread()


async def test_ca_bundle_file(tls_edge: EdgeServer, ca: trustme.CA, tmp_path) -> None:  # type: ignore[no-untyped-def]
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    async with AsyncConnectionPool(verify=str(bundle)) as pool:
        response = await pool.handle_async_request(Request("GET", tls_edge.url + "/echo"))
        assert json.loads(await response.aread())["method"] == "GET"
        ssl_object = response.extensions["network_stream"].get_extra_info("ssl_object")
        assert ssl_object.version() in ("TLSv1.2", "TLSv1.3")
        assert ssl_object.selected_alpn_protocol() == "http/1.1"


async def test_ca_directory(tls_edge: EdgeServer, ca: trustme.CA, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # A CA directory holds certificates under their subject hash, as c_rehash names them.
    pem = ca.cert_pem.bytes()
    cert = ssl.PEM_cert_to_DER_cert(pem.decode())
    import subprocess

    path = tmp_path / "ca.pem"
    path.write_bytes(pem)
    digest = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (tmp_path / f"{digest}.0").write_bytes(pem)
    assert cert
    async with AsyncConnectionPool(verify=str(tmp_path)) as pool:
        response = await pool.handle_async_request(Request("GET", tls_edge.url + "/echo"))
        assert response.status_code == 200
        await response.aread()


async def test_hostname_mismatch_is_refused(tls_edge: EdgeServer, ca: trustme.CA) -> None:
    context = create_ssl_context()
    ca.configure_trust(context)
    async with AsyncConnectionPool(ssl_context=context) as pool:
        with pytest.raises(ConnectError, match="certificate"):
            await pool.handle_async_request(
                Request("GET", tls_edge.url + "/echo", extensions={"sni_hostname": "wrong.example"})
            )


async def test_sni_hostname_extension_sets_the_server_name(
    tls_edge: EdgeServer, ca: trustme.CA
) -> None:
    context = create_ssl_context()
    ca.configure_trust(context)
    async with AsyncConnectionPool(ssl_context=context) as pool:
        response = await pool.handle_async_request(
            Request(
                "GET",
                tls_edge.url + "/echo",
                headers={"Host": "example.test"},
                extensions={"sni_hostname": "example.test"},
            )
        )
        await response.aread()
    assert tls_edge.server_names[-1] == "example.test"


async def test_client_certificate_pair(mtls_edge: EdgeServer, ca: trustme.CA, tmp_path) -> None:  # type: ignore[no-untyped-def]
    client = ca.issue_cert("client@example.test")
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    client.cert_chain_pems[0].write_to_path(str(cert))
    client.private_key_pem.write_to_path(str(key))
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    async with AsyncConnectionPool(verify=str(bundle), cert=(str(cert), str(key))) as pool:
        response = await pool.handle_async_request(Request("GET", mtls_edge.url + "/echo"))
        body = json.loads(await response.aread())
    assert body["client_cert"]


async def test_client_certificate_single_file(
    mtls_edge: EdgeServer, ca: trustme.CA, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    client = ca.issue_cert("single@example.test")
    both = tmp_path / "both.pem"
    client.private_key_and_cert_chain_pem.write_to_path(str(both))
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    async with AsyncConnectionPool(verify=str(bundle), cert=str(both)) as pool:
        response = await pool.handle_async_request(Request("GET", mtls_edge.url + "/echo"))
        assert json.loads(await response.aread())["client_cert"]


async def test_missing_client_certificate_fails(mtls_edge: EdgeServer, ca: trustme.CA) -> None:
    context = create_ssl_context()
    ca.configure_trust(context)
    async with AsyncConnectionPool(ssl_context=context) as pool:
        # TLS 1.3 finishes the client's handshake before the server checks the certificate,
        # so the refusal may surface when connecting or when reading: either way as one of
        # ferryman's transport errors, never a raw ssl/OS error.
        with pytest.raises(TransportError) as info:
            response = await pool.handle_async_request(Request("GET", mtls_edge.url + "/echo"))
            await response.aread()
    assert not isinstance(info.value, OSError)


def test_verify_path_that_does_not_exist() -> None:
    with pytest.raises(FileNotFoundError, match="no CA bundle"):
        create_ssl_context(verify="/nonexistent/ca.pem")


def test_default_context_verifies() -> None:
    context = create_ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


async def test_closing_the_pool_closes_tls_sockets(tls_edge: EdgeServer, ca: trustme.CA) -> None:
    """TLS closing takes round trips; a pool closed right before its loop stops must still
    release its sockets (else they leak until garbage collection, with a ResourceWarning)."""
    context = create_ssl_context()
    ca.configure_trust(context)
    pool = AsyncConnectionPool(ssl_context=context)
    response = await pool.handle_async_request(Request("GET", tls_edge.url + "/echo"))
    sock = response.extensions["network_stream"].get_extra_info("socket")
    await response.aread()
    await pool.aclose()
    assert sock.fileno() == -1


def test_closing_a_sync_pool_closes_tls_sockets(tls_edge: EdgeServer, ca: trustme.CA) -> None:
    from ferryman import ConnectionPool

    context = create_ssl_context()
    ca.configure_trust(context)
    with ConnectionPool(ssl_context=context) as pool:
        response = pool.handle_request(Request("GET", tls_edge.url + "/echo"))
        sock = response.extensions["network_stream"].get_extra_info("socket")
        response.read()
    assert sock.fileno() == -1
