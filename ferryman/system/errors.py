"""The errors a misconfigured system raises, before it serves a single request.

Both belong to :class:`~ferryman.exceptions.FerrymanError`, so the CLI catches one family and prints
the message as is: each line of it already names the key (``proxy.endpoints.0.port: ...``) or the
chain of services (``Proxy -> Storage -> Database``) the user has to look at.
"""

from __future__ import annotations

from ferryman.exceptions import FerrymanError

__all__ = ["ConfigurationError", "DependencyError"]


class ConfigurationError(FerrymanError):
    """The configuration cannot be loaded or validated; one problem per line of the message."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        #: Each problem alone, ``"dotted.key.path: reason"``, for callers that list them.
        self.problems = problems


class DependencyError(ConfigurationError):
    """A service cannot be built: a dependency is missing, cyclic, or its factory failed."""

    def __init__(self, message: str, chain: tuple[str, ...]) -> None:
        super().__init__(message)
        #: The services being built when it failed, outermost first.
        self.chain = chain
