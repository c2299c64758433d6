"""Generate the Python stubs of the kubelet device plugin API (deviceplugin/api/api.proto).

    .venv/bin/python hack/gen_proto.py            # writes deviceplugin/api/api_pb2*.py(i)
    .venv/bin/python hack/gen_proto.py --out DIR  # writes into DIR (the freshness test uses this)

Uses grpcio-tools (protoc bundled as a Python module), then rewrites the absolute
`import api_pb2` that protoc emits into a relative import so `deviceplugin.api` is importable
as a package.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "deviceplugin" / "api"
PROTO = "api.proto"
GENERATED = ("api_pb2.py", "api_pb2_grpc.py")


def generate(out_dir: Path) -> list[Path]:
    from grpc_tools import protoc  # dev dependency, only needed here

    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        str(PROTO_DIR / PROTO),
    ]
    code = protoc.main(args)
    if code != 0:
        raise SystemExit(f"gen_proto: protoc failed with exit code {code} on {PROTO_DIR / PROTO}")
    grpc_file = out_dir / "api_pb2_grpc.py"
    text = grpc_file.read_text()
    fixed = re.sub(r"^import api_pb2 as api__pb2$", "from . import api_pb2 as api__pb2", text, flags=re.M)
    if fixed == text:
        raise SystemExit(f"gen_proto: expected `import api_pb2 as api__pb2` in {grpc_file}; protoc output changed")
    grpc_file.write_text(fixed)
    return [out_dir / name for name in GENERATED]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=PROTO_DIR, help="folder to write the stubs into")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(f"gen_proto: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
