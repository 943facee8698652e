"""``ferryman rules``: what the ``rules`` application attaches where, for the same options as
``ferryman start`` (the configuration is loaded and checked the same way, functions imported).

One line per function: the endpoint glob and the endpoints it matches, the route, the event,
the function (``module:name``, ``async`` when it is), in the order they run.
"""

from __future__ import annotations

import fnmatch

import click

from ferryman.cli.errors import fail
from ferryman.cli.options import ConfigOptions, config_options
from ferryman.cli.start import load_checked

__all__ = ["rules"]


@click.command()
@config_options
def rules(options: ConfigOptions) -> None:
    """List the functions the rules application attaches: endpoint, route, event, function.

    \b
    ferryman rules --config ferryman.yml
    """
    from ferryman.apps.rules import attached_rules
    from ferryman.apps.rules.listeners import is_async
    from ferryman.apps.rules.settings import RulesSettings
    from ferryman.client.filtering import EVENT_FILTER_HTTP_CLIENT_REQUEST
    from ferryman.proxy.settings import ProxySettings

    config, _ = load_checked(options)
    if "rules" not in config:
        fail(
            "the rules application is not in 'applications' (it lists "
            f"{', '.join(config['applications']) or 'nothing'})"
        )
    settings = RulesSettings.model_validate(config["rules"])  # (checked: load_checked)
    proxy = ProxySettings.model_validate(config["proxy"]) if "proxy" in config else None
    names = [] if proxy is None else [endpoint.name for endpoint in proxy.endpoints]
    rows = [("ENDPOINT", "MATCHES", "ROUTE", "EVENT", "FUNCTION")]
    client_events = False
    for rule in attached_rules(settings):
        matched = [name for name in names if fnmatch.fnmatchcase(name, rule.endpoint)]
        client_events = client_events or rule.event.startswith("http_client.")
        for function in rule.functions:
            module = getattr(function, "__module__", "?")
            name = getattr(function, "__qualname__", repr(function))
            rows.append(
                (
                    rule.endpoint,
                    ",".join(matched) or "-",
                    rule.route.glob,
                    rule.event,
                    f"{module}:{name}" + (" (async)" if is_async(function) else ""),
                )
            )
    if len(rows) == 1:
        click.echo("no rule attaches a function")
        return
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)]
        click.echo("  ".join([*cells, row[4]]))
    if client_events:
        click.echo(
            f"note: rules on {EVENT_FILTER_HTTP_CLIENT_REQUEST.rsplit('.', 1)[0]}.* send every "
            "request of every endpoint through the general path (several times the CPU of "
            "the relay)",
            err=True,
        )
