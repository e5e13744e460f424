"""Seeding, determinism, device choice and progress bars.

Every chapter starts with ``runtime.setup()``.
"""
from __future__ import annotations

import inspect
import os
import platform
import random
import time

import numpy as np
import torch

from . import viz

_VALID_DEVICES = ("auto", "cpu", "cuda", "mps")

# The pinned numerical mode. CPUs differ in the code paths their libraries pick (AVX-512, AVX2, vendor-specific
# kernels), and so in the last bits of a float32 result. With these settings, in the environment before torch
# and numpy are imported, every x86-64 CPU with AVX2 (Intel or AMD, with or without AVX-512) runs the same code
# paths: PyTorch's own kernels in their AVX2 versions, Intel MKL (matrix products, exp and log) in its one
# vendor-neutral branch, NumPy without its AVX-512 loops. The course's artefacts are made and checked in this
# mode (``course_lib.artefacts``); it is slower (about 2x for training), so the chapters do not use it.
PINNED_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "COMPATIBLE",
    "NPY_DISABLE_CPU_FEATURES": "AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX AVX512_CLX AVX512_CNL "
                                "AVX512_ICL AVX512_SPR",
}
PINNED_THREADS = 2


def pinnable() -> bool:
    """True on an x86-64 CPU with AVX2 and FMA, where the pinned mode (:data:`PINNED_ENV`) applies."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return True                      # x86-64 without /proc (macOS, Windows): AVX2 since 2013
    return "avx2" in flags and "fma" in flags


def pinned() -> bool:
    """True if this process runs in the pinned numerical mode (:data:`PINNED_ENV` in its environment)."""
    return all(os.environ.get(k) == v for k, v in PINNED_ENV.items())


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


def machine() -> dict:
    """The machine a timing was measured on: CPU model, cores, architecture, Python, torch threads and the load."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "load_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None}


def below(value: float, bound: float) -> str:
    """Check that a round-off residual is below ``bound`` (``AssertionError`` if not, NaN included) and return
    the text ``"< 1e-12"`` to print. Round-off differs between CPUs in its digits, so the chapters print the
    bound a residual is checked against rather than the residual itself."""
    if not value < bound:
        raise AssertionError(f"residual {value:.3g} is not below {bound:g}")
    mantissa, exponent = f"{bound:.0e}".split("e")
    return f"< {mantissa}e{int(exponent)}"


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

    gen = seed_everything(seed)
    make_deterministic()
    viz.use_style(projector=projector)
    return get_device(device), gen


def show_source(fn) -> None:
    """Print a function's source, so that the code sits right under its equation in a chapter."""
    print(inspect.getsource(fn))


def timer():
    """A stopwatch: ``clock = timer()`` starts it, ``clock()`` is the seconds since then."""
    t0 = time.perf_counter()
    return lambda: time.perf_counter() - t0
