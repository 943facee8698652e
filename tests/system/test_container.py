from __future__ import annotations

import functools

import pytest

from ferryman.exceptions import FerrymanError
from ferryman.system import ConfigurationError, Container, DependencyError

BUILT: list[str] = []


@pytest.fixture(autouse=True)
def _forget_built() -> None:
    BUILT.clear()


class Database:
    def __init__(self, url: str = "sqlite://") -> None:
        BUILT.append("Database")
        self.url = url


class Storage:
    def __init__(self, database: Database) -> None:
        BUILT.append("Storage")
        self.database = database


class SqlStorage(Storage):
    pass


class Cache:
    def __init__(self, storage: Storage | None = None, ttl: int = 60) -> None:
        self.storage = storage
        self.ttl = ttl


class Reporter:
    """Found by parameter name: ``sink`` has no annotation."""

    def __init__(self, sink, prefix: str = "> ") -> None:  # type: ignore[no-untyped-def]
        self.sink = sink
        self.prefix = prefix


class Chicken:
    def __init__(self, egg: Egg) -> None:
        self.egg = egg


class Egg:
    def __init__(self, chicken: Chicken) -> None:
        self.chicken = chicken


class Api:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage


class Misspelled:
    def __init__(self, thing: Undefined) -> None:  # type: ignore[name-defined]  # noqa: F821
        self.thing = thing


def test_an_instance_is_resolved_as_itself() -> None:
    container = Container()
    database = Database("postgres://db")
    container.add(Database, database)

    assert container.resolve(Database) is database
    assert Database in container
    assert Storage not in container


def test_a_class_is_built_once_with_its_dependencies_injected_by_annotation() -> None:
    container = Container()
    container.add(Database)
    container.add(Storage, SqlStorage)

    storage = container.resolve(Storage)

    assert type(storage) is SqlStorage
    assert isinstance(storage.database, Database)
    assert container.resolve(Storage) is storage
    assert container.resolve(Database) is storage.database
    assert BUILT == ["Database", "Storage"]


def test_a_transient_service_is_built_on_every_resolve_its_singleton_dependencies_are_not() -> None:
    container = Container()
    container.add(Database)
    container.add(Storage, lifetime="transient")

    first, second = container.resolve(Storage), container.resolve(Storage)

    assert first is not second
    assert first.database is second.database


def test_a_factory_gets_its_parameters_by_name_and_an_unannotated_parameter_by_name() -> None:
    container = Container()
    lines: list[str] = []
    container.add("sink", lines)
    container.add("prefix", "$ ")  # annotated str, not registered by type: found by name
    container.add(Reporter)
    container.add("greeting", lambda prefix: prefix + "hi")

    reporter = container.resolve(Reporter)

    assert reporter.sink is lines
    assert reporter.prefix == "$ "
    assert container.resolve("greeting") == "$ hi"


def test_optional_dependencies_are_injected_when_registered_and_defaults_kept_otherwise() -> None:
    container = Container()
    container.add(Cache, lifetime="transient")
    alone = container.resolve(Cache)
    assert alone.storage is None
    assert alone.ttl == 60

    container.add(Database)
    container.add(Storage)
    assert container.resolve(Cache).storage is container.resolve(Storage)


def test_a_name_makes_a_typed_service_reachable_by_parameter_name_too() -> None:
    container = Container()
    container.add(Database, Database("mysql://"), name="database")
    container.add(Storage)

    assert container.resolve("database") is container.resolve(Database)
    assert container.resolve(Storage).database.url == "mysql://"


def test_partial_is_a_factory() -> None:
    container = Container()
    container.add(Database, functools.partial(Database, url="partial://"))

    assert container.resolve(Database).url == "partial://"


def test_registering_again_replaces_and_replans_services_built_later() -> None:
    container = Container()
    container.add("label", "first")
    container.add("shout", lambda label: label.upper(), lifetime="transient")
    assert container.resolve("shout") == "FIRST"

    container.add("label", "second")

    assert container.resolve("shout") == "SECOND"


