"""The `forwards:` section, and forward sets saved from `:pf` into forwards.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from backends.config import (
    ConfigError,
    ForwardsConfig,
    default_config_text,
    forwards_path,
    load_config,
    load_saved_forwards,
    save_forward_set,
)
from backends.model import ForwardSpec


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_example_is_valid() -> None:
    section = default_config_text().split("\nforwards:\n", 1)[1].split("\npromote:\n", 1)[0]
    example = [line.split("#", 1)[1][1:] for line in section.splitlines() if line.strip().startswith("#   ")]
    parsed = yaml.safe_load("\n".join(example))
    forwards = ForwardsConfig.model_validate(parsed)
    assert [f.spec() for f in forwards.sets[0].forwards] == [ForwardSpec("shop", "service", "web", 80, 8080)]
    assert forwards.sets[0].autostart is True


def test_targets_are_spelled_out_and_local_port_defaults_to_the_port(tmp_path: Path) -> None:
    config = write(tmp_path / "config.yaml", """
forwards:
  sets:
    - name: dev
      forwards:
        - {namespace: shop, target: deploy/api, port: 8080}
        - {namespace: shop, target: pod/db-0, port: 5432, local_port: 15432, address: "::1"}
        - {namespace: shop, target: sts/cache, port: 6379}
""")
    sets = load_config(config, env={}).forwards.sets
    assert [f.spec() for f in sets[0].forwards] == [
        ForwardSpec("shop", "deployment", "api", 8080, 8080),
        ForwardSpec("shop", "pod", "db-0", 5432, 15432, "::1"),
        ForwardSpec("shop", "statefulset", "cache", 6379, 6379),
    ]


@pytest.mark.parametrize(("entry", "message"), [
    ("{namespace: shop, target: web, port: 80}", "forwards.sets[0].forwards[0].target: must be KIND/NAME"),
    ("{namespace: shop, target: job/x, port: 80}", "must be KIND/NAME with KIND one of pod, svc, deploy, sts"),
    ("{namespace: shop, target: svc/web, port: 70000}", "forwards.sets[0].forwards[0].port"),
    ("{namespace: shop, target: svc/web, port: 80, address: localhost}", "must be an IP address"),
    ("{namespace: shop, target: svc/web}", "forwards.sets[0].forwards[0].port"),
])
def test_bad_entries_are_located(tmp_path: Path, entry: str, message: str) -> None:
    config = write(tmp_path / "config.yaml", f"forwards:\n  sets:\n    - name: dev\n      forwards:\n        - {entry}\n")
    with pytest.raises(ConfigError) as err:
        load_config(config, env={})
    assert "config.yaml:" in str(err.value) and message in str(err.value)


def test_a_set_name_twice_is_refused(tmp_path: Path) -> None:
    config = write(tmp_path / "config.yaml", "forwards:\n  sets:\n    - {name: dev}\n    - {name: dev}\n")
    with pytest.raises(ConfigError, match="forward set dev is defined twice"):
        load_config(config, env={})


def test_saved_sets_round_trip_and_win_over_the_config_files(tmp_path: Path) -> None:
    config = write(tmp_path / "ferryman" / "config.yaml", """
# my own comments stay untouched
forwards:
  sets:
    - name: dev
      forwards: [{namespace: shop, target: svc/web, port: 80}]
    - name: db
      autostart: false
      forwards: [{namespace: shop, target: sts/db, port: 5432}]
""")
    before = config.read_text()
    saved = forwards_path(config)
    assert saved == tmp_path / "ferryman" / "forwards.yaml"
    specs = [ForwardSpec("shop", "service", "web", 80, 8081), ForwardSpec("shop", "deployment", "api", 8080, 18080)]
    save_forward_set(saved, "dev", specs)
    save_forward_set(saved, "extra", specs[:1], autostart=False)
    save_forward_set(saved, "dev", specs)  # saving again replaces, never duplicates
    assert config.read_text() == before  # the user's file is never rewritten
    assert saved.read_text().startswith("# Forward sets saved from Ferryman's :pf view")
    assert [s.name for s in load_saved_forwards(saved)] == ["extra", "dev"]
    sets = {s.name: s for s in load_config(config, env={}).forwards.sets}
    assert [f.spec() for f in sets["dev"].forwards] == specs  # the saved one won
    assert sets["db"].autostart is False and sets["extra"].autostart is False


def test_a_broken_saved_file_is_reported_with_its_own_path(tmp_path: Path) -> None:
    config = write(tmp_path / "config.yaml", "ui: {readonly: false}\n")
    write(forwards_path(config), "sets:\n  - name: dev\n    forwards: [{namespace: shop, target: nope, port: 1}]\n")
    with pytest.raises(ConfigError) as err:
        load_config(config, env={})
    assert "forwards.yaml:3" in str(err.value) and "must be KIND/NAME" in str(err.value)
