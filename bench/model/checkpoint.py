"""A prepared model directory: its prepared.json record, how it is built in place, what it came from.

Shared by bench.model.prepare (builds and passes through models) and bench.model.quantize (writes quantized
checkpoints); neither imports the other's internals for it. A prepared directory is never
overwritten: it is reused when its prepared.json records the same request, else the request is
refused. Directories are built in a temporary sibling and renamed into place, so a crash never
leaves a half-written model behind.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from core.physics import model_info_from_dir
from core.provenance import package_versions
from core.schema.base import load_file, save_file
from core.schema.prepared import PREPARED_FILE, PREPARED_SCHEMA_VERSION, PreparedRecord


class PrepareError(ValueError):
    """A request that cannot be honoured (bad value, existing directory, offline hub id)."""


def load_prepared(model_dir: str | Path) -> PreparedRecord | None:
    """The validated prepared.json of `model_dir`, or None when it has none (core.schema.run.SchemaError
    when it does not match the schema)."""
    path = Path(model_dir) / PREPARED_FILE
    if not path.is_file():
        return None
    return load_file(PreparedRecord, path)


def read_prepared(model_dir: str | Path) -> dict | None:
    """prepared.json of `model_dir` as a dict of what the file holds (validated), or None."""
    rec = load_prepared(model_dir)
    return None if rec is None else rec.model_dump(mode="json", exclude_unset=True)


def write_prepared(model_dir: str | Path, record: PreparedRecord) -> Path:
    """Write `record` as `model_dir`/prepared.json (atomically)."""
    return save_file(record, Path(model_dir) / PREPARED_FILE)


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def check_reuse(out_dir: Path, request: Mapping) -> bool:
    """True when ``out_dir`` already holds exactly this request (reuse it); False when it does
    not exist (build it). Raises PrepareError for anything else: never overwrite."""
    if not out_dir.exists():
        return False
    if not out_dir.is_dir():
        raise PrepareError(f"{out_dir} exists and is not a directory; choose another --out")
    if not any(out_dir.iterdir()):
        out_dir.rmdir()  # an empty directory holds nothing to lose
        return False
    prepared = read_prepared(out_dir)
    if prepared is None:
        raise PrepareError(
            f"{out_dir} exists without {PREPARED_FILE}; refusing to overwrite it (choose another --out or --name)"
        )
    if _canonical(prepared.get("request")) == _canonical(request):
        return True
    differ = sorted(
        k for k in set(request) | set(prepared.get("request") or {})
        if _canonical(request.get(k)) != _canonical((prepared.get("request") or {}).get(k))
    )
    raise PrepareError(
        f"{out_dir} holds a different prepared model (differs in: {', '.join(differ)}); "
        "refusing to overwrite it (choose another --out or --name, or delete it yourself)"
    )


@contextlib.contextmanager
def staged_dir(out_dir: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``out_dir``; on success rename it into place (atomic on one
    filesystem), on error remove it. A crash leaves only a ``.<name>.tmp-*`` directory."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        yield tmp
        if out_dir.exists():  # someone else finished the same directory meanwhile
            raise PrepareError(f"{out_dir} appeared while it was being built; refusing to overwrite it")
        umask = os.umask(0)
        os.umask(umask)
        # mkdtemp makes the directory (and safetensors its files) private; give them normal modes.
        for f in tmp.iterdir():
            f.chmod(0o666 & ~umask)
        tmp.chmod(0o777 & ~umask)
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def prepared_record(*, name: str, request: Mapping, model_dir: Path, built_by: str, **sections) -> PreparedRecord:
    """The prepared.json of ``model_dir`` (already containing config.json and weights)."""

    info = model_info_from_dir(model_dir, name=name)
    return PreparedRecord.model_validate({
        "schema_version": PREPARED_SCHEMA_VERSION,
        "kind": "bench.prepared_model",
        "name": name,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "built_by": built_by,
        "request": dict(request),
        "model": {
            "architecture": "LlamaForCausalLM",
            "num_layers": info.num_layers,
            "hidden_size": info.hidden_size,
            "num_attention_heads": info.num_attention_heads,
            "num_kv_heads": info.num_kv_heads,
            "head_dim": info.head_dim,
            "vocab_size": info.vocab_size,
            "params_total": info.params_total,
            "params_matmul": info.params_matmul,
            "params_provenance": "computed: core.physics.count_params from config.json",
            "weight_bytes": info.weight_bytes,
            "weight_bytes_provenance": "measured: tensor bytes in the safetensors files",
            "quantization": info.quantization,
            "matmul_dtype": info.matmul_dtype,
        },
        **sections,
        "packages": package_versions(),
    })


def source_fingerprint(src: str | Path) -> dict:
    """A cheap identity of a source model: its prepared.json request if it has one, else the
    sha256 of config.json and the names and sizes of its weight files (values not hashed)."""
    src = Path(src)
    prepared = read_prepared(src)
    if prepared is not None:
        return {"path": str(src.resolve()), "prepared_request": prepared.get("request")}
    digest = hashlib.sha256((src / "config.json").read_bytes())
    for f in sorted(src.iterdir()):
        if f.suffix in (".safetensors", ".bin") or f.name.endswith(".index.json"):
            digest.update(f"{f.name}:{f.stat().st_size}".encode())
    return {"path": str(src.resolve()), "sha256_config_and_weight_sizes": digest.hexdigest()}
