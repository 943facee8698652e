"""The ``dashboard`` configuration, and the one rule that needs the proxy's too.

.. code-block:: yaml

    dashboard:
      enabled: true                  # false: no pages (the auth still guards /api, /metrics)
      auth:                          # basic auth over the pages, /api and /metrics
        username: admin
        password: s3cret             # or password_env: NAME (read at start), or password_hash
        # password_hash: pbkdf2_sha256$600000$<salt>$<hash>
        #   (python -m ferryman.apps.dashboard.passwords prints one)
        realm: ferryman

The rule: the kernel's port serves the recorded traffic (pages, ``/api``), so when
``proxy.host`` is not a loopback address and no ``dashboard.auth`` is given, the configuration
is refused (``ferryman start`` exits 2, naming the keys) rather than open it to the network.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import Field, SecretStr, model_validator

from ferryman.apps.dashboard.passwords import parse_hash
from ferryman.proxy.settings import is_loopback
from ferryman.system.applications import Settings

__all__ = ["AuthSettings", "DashboardSettings", "is_loopback", "refusal"]


class AuthSettings(Settings):
    """One user; exactly one of ``password``, ``password_env`` and ``password_hash``."""

    username: str = Field(min_length=1)
    password: SecretStr | None = None
    #: The name of an environment variable holding the password (read when the proxy starts).
    password_env: str | None = Field(default=None, min_length=1)
    password_hash: SecretStr | None = None
    realm: str = Field(default="ferryman", min_length=1, pattern=r'^[^"\\\r\n]*$')

    @model_validator(mode="after")
    def _one_password(self) -> AuthSettings:
        given = [
            name
            for name in ("password", "password_env", "password_hash")
            if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of password, password_env and password_hash"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if ":" in self.username:
            raise ValueError("username: basic auth cannot carry a ':' in the user name")
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if not value:
                raise ValueError(
                    f"password_env: the environment variable {self.password_env} is not set "
                    "or empty"
                )
        if self.password_hash is not None:
            parse_hash(self.password_hash.get_secret_value())  # raises with the reason
        if self.password is not None and not self.password.get_secret_value():
            raise ValueError("password: must not be empty")
        return self

    def secret(self) -> str | None:
        """The plain password (``password`` or the variable's value); ``None`` with a hash."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_env is not None:
            return os.environ.get(self.password_env, "")
        return None


class DashboardSettings(Settings):
    enabled: bool = True
    auth: AuthSettings | None = None


def refusal(settings: Mapping[str, Any], source: Callable[[str], str | None]) -> list[str]:
    """The problem when the kernel's port would serve the traffic beyond loopback unguarded."""
    dashboard = settings.get("dashboard")
    proxy = settings.get("proxy")
    if not isinstance(dashboard, DashboardSettings) or proxy is None:
        return []
    host = str(getattr(proxy, "host", "127.0.0.1"))
    if dashboard.auth is not None or is_loopback(host):
        return []
    where = source("proxy.host")
    got = f"{host!r}" + (f" from {where}" if where else "")
    return [
        f"dashboard.auth: required when proxy.host is not a loopback address (got {got}): "
        "the dashboard and /api on proxy.port show the recorded traffic to anyone who can "
        "reach it; set dashboard.auth.username and dashboard.auth.password (or "
        "password_env, password_hash), or bind proxy.host to 127.0.0.1"
    ]
