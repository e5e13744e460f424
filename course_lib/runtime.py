"""Seeding, determinism, device choice and progress bars.

Introduced in chapter 1 (section 0, "Setup"); every chapter starts with ``runtime.setup()``.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

_VALID_DEVICES = ("auto", "cpu", "cuda", "mps")


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch; return a ``torch.Generator`` seeded with ``seed``.

    Passing the returned generator explicitly to sampling functions keeps results independent of
    how many random numbers earlier cells consumed.
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))
    return torch.Generator().manual_seed(int(seed))


def make_deterministic() -> None:
    """Ask PyTorch for deterministic kernels (warn instead of failing where none exists)."""
    torch.use_deterministic_algorithms(True, warn_only=True)
    if hasattr(torch.backends, "cudnn"):
        torch.backends.cudnn.benchmark = False


def get_device(prefer: str | None = None) -> torch.device:
    """Choose where models run.

    Order of precedence: the ``prefer`` argument, then the ``COURSE_DEVICE`` environment variable
    (``./course test`` and ``./course run`` set it to ``cpu``, so regression references are always
    produced and checked on the CPU), then ``auto``: CUDA if available, else Apple MPS, else CPU.
    """
    choice = (prefer or os.environ.get("COURSE_DEVICE") or "auto").lower()
    if choice not in _VALID_DEVICES:
        raise ValueError(f"unknown device {choice!r}; choose one of {_VALID_DEVICES}")
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch.cuda.is_available() is False")
    if choice == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' was asked for but torch.backends.mps.is_available() is False")
    return torch.device(choice)


def progress(iterable=None, total: int | None = None, desc: str | None = None, **kwargs):
    """A tqdm progress bar (a widget in Jupyter, text in a terminal) for loops longer than ~2 s.

    Set ``COURSE_NO_PROGRESS=1`` to silence every bar.
    """
    from tqdm.auto import tqdm

    disable = os.environ.get("COURSE_NO_PROGRESS", "0") == "1"
    return tqdm(iterable, total=total, desc=desc, disable=disable, mininterval=0.5, **kwargs)


def setup(seed: int = 0, device: str | None = None, projector: bool = False):
    """One call at the top of each chapter: seed, determinism, plotting style, device.

    Returns ``(device, generator)``.
    """
    from . import viz

    gen = seed_everything(seed)
    make_deterministic()
    viz.use_style(projector=projector)
    return get_device(device), gen
