"""Files that must survive crashes and machines: training checkpoints and saved models.

Both are flax's msgpack serialization (the format of ``flax.serialization``, NumPy arrays
inside, no pickles of code) beside a JSON manifest, written atomically: to a temporary
file in the same folder, flushed to disk, then renamed over the old one, so a crash
mid-write leaves the previous file intact. Arrays are saved as host NumPy arrays, so a
model saved on a GPU loads on a CPU-only machine.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import serialization
from sklearn import preprocessing

CHECKPOINT_FORMAT = 1
MODEL_FORMAT = 2


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


@contextlib.contextmanager
def new_npy(path: str | os.PathLike, dtype, shape: tuple[int, ...]):
    """A writable memory map of a new ``.npy`` file of ``dtype`` and ``shape``, filled by the
    caller inside the ``with`` block: written under a temporary name and renamed to ``path``
    when the block ends (an error leaves ``path`` as it was; a memory map of the file before
    stays valid). Open the result with ``np.load(path, mmap_mode="r")``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
    yield out
    out.flush()
    del out
    os.replace(tmp, path)


def write_json(path: str | os.PathLike, obj) -> None:
    """Writes ``obj`` as indented JSON, atomically (a crash never leaves half a file)."""
    atomic_write(path, (json.dumps(obj, indent=2, default=_json_default) + "\n").encode())


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def host(tree):

    return jax.tree.map(np.asarray, jax.device_get(tree))


def state_dict(tree):
    """A pytree (flax train states included) as nested dicts of host NumPy arrays; None stays None."""
    return None if tree is None else serialization.to_state_dict(host(tree))


def from_bytes(data: bytes, *, what: str):
    """The nested dict of NumPy arrays in ``data``.

    Raises:
      ValueError: the bytes are not a readable msgpack file (truncated, corrupt).
    """
    try:
        return serialization.msgpack_restore(data)
    except Exception as e:  # msgpack raises several unrelated types on bad input
        raise ValueError(f"{what} is corrupt or not a jax_anomaly file ({type(e).__name__}: {e})") from None


def restore_into(template, state_dict, *, what: str):
    """``state_dict`` put back into the structure of ``template`` (a train state)."""

    try:
        restored = serialization.from_state_dict(template, state_dict)
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{what} does not match this model's structure: {e}") from None
    for (path, want), got in zip(
        jax.tree_util.tree_leaves_with_path(template), jax.tree.leaves(restored), strict=False
    ):
        if np.shape(want) != np.shape(got):
            raise ValueError(
                f"{what} does not match this model's structure: {jax.tree_util.keystr(path)} has "
                f"shape {np.shape(got)}, the model expects {np.shape(want)}"
            )
    return restored


def _read(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise ValueError(f"no {what} at {path}")
    try:
        return path.read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read {what} {path}: {e}") from None


# ---- training checkpoints (one file, replaced atomically) -------------------------------


def is_writer() -> bool:
    """Whether this process writes files (run folders, checkpoints): process 0 of a
    multi-process run (``jax.distributed``), whose files every process reads back."""
    return jax.process_index() == 0


def save_checkpoint(path: str | os.PathLike, *, state, meta: dict, best_state=None) -> None:
    """Writes a training checkpoint: the train state (parameters and optimiser state), the
    best state so far (early stopping) and ``meta`` (epoch, history, loop settings). Only the
    writer process (``is_writer``) writes; the others return."""
    if not is_writer():
        return
    payload = {
        "format": CHECKPOINT_FORMAT,
        "meta": json.dumps(meta),
        "state": state_dict(state),
        "best_state": state_dict(best_state),
    }
    atomic_write(path, serialization.msgpack_serialize(payload))


def load_checkpoint(path: str | os.PathLike, template) -> tuple[Any, Any, dict]:
    """Reads a checkpoint into the structure of ``template``.

    Returns:
      ``(state, best_state or None, meta)``.

    Raises:
      ValueError: no file, a corrupt file, or a state of another structure.
    """
    path = Path(path)
    what = f"checkpoint {path}"
    raw = from_bytes(_read(path, "checkpoint"), what=what)
    if not isinstance(raw, dict) or raw.get("format") != CHECKPOINT_FORMAT or "state" not in raw:
        raise ValueError(f"{what} is not a jax_anomaly checkpoint (format {CHECKPOINT_FORMAT})")
    state = restore_into(template, raw["state"], what=what)
    best = raw.get("best_state")
    best = None if best is None else restore_into(template, best, what=what)
    return state, best, json.loads(raw["meta"])


# ---- saved models (a folder: manifest.json + state.msgpack) -------------------------------


def save_model(path: str | os.PathLike, *, manifest: dict, params, state=None, scaler=None) -> Path:
    """Writes a fitted model folder: ``state.msgpack`` (parameters, optimiser state, and the
    scaler's arrays) and ``manifest.json`` (config, threshold, versions; written last, so a
    folder without it is an unfinished save)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    payload = {
        "params": state_dict(params),
        "state": state_dict(state),
        "scaler": scaler_to_dict(scaler),
    }
    atomic_write(path / "state.msgpack", serialization.msgpack_serialize(payload))
    atomic_write(
        path / "manifest.json", (json.dumps({"format": MODEL_FORMAT, **manifest}, indent=2) + "\n").encode()
    )
    return path


def load_model(path: str | os.PathLike) -> tuple[dict, dict]:
    """Reads a model folder. Returns ``(manifest, payload)`` with ``payload`` holding
    ``params``, ``state`` (a nested dict, or None) and ``scaler`` (a dict, or None).

    Raises:
      ValueError: a missing folder or file, or corrupt contents.
    """
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"no saved model at {path} (expected a folder written by save())")
    try:
        manifest = json.loads(_read(path / "manifest.json", "model manifest"))
    except json.JSONDecodeError as e:
        raise ValueError(f"model manifest {path / 'manifest.json'} is corrupt: {e}") from None
    if manifest.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path} holds model format {manifest.get('format')}, expected {MODEL_FORMAT}")
    payload = from_bytes(_read(path / "state.msgpack", "model state"), what=f"model state {path}")
    if not isinstance(payload, dict) or "params" not in payload:
        raise ValueError(f"model state {path / 'state.msgpack'} has no parameters")
    return manifest, payload


_SCALER_ATTRS = {
    "MinMaxScaler": ("min_", "scale_", "data_min_", "data_max_", "data_range_", "n_samples_seen_"),
    "StandardScaler": ("mean_", "scale_", "var_", "n_samples_seen_"),
}


def scaler_to_dict(scaler) -> dict | None:
    """A fitted scikit-learn MinMaxScaler or StandardScaler as plain arrays (no pickle)."""
    if scaler is None:
        return None
    kind = type(scaler).__name__
    if kind not in _SCALER_ATTRS:
        raise ValueError(f"cannot save a {kind}; supported scalers: {sorted(_SCALER_ATTRS)}")
    attrs = {
        a: np.asarray(getattr(scaler, a)) for a in _SCALER_ATTRS[kind] if getattr(scaler, a, None) is not None
    }
    return {"kind": kind, "params": json.dumps(scaler.get_params()), "attrs": attrs}


def scaler_from_dict(d: dict | None):
    if d is None:
        return None
    params = json.loads(d["params"])
    if "feature_range" in params:
        params["feature_range"] = tuple(params["feature_range"])
    scaler = getattr(preprocessing, d["kind"])(**params)
    for name, value in d["attrs"].items():
        setattr(scaler, name, value)
    scaler.n_features_in_ = len(next(iter(d["attrs"].values())))
    return scaler
