"""`ferryman` — the command line: the TUI by default, `status` for scripts and CI."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path

from backends.config import Config, ConfigError, load_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ferryman",
        description="A k9s-style control center for services in Docker Compose and k3s.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--readonly", action="store_true", default=None, help="hide every action that changes anything")
    add_connection_flags(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    status = sub.add_parser("status", help="print the workloads once, as a table or JSON")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for Docker and Kubernetes (default 10)")
    # `ferryman status -n shop` reads as naturally as `ferryman -n shop status`.
    add_connection_flags(status, argparse.SUPPRESS)
    promote = sub.add_parser("promote", help="promote a Compose service to Kubernetes (--dry-run: print the manifests)")
    promote.add_argument("service", metavar="SERVICE", help="the Compose service's name")
    promote.add_argument("-f", "--file", dest="files", action="append", type=Path, metavar="FILE",
                         help="compose file(s) (default: those of the service's containers, else ./compose.yaml…)")
    promote.add_argument("--project-directory", type=Path, metavar="DIR", help="where relative paths start")
    promote.add_argument("-p", "--project-name", metavar="NAME", help="the Compose project's name")
    promote.add_argument("--target-namespace", "--ns", dest="target_namespace", metavar="NS",
                         help="namespace to promote into (default: the project's name)")
    promote.add_argument("--image", metavar="REF", help="image to run instead of the service's (already delivered)")
    promote.add_argument("--dry-run", action="store_true", help="print the manifests (YAML) and the warnings; change nothing")
    promote.add_argument("--yes", action="store_true", help="promote without asking")
    promote.add_argument("--timeout", type=float, default=30.0,
                         help="seconds to wait for Docker and Kubernetes to connect (default 30)")
    add_connection_flags(promote, argparse.SUPPRESS)
    return parser


def add_connection_flags(parser: argparse.ArgumentParser, default: object = None) -> None:
    """Where to connect. On a subcommand the defaults are suppressed, so that a flag
    given before the subcommand is not reset by the subcommand's own default."""
    parser.add_argument("--config", type=Path, metavar="PATH", default=default,
                        help="config file (default: XDG config path)")
    parser.add_argument("--docker-host", metavar="URL", default=default,
                        help="Docker endpoint (default: DOCKER_HOST or the local socket)")
    parser.add_argument("--kubeconfig", metavar="PATH", default=default,
                        help="kubeconfig file(s) (default: KUBECONFIG or ~/.kube/config)")
    parser.add_argument("--context", metavar="NAME", default=default,
                        help="kubeconfig context (default: its current-context)")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", metavar="NS", default=default,
                       help="Kubernetes namespace to show (default: all)")
    scope.add_argument("-A", "--all-namespaces", action="store_true",
                       default=False if default is None else default, help="show every namespace")
    parser.add_argument("--no-kube", action="store_true", default=False if default is None else default,
                        help="Compose only: no Kubernetes connection")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.version:
        from tui.app import ferryman_version

        print(f"ferryman {ferryman_version()}")
        return 0
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"ferryman: {exc}", file=sys.stderr)
        return 2
    config = with_flags(config, args)
    if args.command == "status":
        return run_status(config, as_json=args.json, timeout=args.timeout)
    if args.command == "promote":
        return run_promote(config, args)
    return run_tui(config, readonly=args.readonly, config_path=args.config)


def with_flags(config: Config, args: argparse.Namespace) -> Config:
    """The config with the command line's choices on top (flags beat the file)."""
    if args.docker_host:
        config = config.model_copy(update={"docker": config.docker.model_copy(update={"host": args.docker_host})})
    kube: dict[str, object] = {}
    if args.kubeconfig:
        kube["kubeconfig"] = args.kubeconfig
    if args.context:
        kube["context"] = args.context
    if args.namespace:
        kube["namespace"] = args.namespace
    if args.all_namespaces:
        kube["namespace"] = None
    if args.no_kube:
        kube["enabled"] = False
    if kube:
        config = config.model_copy(update={"kubernetes": config.kubernetes.model_copy(update=kube)})
    return config


def run_status(config: Config, *, as_json: bool, timeout: float) -> int:
    from backends.headless import collect_status, status_json, status_table

    report = asyncio.run(collect_status(config, timeout=timeout))
    print(status_json(report) if as_json else status_table(report))
    for problem in report.problems:
        print(f"ferryman: {problem}", file=sys.stderr)
    return 1 if report.problems else 0