def test_a_missing_dependency_names_the_chain_and_the_parameter() -> None:
    container = Container()
    container.add(Api)
    container.add(Storage)

    with pytest.raises(DependencyError) as raised:
        container.resolve(Api)

    assert str(raised.value) == (
        "cannot build Api -> Storage: nothing registered for parameter "
        "'database: Database' of Storage"
    )
    assert raised.value.chain == ("Api", "Storage")
    assert isinstance(raised.value, ConfigurationError)
    assert isinstance(raised.value, FerrymanError)


def test_a_cycle_names_every_service_in_it() -> None:
    container = Container()
    container.add(Chicken)
    container.add(Egg)

    with pytest.raises(DependencyError, match=r"^dependency cycle: Chicken -> Egg -> Chicken$"):
        container.resolve(Chicken)
    with pytest.raises(DependencyError) as raised:
        container.resolve(Egg)
    assert raised.value.chain == ("Egg", "Chicken", "Egg")


def test_check_reports_what_resolve_would_without_building_anything() -> None:
    container = Container()
    container.add(Database)
    container.add(Storage)
    container.check()
    assert BUILT == []

    container.add(Api)
    container.add(Chicken)
    with pytest.raises(DependencyError) as raised:
        container.check()
    assert str(raised.value) == (
        "cannot build Chicken: nothing registered for parameter 'egg: Egg' of Chicken"
    )
    assert BUILT == []


def test_check_finds_a_cycle() -> None:
    container = Container()
    container.add(Chicken)
    container.add(Egg)

    with pytest.raises(DependencyError, match="dependency cycle"):
        container.check()


def test_a_failing_factory_is_reported_with_its_chain_and_chained_to_the_cause() -> None:
    def broken_database() -> Database:
        raise OSError("disk full")

    container = Container()
    container.add(Database, broken_database)
    container.add(Storage)

    with pytest.raises(DependencyError) as raised:
        container.resolve(Storage)

    assert str(raised.value) == "cannot build Storage -> Database: OSError: disk full"
    assert isinstance(raised.value.__cause__, OSError)
    # A failed singleton is not remembered: the next resolve tries again.
    container.add(Database)
    assert isinstance(container.resolve(Storage).database, Database)


def test_unresolvable_annotations_are_reported_not_guessed() -> None:
    container = Container()
    container.add(Misspelled)

    with pytest.raises(
        DependencyError, match=r"cannot read the parameters of Misspelled: .*Undefined"
    ):
        container.resolve(Misspelled)


def test_positional_only_parameters_cannot_be_injected() -> None:
    def make(database: Database, /) -> Storage:
        return Storage(database)

    container = Container()
    container.add(Database)
    container.add(Storage, make)

    with pytest.raises(DependencyError, match="'database' of Storage is positional-only"):
        container.resolve(Storage)


def test_resolving_an_unregistered_key_says_so() -> None:
    with pytest.raises(DependencyError, match=r"^no service registered for 'cache'$"):
        Container().resolve("cache")
    with pytest.raises(DependencyError, match=r"^no service registered for Storage$"):
        Container().resolve(Storage)


def test_registration_mistakes_are_refused_where_they_are_made() -> None:
    container = Container()
    with pytest.raises(TypeError, match="needs a provider"):
        container.add("cache", None)
    with pytest.raises(ValueError, match="instance, which cannot be built again"):
        container.add(Database, Database(), lifetime="transient")
    with pytest.raises(ValueError, match="lifetime must be"):
        container.add(Database, lifetime="scoped")  # type: ignore[call-overload]


def test_variadic_parameters_are_left_alone() -> None:
    def make(database: Database, *args: object, **options: object) -> Storage:
        assert args == () and options == {}
        return Storage(database)

    container = Container()
    container.add(Database)
    container.add(Storage, make)

    assert isinstance(container.resolve(Storage), Storage)


def test_a_missing_generic_parameter_is_named_with_its_annotation() -> None:
    def make(tags: list[str]) -> Storage:
        raise AssertionError("never built")

    container = Container()
    container.add(Storage, make)

    with pytest.raises(DependencyError, match=r"parameter 'tags: list\[str\]' of Storage$"):
        container.resolve(Storage)


def test_a_factory_resolving_a_missing_service_itself_is_not_wrapped_twice() -> None:
    container = Container()
    container.add("uses_container", lambda: container.resolve("absent"))

    with pytest.raises(DependencyError, match=r"^no service registered for 'absent'$"):
        container.resolve("uses_container")
