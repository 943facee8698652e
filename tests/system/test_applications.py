from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from ferryman.system import (
    ConfigurationError,
    load_application,
    load_applications,
    register_application,
)
from ferryman.system import applications as applications_module
from tests.system.example_apps import AuditApp, Endpoint, FakeProxyApp, GatewayApp


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A real package on sys.path, named afresh per test (imports are cached by name)."""
    name = f"userpkg_{uuid.uuid4().hex}"
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def write_module(tmp_path: Path, package: str, module: str, source: str) -> None:
    (tmp_path / package / f"{module}.py").write_text(textwrap.dedent(source))


def test_module_colon_class_names_the_class() -> None:
    assert load_application("tests.system.example_apps:GatewayApp") is GatewayApp


def test_a_module_path_loads_the_module_application_attribute() -> None:
    assert load_application("tests.system.example_apps") is AuditApp


def test_a_registered_short_name_loads_its_target_and_can_be_replaced() -> None:
    register_application("gateway", "tests.system.example_apps:GatewayApp")
    assert load_application("gateway") is GatewayApp

    register_application("gateway", "tests.system.example_apps:FakeProxyApp")
    assert load_application("gateway") is FakeProxyApp


def test_short_names_are_looked_for_in_the_ferryman_namespaces(
    tmp_path: Path, package: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        applications_module,
        "SHORT_NAME_MODULES",
        (f"{package}.apps.{{name}}", f"{package}.{{name}}"),
    )
    (tmp_path / package / "apps").mkdir()
    (tmp_path / package / "apps" / "__init__.py").write_text("")
    (tmp_path / package / "apps" / "first.py").write_text(
        "from tests.system.example_apps import GatewayApp as application\n"
    )
    write_module(
        tmp_path,
        package,
        "second",
        "from tests.system.example_apps import AuditApp as application\n",
    )

    assert load_application("first") is GatewayApp
    assert load_application("second") is AuditApp


def test_the_ferryman_namespace_is_searched_for_short_names() -> None:
    # ferryman.events exists but is not an application: the error says where it looked.
    with pytest.raises(
        ConfigurationError, match=r"ferryman\.events has no attribute 'application'"
    ):
        load_application("events")


def test_an_unknown_short_name_says_where_it_was_looked_for() -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_application("nonexistent_xyz")

    assert str(raised.value) == (
        "application 'nonexistent_xyz' cannot be loaded: it is not registered and there is no "
        "module ferryman.apps.nonexistent_xyz or ferryman.nonexistent_xyz "
        "(give a dotted path like 'mypkg.myapp:MyApplication')"
    )


def test_a_short_name_module_that_fails_to_import_reports_its_own_error(
    tmp_path: Path, package: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(applications_module, "SHORT_NAME_MODULES", (f"{package}.{{name}}",))
    write_module(tmp_path, package, "needs_dep", "import a_dependency_that_is_not_installed\n")
    write_module(tmp_path, package, "crashes", "raise ValueError('bad default')\n")

    with pytest.raises(ConfigurationError) as raised:
        load_application("needs_dep")
    assert "No module named 'a_dependency_that_is_not_installed'" in str(raised.value)
    assert isinstance(raised.value.__cause__, ModuleNotFoundError)

    with pytest.raises(
        ConfigurationError, match=r"'crashes' cannot be loaded: ValueError: bad default"
    ):
        load_application("crashes")


def test_a_dotted_name_that_cannot_be_imported_is_named_with_the_reason() -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_application("mypkg_missing.myapp")

    assert str(raised.value) == (
        "application 'mypkg_missing.myapp' cannot be loaded: "
        "there is no module 'mypkg_missing' on Python's path"
    )


def test_a_module_without_the_named_attribute_is_reported() -> None:
    with pytest.raises(ConfigurationError, match=r"example_apps has no attribute 'NoSuchApp'"):
        load_application("tests.system.example_apps:NoSuchApp")
    with pytest.raises(
        ConfigurationError, match=r"test_applications has no attribute 'application'"
    ):
        load_application("tests.system.test_applications")


def test_something_that_is_not_an_application_class_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"example_apps:Endpoint is .*not a subclass of"):
        load_application("tests.system.example_apps:Endpoint")
    with pytest.raises(ConfigurationError, match=r"example_apps:EVENTS is \[\], not a subclass"):
        load_application("tests.system.example_apps:EVENTS")


@pytest.mark.parametrize(
    ("class_body", "reason"),
    [
        ("pass", r"Nameless\.name must be a non-empty configuration key .* got None"),
        ("name = 'a.b'", r"got 'a\.b'"),
        ("name = 'applications'", r"other than 'applications'"),
        ("name = 'x'\n    settings_type = dict", r"settings_type must be a pydantic model class"),
    ],
)
def test_an_application_class_must_declare_a_usable_key_and_settings_type(
    tmp_path: Path, package: str, class_body: str, reason: str
) -> None:
    write_module(
        tmp_path,
        package,
        "bad",
        f"from ferryman.system import Application\n\n"
        f"class Nameless(Application):\n    {class_body}\n",
    )

    with pytest.raises(ConfigurationError, match=reason):
        load_application(f"{package}.bad:Nameless")


def test_load_applications_prefixes_errors_with_the_list_index() -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_applications(["tests.system.example_apps", "nonexistent_xyz"])

    assert str(raised.value).startswith("applications.1: application 'nonexistent_xyz' cannot")


def test_load_applications_refuses_two_applications_with_the_same_key() -> None:
    register_application("gw", "tests.system.example_apps:GatewayApp")

    with pytest.raises(ConfigurationError) as raised:
        load_applications(
            ["gw", "tests.system.example_apps", "tests.system.example_apps:GatewayApp"]
        )

    assert str(raised.value) == (
        "applications.2: 'tests.system.example_apps:GatewayApp' uses the key 'gateway', "
        "already used by applications.0 ('gw')"
    )


def test_load_applications_keeps_the_order_given() -> None:
    names = ["tests.system.example_apps", "tests.system.example_apps:GatewayApp"]
    assert load_applications(names) == [AuditApp, GatewayApp]


@pytest.mark.parametrize("name", ["", "a.b", "a:b"])
def test_short_names_are_plain_words(name: str) -> None:
    with pytest.raises(ValueError, match="short application name"):
        register_application(name, "tests.system.example_apps")


def test_settings_refuse_unknown_keys_so_typos_are_caught() -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Endpoint.model_validate({"name": "api", "port": 80, "hots": "0.0.0.0"})
