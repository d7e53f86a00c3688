"""Resolving a Compose service through the REAL compose CLI (`config`): interpolation,
env files, extends, profiles, override files, and the errors a user must be able to read.

The fixtures are real-world style projects under tests/fixtures/compose/. Nothing here is
mocked: the CLI installed on the machine (v2 plugin, else v1) renders each project.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from backends.promote import (
    ComposeService,
    PromoteError,
    compose_cli,
    compose_files_from_labels,
    resolve_project,
    resolve_service,
    service_from_config,
)
from backends.promote.resolve import default_project_name, read_referenced_files
from tests.support.dockerenv import require_compose_cli, sleeper_service

FIXTURES = Path(__file__).parent / "fixtures" / "compose"


@pytest.fixture
async def compose_cli_here():
    await require_compose_cli()


needs_cli = pytest.mark.usefixtures("compose_cli_here")


async def resolve(fixture: str, service: str, **kwargs) -> ComposeService:
    return (await resolve_service(service, kwargs.pop("files", None), FIXTURES / fixture, **kwargs)).service


# -- the CLI ------------------------------------------------------------------------------


@needs_cli
async def test_the_cli_found_is_one_that_runs():
    cli = await compose_cli()
    assert cli.argv in (("docker", "compose"), ("docker-compose",))
    assert cli.version[0].isdigit()
    # v1 prints YAML only; everything newer has --format json.
    assert cli.prints_json == (not cli.version.startswith("1."))


@needs_cli
async def test_resolving_does_not_block_the_event_loop():
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    await resolve("webapp", "web")
    elapsed = time.monotonic() - started
    task.cancel()
    # The loop kept turning while the CLI ran (at least a third of the expected ticks).
    assert ticks >= elapsed / 0.01 / 3


# -- what Compose resolves for us ---------------------------------------------------------


@needs_cli
async def test_interpolation_defaults_and_the_dotenv_file():
    api = await resolve("interpolation", "api")
    cfg = api.config
    # ${API_TAG:-1.4.2}: unset -> the default.
    assert cfg["image"] == "registry.example.com/team/api:1.4.2"
    env = dict(cfg["environment"])
    # CONTAINER_PORT comes from .env (3300), beating the default 3000.
    assert env["PORT"] == "3300"
    assert env["FROM_DOTENV"] == "dotenv-value"
    # ${GREETING-hello}: unset -> default.
    assert env["GREETING"] == "hello"
    # `$$` is Compose's escape for a literal `$`: undone, so the value is what the container sees.
    assert env["LITERAL_DOLLAR"] == "cost: $5 and $(not a command)"
    assert cfg["command"] == ["sh", "-c", "echo $HOSTNAME starting on ${PORT}; exec node server.js"]


@needs_cli
async def test_interpolation_reads_the_environment_of_the_process(monkeypatch):
    monkeypatch.setenv("PORT", "18081")
    monkeypatch.setenv("GREETING", "")
    api = await resolve("interpolation", "api")
    ports = api.config["ports"]
    published = [p.get("published") if isinstance(p, dict) else str(p).split(":")[0] for p in ports]
    assert [str(p) for p in published] == ["18081"]
    # ${GREETING-hello} keeps an empty value (only ":-" replaces empty).
    assert dict(api.config["environment"])["GREETING"] == ""


@needs_cli
async def test_env_files_are_inlined_into_environment():
    api = await resolve("interpolation", "api")
    env = dict(api.config["environment"])
    assert env["LOG_LEVEL"] == "debug"
    assert env["GITHUB_TOKEN"] == "ghp_exampletoken"
    web = await resolve("webapp", "web")
    env = dict(web.config["environment"])
    assert env["STRIPE_API_KEY"] == "sk_test_123"
    assert env["DATABASE_URL"] == "postgres://shop:s3cr3t-pw@db:5432/shop"


@needs_cli
async def test_extends_merges_the_base_service():
    app = await resolve("extends", "app")
    cfg = app.config
    assert cfg["image"] == "example/app:2.0.1"
    env = dict(cfg["environment"])
    assert env == {"LOG_FORMAT": "json", "TZ": "Europe/Paris", "APP_MODE": "server"}
    assert cfg["healthcheck"]["test"] == ["CMD", "/app/healthcheck"]
    assert "extends" not in cfg


@needs_cli
async def test_override_files_are_merged_in_order():
    web = await resolve("override", "web", files=[Path("docker-compose.yml"), Path("docker-compose.dev.yml")])
    assert web.config["image"] == "example/web:dev"
    assert dict(web.config["environment"]) == {"MODE": "development", "DEBUG": "1"}


@needs_cli
async def test_a_service_behind_a_profile_resolves_with_its_profile():
    mailhog = await resolve("profiles", "mailhog", profiles=["debug"])
    assert mailhog.config["image"] == "mailhog/mailhog:v1.0.1"
    app = await resolve("profiles", "app")
    assert set(app.project_services) >= {"app"}


@needs_cli
async def test_project_name_defaults_like_compose_and_can_be_given():
    assert (await resolve("webapp", "db")).project == "webapp"
    assert (await resolve("webapp", "db", project_name="shop")).project == "shop"


@needs_cli
async def test_the_project_services_and_top_level_definitions_come_along():
    web = await resolve("webapp", "web")
    assert set(web.project_services) == {"web", "worker", "db", "redis"}
    assert set(web.volumes) == {"pgdata", "redisdata"}


@needs_cli
async def test_referenced_files_are_read_for_translation():
    app = await resolve("secrets-configs", "app")
    contents = app.file_contents
    password = str(FIXTURES / "secrets-configs" / "secrets" / "db_password.txt")
    missing = str(FIXTURES / "secrets-configs" / "secrets" / "does-not-exist.txt")
    assert contents[password] == b"correct horse battery staple\n"
    assert contents[missing] == "No such file or directory"
    proxy = await resolve("volumes", "proxy")
    # A bind-mounted file is read; a bind-mounted directory is not.
    assert proxy.file_contents[str(FIXTURES / "volumes" / "nginx.conf")].startswith(b"events {}")
    assert str(FIXTURES / "volumes" / "static") not in proxy.file_contents


@needs_cli
async def test_a_whole_project_is_rendered_once():
    project = await resolve_project(None, FIXTURES / "webapp")
    assert project.name == "webapp"
    assert set(project.document["services"]) == {"web", "worker", "db", "redis"}
    db = project.service("db")
    assert db.project == "webapp" and db.file_contents == {}
    if not project.cli.prints_json:
        # v1 says on stderr what it ignores; the preview can show it.
        configs = await resolve_project(None, FIXTURES / "secrets-configs")
        assert any("configs" in line for line in configs.cli_warnings)


# -- errors a user reads ------------------------------------------------------------------


@needs_cli
async def test_a_file_that_does_not_parse_is_a_clear_error():
    with pytest.raises(PromoteError) as caught:
        await resolve("broken", "web")
    message = str(caught.value)
    assert message.startswith("compose file does not parse: ")
    # The CLI's own words, which say where.
    assert "expected ',' or ']'" in message or "did not find expected" in message


@needs_cli
async def test_a_missing_mandatory_variable_is_the_clis_message():
    with pytest.raises(PromoteError, match="API_URL must be set"):
        await resolve("missing-var", "app")


@needs_cli
async def test_a_missing_service_lists_the_services():
    with pytest.raises(PromoteError) as caught:
        await resolve("webapp", "frontend")
    assert str(caught.value) == "no service 'frontend' in project (services: db, redis, web, worker)"


@needs_cli
async def test_a_missing_compose_file_says_which():
    with pytest.raises(PromoteError, match=r"compose file .*nope\.yml does not exist"):
        await resolve("webapp", "web", files=[Path("nope.yml")])


# -- the running project's labels ----------------------------------------------------------


def test_files_from_v2_labels_are_absolute_and_comma_separated():
    files, workdir = compose_files_from_labels("/srv/shop/compose.yaml,/srv/shop/compose.override.yaml", "/srv/shop")
    assert files == [Path("/srv/shop/compose.yaml"), Path("/srv/shop/compose.override.yaml")]
    assert workdir == Path("/srv/shop")


def test_files_from_v1_labels_are_relative_to_the_working_dir():
    files, _ = compose_files_from_labels("docker-compose.yml, docker-compose.dev.yml", "/srv/shop")
    assert files == [Path("/srv/shop/docker-compose.yml"), Path("/srv/shop/docker-compose.dev.yml")]


def test_no_config_files_label_means_the_clis_defaults():
    assert compose_files_from_labels(None, "/srv/shop") == (None, Path("/srv/shop"))
    assert compose_files_from_labels("", "/srv/shop") == (None, Path("/srv/shop"))


def test_no_working_dir_label_is_an_error_that_says_what_to_do():
    with pytest.raises(PromoteError, match=r"give the compose file \(-f\)"):
        compose_files_from_labels("docker-compose.yml", None)


@needs_cli
@pytest.mark.docker
async def test_a_running_project_is_resolved_from_its_container_labels(compose_project, docker_client):
    project = compose_project({"api": sleeper_service(environment={"MODE": "labels"})})
    container = docker_client.containers.get(project.container_ids(docker_client, "api")[0])
    labels = container.labels
    files, workdir = compose_files_from_labels(labels.get("com.docker.compose.project.config_files"),
                                               labels.get("com.docker.compose.project.working_dir"))
    resolved = await resolve_service("api", files, workdir, project_name=labels["com.docker.compose.project"])
    assert resolved.service.project == project.name
    assert dict(resolved.service.config["environment"]) == {"MODE": "labels"}
    assert resolved.project_dir == project.dir


# -- the pure half ------------------------------------------------------------------------


def test_service_from_a_v2_json_document():
    # What `docker compose config --format json` prints (compose-go's canonical form).
    doc = json.loads("""{
      "name": "shop",
      "services": {
        "web": {
          "command": ["sh", "-c", "echo $$HOME"],
          "environment": {"A": "x$$y", "B": null},
          "image": "shop/web:1",
          "networks": {"default": null},
          "ports": [{"mode": "ingress", "target": 80, "published": "8080", "protocol": "tcp"}]
        }
      },
      "networks": {"default": {"name": "shop_default"}},
      "volumes": {"data": {"name": "shop_data"}}
    }""")
    web = service_from_config(doc, "web")
    assert web.project == "shop"
    assert web.config["command"] == ["sh", "-c", "echo $HOME"]
    assert web.config["environment"] == {"A": "x$y", "B": None}
    assert web.volumes == {"data": {"name": "shop_data"}}


def test_service_from_a_document_without_services_is_an_error():
    with pytest.raises(PromoteError, match="no services"):
        service_from_config({"version": "3"}, "web")


def test_default_project_name_follows_compose(tmp_path):
    weird = tmp_path / "My Project.v2"
    weird.mkdir()
    assert default_project_name(weird, environ={}) == "myprojectv2"
    assert default_project_name(weird, environ={"COMPOSE_PROJECT_NAME": "Shop"}) == "shop"
    (weird / ".env").write_text("# comment\nCOMPOSE_PROJECT_NAME='from-dotenv'\n")
    assert default_project_name(weird, environ={}) == "from-dotenv"


def test_reading_referenced_files_keeps_why_a_file_is_missing(tmp_path):
    (tmp_path / "pw.txt").write_bytes(b"pw")
    (tmp_path / "big.bin").write_bytes(b"x" * ((1 << 20) + 1))
    svc = service_from_config(
        {"services": {"app": {"secrets": ["pw", "big", "gone"], "volumes": [f"{tmp_path}:/data"]}},
         "secrets": {"pw": {"file": str(tmp_path / "pw.txt")}, "big": {"file": str(tmp_path / "big.bin")},
                     "gone": {"file": str(tmp_path / "gone.txt")}}},
        "app", project="p",
    )
    contents = read_referenced_files(svc).file_contents
    assert contents[str(tmp_path / "pw.txt")] == b"pw"
    assert contents[str(tmp_path / "big.bin")] == "larger than 1 MiB (the ConfigMap/Secret limit)"
    assert contents[str(tmp_path / "gone.txt")] == "No such file or directory"
    assert str(tmp_path) not in contents  # a bind-mounted directory is never read
