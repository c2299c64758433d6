"""LoRA adapters resident in the simulated engine, with vLLM's load/unload answers."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Adapter:
    name: str
    path: str
    created: int


class LoraError(Exception):
    def __init__(self, status: int, message: str, type_: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_


class LoraRegistry:
    """Up to `max_loras` adapters; loading one more is refused (unload one first)."""

    def __init__(self, max_loras: int, check_paths: bool = False) -> None:
        self.max_loras = max_loras
        self.check_paths = check_paths
        self._adapters: dict[str, Adapter] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._adapters

    def adapters(self) -> list[Adapter]:
        return list(self._adapters.values())

    def load(self, name: object, path: object, now: int, reserved: set[str]) -> str:
        if not isinstance(name, str) or not name or not isinstance(path, str) or not path:
            raise LoraError(400, "Both 'lora_name' and 'lora_path' must be provided.", "InvalidUserInput")
        if name in self._adapters:
            raise LoraError(400, f"The lora adapter '{name}' has already been loaded.", "InvalidUserInput")
        if name in reserved:
            raise LoraError(400, f"The lora adapter name '{name}' is the base model's served name;"
                            " pick another lora_name.", "InvalidUserInput")
        if self.max_loras <= 0:
            raise LoraError(400, "LoRA is not enabled: start engine-mock with --max-loras >= 1.", "InvalidUserInput")
        if len(self._adapters) >= self.max_loras:
            raise LoraError(400, f"Cannot load LoRA adapter '{name}': {len(self._adapters)} adapters are loaded,"
                            f" the --max-loras limit; unload one first.", "InvalidUserInput")
        local = path[len("file://"):] if path.startswith("file://") else path
        if self.check_paths and local.startswith("/") and not os.path.exists(local):
            # vLLM: "Loading lora <name> failed: No adapter found for <path>" as a 404 NotFoundError
            raise LoraError(404, f"Loading lora {name} failed: No adapter found for {local}", "NotFoundError")
        self._adapters[name] = Adapter(name, path, now)
        return f"Success: LoRA adapter '{name}' added successfully."

    def unload(self, name: object) -> str:
        if not isinstance(name, str) or not name:
            raise LoraError(400, "'lora_name' must be provided.", "InvalidUserInput")
        if name not in self._adapters:
            raise LoraError(404, f"The lora adapter '{name}' cannot be found.", "NotFoundError")
        del self._adapters[name]
        return f"Success: LoRA adapter '{name}' removed successfully."
