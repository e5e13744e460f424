"""Argument checks shared by the library's public entry points: each raises a ``ValueError`` that says what was
expected and what came. The checks live at the edges (functions a reader or a notebook calls), not inside the
per-step math those functions run.
"""
from __future__ import annotations

import math

import numpy as np
import torch


def check_int(value, name: str, lo: int = 1) -> int:
    """``value`` as an ``int`` if it is an integer >= ``lo`` (a bool is not)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def check_scale(value, name: str) -> float:
    """``value`` as a ``float`` if it is a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def check_unit(value, name: str) -> float:
    """``value`` as a ``float`` if it lies in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return float(value)


def check_eps(eps) -> float:
    """``eps`` as a ``float`` if it lies in [0, 1) (the smallest masking rate of LLaDA's forward process)."""
    if not (isinstance(eps, (int, float)) and 0.0 <= eps < 1.0):
        raise ValueError(f"eps must lie in [0, 1), got {eps!r}")
    return float(eps)


def check_tokens(x, name: str) -> torch.Tensor:
    """``x`` if it is a (B, L) long tensor of non-negative token ids."""
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.dtype != torch.long:
        raise ValueError(f"{name} must be a (B, L) long tensor, got "
                         f"{getattr(x, 'dtype', type(x).__name__)} of shape {tuple(getattr(x, 'shape', ()))}")
    if x.numel() and int(x.min()) < 0:
        raise ValueError(f"{name} holds negative token ids")
    return x
