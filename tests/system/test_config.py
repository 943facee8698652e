from __future__ import annotations

import copy
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]
from hypothesis import given
from hypothesis import strategies as st

from ferryman.system import (
    DEFAULT_APPLICATIONS,
    ConfigurationError,
    dump_config,
    load_config,
    merge_config,
    parse_value,
    read_config_file,
    register_application,
    resolve_config,
    set_config_value,
)
from tests.system.example_apps import GatewaySettings

GATEWAY = "tests.system.example_apps:GatewayApp"
AUDIT = "tests.system.example_apps"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def gateway_yaml(tmp_path: Path) -> Path:
    return write(
        tmp_path,
        "gateway.yaml",
        f"""
        applications: ["{GATEWAY}", "{AUDIT}"]
        gateway:
          greeting: bonjour
          endpoints:
            - name: api
              port: 8080
            - name: admin
              port: 8081
              host: 0.0.0.0
        """,
    )


# Files and merging


def test_a_yaml_file_is_validated_and_defaults_filled_in(gateway_yaml: Path) -> None:
    config = load_config([gateway_yaml], env={})

    assert config == {
        "applications": [GATEWAY, AUDIT],
        "gateway": {
            "endpoints": [
                {"name": "api", "port": 8080, "host": "127.0.0.1"},
                {"name": "admin", "port": 8081, "host": "0.0.0.0"},
            ],
            "greeting": "bonjour",
            "token": None,
            "fail_in": [],
        },
    }


def test_later_files_merge_mappings_and_replace_lists(tmp_path: Path, gateway_yaml: Path) -> None:
    override = write(
        tmp_path,
        "override.toml",
        """
        [gateway]
        token = "s3cret"

        [[gateway.endpoints]]
        name = "only"
        port = 9000
        """,
    )

    config = load_config([gateway_yaml, override], env={})

    assert config["gateway"]["greeting"] == "bonjour"  # kept from the first file
    assert config["gateway"]["token"].get_secret_value() == "s3cret"
    assert config["gateway"]["endpoints"] == [{"name": "only", "port": 9000, "host": "127.0.0.1"}]


def test_without_files_the_default_applications_run(monkeypatch: pytest.MonkeyPatch) -> None:
    register_application("proxy", "tests.system.example_apps:FakeProxyApp")
    for variable in [name for name in os.environ if name.startswith("FERRYMAN_")]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("FERRYMAN_PROXY__GREETING", "from os.environ")

    config = load_config()

    assert config["applications"] == list(DEFAULT_APPLICATIONS)
    assert config["proxy"]["greeting"] == "from os.environ"
    assert config["proxy"]["endpoints"] == []


def test_an_empty_file_changes_nothing(tmp_path: Path, gateway_yaml: Path) -> None:
    empty = write(tmp_path, "empty.yml", "# nothing here\n")

    assert load_config([gateway_yaml, empty], env={}) == load_config([gateway_yaml], env={})


# Environment and overrides


def test_environment_variables_nest_on_double_underscores_and_read_yaml_scalars(
    gateway_yaml: Path,
) -> None:
    env = {
        "FERRYMAN_GATEWAY__ENDPOINTS__0__PORT": "9090",
        "FERRYMAN_GATEWAY__ENDPOINTS__2__NAME": "third",
        "FERRYMAN_GATEWAY__ENDPOINTS__2__PORT": "9092",
        "FERRYMAN_GATEWAY__GREETING": "a: b",
        "NOT_FERRYMAN_GATEWAY__GREETING": "ignored",
        # the benchmark harness's, passed on to a ferryman it starts: not configuration
        "FERRYMAN_BENCH_WORKDIR": "/tmp/ferryman-bench",
        "PATH": "/usr/bin",
    }

    config = load_config([gateway_yaml], env=env)

    endpoints = config["gateway"]["endpoints"]
    assert endpoints[0]["port"] == 9090
    assert endpoints[1]["port"] == 8081
    assert endpoints[2] == {"name": "third", "port": 9092, "host": "127.0.0.1"}
    assert config["gateway"]["greeting"] == "a: b"


def test_overrides_win_over_environment_which_wins_over_files(gateway_yaml: Path) -> None:
    config = load_config(
        [gateway_yaml],
        env={"FERRYMAN_GATEWAY__GREETING": "from env", "FERRYMAN_GATEWAY__TOKEN": "t"},
        overrides=["gateway.greeting=from --set", "gateway.endpoints.1.port=4000"],
    )

    assert config["gateway"]["greeting"] == "from --set"
    assert config["gateway"]["token"].get_secret_value() == "t"
    assert config["gateway"]["endpoints"][1]["port"] == 4000


