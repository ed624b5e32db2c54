"""The sweep configuration: a TOML file (tomllib) validated by pydantic, overridden by CLI flags.

    model = "models/tiny-llama-w8a8"      # directory with config.json (+ weights unless --endpoint)
    num_requests = 16                     # measured requests per run (defaults for every [[runs]])
    warmup = 2
    [server]                              # how vLLM is started (ignored with endpoint = "...")
    max_model_len = 2048
    [hardware]                            # overrides of detected / table values
    usd_per_hour = 0.10
    [[runs]]                              # one entry = one workload at one or more concurrencies
    workload = "prefill"
    input_tokens = 128
    concurrency = [1, 4]

Every table rejects unknown keys (a typo is an error, not a silently ignored setting). A run entry
expands to one `RunSpec` per concurrency (closed loop) or per request rate (Poisson); a spec's
`key()` is deterministic, so a sweep can tell which specs already have a complete run.
Pure: no I/O except `load_config`, which only reads the file.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bench.schema import Workload

DEFAULT_RESULTS = "results/runs"
DEFAULT_INPUT = {"prefill": 512, "decode": 8, "mixed": 70}
DEFAULT_OUTPUT = {"prefill": 1, "decode": 256, "mixed": 215}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSection(_Strict):
    endpoint: str | None = None  # measure an already running OpenAI-compatible server
    api_key_env: str | None = None  # NAME of the environment variable holding the key (never the key)
    served_name: str | None = None  # model name the server answers to (default: the model's name)
    quantization: str | None = None  # vLLM --quantization (compressed-tensors is auto-detected)
    dtype: str = "auto"  # bench.server.resolve_dtype: GPU -> vLLM auto; CPU -> bf16 if native, else float32
    max_model_len: int | None = Field(default=None, gt=0)
    max_num_seqs: int | None = Field(default=None, gt=0)
    tensor_parallel_size: int = Field(default=1, gt=0)
    enforce_eager: bool = True
    startup_timeout_s: float = Field(default=600, gt=0)
    extra_args: list[str] = Field(default_factory=list)

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_http_url(cls, v: str | None) -> str | None:
        if v is not None and not (v.startswith(("http://", "https://")) and len(v.split("://", 1)[1]) > 0):
            raise ValueError(f"endpoint {v!r}: must be an http:// or https:// URL, e.g. http://127.0.0.1:8000")
        return v


class HardwareSection(_Strict):
    """Overrides; anything left out comes from the GPU table (NVML) or the CPU micro-benchmarks."""

    name: str | None = None  # a table key / alias ("a100-40gb"), or a free name for --endpoint
    usd_per_hour: float | None = Field(default=None, ge=0)  # per device
    peak_flop_per_s: dict[str, float] = Field(default_factory=dict)  # dtype -> dense peak per device
    memory_bandwidth_bytes_per_s: float | None = Field(default=None, gt=0)


class RunEntry(_Strict):
    workload: Literal["prefill", "decode", "mixed", "distribution"]
    input_tokens: int | None = Field(default=None, gt=0)
    output_tokens: int | None = Field(default=None, gt=0)
    distribution_file: str | None = None
    concurrency: list[int] | None = None
    request_rate_per_s: list[float] | None = None
    num_requests: int | None = Field(default=None, gt=0)
    warmup: int | None = Field(default=None, ge=0)

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


class SweepConfig(_Strict):
    model: str | None = None
    model_name: str | None = None  # short name for paths (default: the directory name)
    results: str = DEFAULT_RESULTS
    num_requests: int = Field(default=16, gt=0)
    warmup: int = Field(default=2, ge=0)
    seed: int = 0
    slo_ttft_s: float | None = Field(default=None, gt=0)
    slo_tpot_s: float | None = Field(default=None, gt=0)
    server: ServerSection = Field(default_factory=ServerSection)
    hardware: HardwareSection = Field(default_factory=HardwareSection)
    runs: list[RunEntry] = Field(default_factory=list)

    def specs(self) -> list["RunSpec"]:
        """Every (workload, concurrency | rate) of the sweep, in file order."""
        out: list[RunSpec] = []
        for e in self.runs:
            wl = workload_of(e.workload, e.input_tokens, e.output_tokens, e.distribution_file)
            n = e.num_requests or self.num_requests
            w = self.warmup if e.warmup is None else e.warmup
            for c in e.concurrency or []:
                out.append(RunSpec(wl, "concurrency", c, None, n, w, self.seed))
            for r in e.request_rate_per_s or []:
                out.append(RunSpec(wl, "rate", None, float(r), n, w, self.seed))
        return out


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

    def as_dict(self) -> dict:
        return {
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
        return f"{w.kind}-{lengths}-{load}"

    def key(self) -> str:
        """Deterministic id of what is measured: label + 8 hex of the sha256 of the canonical spec
        (so the same workload with another request count or seed is another spec)."""
        canon = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return f"{self.label()}-{hashlib.sha256(canon.encode()).hexdigest()[:8]}"


class ConfigError(ValueError):
    """A config file or flag value that is not allowed; the message is one line for the CLI."""


def _one_line(err: ValidationError, where: str) -> str:
    e = err.errors()[0]
    loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
    got = e.get("input")
    got_s = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"{where}: {loc}: {e['msg']}{got_s}"


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
    and "concurrency" / "request_rate_per_s" / "num_requests" / "warmup" applied to every run."""
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
        elif key in ("num_requests", "warmup"):
            for run in data["runs"]:
                run[key] = None  # the flag's value applies to every run
            data[key] = value
        else:
            data[key] = value
    return parse_config(data, where="command line")
