"""The `brix` command line: one argparse parser with a subcommand per component.

Each component package owns a light `cli.py` that only declares flags (it must not import
heavy modules such as grpc or ortools at import time) and exposes `COMMANDS`, a list of
`brix.commands.Command`. The list of component CLIs below is the one place that says what
exists — no import-time registration magic.

Every flag can also come from the environment, scoped to its subcommand: `brix gateway --port`
reads `BRIX_GATEWAY_PORT`, `brix device-plugin --metrics-port` reads
`BRIX_DEVICE_PLUGIN_METRICS_PORT`. A flag given on the command line wins over the environment.
There is no bare `BRIX_<FLAG>`: subcommands share flag names with different meanings (`--model`,
`--config`, `--nodes`), and Kubernetes injects service-link variables into pods (a Service named
`brix` puts `BRIX_PORT=tcp://10.96.0.10:8888` into every container of its namespace). A Service
named `brix-gateway` would inject `BRIX_GATEWAY_PORT=tcp://...`; values of that exact shape in a
`..._PORT` variable are ignored with a note on stderr (set `enableServiceLinks: false`, as every
manifest in deploy/ does).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

from brix import __version__
from brix.commands import Command, UsageError

# Component CLIs, in the order `brix --help` lists them.
COMPONENT_CLIS = (
    "brix.up_cli",
    "scheduler_ext.cli",
    "scheduler_ext.profile_cli",
    "deviceplugin.cli",
    "nvml_mock.cli",
    "engine_mock.cli",
    "gateway.cli",
    "brix.node_agent.cli",
    "controllers.cli",
    "kvcache.cli",
)

ENV_PREFIX = "BRIX_"

# Packages only an extra of pyproject.toml installs -> that extra (the base install is the GPU
# node's: device plugin, diagnose, nvml-mock).
EXTRA_OF_PACKAGE = {"ortools": "scheduler", "numpy": "all", "kubernetes": "all", "kopf": "controllers",
                    "httptools": "gateway", "redis": "gateway", "uvloop": "all"}


def load_commands() -> list[Command]:
    commands: list[Command] = []
    for module_name in COMPONENT_CLIS:
        module = importlib.import_module(module_name)
        commands.extend(module.COMMANDS)
    return commands


# What Kubernetes (and Docker links) write into <SERVICE>_PORT: never a value for a Brix flag.
_SERVICE_LINK = re.compile(r"(tcp|udp|sctp)://[^/\s]+:\d+")


def env_var_for(command: str, dest: str) -> str:
    """The environment variable of one subcommand's flag: (gateway, metrics_port) -> BRIX_GATEWAY_METRICS_PORT."""
    return ENV_PREFIX + f"{command}_{dest}".upper().replace("-", "_")


def is_service_link(name: str, raw: str) -> bool:
    """True for a Kubernetes service-link variable such as BRIX_GATEWAY_PORT=tcp://10.96.0.10:8888."""
    return name.endswith("_PORT") and _SERVICE_LINK.fullmatch(raw.strip()) is not None


class _Parser(argparse.ArgumentParser):
    """argparse that ends every usage error with where to look for the right flags (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\nRun '{self.prog} --help' to see every flag and its default.\n")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every flag's default and its environment variable (scoped to `command`)."""

    def __init__(self, prog: str, *args: object, command: str = "", **kwargs: object) -> None:
        super().__init__(prog, *args, **kwargs)  # type: ignore[arg-type]  # argparse's own arguments, passed through
        self._command = command

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.option_strings and action.dest not in ("help", "version"):
            if "%(default)" not in text and action.default is not argparse.SUPPRESS:
                text += " (default: %(default)s)"
            text += f" [env {env_var_for(self._command, action.dest)}]"
        return text