def test_the_build_and_hot_path_switches_are_not_configuration_keys(gateway_yaml: Path) -> None:
    switches = {"FERRYMAN_COMPILE": "0", "FERRYMAN_PURE_PYTHON": "1"}
    assert load_config([gateway_yaml], env=switches) == load_config([gateway_yaml], env={})
    with pytest.raises(ConfigurationError, match="pure_pythonn: unknown configuration key"):
        load_config([gateway_yaml], env={"FERRYMAN_PURE_PYTHONN": "1"})  # a typo still is one


def test_a_flow_collection_replaces_a_whole_list(gateway_yaml: Path) -> None:
    config = load_config(
        [gateway_yaml],
        env={"FERRYMAN_APPLICATIONS": f"[{GATEWAY}]"},
        overrides=["gateway.endpoints=[{name: x, port: 1}]"],
    )

    assert config["applications"] == [GATEWAY]
    assert config["gateway"]["endpoints"] == [{"name": "x", "port": 1, "host": "127.0.0.1"}]


@pytest.mark.parametrize(
    ("env", "overrides", "message"),
    [
        (
            {"FERRYMAN_GATEWAY__GREETING__LANG": "fr"},
            [],
            "FERRYMAN_GATEWAY__GREETING__LANG: cannot set gateway.greeting.lang: "
            "gateway.greeting is a str, not a mapping or a list",
        ),
        (
            {},
            ["gateway.endpoints.5.port=1"],
            "--set gateway.endpoints.5.port=1: cannot set gateway.endpoints.5.port: "
            "gateway.endpoints has 2 items, index 5 would leave a gap",
        ),
        (
            {},
            ["gateway.endpoints.first.port=1"],
            "--set gateway.endpoints.first.port=1: cannot set gateway.endpoints.first.port: "
            "gateway.endpoints is a list, 'first' is not an index",
        ),
        (
            {},
            ["gateway..greeting=x"],
            "--set gateway..greeting=x: empty key in 'gateway..greeting'",
        ),
        ({"FERRYMAN_": "x"}, [], "FERRYMAN_: empty key in ''"),
        ({}, ["gateway.greeting"], "--set 'gateway.greeting': expected key=value"),
    ],
)
def test_assignments_that_cannot_apply_name_their_source(
    gateway_yaml: Path, env: dict[str, str], overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_config([gateway_yaml], env=env, overrides=overrides)

    assert str(raised.value) == message


def test_a_broken_flow_value_names_its_source(gateway_yaml: Path) -> None:
    with pytest.raises(
        ConfigurationError, match=r"^--set gateway.endpoints=\[1,: invalid YAML value"
    ):
        load_config([gateway_yaml], env={}, overrides=["gateway.endpoints=[1,"])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8080", 8080),
        ("-3", -3),
        ("true", True),
        ("off", False),
        ("1.5", 1.5),
        ("", None),
        ("~", None),
        ("#fff", "#fff"),
        ("a: b", "a: b"),
        ("- item", "- item"),
        ("http://h:80/x", "http://h:80/x"),
        ("[1, two]", [1, "two"]),
        ("{a: 1}", {"a": 1}),
    ],
)
def test_values_read_as_one_yaml_scalar_unless_a_flow_collection(text: str, expected: Any) -> None:
    assert parse_value(text) == expected


@given(st.integers())
def test_integers_read_back_as_integers(number: int) -> None:
    assert parse_value(str(number)) == number


# Errors


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_config([tmp_path / "absent.yaml"], env={})

    assert str(raised.value) == f"{tmp_path / 'absent.yaml'}: configuration file not found"


