"""Small trained checkpoints shipped in ``data/checkpoints/`` with a manifest.

``data/manifest.json`` records, for every checkpoint: its file,
sha256, the exact command that retrains it, the training time, the metrics it reached and the
model config. :func:`load_checkpoint` verifies the hash and, when the file is missing or corrupt,
raises :class:`CheckpointError` (a ``ValueError``) that names the retrain command.
"""
from __future__ import annotations

import hashlib
import json
import platform
import time
from pathlib import Path

import torch

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
MANIFEST = DATA_DIR / "manifest.json"


class CheckpointError(ValueError):
    """A checkpoint is unknown, missing, or does not match its manifest hash."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(manifest: Path = MANIFEST) -> dict:
    """The manifest as a dict ``{name: entry}`` (empty if there is no manifest yet)."""
    if not Path(manifest).exists():
        return {}
    try:
        return json.loads(Path(manifest).read_text())["checkpoints"]
    except (json.JSONDecodeError, KeyError) as e:
        raise CheckpointError(f"{manifest} is not a valid checkpoint manifest ({e})") from e


def write_json(path: Path, data) -> None:
    """Write a shipped result file (the stored comparisons under ``data/``) and say where."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
    print(f"wrote {path}")


def retrain_command(name: str) -> str:
    return f"./course retrain {name}"


def save_checkpoint(name: str, state_dict: dict, config: dict, metrics: dict, train_seconds: float,
                    manifest: Path = MANIFEST, notes: str = "") -> dict:
    """Write ``data/checkpoints/<name>.pt`` and record it in the manifest; return the entry."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"checkpoint name must be alphanumeric/underscore, got {name!r}")
    manifest = Path(manifest)
    path = manifest.parent / "checkpoints" / f"{name}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    torch.save({"state_dict": state, "config": config}, path)
    entry = {
        "file": str(path.relative_to(manifest.parent)),
        "sha256": sha256_of(path),
        "bytes": path.stat().st_size,
        "retrain": retrain_command(name),
        "train_seconds": round(float(train_seconds), 1),
        "trained_on": f"{platform.machine()} CPU, torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d"),
        "metrics": metrics,
        "config": config,
        "notes": notes,
    }
    all_entries = read_manifest(manifest)
    all_entries[name] = entry
    manifest.write_text(json.dumps({"checkpoints": dict(sorted(all_entries.items()))}, indent=2) + "\n")
    return entry


def load_checkpoint(name: str, manifest: Path = MANIFEST) -> tuple[dict, dict, dict]:
    """Load a shipped checkpoint after verifying its sha256.

    Returns ``(state_dict, config, manifest_entry)``. Raises :class:`CheckpointError` naming the
    retrain command if the name is unknown, the file is missing, or its hash does not match.
    """
    manifest = Path(manifest)
    entries = read_manifest(manifest)
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none"
        raise CheckpointError(f"unknown checkpoint {name!r} (known: {known}); "
                              f"to create it run: {retrain_command(name)}")
    entry = entries[name]
    path = manifest.parent / entry["file"]
    if not path.exists():
        raise CheckpointError(f"checkpoint file {path} is missing; retrain it with: {entry['retrain']}")
    digest = sha256_of(path)
    if digest != entry["sha256"]:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or was changed (sha256 {digest[:12]}... but the manifest "
            f"says {entry['sha256'][:12]}...); retrain it with: {entry['retrain']}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a file with the right hash should always load; be explicit if not
        raise CheckpointError(f"could not read {path} ({e}); retrain it with: {entry['retrain']}") from e
    return blob["state_dict"], blob["config"], entry


def load_model(name: str, build, manifest: Path | None = None):
    """A shipped model: :func:`load_checkpoint`, then ``build(config)`` (a function returning the untrained
    module for the stored config), the weights loaded, ``model.recipe = config``, eval mode. A config that does
    not build, or weights that do not fit it, raise :class:`CheckpointError` naming the retrain command.
    """
    state, config, entry = load_checkpoint(name) if manifest is None else load_checkpoint(name, manifest)
    try:
        model = build(config)
        model.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {name!r} does not match its recipe ({e}); "
                              f"retrain it with: {entry['retrain']}") from e
    model.recipe = config
    model.eval()
    return model
