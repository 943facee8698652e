"""pulsar's ``HTTPBasicAuth`` and ``HTTPDigestAuth``: ferryman's Basic and Digest schemes under
pulsar's names and constructors.

pulsar ran them as ``pre_request`` handlers that set a header (Digest after a first 401); here
they are ferryman auth flows, which do the same and answer the Digest challenge on the same
call. ``auth=("user", "password")`` still means Basic.
"""

from __future__ import annotations

from typing import Any

from ferryman.client.auth import BasicAuth, DigestAuth

__all__ = ["HTTPBasicAuth", "HTTPDigestAuth"]


class HTTPBasicAuth(BasicAuth):
    """``HTTPBasicAuth(username, password)``; ``status_code`` is accepted and unused (pulsar
    kept it for a retry ferryman does not need: Basic credentials go with the first request).
    """

    type = "basic"

    def __init__(self, username: str, password: str, status_code: int = 401) -> None:
        super().__init__(username, password)
        self.username = username


class HTTPDigestAuth(DigestAuth):
    """``HTTPDigestAuth(username, password=None, options=None)``: the server's challenge (a
    401) is answered on the same call. pulsar's ``options`` (a challenge known in advance) is
    refused rather than ignored: the challenge must come from the server."""

    type = "digest"

    def __init__(
        self, username: str, password: str | None = None, options: dict[str, Any] | None = None
    ) -> None:
        if options:
            raise TypeError(
                "HTTPDigestAuth(options=...) is not supported: the Digest challenge is taken "
                "from the server's 401 answer"
            )
        super().__init__(username, password or "")
        self.username = username