def test_a_yaml_error_gives_the_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", "gateway:\n  greeting: [unclosed\n  port: 1\n")

    with pytest.raises(ConfigurationError) as raised:
        read_config_file(path)

    assert str(raised.value).startswith(f"{path}:3:")
    assert "invalid YAML" in str(raised.value)


def test_keys_yaml_1_1_reads_as_booleans_stay_names(tmp_path: Path) -> None:
    # The README's ``retry: {on: [connect]}``: PyYAML read the key ``on`` as True.
    text = (
        "retry:\n  on: [timeout]\n  off: 1\n"
        "flags: {yes: no, 'on': on}\n"
        "list: [on, &a {no: 2}, *a]\n"
    )
    path = write(tmp_path, "keys.yaml", text)

    data = read_config_file(path)

    assert data == {
        "retry": {"on": ["timeout"], "off": 1},
        "flags": {"yes": False, "on": True},  # (values are still YAML's booleans)
        "list": [True, {"no": 2}, {"no": 2}],
    }


def test_a_toml_error_gives_the_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.toml", "[gateway]\ngreeting = 'x'\nport =\n")

    with pytest.raises(ConfigurationError) as raised:
        read_config_file(path)

    assert str(raised.value) == f"{path}:3:7: invalid TOML: Invalid value"


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("list.yaml", "- a\n- b\n", "the top level must be a mapping of settings, got a list"),
        ("conf.json", "{}", "unsupported configuration format '.json', use .yaml, .yml or .toml"),
    ],
)
def test_files_that_are_not_settings_are_refused(
    tmp_path: Path, name: str, text: str, reason: str
) -> None:
    path = write(tmp_path, name, text)

    with pytest.raises(ConfigurationError) as raised:
        read_config_file(path)

    assert str(raised.value) == f"{path}: {reason}"


def test_an_unreadable_file_is_named_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "directory.yaml").mkdir()

    with pytest.raises(
        ConfigurationError, match=r"directory\.yaml: cannot read configuration file: "
    ):
        read_config_file(tmp_path / "directory.yaml")


def test_characters_yaml_refuses_are_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "bell.yaml", "greeting: \x07\n")

    with pytest.raises(ConfigurationError, match=r"bell\.yaml:1:11: invalid YAML: .*#x0007"):
        read_config_file(path)


def test_an_unknown_top_level_key_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", f"applications: ['{GATEWAY}']\nstorage:\n  url: x\n")

    with pytest.raises(ConfigurationError) as raised:
        load_config([path], env={})

    assert str(raised.value) == (
        "storage: unknown configuration key (no application listed in 'applications' reads it; "
        f"the keys read are applications, gateway) (from {path}:2)"
    )


def test_validation_errors_name_the_dotted_path_the_reason_and_the_value(
    gateway_yaml: Path,
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_config(
            [gateway_yaml],
            env={},
            overrides=["gateway.endpoints.0.port=70000", "gateway.endpoints.1.name="],
        )

    assert raised.value.problems == (
        "gateway.endpoints.0.port: must be at most 65535 "
        "(got 70000 from --set gateway.endpoints.0.port=70000)",
        "gateway.endpoints.1.name: must be a string "
        "(got null from --set gateway.endpoints.1.name=)",
    )


def test_a_required_setting_that_is_missing_is_named_without_a_value(gateway_yaml: Path) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_config([gateway_yaml], env={}, overrides=["gateway.endpoints.2.port=1"])

    assert str(raised.value) == (
        "gateway.endpoints.2.name: required, and not given (from --set gateway.endpoints.2.port=1)"
    )


def test_settings_for_an_application_that_takes_none_are_refused(gateway_yaml: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"^audit: the application takes no settings"):
        load_config([gateway_yaml], env={}, overrides=["audit.level=3"])


def test_applications_must_be_a_list_of_names() -> None:
    with pytest.raises(ConfigurationError) as raised:
        resolve_config({"applications": "proxy"})

    assert str(raised.value) == "applications: must be a list (got 'proxy')"


def test_an_application_that_cannot_be_imported_is_named(gateway_yaml: Path) -> None:
    with pytest.raises(
        ConfigurationError, match=r"^applications\.1: application 'nonexistent_xyz'"
    ):
        load_config([gateway_yaml], env={}, overrides=["applications.1=nonexistent_xyz"])


def test_an_error_names_the_environment_variable_the_value_came_from(gateway_yaml: Path) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_config([gateway_yaml], env={"FERRYMAN_GATEWAY__ENDPOINTS__0__PORT": "abc"})

    assert str(raised.value) == (
        "gateway.endpoints.0.port: must be a whole number "
        "(got 'abc' from FERRYMAN_GATEWAY__ENDPOINTS__0__PORT)"
    )


def test_an_error_in_a_file_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "c.yaml",
        f"""
        applications: ["{GATEWAY}"]
        gateway:
          endpoints:
            - name: api
              port: 0
        """,
    )

    with pytest.raises(ConfigurationError) as raised:
        load_config([path], env={})

    assert str(raised.value) == (
        f"gateway.endpoints.0.port: must be at least 1 (got 0 from {path}:6)"
    )