def _apply_env_defaults(parser: argparse.ArgumentParser, command: str,
                        environ: os._Environ[str] | dict[str, str]) -> None:
    """Turn BRIX_<COMMAND>_<FLAG> environment variables into parser defaults, validated like flags."""
    for action in parser._actions:  # argparse has no public accessor for its actions
        if not action.option_strings or action.dest in ("help", "version"):
            continue
        name = env_var_for(command, action.dest)
        if name not in environ:
            continue
        raw = environ[name]
        if is_service_link(name, raw):
            print(f"{parser.prog}: note: ignoring {name}={raw!r}: it is a Kubernetes service-link variable "
                  f"(a Service named {name[:-len('_PORT')].lower().replace('_', '-')}), not a value for "
                  f"{action.option_strings[0]}; set enableServiceLinks: false in the pod spec", file=sys.stderr)
            continue
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            truthy = raw.strip().lower() in ("1", "true", "yes", "on")
            falsy = raw.strip().lower() in ("0", "false", "no", "off", "")
            if not (truthy or falsy):
                parser.error(f"environment variable {name}={raw!r} is not a boolean; use true or false")
            value: object = truthy if isinstance(action, argparse._StoreTrueAction) else not truthy
        elif isinstance(action, argparse._AppendAction) or action.nargs in ("*", "+"):
            parts = [p for p in raw.split(",") if p.strip()]
            value = [_convert(parser, action, name, p.strip()) for p in parts]
        else:
            value = _convert(parser, action, name, raw)
        action.default = value
        action.required = False


def _convert(parser: argparse.ArgumentParser, action: argparse.Action, name: str, raw: str) -> object:
    converter = action.type or str
    try:
        value = converter(raw)  # type: ignore[operator]  # an Action's type is a callable or a registry name; argparse calls it the same way
    except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
        parser.error(f"environment variable {name}={raw!r} is invalid for {action.option_strings[0]}: {exc}")
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(map(str, action.choices))
        parser.error(f"environment variable {name}={raw!r} is not one of: {choices}")
    return value


def build_parser(commands: Sequence[Command] | None = None) -> tuple[argparse.ArgumentParser, dict[str, Command]]:
    commands = list(commands) if commands is not None else load_commands()
    parser = _Parser(
        prog="brix",
        description=(
            "Brix: Kubernetes extensions for cheap, fast LLM inference on GPU clusters, "
            "and a local mock-GPU cluster (`brix up`) that runs all of it on loopback.\n"
            "Every flag can also be set with an environment variable scoped to its subcommand, "
            "BRIX_<COMMAND>_<FLAG>: for example BRIX_GATEWAY_PORT=8888 for `brix gateway --port 8888`."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"brix {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>", parser_class=_Parser)
    by_name: dict[str, Command] = {}
    version_parser = sub.add_parser("version", help="print the Brix version and exit")
    version_parser.set_defaults(_command="version")
    for command in commands:
        child = sub.add_parser(
            command.name,
            help=command.help,
            description=command.description or command.help,
            formatter_class=functools.partial(_HelpFormatter, command=command.name),
        )
        command.add_arguments(child)
        child.set_defaults(_command=command.name)
        by_name[command.name] = command
    return parser, by_name


def main(argv: Sequence[str] | None = None) -> int:
    parser, by_name = build_parser()
    args_list = list(sys.argv[1:] if argv is None else argv)
    # Env defaults must be applied to the chosen subparser before it parses its flags.
    children = _subparsers(parser)
    if args_list and args_list[0] in children:
        _apply_env_defaults(children[args_list[0]], args_list[0], os.environ)
    args, unknown = parser.parse_known_args(args_list)
    if unknown:
        chosen_parser = children.get(args_list[0]) if args_list else None
        (chosen_parser or parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    chosen = getattr(args, "_command", None)
    if chosen is None:
        parser.print_help()
        return 2
    if chosen == "version":
        print(f"brix {__version__}")
        return 0
    command = by_name[chosen]
    try:
        return int(command.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except UsageError as exc:
        print(f"brix {chosen}: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        extra = EXTRA_OF_PACKAGE.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"brix {chosen}: error: this command needs the Python package {exc.name!r}, which the base "
              f"install leaves out (it is what the brix-node image has): pip install 'brix[{extra}]', "
              f"or run the full brix image", file=sys.stderr)
        return 2


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


if __name__ == "__main__":
    sys.exit(main())
