"""Artefacts: the results of the chapters' heavy sampling and evaluation runs, shipped in ``data/artefacts/``.

A chapter that needs 1,000 samples of a model does not draw them while you read. It loads a *bank* that
``./course artefacts NAME`` drew with the course's own code and the shipped checkpoints, and grades it live (with
the language's exact validator, or the chapter's metrics). Each artefact is one ``.npz`` file: its arrays and a
small record of the checkpoints it was drawn from (their sha256), how long it took and on what machine. Loading
refuses an artefact whose checkpoints are no longer the shipped ones, and names the command that remakes it.

Every artefact is drawn in batches, one after the other from one seeded generator, so its first batch can be
drawn again cheaply: ``./course artefacts --check NAME`` (run by ``tests/test_artefacts.py`` for every artefact)
redraws the first batch with the shipped code and checkpoints and compares it with the stored one, bit for bit.
Artefacts are made and checked in the course's pinned numerical mode (:data:`runtime.PINNED_ENV`), in which every
x86-64 CPU with AVX2 computes the same floats; the command sets it up by itself.

    ./course artefacts --list
    ./course artefacts ch2_samples            # (re)make one artefact (or --chapter 2, or --all)
    ./course artefacts --check ch2_samples    # redraw its first batch and compare

This module is the mechanism (storage, loading, checking). What each artefact contains, and how it is drawn, is
defined with the recipes of the checkpoints, in :mod:`course_lib.recipes`.
"""
from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import checkpoints, runtime

ARTEFACT_DIR = checkpoints.DATA_DIR / "artefacts"


class ArtefactError(ValueError):
    """An artefact is unknown, missing, or was made from checkpoints that are no longer the shipped ones."""


@dataclass(frozen=True)
class Artefact:
    """A registered artefact. ``make(first_batch)`` returns its arrays; with ``first_batch=True`` only the first
    batch of every array (the rows that ``check`` compares with the stored ones)."""
    name: str
    chapter: int
    about: str
    checkpoints: tuple[str, ...]
    make: Callable[[bool], dict]


REGISTRY: dict[str, Artefact] = {}


def artefact(name: str, chapter: int, about: str, uses: tuple[str, ...]):
    """Register the decorated ``make(first_batch) -> {key: array}`` function as artefact ``name``."""
    def register(make):
        REGISTRY[name] = Artefact(name, chapter, about, tuple(uses), make)
        return make
    return register


class Bank(dict):
    """An artefact's arrays (a dict ``{key: np.ndarray}``) and its record ``meta``."""

    def __init__(self, arrays: dict, meta: dict):
        super().__init__(arrays)
        self.meta = meta

    def describe(self) -> str:
        """One line: what the artefact is and how it was made."""
        m = self.meta
        made = ", ".join(f"{k} (sha256 {v[:10]}...)" for k, v in m["checkpoints"].items())
        return (f"artefact {m['name']}: {m['about']}; made by `./course artefacts {m['name']}` in "
                f"{m['seconds']:.0f} s on {m['threads']} threads, from {made}")


def entry(name: str) -> Artefact:
    """The registered artefact ``name``. The chapters' artefacts are defined (and registered) in
    :mod:`course_lib.recipes`, next to the recipes of the checkpoints they are drawn from."""
    if name not in REGISTRY:
        raise ArtefactError(f"unknown artefact {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def path_of(name: str) -> Path:
    return ARTEFACT_DIR / f"{name}.npz"


def load(name: str) -> Bank:
    """The shipped artefact ``name``, after checking that it was made from the shipped checkpoints."""
    path = path_of(name)
    if not path.exists():
        raise ArtefactError(f"artefact file {path} is missing; make it with: ./course artefacts {name}")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
        meta = json.loads(str(z["__meta__"]))
    shipped = checkpoints.read_manifest()
    for ck, sha in meta["checkpoints"].items():
        if sha != shipped.get(ck, {}).get("sha256"):
            raise ArtefactError(f"artefact {name} was made from another {ck} checkpoint than the shipped one; "
                                f"remake it with: ./course artefacts {name}")
    return Bank(arrays, meta)


def _as_arrays(out: dict) -> dict:
    return {k: (v.cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)) for k, v in out.items()}


def make(name: str) -> Bank:
    """Run artefact ``name`` in full and write ``data/artefacts/<name>.npz``. Call it in the pinned mode
    (``./course artefacts NAME`` does)."""
    e = entry(name)
    if runtime.pinnable() and not runtime.pinned():
        raise ArtefactError("artefacts are made in the pinned numerical mode: run ./course artefacts NAME")
    torch.set_num_threads(runtime.PINNED_THREADS)
    t0 = time.perf_counter()
    arrays = _as_arrays(e.make(False))
    seconds = time.perf_counter() - t0
    shipped = checkpoints.read_manifest()
    meta = {"name": name, "chapter": e.chapter, "about": e.about, "seconds": round(seconds, 1),
            "threads": runtime.PINNED_THREADS, "pinned": runtime.pinned(),
            "checkpoints": {ck: shipped[ck]["sha256"] for ck in e.checkpoints},
            "made_on": f"{platform.machine()} CPU, torch {torch.__version__}", "date": time.strftime("%Y-%m-%d")}
    ARTEFACT_DIR.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path_of(name), __meta__=np.array(json.dumps(meta)), **arrays)
    return Bank(arrays, meta)


def check(name: str) -> list[str]:
    """Redraw the first batch of artefact ``name`` and compare it with the stored rows; return the problems
    (empty: identical). In the pinned mode the comparison is exact. Elsewhere (ARM, or an x86 CPU without AVX2)
    floats may differ in their last bits, which can change a rare sample: there at least 90% of the rows must be
    identical and floats must agree to 1e-4."""
    stored, fresh = load(name), _as_arrays(entry(name).make(True))
    exact = runtime.pinned()
    problems = []
    for key, a in fresh.items():
        if key not in stored:
            problems.append(f"{key}: not in the stored artefact")
            continue
        b = stored[key][:len(a)]
        if a.dtype.kind == b.dtype.kind == "U":                 # text: the width of the dtype does not matter
            a, b = a.astype(object), b.astype(object)
        if a.shape != b.shape or a.dtype != b.dtype:
            problems.append(f"{key}: shape/dtype {a.shape} {a.dtype} vs stored {b.shape} {b.dtype}")
        elif exact and not np.array_equal(a, b):
            rows = int((a.reshape(len(a), -1) != b.reshape(len(b), -1)).any(1).sum())
            problems.append(f"{key}: {rows} of {len(a)} rows differ")
        elif not exact and np.issubdtype(a.dtype, np.floating) and not np.allclose(a, b, rtol=1e-4, atol=1e-4):
            problems.append(f"{key}: floats differ by up to {float(np.abs(a - b).max()):.2e}")
        elif not exact and not np.issubdtype(a.dtype, np.floating):
            same = float((a.reshape(len(a), -1) == b.reshape(len(b), -1)).all(1).mean())
            if same < 0.9:
                problems.append(f"{key}: only {same:.0%} of the rows are identical")
    return problems
