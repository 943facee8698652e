"""How the commands fail: one ``error: ...`` line on stderr and an exit code, never a traceback.

click prints a usage error as three lines (usage, a hint, the error); ferryman prints one, like
its configuration errors, so scripts and people read every failure the same way. The error
still names the option (``Invalid value for '--endpoint': ...``) and the command's help is one
``--help`` away.
"""

from __future__ import annotations

from typing import IO, Any, NoReturn

import click

from ferryman.exceptions import FerrymanError
from ferryman.system import ConfigurationError

__all__ = ["EXIT_USAGE", "Command", "Group", "fail"]

#: click exits with 2 on bad usage; a bad configuration is bad usage too.
EXIT_USAGE = 2


def fail(error: FerrymanError | str, code: int = EXIT_USAGE) -> NoReturn:
    """Print ``error: ...`` (one line per problem) on stderr and exit with ``code``."""
    problems = error.problems if isinstance(error, ConfigurationError) else (str(error),)
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    raise SystemExit(code)


class _OneLineUsageError(click.UsageError):
    def show(self, file: IO[Any] | None = None) -> None:
        hint = f" (see '{self.ctx.command_path} --help')" if self.ctx is not None else ""
        click.echo(f"error: {self.message}{hint}", err=True, file=file)


def _one_line(error: click.UsageError) -> _OneLineUsageError:
    if isinstance(error, _OneLineUsageError):
        return error
    return _OneLineUsageError(error.format_message(), error.ctx)


class _OneLineErrors:
    """Turns the usage errors of this command and of its subcommands into one-line errors."""

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)  # type: ignore[misc, no-any-return]
        except click.UsageError as error:
            raise _one_line(error) from None

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)  # type: ignore[misc]
        except click.UsageError as error:
            raise _one_line(error) from None


class Group(_OneLineErrors, click.Group):
    """A click group whose usage errors (its subcommands' included) take one line."""


class Command(_OneLineErrors, click.Command):
    """A click command whose usage errors take one line."""
