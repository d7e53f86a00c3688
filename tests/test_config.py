"""Configuration: shipped defaults, XDG resolution, deep merge, and the messages a
user reads when their file is wrong (file, line, key — never a traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from backends.config import Config, ConfigError, default_config_text, load_config, user_config_path


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env or {})
    return str(caught.value)


# ---- defaults --------------------------------------------------------------------------


def test_defaults_match_the_documented_values(tmp_path: Path) -> None:
    config = load_config(env={"HOME": str(tmp_path)})  # no user file there
    assert config.docker.host is None
    assert config.ui.theme == "textual-dark"
    assert config.ui.readonly is False
    assert config.ui.default_view == "workloads"
    assert config.ui.uptime_refresh_seconds == 2.0
    assert config.keymap == {}


def test_model_defaults_equal_the_shipped_file(tmp_path: Path) -> None:
    # The YAML is what users read; the model is what the code uses: they must agree.
    assert load_config(env={"HOME": str(tmp_path)}) == Config()


def test_shipped_file_documents_every_key() -> None:
    shipped = yaml.safe_load(default_config_text())
    assert set(shipped) == set(Config.model_fields)
    for section, field in Config.model_fields.items():
        model = field.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            assert set(shipped[section]) == set(model.model_fields), section


def test_default_text_is_commented() -> None:
    text = default_config_text()
    assert "# " in text and "uptime_refresh_seconds" in text


def test_shipped_keymap_example_uses_real_binding_ids() -> None:
    # The commented example is what users copy; it must name bindings that exist.
    example = default_config_text().split("keymap:\n", 1)[1].split("keymap: {}", 1)[0]
    remapped = yaml.safe_load("\n".join(line.lstrip("#")[4:] for line in example.splitlines()))
    assert remapped == {"restart": "R", "quit": "q,ctrl+c"}


# ---- where the user's file is ----------------------------------------------------------


def test_xdg_config_home_is_used(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": str(tmp_path / "home")}
    assert user_config_path(env) == tmp_path / "xdg" / "ferryman" / "config.yaml"


def test_home_dot_config_without_xdg(tmp_path: Path) -> None:
    assert user_config_path({"HOME": str(tmp_path)}) == tmp_path / ".config" / "ferryman" / "config.yaml"


@pytest.mark.parametrize("xdg", ["", "relative/dir"])
def test_empty_or_relative_xdg_is_ignored(tmp_path: Path, xdg: str) -> None:
    env = {"XDG_CONFIG_HOME": xdg, "HOME": str(tmp_path)}
    assert user_config_path(env) == tmp_path / ".config" / "ferryman" / "config.yaml"


def test_ferryman_config_wins_over_xdg(tmp_path: Path) -> None:
    env = {"FERRYMAN_CONFIG": str(tmp_path / "mine.yaml"), "XDG_CONFIG_HOME": str(tmp_path)}
    assert user_config_path(env) == tmp_path / "mine.yaml"


def test_ferryman_config_expands_tilde(tmp_path: Path) -> None:
    assert user_config_path({"FERRYMAN_CONFIG": "~/f.yaml", "HOME": str(tmp_path)}) == tmp_path / "f.yaml"


def test_xdg_file_is_loaded(tmp_path: Path) -> None:
    (tmp_path / "ferryman").mkdir()
    write(tmp_path / "ferryman", "ui:\n  theme: nord\n")
    config = load_config(env={"XDG_CONFIG_HOME": str(tmp_path), "HOME": str(tmp_path / "h")})
    assert config.ui.theme == "nord"


def test_ferryman_config_file_is_loaded(tmp_path: Path) -> None:
    path = write(tmp_path, "ui:\n  readonly: true\n", "elsewhere.yaml")
    assert load_config(env={"FERRYMAN_CONFIG": str(path)}).ui.readonly is True


def test_missing_xdg_file_is_fine(tmp_path: Path) -> None:
    assert load_config(env={"XDG_CONFIG_HOME": str(tmp_path)}) == Config()


def test_missing_explicit_file_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert error_of(missing) == f"{missing}: config file not found"


def test_missing_ferryman_config_file_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_config(env={"FERRYMAN_CONFIG": str(missing)})


def test_explicit_path_wins_over_environment(tmp_path: Path) -> None:
    explicit = write(tmp_path, "ui:\n  theme: a\n", "a.yaml")
    env_file = write(tmp_path, "ui:\n  theme: b\n", "b.yaml")
    assert load_config(explicit, env={"FERRYMAN_CONFIG": str(env_file)}).ui.theme == "a"


def test_file_under_home_is_shown_with_tilde(tmp_path: Path) -> None:
    (tmp_path / ".config" / "ferryman").mkdir(parents=True)
    write(tmp_path / ".config" / "ferryman", "ui:\n  uptime_refresh_seconds: 0\n")
    with pytest.raises(ConfigError) as caught:
        load_config(env={"HOME": str(tmp_path)})
    assert str(caught.value) == (
        "~/.config/ferryman/config.yaml:2: ui.uptime_refresh_seconds: Input should be greater than 0"
    )


def test_directory_instead_of_file(tmp_path: Path) -> None:
    (tmp_path / "dir.yaml").mkdir()
    assert error_of(tmp_path / "dir.yaml").startswith(f"{tmp_path / 'dir.yaml'}: cannot read")


def test_error_carries_the_path(tmp_path: Path) -> None:
    path = write(tmp_path, "ui: [\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert caught.value.path == path


# ---- merging ---------------------------------------------------------------------------


def test_one_nested_key_overrides_and_the_rest_keep_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "ui:\n  readonly: true\n"), env={})
    assert config.ui.readonly is True
    assert config.ui.theme == "textual-dark"
    assert config.ui.uptime_refresh_seconds == 2.0
    assert config.docker == Config().docker


def test_keymap_entries_are_added_to_the_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "keymap:\n  restart: R\n"), env={})
    assert config.keymap == {"restart": "R"}
    assert config.ui == Config().ui


def test_section_with_everything_commented_out_keeps_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "ui:\n  # theme: nord\nkeymap:\n"), env={})
    assert config.ui == Config().ui
    assert config.keymap == {}


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file_means_no_overrides(tmp_path: Path, text: str) -> None:
    assert load_config(write(tmp_path, text), env={}) == Config()


def test_every_section_can_be_set(tmp_path: Path) -> None:
    text = """\
