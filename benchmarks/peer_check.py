"""Peer cross-check: this project's client and vLLM's own `vllm bench serve` against one vLLM server,
with prompts of the same lengths, the same output length, concurrency and warm-ups (bench.load.peer).

    .venv/bin/python benchmarks/peer_check.py                       # CPU: serves models/tiny-llama-h512-l4-w8a8
    .venv/bin/python benchmarks/peer_check.py --rounds 5 --mode alternating
    .venv/bin/python benchmarks/peer_check.py --endpoint http://gpu-node:8000 --served-name llama --model /ckpt/llama

Prints, per mode, the medians of each tool over the rounds, the median per-round difference and
its range (the noise), and writes every figure to --out (default
results/peer/<hardware>-<model>-<mode>.json; an existing file is never overwritten: a new one gets a
time stamp). Without --endpoint it starts a vLLM server for --model (prepared with
`python -m bench prepare` when it is the default and missing) and stops it at the end.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.hardware.microbench import cpu_count, cpu_hardware_name, cpu_isa_tier, cpu_model_name  # noqa: E402
from bench.load import peer  # noqa: E402
from core.files import write_json_atomic  # noqa: E402
from core.provenance import git_commit, package_versions, vllm_version  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "models" / "tiny-llama-h512-l4-w8a8"
PEER_SCHEMA_VERSION = 1  # results/peer/*.json: workload, rows, ours, peer, mode, agrees, provenance


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="model directory (tokenizer; weights unless --endpoint)")
    ap.add_argument("--endpoint", help="a running server's base URL (default: start one for --model)")
    ap.add_argument("--served-name", default="peer-check")
    ap.add_argument("--input-tokens", type=int, default=64)
    ap.add_argument("--output-tokens", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--num-requests", type=int, default=96)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--mode", choices=(*peer.MODES, "both"), default="both")
    ap.add_argument("--hardware-name", help="default: this CPU's name (bench.hardware.microbench)")
    ap.add_argument("--out", type=Path, help="JSON file (default results/peer/<hardware>-<model>-<mode>.json)")
    ap.add_argument("--work", type=Path, default=REPO / "results" / "peer" / "work",
                    help="where the raw files of both tools go (git-ignored)")
    args = ap.parse_args(argv)
    try:
        workload = peer.PeerWorkload(args.input_tokens, args.output_tokens, args.concurrency, args.num_requests)
    except ValueError as exc:
        ap.error(str(exc))
    if args.rounds < 1:
        ap.error(f"--rounds {args.rounds}: must be >= 1")
    modes = peer.MODES if args.mode == "both" else (args.mode,)
    hardware = args.hardware_name or cpu_hardware_name(cpu_model_name(), cpu_count(), cpu_isa_tier())

    if args.endpoint is None and not args.model.exists():
        if args.model != DEFAULT_MODEL:
            ap.error(f"--model {str(args.model)!r}: no such directory")
        import subprocess

        subprocess.run([sys.executable, "-m", "bench", "prepare"], cwd=REPO, check=True)  # the default tiny model
    server = None
    if args.endpoint is None:
        from bench.server.process import VllmServer

        args.work.mkdir(parents=True, exist_ok=True)
        server = VllmServer(args.model, served_name=args.served_name, log_path=args.work / "server.log",
                            max_model_len=max(1024, args.input_tokens + args.output_tokens),
                            max_num_seqs=max(16, 2 * args.concurrency), seed=0, startup_timeout_s=900)
    try:
        if server is not None:
            server.start()
        url = args.endpoint or server.base_url
        for mode in modes:
            t0 = time.perf_counter()
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            check = peer.cross_check(url, args.served_name, args.model, workload, args.work / f"{mode}-{stamp}",
                                     rounds=args.rounds, mode=mode)
            wall = time.perf_counter() - t0
            print(check.table())
            print(f"({wall:.0f} s)\n")
            out = args.out if args.out and len(modes) == 1 else \
                REPO / "results" / "peer" / f"{hardware}-{args.model.name}-{mode}.json"
            if out.exists():
                out = out.with_name(f"{out.stem}-{stamp}.json")
            write_json_atomic(out, {
                "schema_version": PEER_SCHEMA_VERSION, "kind": "peer cross-check", "hardware": hardware,
                "model": args.model.name, **check.to_dict(),
                "provenance": {
                    "kind": "measured", "created_utc": stamp, "wall_s": round(wall, 1),
                    "command": "python benchmarks/peer_check.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                    "git_commit": git_commit(REPO), "vllm": vllm_version(), "packages": package_versions(),
                    "endpoint": args.endpoint or "a vLLM server started for --model",
                },
            })  # fmt: skip
            print(f"wrote {out}")
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
