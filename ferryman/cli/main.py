"""The ``ferryman`` command: a click group of small commands, each in its own module.

* ``ferryman start`` (:mod:`ferryman.cli.start`): run the reverse proxy;
* ``ferryman config`` (:mod:`ferryman.cli.start`): print the configuration ``start`` would run;
* ``ferryman get URL`` (:mod:`ferryman.cli.get`): a small curl;
* ``ferryman tail`` (:mod:`ferryman.cli.tail`): the proxy's transactions as they finish.
"""

from __future__ import annotations

import click

from ferryman._version import __version__
from ferryman.cli.errors import Group
from ferryman.cli.get import get
from ferryman.cli.rules import rules
from ferryman.cli.start import config, start
from ferryman.cli.tail import tail

__all__ = ["main"]


@click.group(cls=Group)
@click.version_option(__version__, prog_name="ferryman")
def main() -> None:
    """ferryman: carries HTTP traffic between applications and the APIs they depend on."""


main.add_command(start)
main.add_command(config)
main.add_command(get)
main.add_command(tail)
main.add_command(rules)


if __name__ == "__main__":
    main(prog_name="ferryman")
