"""What every exercise checker shares: the error a wrong answer raises and the calls that run a student's
function and compare its result with the reference.

A checker prints one line and returns True when the function is right; otherwise it raises
:class:`ExerciseError` (an ``AssertionError``) with a hint. A stub that still raises ``NotImplementedError`` is let
through unchanged, so student notebooks show exactly which exercises are left.
"""
from __future__ import annotations

from typing import Callable

import torch


class ExerciseError(AssertionError):
    """A student's answer is wrong; the message says how."""


def run(number: str, fn: Callable, *args):
    try:
        out = fn(*args)
    except NotImplementedError:
        raise
    except Exception as e:  # show the student's own error with context
        raise ExerciseError(f"Exercise {number}: your function raised {type(e).__name__}: {e}") from e
    if not isinstance(out, torch.Tensor):
        raise ExerciseError(f"Exercise {number}: return a torch.Tensor, got {type(out).__name__}")
    return out


def compare(number: str, got: torch.Tensor, want: torch.Tensor, mistakes: dict, what: str) -> bool:
    if got.shape != want.shape:
        raise ExerciseError(f"Exercise {number}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}. "
                            "Check how the per-example coefficient broadcasts against x (reshape it to (B, 1)).")
    if not torch.isfinite(got).all():
        raise ExerciseError(f"Exercise {number}: your result has NaN or inf values")
    if torch.allclose(got.double(), want.double(), rtol=1e-4, atol=1e-5):
        print(f"Exercise {number} passed: {what}")
        return True
    for hint, wrong in mistakes.items():
        if torch.allclose(got.double(), wrong.double(), rtol=1e-4, atol=1e-5):
            raise ExerciseError(f"Exercise {number}: close, but {hint}")
    err = float((got.double() - want.double()).abs().max())
    raise ExerciseError(f"Exercise {number}: wrong values (max abs error {err:.3g}). Expected {what}")


def call(number: str, fn: Callable, *args):
    """Like :func:`run`, for functions that return something other than one tensor."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise
    except Exception as e:
        raise ExerciseError(f"Exercise {number}: your function raised {type(e).__name__}: {e}") from e


def fail(number: str, message: str):
    raise ExerciseError(f"Exercise {number}: {message}")


def not_mask(x: torch.Tensor, mask_id: int) -> torch.Tensor:
    """Token ids drawn in 0..V-2, shifted past ``mask_id``: clean text that never contains [MASK]."""
    return x + (x >= mask_id).long()
