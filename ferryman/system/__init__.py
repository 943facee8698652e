"""The system: the applications a configuration names, their services, and the kernel they serve.

``load_config`` reads and validates the configuration, ``SystemBuilder`` turns it into a running
:class:`System` through the bind / bound / ready events, and ``System.dispose`` sends shutdown.
"""

from ferryman.system.applications import (
    Application,
    Settings,
    load_application,
    load_applications,
    register_application,
)
from ferryman.system.builder import KernelFactory, System, SystemBuilder
from ferryman.system.config import (
    DEFAULT_APPLICATIONS,
    DEFAULT_CONFIG,
    ConfigLayers,
    ResolvedConfig,
    dump_config,
    load_config,
    merge_config,
    parse_value,
    read_config_file,
    resolve_config,
    set_config_value,
)
from ferryman.system.container import Container, Lifetime, ServiceKey
from ferryman.system.errors import ConfigurationError, DependencyError
from ferryman.system.events import (
    EVENT_BIND,
    EVENT_BOUND,
    EVENT_READY,
    EVENT_SHUTDOWN,
    ASGIApp,
    OnBindEvent,
    OnBoundEvent,
    OnReadyEvent,
    OnShutdown,
    OnShutdownEvent,
)

__all__ = [
    "DEFAULT_APPLICATIONS",
    "DEFAULT_CONFIG",
    "EVENT_BIND",
    "EVENT_BOUND",
    "EVENT_READY",
    "EVENT_SHUTDOWN",
    "ASGIApp",
    "Application",
    "ConfigLayers",
    "ConfigurationError",
    "Container",
    "DependencyError",
    "KernelFactory",
    "Lifetime",
    "OnBindEvent",
    "OnBoundEvent",
    "OnReadyEvent",
    "OnShutdown",
    "OnShutdownEvent",
    "ResolvedConfig",
    "ServiceKey",
    "Settings",
    "System",
    "SystemBuilder",
    "dump_config",
    "load_application",
    "load_applications",
    "load_config",
    "merge_config",
    "parse_value",
    "read_config_file",
    "register_application",
    "resolve_config",
    "set_config_value",
]
