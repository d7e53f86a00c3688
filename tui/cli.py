"""`ferryman` — the command line: the TUI by default, `status` for scripts and CI."""

from __future__ import annotations

import argparse
import asyncio
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
