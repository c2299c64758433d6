"""`brix` subcommands of gateway (flags only; heavy imports happen inside run)."""

from brix.commands import Command

COMMANDS: list[Command] = []