docker:
  host: tcp://127.0.0.1:2375
ui:
  theme: nord
  readonly: yes
  default_view: ctr
  uptime_refresh_seconds: 0.5
keymap:
  shell: S
"""
    config = load_config(write(tmp_path, text), env={})
    assert config.docker.host == "tcp://127.0.0.1:2375"
    assert config.ui.theme == "nord"
    assert config.ui.readonly is True
    assert config.ui.default_view == "ctr"
    assert config.ui.uptime_refresh_seconds == 0.5
    assert config.keymap == {"shell": "S"}


def test_config_is_immutable() -> None:
    with pytest.raises(Exception):
        Config().ui.readonly = True  # type: ignore[misc]


# ---- keymap ----------------------------------------------------------------------------


def test_keymap_accepts_keys_and_comma_separated_keys(tmp_path: Path) -> None:
    text = 'keymap:\n  restart: R\n  quit: "q,ctrl+c"\n  shell: ctrl+s\n'
    config = load_config(write(tmp_path, text), env={})
    assert config.keymap == {"restart": "R", "quit": "q,ctrl+c", "shell": "ctrl+s"}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('  restart: ""', "config.yaml:2: keymap.restart: String should have at least 1 character"),
        ("  restart: 5", "config.yaml:2: keymap.restart: Input should be a valid string"),
        ("  4: x", "config.yaml:2: keymap: key 4: Input should be a valid string"),
        ('  "": x', "config.yaml:2: keymap: key '': String should have at least 1 character"),
        ("  a.b: [x]", "config.yaml:2: keymap['a.b']: Input should be a valid string"),
    ],
)
def test_keymap_rejects_non_strings_and_empties(tmp_path: Path, line: str, expected: str) -> None:
    assert error_of(write(tmp_path, f"keymap:\n{line}\n")).endswith(expected)


def test_keymap_must_be_a_mapping(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "keymap:\n  - q\n"))
    assert message.endswith("config.yaml:1: keymap: expected a mapping of keys, not a list")


# ---- bad input: the messages -----------------------------------------------------------


def test_malformed_yaml_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "ui:\n  theme: nord\n  readonly: [true\n")
    message = error_of(path)
    assert message.startswith(f"{path}:4:1: ")
    assert "expected ',' or ']'" in message


def test_tab_indentation_is_a_syntax_error_with_position(tmp_path: Path) -> None:
    path = write(tmp_path, "ui:\n\ttheme: nord\n")
    assert error_of(path) == (
        f"{path}:2:1: found character '\\t' that cannot start any token (while scanning for the next token)"
    )


def test_wrong_type_names_file_line_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "# mine\nui:\n  theme: nord\n  uptime_refresh_seconds: soon\n")
    assert error_of(path) == (
        f"{path}:4: ui.uptime_refresh_seconds: Input should be a valid number, unable to parse string as a number"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ui:\n  uptime_refresh_seconds: -1\n", "2: ui.uptime_refresh_seconds: Input should be greater than 0"),
        ("ui:\n  uptime_refresh_seconds: .inf\n", "2: ui.uptime_refresh_seconds: Input should be a finite number"),
        ("ui:\n  readonly: maybe\n", "2: ui.readonly: expected true or false, not 'maybe'"),
        ("ui:\n  readonly: [1]\n", "2: ui.readonly: expected true or false, not a list"),
        ("ui:\n  readonly: 2\n", "2: ui.readonly: expected true or false, not 2"),
        ("ui:\n  theme: 3\n", "2: ui.theme: Input should be a valid string"),
        ("ui:\n  theme: '  '\n", "2: ui.theme: String should have at least 1 character"),
        ("ui:\n  default_view: ''\n", "2: ui.default_view: String should have at least 1 character"),
        ("ui: 5\n", "1: ui: expected a mapping of keys, not a number"),
        ("docker: [a]\n", "1: docker: expected a mapping of keys, not a list"),
        ("docker:\n  host: {a: 1}\n", "2: docker.host: Input should be a valid string"),
    ],
)
def test_invalid_values(tmp_path: Path, text: str, expected: str) -> None:
    assert error_of(write(tmp_path, text)) == f"{tmp_path / 'config.yaml'}:{expected}"


UI_KEYS = "theme, readonly, default_view, uptime_refresh_seconds"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ui:\n  them: nord\n", "config.yaml:2: ui.them: unknown key (did you mean 'theme'?)"),
        ("\n\ndokcer:\n  host: x\n", "config.yaml:3: dokcer: unknown key (did you mean 'docker'?)"),
        (
            "ui:\n  readonly: true\n  uptime_refresh: 1\n",
            "config.yaml:3: ui.uptime_refresh: unknown key (did you mean 'uptime_refresh_seconds'?)",
        ),
        ("ui:\n  zzz: 1\n", f"config.yaml:2: ui.zzz: unknown key (expected one of: {UI_KEYS})"),
        ("docker:\n  zzz: 1\n", "config.yaml:2: docker.zzz: unknown key (expected one of: host)"),
        # Sections not implemented yet are refused, not silently ignored.
        ("compose:\n  files: []\n", "config.yaml:1: compose: unknown key (expected one of: docker, kubernetes, hybrid, logs, health, forwards, promote, ui, keymap)"),
        ("ui:\n  key_echo: true\n", f"config.yaml:2: ui.key_echo: unknown key (expected one of: {UI_KEYS})"),
    ],
)
def test_unknown_keys_are_named_with_a_suggestion(tmp_path: Path, text: str, expected: str) -> None:
    message = error_of(write(tmp_path, text))
    assert message.endswith(expected)
    assert "Extra inputs are not permitted" not in message


@pytest.mark.parametrize(
    ("text", "kind", "line"),
    [("- ui\n- docker\n", "a list", 1), ("hello\n", "a string", 1), ("\n# x\n42\n", "a number", 3)],
)
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str, line: int) -> None:
    path = write(tmp_path, text)
    assert error_of(path) == (
        f"{path}:{line}: the top level must be a mapping of sections "
        f"(docker, kubernetes, hybrid, logs, health, forwards, promote, ui, keymap), not {kind}"
    )


def test_several_errors_are_reported_together_one_per_line_in_file_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "docker:\n  host: [x]\nui:\n  them: x\n  uptime_refresh_seconds: 0\nkeymap:\n  quit: 1\n",
    )
    assert error_of(path).splitlines() == [
        f"{path}:2: docker.host: Input should be a valid string",
        f"{path}:4: ui.them: unknown key (did you mean 'theme'?)",
        f"{path}:5: ui.uptime_refresh_seconds: Input should be greater than 0",
        f"{path}:7: keymap.quit: Input should be a valid string",
    ]


def test_duplicate_key_is_reported_not_silently_overwritten(tmp_path: Path) -> None:
    path = write(tmp_path, "ui:\n  theme: nord\n  readonly: true\n  theme: gruvbox\n")
    assert error_of(path) == f"{path}:4: ui.theme: duplicate key (first set on line 2)"


def test_several_documents_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "ui: {}\n---\ndocker: {}\n")
    assert error_of(path) == f"{path}:2:1: but found another document (expected a single document in the stream)"


def test_python_tags_are_refused_not_executed(tmp_path: Path) -> None:
    path = write(tmp_path, "ui: !!python/object/apply:os.system [echo hi]\n")
    assert error_of(path).startswith(f"{path}:1:5: could not determine a constructor")


def test_recursive_anchor_is_an_error_not_a_hang(tmp_path: Path) -> None:
    path = write(tmp_path, "keymap:\n  quit: &a [*a]\n")
    assert error_of(path) == f"{path}:2: keymap.quit: Input should be a valid string"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"ui:\n  theme: \xff\n")
    assert error_of(path) == f"{path}: not UTF-8 text (byte 13: invalid start byte)"


def test_utf8_bom_is_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes("ui:\n  theme: nord\n".encode("utf-8-sig"))
    assert load_config(path, env={}).ui.theme == "nord"