def test_a_toml_file_is_named_without_a_line(tmp_path: Path) -> None:
    path = write(tmp_path, "c.toml", f'applications = ["{GATEWAY}"]\n[gateway]\ngreeting = 5\n')

    with pytest.raises(ConfigurationError) as raised:
        load_config([path], env={})

    assert str(raised.value) == f"gateway.greeting: must be a string (got 5 from {path})"


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ("gateway.greting=x", "gateway.greting: unknown key; did you mean 'greeting'?"),
        (
            "gateway.endpoints.0.hots=x",
            "gateway.endpoints.0.hots: unknown key; did you mean 'host'?",
        ),
        ("gatewai.greeting=x", "gatewai: unknown configuration key; did you mean 'gateway'?"),
    ],
)
def test_a_misspelt_key_gets_the_key_it_resembles(
    gateway_yaml: Path, override: str, problem: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_config([gateway_yaml], env={}, overrides=[override])

    assert str(raised.value) == f"{problem} (from --set {override})"


def test_every_problem_is_reported_at_once(gateway_yaml: Path) -> None:
    # A broken --set, an application that cannot load, and bad settings of one that can.
    with pytest.raises(ConfigurationError) as raised:
        load_config(
            [gateway_yaml],
            env={"FERRYMAN_GATEWAY__ENDPOINTS__0__PORT": "abc"},
            overrides=[
                "applications.2=nonexistent_xyz",
                "gateway.greting=x",
                "gateway.endpoints.9.port=1",
            ],
        )

    assert raised.value.problems == (
        "--set gateway.endpoints.9.port=1: cannot set gateway.endpoints.9.port: "
        "gateway.endpoints has 2 items, index 9 would leave a gap",
        "applications.2: application 'nonexistent_xyz' cannot be loaded: it is not registered "
        "and there is no module ferryman.apps.nonexistent_xyz or ferryman.nonexistent_xyz "
        "(give a dotted path like 'mypkg.myapp:MyApplication') "
        "(from --set applications.2=nonexistent_xyz)",
        "gateway.endpoints.0.port: must be a whole number "
        "(got 'abc' from FERRYMAN_GATEWAY__ENDPOINTS__0__PORT)",
        "gateway.greting: unknown key; did you mean 'greeting'? (from --set gateway.greting=x)",
    )


def test_a_key_that_may_be_a_failed_applications_is_not_called_unknown(
    gateway_yaml: Path,
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_config([gateway_yaml], env={}, overrides=["applications.2=nope_xyz", "nope.a=1"])

    [problem] = raised.value.problems
    assert problem.startswith("applications.2: application 'nope_xyz' cannot be loaded")


def test_a_file_that_cannot_be_read_is_reported_with_the_other_sources_problems(
    tmp_path: Path, gateway_yaml: Path
) -> None:
    # (What the missing file holds is unknown: the settings are not judged without it.)
    with pytest.raises(ConfigurationError) as raised:
        load_config(
            [tmp_path / "absent.yaml", gateway_yaml],
            env={"FERRYMAN_GATEWAY__GREETING__X": "1"},
            overrides=["gateway.endpoints.0.port=70000"],
        )

    assert raised.value.problems == (
        f"{tmp_path / 'absent.yaml'}: configuration file not found",
        "FERRYMAN_GATEWAY__GREETING__X: cannot set gateway.greeting.x: "
        "gateway.greeting is a str, not a mapping or a list",
    )


def test_a_value_that_cannot_be_set_changes_nothing(gateway_yaml: Path) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_config([gateway_yaml], env={}, overrides=["fresh.5.x=1"])

    # (no "fresh: unknown configuration key" for the list the failed --set would have begun)
    assert raised.value.problems == (
        "--set fresh.5.x=1: cannot set fresh.5.x: fresh has 0 items, index 5 would leave a gap",
    )


# Resolving and dumping


def test_resolve_gives_settings_models_and_round_trips_load_config(gateway_yaml: Path) -> None:
    config = load_config([gateway_yaml], env={"FERRYMAN_GATEWAY__TOKEN": "s3cret"})

    resolved = resolve_config(config)

    assert isinstance(resolved.settings["gateway"], GatewaySettings)
    assert resolved.settings["gateway"].endpoints[1].host == "0.0.0.0"
    assert "audit" not in resolved.settings  # takes no settings
    assert [app.name for app in resolved.applications] == ["gateway", "audit"]
    assert resolved.to_dict() == config
    assert dump_config(resolved.settings) == dump_config(config)


def test_a_dump_loads_back_to_the_same_configuration_with_secrets_masked(
    tmp_path: Path, gateway_yaml: Path
) -> None:
    config = load_config([gateway_yaml], env={"FERRYMAN_GATEWAY__TOKEN": "s3cret"})

    dumped = dump_config(config)

    assert "s3cret" not in dumped
    assert yaml.safe_load(dumped)["gateway"]["token"] == "**********"
    reloaded = load_config([write(tmp_path, "dumped.yaml", dumped)], env={})
    config["gateway"]["token"] = reloaded["gateway"]["token"]
    assert reloaded == config


# Properties of merging and assignment

keys = st.text(alphabet="abcxyz_", min_size=1, max_size=3)
leaves = st.one_of(
    st.integers(), st.text(max_size=5), st.booleans(), st.none(), st.lists(st.integers())
)
trees = st.recursive(
    leaves, lambda children: st.dictionaries(keys, children, max_size=4), max_leaves=12
)
configs = st.dictionaries(keys, trees, max_size=4)


def leaf_paths(tree: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(tree, dict) and tree:
        for key, value in tree.items():
            yield from leaf_paths(value, (*prefix, key))
    else:
        yield prefix, tree


def get_path(tree: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        tree = tree[int(key)] if isinstance(tree, list) else tree[key]
    return tree


@given(configs, configs)
def test_merging_keeps_every_leaf_of_the_override_and_unshadowed_leaves_of_the_base(
    base: dict[str, Any], override: dict[str, Any]
) -> None:
    base_before, override_before = copy.deepcopy(base), copy.deepcopy(override)

    merged = merge_config(base, override)

    assert (base, override) == (base_before, override_before)
    override_leaves = list(leaf_paths(override))
    for path, value in override_leaves:
        if path and value == {}:
            assert isinstance(get_path(merged, path), dict)  # an empty mapping merges in nothing
        elif path:
            assert get_path(merged, path) == value
    for path, value in leaf_paths(base):
        shadowed = any(
            path[: len(other)] == other or other[: len(path)] == path
            for other, other_value in override_leaves
            if not (other_value == {} and len(other) < len(path))
        )
        if path and not shadowed:
            assert get_path(merged, path) == value


@given(configs, configs)
def test_applying_an_override_twice_changes_nothing_and_empty_is_neutral(
    base: dict[str, Any], override: dict[str, Any]
) -> None:
    # (Not associative: {a: {x}} + {a: 0} + {a: {}} loses x, {a: {x}} + ({a: 0} + {a: {}}) not.)
    merged = merge_config(base, override)
    assert merge_config(merged, override) == merged
    assert merge_config(base, {}) == base == merge_config({}, base)


def test_the_merge_result_shares_nothing_with_its_inputs() -> None:
    base = {"a": {"list": [1]}}
    merged = merge_config(base, {"b": {"c": [2]}})
    merged["a"]["list"].append(3)

    assert base == {"a": {"list": [1]}}


@given(configs, st.lists(keys, min_size=1, max_size=4), st.integers())
def test_setting_a_path_changes_that_leaf_only_or_refuses(
    config: dict[str, Any], path: list[str], value: int
) -> None:
    before = copy.deepcopy(config)
    blocked = any(
        not isinstance(node, dict | type(None))
        for node in (_get_or_none(before, tuple(path[:depth])) for depth in range(1, len(path)))
    )

    if blocked:
        with pytest.raises(ConfigurationError, match=r"^test: cannot set "):
            set_config_value(config, path, value, source="test")
        return
    set_config_value(config, path, value, source="test")

    assert get_path(config, tuple(path)) == value
    for leaf, old in leaf_paths(before):
        related = leaf[: len(path)] == tuple(path) or tuple(path)[: len(leaf)] == leaf
        if leaf and not related:
            assert get_path(config, leaf) == old


def _get_or_none(tree: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(tree, dict):
            return tree
        tree = tree.get(key)
    return tree


def test_a_number_in_a_new_path_makes_a_list() -> None:
    config: dict[str, Any] = {"proxy": None}

    set_config_value(config, ["proxy", "endpoints", "0", "port"], 1, source="test")
    set_config_value(config, ["proxy", "endpoints", "1"], "x", source="test")

    assert config == {"proxy": {"endpoints": [{"port": 1}, "x"]}}
