"""Which XID an event set receives next: pure bookkeeping over the config (no I/O, no clock).

An event set remembers what it has delivered; `next_xid` returns the next XID of a card the set
registered for nvmlEventTypeXidCriticalError: the card's static `crictl_xid` values first (in
card order), then `[[xid_events]]` by sequence number. Each is delivered once per set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pynvml

from nvml_mock.model import NodeConfig


@dataclass
class EventSetState:
    masks: dict[int, int] = field(default_factory=dict)  # card index -> registered event types
    delivered: set[tuple[str, int, int]] = field(default_factory=set)
    freed: bool = False

    def register(self, index: int, event_types: int) -> None:
        self.masks[index] = self.masks.get(index, 0) | event_types


def next_xid(state: EventSetState, config: NodeConfig) -> tuple[int, int] | None:
    """(card index, XID) of the next undelivered event, marked delivered; None when there is none."""
    xid_bit = pynvml.nvmlEventTypeXidCriticalError
    wanted = {i for i, mask in state.masks.items() if mask & xid_bit and i < len(config.gpus)}
    if not wanted:
        return None
    for index in sorted(wanted):
        for position, xid in enumerate(config.gpus[index].crictl_xid):
            key = ("crictl", index, position)
            if key not in state.delivered:
                state.delivered.add(key)
                return index, xid
    for event in config.xid_events:
        key = ("event", event.seq, 0)
        if event.gpu in wanted and key not in state.delivered:
            state.delivered.add(key)
            return event.gpu, event.xid
    return None