def run_promote(config: Config, args: argparse.Namespace) -> int:
    """`ferryman promote SERVICE --dry-run`: the manifests on stdout, warnings on stderr."""
    from backends.promote.plan import (
        ComposeSource,
        PromoteError,
        checklist_summary,
        find_source,
        make_plan,
        manifests_yaml,
        warnings_text,
    )

    if not args.dry_run and not args.yes:
        print("ferryman: promote changes the cluster and stops the Compose service: add --yes to go ahead, "
              "or --dry-run to see what it would apply", file=sys.stderr)
        return 2

    async def plan():  # noqa: ANN202
        if args.files or args.project_directory:
            # As Compose does: relative paths start at the first file's directory.
            files = [f.resolve() for f in args.files or []]
            first_dir = files[0].parent if files else Path.cwd()
            source = ComposeSource(files or None, args.project_directory or first_dir, args.project_name)
        else:
            found = await asyncio.to_thread(find_source, args.service, args.project_name,
                                            docker_host=config.docker.host)
            source = found or ComposeSource(None, Path.cwd(), args.project_name)
        return await make_plan(args.service, source, namespace=args.target_namespace, image=args.image)

    async def run() -> int:
        result = await plan()
        for line in warnings_text(result):
            print(line, file=sys.stderr)
        print(checklist_summary(result.translation.checklist), file=sys.stderr)
        if args.dry_run:
            print(manifests_yaml(result), end="")
            return 0
        return await promote_now(config, result, timeout=args.timeout)

    try:
        return asyncio.run(run())
    except PromoteError as exc:
        print(f"ferryman: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # The pipeline undid its work before the interrupt got here.
        print("ferryman: interrupted; nothing was left half-done", file=sys.stderr)
        return 130


async def promote_now(config: Config, plan, *, timeout: float) -> int:  # noqa: ANN001 - a promote.plan.Plan
    """`promote --yes`: the same pipeline as `p` in the TUI, with a hub of our own (the
    forwards it starts live as long as this process: it stays in the foreground, like
    `kubectl port-forward`, until Ctrl-C, which stops them)."""
    from backends.headless import build_hub
    from backends.model import ConnState, Source
    from backends.promote.pipeline import promote
    from backends.promote.plan import promotion_plan

    hub = build_hub(config)
    runner = asyncio.create_task(hub.run())
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not all((s := hub.store.status.get(src)) is not None and s.state == ConnState.CONNECTED
                      for src in (Source.COMPOSE, Source.K3S)):
            if asyncio.get_running_loop().time() > deadline or runner.done():
                said = "; ".join(s.message or str(s.state) for s in hub.store.status.values())
                print(f"ferryman: Docker and Kubernetes must both be connected to promote ({said})", file=sys.stderr)
                return 1
            await asyncio.sleep(0.1)
        settings = config.promote
        pipeline_plan = promotion_plan(plan, settings)
        workload = pipeline_plan.workload
        result = await promote(hub, pipeline_plan, timeout=settings.rollout_timeout_seconds,
                               on_progress=lambda p: print(f"{p.step}: {p.state}" + (f" — {p.detail}" if p.detail
                                                                                    else ""), file=sys.stderr))
        urls = ", ".join(pf.spec.url for pf in result.forwards)
        print(f"ferryman: {workload} promoted to namespace {plan.namespace}", file=sys.stderr)
        if not result.forwards:
            return 0
        print(f"ferryman: forwarding {urls} to the cluster; Ctrl-C stops the forwards "
              "(`ferryman` restores them when it starts)", file=sys.stderr)
        await asyncio.Event().wait()
        return 0
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


def run_tui(config: Config, *, readonly: bool | None, config_path: Path | None = None) -> int:
    from backends.config import forwards_path, user_config_path
    from backends.headless import build_hub
    from tui.app import FerrymanApp

    forwards_file = forwards_path(Path(config_path) if config_path else user_config_path())
    app = FerrymanApp(build_hub(config), config, readonly=readonly, freeze_startup=True, forwards_file=forwards_file)
    app.run()
    # Quitting leaves no listener behind: the hub's forwards were closed with the app.
    return 0


if __name__ == "__main__":
    sys.exit(main())
