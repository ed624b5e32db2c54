"""The sweep configuration: a TOML file (tomllib) validated by pydantic, overridden by CLI flags.

    model = "models/tiny-llama-w8a8"      # directory with config.json (+ weights unless --endpoint)
    num_requests = 16                     # measured requests per run (defaults for every [[runs]])
    warmup = 2
    [server]                              # how vLLM is started (ignored with endpoint = "...")
    max_model_len = 2048                  # also: max_num_seqs, tensor/pipeline/data_parallel_size,
                                          # distributed_executor_backend = "ray", port, endpoint = [..]
    [hardware]                            # overrides of detected / table values
    usd_per_hour = 0.10
    [[runs]]                              # one entry = one workload at one or more concurrencies
    workload = "prefill"
    input_tokens = 128
    concurrency = [1, 4]

Every table rejects unknown keys (a typo is an error, not a silently ignored setting), every number
must be finite (`inf`, `nan` refused), and a request rate must let a run's arrivals end within
MAX_RUN_S. Errors are one line naming the key (or, for values from the command line, the flag). A run entry
expands to one `RunSpec` per concurrency (closed loop) or per request rate (Poisson); a spec's
`key()` is deterministic, so a sweep can tell which specs already have a complete run.
Pure: no I/O except `load_config`, which only reads the file (bench.run.sweep.check_inputs reads the
distribution files a config names).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from core.schema.base import Finite  # allow_inf_nan=False: `inf` / `nan` in TOML or a flag is an error
from core.schema.run import Workload

DEFAULT_RESULTS = "results/runs"
DEFAULT_INPUT = {"prefill": 512, "decode": 8, "mixed": 70}
DEFAULT_OUTPUT = {"prefill": 1, "decode": 256, "mixed": 215}


MAX_RUN_S = 7 * 24 * 3600.0  # a request rate must let a run's arrivals fit in a week


class ServerSection(Finite):
    """How the server is started (or which running servers are measured). The one declaration of
    each server setting: bench.server.process.vllm_command / VllmServer take this section, the CLI flags are
    made from `SERVER_FLAGS`, and run.json records the parallel layout from it."""

    endpoint: str | list[str] | None = None  # measure already running OpenAI-compatible server(s)
    api_key_env: str | None = None  # NAME of the environment variable holding the key (never the key)
    served_name: str | None = None  # model name the server answers to (default: the model's name)
    quantization: str | None = None  # vLLM --quantization (compressed-tensors is auto-detected)
    dtype: str = "auto"  # bench.server.process.resolve_dtype: GPU -> vLLM auto; CPU -> bf16 if native, else float32
    max_model_len: int | None = Field(default=None, gt=0)
    max_num_seqs: int | None = Field(default=None, gt=0)
    tensor_parallel_size: int = Field(default=1, gt=0)
    pipeline_parallel_size: int = Field(default=1, gt=0)
    data_parallel_size: int = Field(default=1, gt=0)
    distributed_executor_backend: Literal["mp", "ray", "uni", "external_launcher"] | None = None
    enforce_eager: bool = True
    prefix_caching: bool = False  # a cached prefix skips prefill and would inflate prefill MFU
    # Where the engine runs on a CPU host (bench.server.args.cpu_layout_ids): "shared", every core for the
    # engine's threads with the API server and the load client floating over them; "apart", the engine's
    # threads on their own core(s) and the API server and client on the others, as on a GPU node (the
    # engine on the device, host work on the host CPU). Ignored on a GPU.
    cpu_layout: Literal["shared", "apart"] = "shared"
    port: int | None = Field(default=None, gt=0, lt=65536)  # None: a free port picked by the OS
    startup_timeout_s: float = Field(default=600, gt=0)
    stop_timeout_s: float = Field(default=30, gt=0)
    extra_args: list[str] = Field(default_factory=list)

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_http_url(cls, v: str | list[str] | None) -> str | list[str] | None:
        for url in [v] if isinstance(v, str) else (v or []):
            if not (url.startswith(("http://", "https://")) and len(url.split("://", 1)[1]) > 0):
                raise ValueError(f"endpoint {url!r}: must be an http:// or https:// URL, e.g. http://127.0.0.1:8000")
        if isinstance(v, list) and not v:
            raise ValueError("endpoint = []: give at least one URL, or leave endpoint out")
        if isinstance(v, list) and len(set(v)) != len(v):
            raise ValueError(f"endpoint {v!r}: the same URL twice")
        return v

    @property
    def endpoints(self) -> list[str]:
        """The endpoint URLs ([] when bench starts vLLM itself)."""
        return [self.endpoint] if isinstance(self.endpoint, str) else list(self.endpoint or [])

    def devices(self) -> int:
        """Devices one deployment uses: tensor x pipeline x data parallel."""
        return self.tensor_parallel_size * self.pipeline_parallel_size * self.data_parallel_size


# [server] keys that are also command-line flags: key -> (flag, argparse kwargs besides type).
# bench.cli adds them (add_server_args) and reads them back (server_overrides).
SERVER_FLAGS: dict[str, tuple[str, dict]] = {
    "endpoint": ("--endpoint", dict(metavar="URL", action="append",
                                    help="measure this running OpenAI-compatible server instead of starting vLLM; "
                                         "repeat for several endpoints of one deployment (load split across them)")),
    "api_key_env": ("--api-key-env", dict(metavar="NAME", help="environment variable holding the endpoint's API key (never written)")),
    "served_name": ("--served-name", dict(metavar="NAME", help="model name the server answers to")),
    "quantization": ("--quantization", dict(metavar="Q", help="vLLM --quantization (compressed-tensors W8A8 is auto-detected)")),
    "dtype": ("--dtype", dict(metavar="DTYPE", help="vLLM --dtype (default auto: bfloat16 or float32 on a CPU)")),
    "max_model_len": ("--max-model-len", dict(metavar="N")),
    "max_num_seqs": ("--max-num-seqs", dict(metavar="N")),
    "tensor_parallel_size": ("--tensor-parallel-size", dict(metavar="N")),
    "pipeline_parallel_size": ("--pipeline-parallel-size", dict(metavar="N")),
    "data_parallel_size": ("--data-parallel-size", dict(metavar="N")),
    "distributed_executor_backend": ("--distributed-executor-backend",
                                     dict(choices=("mp", "ray", "uni", "external_launcher"),
                                          help="vLLM's executor for multi-GPU/multi-node serving, e.g. ray")),
    "port": ("--port", dict(metavar="PORT", help="port for the vLLM server bench starts (default: a free one)")),
    "cpu_layout": ("--cpu-layout", dict(choices=("shared", "apart"),
                                        help="CPU host: engine threads on every core (shared) or on their own "
                                             "core(s), API server and load client on the others (apart)")),
}


class HardwareSection(Finite):
    """Overrides; anything left out comes from the GPU table (NVML) or the CPU micro-benchmarks."""

    name: str | None = None  # a table key / alias ("a100-40gb"), or a free name for --endpoint
    usd_per_hour: float | None = Field(default=None, ge=0)  # per device
    peak_flop_per_s: dict[str, float] = Field(default_factory=dict)  # dtype -> dense peak per device
    memory_bandwidth_bytes_per_s: float | None = Field(default=None, gt=0)


class RunEntry(Finite):
    workload: Literal["prefill", "decode", "mixed", "distribution"]
    input_tokens: int | None = Field(default=None, gt=0)
    output_tokens: int | None = Field(default=None, gt=0)
    distribution_file: str | None = None
    concurrency: list[int] | None = None
    request_rate_per_s: list[float] | None = None
    num_requests: int | None = Field(default=None, gt=0)
    warmup: int | None = Field(default=None, ge=0)
    repeats: int | None = Field(default=None, gt=0)  # replicates of each spec (default: the top-level repeats)

    @model_validator(mode="after")
    def _one_mode(self):
        if (self.concurrency is None) == (self.request_rate_per_s is None):
            raise ValueError("give exactly one of concurrency = [..] or request_rate_per_s = [..]")
        for c in self.concurrency or []:
            if c < 1:
                raise ValueError(f"concurrency {c!r}: must be a positive integer")
        for r in self.request_rate_per_s or []:
            if not r > 0:
                raise ValueError(f"request_rate_per_s {r!r}: must be > 0")
        if self.workload == "distribution" and not self.distribution_file:
            raise ValueError("workload 'distribution' needs distribution_file")
        if self.workload == "prefill" and self.output_tokens not in (None, 1):
            raise ValueError(f"prefill runs have output_tokens = 1, got {self.output_tokens}")
        return self


class SweepConfig(Finite):
    model: str | None = None
    model_name: str | None = None  # short name for paths (default: the directory name)
    results: str = DEFAULT_RESULTS
    num_requests: int = Field(default=16, gt=0)
    warmup: int = Field(default=2, ge=0)
    seed: int = 0
    # Replicates of every spec (a [[runs]] entry may override): between-run variation (machine state,
    # scheduling) is what a profile's interval must cover, and one run per point cannot show it.
    repeats: int = Field(default=1, gt=0)
    # Adaptive stopping (bench.run.adaptive): more replicates of a closed-loop point until the 95 % interval
    # of its mean device-seconds per request is within +- until_width of the mean (None: off).
    until_width: float | None = Field(default=None, gt=0, lt=1)
    max_repeats: int = Field(default=8, ge=2)
    max_extend_s: float = Field(default=600.0, gt=0)
    order_seed: int | None = None  # seed of the randomised run order (default: seed); recorded in run.json
    slo_ttft_s: float | None = Field(default=None, gt=0)
    slo_tpot_s: float | None = Field(default=None, gt=0)
    server: ServerSection = Field(default_factory=ServerSection)
    hardware: HardwareSection = Field(default_factory=HardwareSection)
    runs: list[RunEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rates_give_finite_runs(self):
        # n requests at rate r arrive over ~n/r seconds: 1e-300/s is "valid" but never ends
        for i, e in enumerate(self.runs):
            n = e.num_requests or self.num_requests
            for r in e.request_rate_per_s or []:
                if n / r > MAX_RUN_S:
                    raise ValueError(
                        f"runs.{i}.request_rate_per_s: {r:g} requests/s makes {n} requests take ~{n / r:.3g} s; "
                        f"allowed: a finite rate >= {n / MAX_RUN_S:.3g} requests/s (a run's arrivals within a week)"
                    )
        return self

    def specs(self) -> list["RunSpec"]:
        """Every (workload, concurrency | rate, replicate) of the sweep, in file order (replicates of
        a point next to each other)."""
        out: list[RunSpec] = []
        for e in self.runs:
            wl = workload_of(e.workload, e.input_tokens, e.output_tokens, e.distribution_file)
            n = e.num_requests or self.num_requests
            w = self.warmup if e.warmup is None else e.warmup
            reps = e.repeats or self.repeats
            for c in e.concurrency or []:
                out += [RunSpec(wl, "concurrency", c, None, n, w, self.seed, k) for k in range(reps)]
            for r in e.request_rate_per_s or []:
                out += [RunSpec(wl, "rate", None, float(r), n, w, self.seed, k) for k in range(reps)]
        return out

    @property
    def run_order_seed(self) -> int:
        return self.seed if self.order_seed is None else self.order_seed

    def ordered_specs(self) -> list["RunSpec"]:
        """`specs` in the order a sweep measures them: a seeded random permutation (`run_order_seed`),
        so slow drifts of the machine (heat, other load) do not line up with one workload or
        concurrency, and replicates of a point are spread over the sweep."""
        return shuffled(self.specs(), self.run_order_seed)


def shuffled(specs: list["RunSpec"], seed: int) -> list["RunSpec"]:
    """A seeded permutation (numpy's PCG64; the same seed and specs give the same order)."""
    import numpy as np

    perm = np.random.default_rng(seed).permutation(len(specs))
    return [specs[i] for i in perm]


def workload_of(kind: str, input_tokens: int | None, output_tokens: int | None,
                distribution_file: str | None = None) -> Workload:
    """A Workload with the defaults filled in: prefill P=512 G=1, decode P=8 G=256, mixed 70/215."""
    if kind == "distribution":
        return Workload(kind=kind, distribution_file=distribution_file)
    return Workload(
        kind=kind,
        input_tokens=input_tokens or DEFAULT_INPUT[kind],
        output_tokens=1 if kind == "prefill" else (output_tokens or DEFAULT_OUTPUT[kind]),
    )


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: a workload at one concurrency (closed loop) or one request rate."""

    workload: Workload
    mode: Literal["concurrency", "rate"]
    concurrency: int | None
    request_rate_per_s: float | None
    num_requests: int
    warmup_requests: int
    seed: int
    replicate: int = 0  # 0, 1, ... for the repeats of one point (same prompts, another run)

    def as_dict(self) -> dict:
        # replicate 0 has the key of a spec before replicates existed (its complete runs are reused)
        rep = {"replicate": self.replicate} if self.replicate else {}
        return {**rep, 
            "workload": self.workload.model_dump(),
            "mode": self.mode,
            "concurrency": self.concurrency,
            "request_rate_per_s": self.request_rate_per_s,
            "num_requests": self.num_requests,
            "warmup_requests": self.warmup_requests,
            "seed": self.seed,
        }

    def label(self) -> str:
        """Readable part of the key: `prefill-p128-g1-c4`, `mixed-p70-g215-r2.5`."""
        w = self.workload
        lengths = (
            f"p{w.input_tokens}-g{w.output_tokens}"
            if w.kind != "distribution"
            else Path(w.distribution_file or "dist").stem
        )
        load = f"c{self.concurrency}" if self.mode == "concurrency" else f"r{self.request_rate_per_s:g}"
        return f"{w.kind}-{lengths}-{load}" + (f"-rep{self.replicate}" if self.replicate else "")

    def key(self) -> str:
        """Deterministic id of what is measured: label + 8 hex of the sha256 of the canonical spec
        (so the same workload with another request count or seed is another spec)."""
        canon = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return f"{self.label()}-{hashlib.sha256(canon.encode()).hexdigest()[:8]}"


class ConfigError(ValueError):
    """A config file or flag value that is not allowed; the message is one line for the CLI."""


# where a config key came from when it was given as a flag (for messages about the command line)
_FLAGS = {
    "model": "--model", "model_name": "--model-name", "results": "--results", "num_requests": "--num-requests",
    "warmup": "--warmup", "seed": "--seed", "repeats": "--repeats", "slo_ttft_s": "--slo-ttft-s", "slo_tpot_s": "--slo-tpot-s",
    "until_width": "--until-width", "max_repeats": "--max-repeats", "max_extend_s": "--max-extend-s",
    "workload": "--workload", "input_tokens": "--input-tokens", "output_tokens": "--output-tokens",
    "distribution_file": "--distribution-file", "concurrency": "--concurrency",
    "request_rate_per_s": "--request-rate", "hardware.name": "--hardware-name",
    "hardware.usd_per_hour": "--usd-per-hour", "hardware.peak_flop_per_s": "--peak-flop-per-s",
    "hardware.memory_bandwidth_bytes_per_s": "--memory-bandwidth",
    **{f"server.{k}": flag for k, (flag, _) in SERVER_FLAGS.items()},
}  # fmt: skip


def flag_for(loc: tuple | list) -> str | None:
    """The command-line flag of a config location, e.g. ("runs", 0, "request_rate_per_s", 1) -> "--request-rate"."""
    parts = [str(p) for p in loc if not isinstance(p, int) and not str(p).isdigit()]
    if parts[:1] == ["runs"]:
        parts = parts[1:]
    for n in range(len(parts), 0, -1):
        flag = _FLAGS.get(".".join(parts[:n]))
        if flag:
            return flag
    return None


def _one_line(err: ValidationError, where: str) -> str:
    e = err.errors()[0]
    loc, msg = tuple(e["loc"]), e["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    head, sep, rest = msg.partition(": ")
    if not loc and sep and "." in head and " " not in head:  # a model check naming its key: "runs.0.x: ..."
        loc, msg = tuple(head.split(".")), rest
    name = ".".join(str(p) for p in loc) or "(top level)"
    if where == "command line" and loc:
        name = flag_for(loc) or name
    got = e.get("input")
    got_s = "" if isinstance(got, (dict, BaseModel)) or not loc or e["loc"] == () else f" (got {got!r})"
    return f"{where}: {name}: {msg}{got_s}"


def parse_config(data: dict, where: str = "config") -> SweepConfig:
    try:
        return SweepConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_one_line(err, where)) from None


def load_config(path: str | Path) -> SweepConfig:
    """Read and validate a TOML sweep config; ConfigError (one line) on any problem."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"--config {str(p)!r}: no such file") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"--config {str(p)!r}: not valid TOML: {err}") from None
    return parse_config(data, where=str(p))


def with_overrides(cfg: SweepConfig, overrides: dict) -> SweepConfig:
    """A copy of `cfg` with CLI values applied (a flag beats the file). `overrides` keys:
    top-level fields, "server.<field>", "hardware.<field>", "runs" (a list replacing the file's),
    and "concurrency" / "request_rate_per_s" / "num_requests" / "warmup" / "repeats" applied to every run."""
    data = cfg.model_dump()
    for key, value in overrides.items():
        if value is None:
            continue
        if key.startswith(("server.", "hardware.")):
            section, field = key.split(".", 1)
            if field == "peak_flop_per_s":
                data[section][field] = {**data[section][field], **value}
            else:
                data[section][field] = value
        elif key in ("concurrency", "request_rate_per_s"):
            other = "request_rate_per_s" if key == "concurrency" else "concurrency"
            for run in data["runs"]:
                run[key], run[other] = value, None
        elif key in ("num_requests", "warmup", "repeats"):
            for run in data["runs"]:
                run[key] = None  # the flag's value applies to every run
            data[key] = value
        else:
            data[key] = value
    return parse_config(data, where="command line")
