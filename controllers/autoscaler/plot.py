"""A small PNG line chart of demand and replicas over time, with no plotting library (zlib + struct)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping, Sequence

_COLOURS = {"demand": (150, 150, 150), "HPA": (214, 39, 40), "KPA": (31, 119, 180), "APA": (44, 160, 44)}
_OTHER = (148, 103, 189)


def write_chart(path: str, rps: Sequence[float], replicas: Mapping[str, Sequence[int]], pod_capacity: float,
                width: int = 1200, height: int = 400) -> None:
    """Demand (as pods' worth: rps / pod capacity, grey) and each strategy's replicas over time.

    Colours: HPA red, KPA blue, APA green; the y axis runs from 0 to the largest value."""
    series = {"demand": [r / pod_capacity for r in rps], **{k: [float(v) for v in vs] for k, vs in replicas.items()}}
    top = max(1.0, *(max(s) for s in series.values() if s))
    n = max(len(s) for s in series.values())
    pixels = bytearray(b"\xff" * (width * height * 3))

    def put(x: int, y: int, c: tuple[int, int, int]) -> None:
        if 0 <= x < width and 0 <= y < height:
            i = (y * width + x) * 3
            pixels[i:i + 3] = bytes(c)
    for name, values in series.items():
        colour = _COLOURS.get(name, _OTHER)
        prev = None
        for x in range(width):
            lo, hi = x * n // width, max(x * n // width + 1, (x + 1) * n // width)
            chunk = values[lo:hi]
            if not chunk:
                continue
            y = height - 1 - int(max(chunk) / top * (height - 1))
            a, b = (y, y) if prev is None else (min(prev, y), max(prev, y))
            for yy in range(a, b + 1):
                put(x, yy, colour)
            prev = y
    raw = b"".join(b"\x00" + bytes(pixels[r * width * 3:(r + 1) * width * 3]) for r in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
    with open(path, "wb") as fh:
        fh.write(png)
