"""Authentication flows for the client: Basic, Digest, OAuth 1 and 2, and any callable."""

from ferryman.client.auth.base import Auth, AuthTypes, BasicAuth, FunctionAuth, to_auth
from ferryman.client.auth.digest import DigestAuth, _parse_challenges
from ferryman.client.auth.oauth import OAuth1, OAuth2, _oauth_escape, oauth1_base_string

__all__ = [
    "Auth",
    "AuthTypes",
    "BasicAuth",
    "DigestAuth",
    "FunctionAuth",
    "OAuth1",
    "OAuth2",
    "_oauth_escape",
    "_parse_challenges",
    "oauth1_base_string",
    "to_auth",
]
