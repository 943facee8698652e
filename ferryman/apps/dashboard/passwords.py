"""Password hashes for ``dashboard.auth.password_hash``, so a configuration file need not hold
the password itself.

The format is Django's: ``pbkdf2_sha256$<iterations>$<salt>$<base64 hash>``, from
:func:`hashlib.pbkdf2_hmac` (no dependency). Print one with::

    python -m ferryman.apps.dashboard.passwords          # asks for the password twice
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Final, NamedTuple

__all__ = ["ALGORITHM", "ITERATIONS", "PasswordHash", "make_hash", "parse_hash", "verify"]

ALGORITHM: Final = "pbkdf2_sha256"
#: OWASP's 2023 figure for PBKDF2-HMAC-SHA256.
ITERATIONS: Final = 600_000
#: Beyond this, checking one password would let a client spend seconds of CPU per request.
MAX_ITERATIONS: Final = 10_000_000


class PasswordHash(NamedTuple):
    iterations: int
    salt: str
    digest: bytes


def make_hash(password: str, *, iterations: int = ITERATIONS, salt: str | None = None) -> str:
    salt = salt or secrets.token_urlsafe(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"{ALGORITHM}${iterations}${salt}${base64.b64encode(digest).decode('ascii')}"


def parse_hash(text: str) -> PasswordHash:
    """The parts of a hash; ``ValueError`` saying what is wrong (never quoting the hash)."""
    parts = text.split("$")
    if len(parts) != 4 or parts[0] != ALGORITHM:
        raise ValueError(
            f"password_hash: must look like {ALGORITHM}$<iterations>$<salt>$<hash> "
            "(python -m ferryman.apps.dashboard.passwords prints one)"
        )
    _, iterations, salt, encoded = parts
    if not iterations.isdigit() or not 1 <= int(iterations) <= MAX_ITERATIONS:
        raise ValueError(f"password_hash: the iterations must be 1 to {MAX_ITERATIONS}")
    try:
        digest = base64.b64decode(encoded, validate=True)
    except ValueError:
        raise ValueError("password_hash: the hash part is not base64") from None
    if not salt or not digest:
        raise ValueError("password_hash: the salt and the hash must not be empty")
    return PasswordHash(int(iterations), salt, digest)


def verify(password: str, hashed: PasswordHash) -> bool:
    """Whether ``password`` has this hash, compared in constant time."""
    digest = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), hashed.salt.encode(), hashed.iterations
    )
    return hmac.compare_digest(digest, hashed.digest)


def _main() -> None:
    import getpass

    password = getpass.getpass("password: ")
    if not password or password != getpass.getpass("again: "):
        raise SystemExit("error: the passwords are empty or differ")
    print(make_hash(password))


if __name__ == "__main__":
    _main()
