"""`brix engine-mock`: flags only; the server and its imports load inside run."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from brix.commands import Command, UsageError
from brix.logs import add_logging_flags

if TYPE_CHECKING:
    from engine_mock.model import Settings
    from engine_mock.profiles import Profile


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="HTTP port (OpenAI API, /metrics, /health)")
    parser.add_argument("--model", default="mock-model",
                        help="model name or path the engine serves (the first served name unless"
                             " --served-model-name is given)")
    parser.add_argument("--served-model-name", nargs="+", default=None, metavar="NAME",
                        help="names clients may use for the base model; the first is the model_name metric label")
    parser.add_argument("--gpu-type", default="A100",
                        help="built-in GPU profile: A10, L20, A100 or H100 (see engine_mock/README.md)")
    parser.add_argument("--profile", default=None, metavar="FILE",
                        help="AIBrix GPU profile JSON (e.g. ../shared/data/profiles/simulator-llama2-7b-a100.json);"
                             " fits the step-time coefficients to it, memory comes from --gpu-type")
    parser.add_argument("--max-loras", type=int, default=4, help="most LoRA adapters loaded at once")
    parser.add_argument("--check-lora-paths", action="store_true",
                        help="refuse a /v1/load_lora_adapter whose lora_path is a local path (/... or file://) that"
                             " does not exist, with vLLM's 404 'No adapter found'; off: any path loads")
    parser.add_argument("--kv-blocks", type=int, default=None,
                        help="KV cache blocks; default: sized from the GPU's memory like vLLM does")
    parser.add_argument("--block-size", type=int, default=16, help="tokens per KV cache block")
    parser.add_argument("--max-num-seqs", type=int, default=256, help="most sequences in one batch")
    parser.add_argument("--max-model-len", type=int, default=None,
                        help="context window (prompt + max_tokens); default 4096 (Llama-2)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="simulated seconds per wall second: 10 runs ten times faster than the modelled GPU")
    parser.add_argument("--seed", type=int, default=0,
                        help="default sampling seed: output text is a function of (prompt, seed)")
    parser.add_argument("--fail-rate", type=float, default=0.0,
                        help="TEST ONLY: fraction of generate requests answered with HTTP 500 (seeded)")
    parser.add_argument("--v0-metrics", action="store_true",
                        help="also export vllm:num_requests_swapped and vllm:cpu_cache_usage_perc, which only "
                             "vLLM's v0 engine had")
    parser.add_argument("--kv-pool", default="", metavar="URL",
                        help="shared KV block pool: kvcache://host:port[,host:port...] or redis://host:port/0?pool=NAME"
                             " (brix kvcache serve); on a local prefix miss the engine loads the pool's blocks, and"
                             " writes computed blocks back (see engine_mock/README.md)")
    parser.add_argument("--kv-pool-bandwidth", type=float, default=12.5, metavar="GB/S",
                        help="modelled pool transfer bandwidth in GB/s (12.5 = a 100 Gb/s RDMA NIC); a block costs"
                             " block_size x 512 KiB / bandwidth of TTFT")
    parser.add_argument("--kv-pool-value-bytes", type=int, default=4096,
                        help="bytes actually sent and stored per block (a stand-in for the real KV bytes)")
    parser.add_argument("--kv-pool-lookahead", type=int, default=2, metavar="N",
                        help="look a request up in the pool once fewer than N requests wait for admission (1 = only"
                             " when none waits: the latest lookup, but the engine admits nothing meanwhile)")
    add_logging_flags(parser)


def build_settings(args: argparse.Namespace) -> Settings:
    from engine_mock.model import Settings

    checks = [
        (1 <= args.port <= 65535, f"--port {args.port} is not a TCP port (1-65535)"),
        (args.max_loras >= 0, f"--max-loras must be >= 0, got {args.max_loras}"),
        (args.kv_blocks is None or args.kv_blocks >= 1, f"--kv-blocks must be >= 1, got {args.kv_blocks}"),
        (args.block_size >= 1, f"--block-size must be >= 1, got {args.block_size}"),
        (args.max_num_seqs >= 1, f"--max-num-seqs must be >= 1, got {args.max_num_seqs}"),
        (args.max_model_len is None or args.max_model_len >= 2,
         f"--max-model-len must be >= 2, got {args.max_model_len}"),
        (args.speed > 0, f"--speed must be > 0 (1 = real time), got {args.speed}"),
        (0.0 <= args.fail_rate <= 1.0, f"--fail-rate must be within [0, 1], got {args.fail_rate}"),
        (args.kv_pool_bandwidth > 0, f"--kv-pool-bandwidth must be > 0 GB/s, got {args.kv_pool_bandwidth}"),
        (args.kv_pool_value_bytes >= 8, f"--kv-pool-value-bytes must be >= 8, got {args.kv_pool_value_bytes}"),
        (args.kv_pool_lookahead >= 1, f"--kv-pool-lookahead must be >= 1, got {args.kv_pool_lookahead}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    if args.kv_pool:
        from kvcache.client import PoolURLError, parse_pool_url
        try:
            parse_pool_url(args.kv_pool)
        except PoolURLError as exc:
            raise UsageError(f"--kv-pool: {exc}") from None
    return Settings(
        port=args.port, host=args.host, model=args.model,
        served_model_names=tuple(args.served_model_name or ()), gpu_type=args.gpu_type,
        profile_path=args.profile, max_loras=args.max_loras,
        check_lora_paths=args.check_lora_paths, kv_blocks=args.kv_blocks,
        block_size=args.block_size, max_num_seqs=args.max_num_seqs, max_model_len=args.max_model_len,
        speed=args.speed, seed=args.seed, fail_rate=args.fail_rate, v0_metrics=args.v0_metrics,
        kv_pool=args.kv_pool, kv_pool_bandwidth=args.kv_pool_bandwidth * 1e9,
        kv_pool_value_bytes=args.kv_pool_value_bytes, kv_pool_lookahead=args.kv_pool_lookahead,
    )


def load_profile(settings: Settings) -> Profile:
    from pathlib import Path

    from engine_mock import profiles

    try:
        base = profiles.builtin(settings.gpu_type)
        if settings.profile_path:
            return profiles.load_aibrix_profile(Path(settings.profile_path), base)
        return base
    except profiles.ProfileError as exc:
        raise UsageError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    from brix import logs

    settings = build_settings(args)
    profile = load_profile(settings)
    logs.setup(args.log_level, args.log_format)
    from engine_mock import server

    return server.run(settings, profile)


COMMANDS: list[Command] = [
    Command(
        name="engine-mock",
        help="a vLLM-compatible inference engine simulator (OpenAI API, vLLM /metrics, LoRA, prefix cache)",
        add_arguments=add_arguments,
        run=run,
        description="Serves the OpenAI API like vLLM over a simulated continuous-batching engine whose step"
                    " times come from a GPU profile. No GPU needed. See engine_mock/README.md.",
    ),
]
