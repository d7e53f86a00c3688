"""The `health:` section: HTTP health URLs per service, and the messages a user reads
when an entry is wrong (file, line, key path into the list — never a traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from backends.config import Config, ConfigError, HealthConfig, default_config_text, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    return str(caught.value)


def test_defaults_probe_nothing_every_10_s_with_a_2_s_timeout(tmp_path: Path) -> None:
    health = load_config(env={"HOME": str(tmp_path)}).health
    assert (health.interval_seconds, health.timeout_seconds, health.urls) == (10.0, 2.0, [])
    assert health == Config().health


def test_urls_with_every_key(tmp_path: Path) -> None:
    text = """\
health:
  interval_seconds: 0.5
  timeout_seconds: 1
  urls:
    - service: web
      path: /health
    - service: shop/api
      path: /api/health?full=1
      port: 8080
      expect: [200, "300-302"]
    - service: default/worker
      path: /
      expect: 204
    - service: db
      path: /ready
      expect: "200 - 299"
"""
    health = load_config(write(tmp_path, text), env={}).health
    assert (health.interval_seconds, health.timeout_seconds) == (0.5, 1.0)
    web, api, worker, db = health.urls
    assert (web.service, web.path, web.port, web.expect) == ("web", "/health", None, ((200, 399),))
    assert (api.service, api.path, api.port, api.expect) == ("shop/api", "/api/health?full=1", 8080, ((200, 200), (300, 302)))
    assert worker.expect == ((204, 204),)
    assert db.expect == ((200, 299),)


def test_health_section_merges_with_the_defaults(tmp_path: Path) -> None:
    health = load_config(write(tmp_path, "health:\n  urls:\n    - {service: web, path: /h}\n"), env={}).health
    assert health.interval_seconds == 10.0 and health.timeout_seconds == 2.0
    assert [u.service for u in health.urls] == ["web"]


def test_shipped_example_is_valid() -> None:
    # The commented example is what users copy: it must load as it stands.
    text = default_config_text()
    section = text.split("\nhealth:\n", 1)[1].split("\nforwards:\n", 1)[0]
    example = [line.split("#", 1)[1][1:] for line in section.splitlines() if line.strip().startswith("#   ")]
    parsed = yaml.safe_load("\n".join(example))
    health = HealthConfig.model_validate(parsed)
    assert [(u.service, u.path, u.port, u.expect) for u in health.urls] == [
        ("web", "/health", None, ((200, 399),)),
        ("shop/api", "/api/health", 8080, ((200, 200), (204, 204))),
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("health:\n  interval_seconds: 0\n", "2: health.interval_seconds: Input should be greater than 0"),
        ("health:\n  timeout_seconds: -1\n", "2: health.timeout_seconds: Input should be greater than 0"),
        ("health:\n  timeout_seconds: .inf\n", "2: health.timeout_seconds: Input should be a finite number"),
        ("health:\n  urls: /health\n", "2: health.urls: Input should be a valid list"),
        ("health:\n  urls:\n    - web\n", "3: health.urls[0]: expected a mapping of keys, not a string"),
        (
            "health:\n  urls:\n    - service: web\n      path: health\n",
            "4: health.urls[0].path: must be a path starting with '/' (e.g. /health), without spaces",
        ),
        (
            "health:\n  urls:\n    - service: web\n      path: /my health\n",
            "4: health.urls[0].path: must be a path starting with '/' (e.g. /health), without spaces",
        ),
        (
            "health:\n  urls:\n    - service: web\n      path: http://localhost:8080/health\n",
            "4: health.urls[0].path: must be a path starting with '/' (e.g. /health), without spaces",
        ),
        ("health:\n  urls:\n    - service: web\n", "3: health.urls[0].path: Field required"),
        ("health:\n  urls:\n    - path: /h\n", "3: health.urls[0].service: Field required"),
        (
            "health:\n  urls:\n    - service: a/b/c\n      path: /h\n",
            "3: health.urls[0].service: expected NAME or GROUP/NAME (a project or namespace, then a name)",
        ),
        (
            "health:\n  urls:\n    - service: shop/\n      path: /h\n",
            "3: health.urls[0].service: expected NAME or GROUP/NAME (a project or namespace, then a name)",
        ),
        (
            "health:\n  urls:\n    - service: web\n      path: /h\n      port: 70000\n",
            "5: health.urls[0].port: Input should be less than or equal to 65535",
        ),
        (
            "health:\n  urls:\n    - service: web\n      path: /h\n      expect: ok\n",
            "5: health.urls[0].expect: expected an HTTP status (200), a range (200-399) or a list of them, not 'ok'",
        ),
        (
            "health:\n  urls:\n    - service: web\n      path: /h\n      expect: yes\n",
            "5: health.urls[0].expect: expected an HTTP status (200), a range (200-399) or a list of them, not true",
        ),
        (
            "health:\n  urls:\n    - service: web\n      path: /h\n      expect: [200, 399-200]\n",
            "5: health.urls[0].expect: '399-200' is not a status range between 100 and 599",
        ),
        (
            "health:\n  urls:\n    - service: web\n      path: /h\n      expect: 600\n",
            "5: health.urls[0].expect: 600 is not a status range between 100 and 599",
        ),
        (
            "health:\n  urls:\n    - service: web\n      path: /h\n      expect: []\n",
            "5: health.urls[0].expect: expected at least one status or range, e.g. 200-399",
        ),
    ],
)
def test_invalid_health_values_are_located(tmp_path: Path, text: str, expected: str) -> None:
    assert error_of(write(tmp_path, text)) == f"{tmp_path / 'config.yaml'}:{expected}"


def test_unknown_key_in_a_url_entry_is_named_with_a_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "health:\n  urls:\n    - service: web\n      path: /h\n      expected: 200\n")
    assert error_of(path) == f"{path}:5: health.urls[0].expected: unknown key (did you mean 'expect'?)"
    path = write(tmp_path, "health:\n  urls:\n    - service: web\n      path: /h\n      zzz: 1\n")
    assert error_of(path).endswith("health.urls[0].zzz: unknown key (expected one of: service, path, port, expect)")
    path = write(tmp_path, "health:\n  interval: 5\n")
    assert error_of(path) == f"{path}:2: health.interval: unknown key (did you mean 'interval_seconds'?)"


def test_the_same_service_and_path_twice_is_refused(tmp_path: Path) -> None:
    # Both would write the same check (one per workload and path): a lost result.
    text = "health:\n  urls:\n    - {service: web, path: /h}\n    - {service: db, path: /h}\n    - {service: web, path: /h, port: 81}\n"
    path = write(tmp_path, text)
    assert error_of(path) == f"{path}:2: health.urls: urls[2] repeats urls[0] (service web, path /h)"


def test_several_url_errors_are_reported_together(tmp_path: Path) -> None:
    text = "health:\n  urls:\n    - service: web\n      path: h\n    - service: db\n      path: /h\n      port: 0\n"
    path = write(tmp_path, text)
    assert error_of(path).splitlines() == [
        f"{path}:4: health.urls[0].path: must be a path starting with '/' (e.g. /health), without spaces",
        f"{path}:7: health.urls[1].port: Input should be greater than or equal to 1",
    ]
