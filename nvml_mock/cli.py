"""`brix` subcommands of nvml_mock (flags only; heavy imports happen inside run)."""

from brix.commands import Command

COMMANDS: list[Command] = []
