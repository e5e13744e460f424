"""The course's visual language: one palette and one matplotlib style for every chapter.

The colour roles are fixed course-wide so that a reader who
learns them once reads every later figure at a glance: ``[MASK]`` is always grey, prompt tokens
always blue, freshly unmasked tokens (M2T) green, edited tokens (T2T) orange, "AR" always purple
and "diffusion" always teal.
"""
from __future__ import annotations

import io

import matplotlib

import matplotlib.pyplot as plt

COLORS = {
    # chapter 1 (continuous diffusion)
    "data": "#4C72B0",
    "model": "#DD8452",
    "exact": "#2CA02C",
    "learned": "#D62728",
    "noise": "#8C8C8C",
    # chapters 2-4 (tokens): fixed roles across the course
    "mask": "#9E9E9E",
    "prompt": "#1F77B4",
    "m2t": "#2CA02C",
    "t2t": "#FF7F0E",
    "ar": "#7B3FA0",
    "diffusion": "#17A2B8",
}
#: sequential colour map for confidences / probabilities, course-wide
CONFIDENCE_CMAP = "viridis"
#: one colour per sampler, used by every sampler comparison in chapter 1
SAMPLER_COLORS = {
    # hues that no course-wide role uses (not the data blue, model orange, exact green, learned red, AR purple,
    # diffusion teal, mask grey): a sampler's colour means only that sampler
    "DDPM": "#E377C2",
    "DDIM": "#BCBD22",
    "reverse SDE": "#8C564B",
    "PF-ODE": "#E6AB02",
    "Langevin": "#5F6B7A",
    "flow matching": "#2F2F2F",
    "data": COLORS["data"],
}

_BASE = {
    "figure.dpi": 80,
    "savefig.dpi": 80,
    "figure.facecolor": "white",
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 10,
    "axes.titlesize": 11,
    "legend.fontsize": 9,
    "lines.linewidth": 1.8,
    "image.cmap": CONFIDENCE_CMAP,
}
_PROJECTOR = {
    "figure.dpi": 96,              # figures drawn 1.2x larger (and sharper) than in the chapters, text included
    "savefig.dpi": 96,
    "font.size": 16,
    "axes.titlesize": 18,
    "axes.labelsize": 16,
    "legend.fontsize": 14,
    "xtick.labelsize": 14,
    "ytick.labelsize": 14,
    "lines.linewidth": 3.5,
    "lines.markersize": 9,
    "axes.linewidth": 1.6,
    "grid.alpha": 0.45,
}
_DARK = {
    "figure.facecolor": "#111111",
    "axes.facecolor": "#111111",
    "savefig.facecolor": "#111111",
    "text.color": "white",
    "axes.labelcolor": "white",
    "axes.edgecolor": "white",
    "xtick.color": "white",
    "ytick.color": "white",
    "grid.color": "#777777",
}


def use_style(projector: bool = False, dark: bool = False) -> None:
    """Apply the course style; ``projector=True`` for large fonts and thick lines (lectures)."""
    plt.rcParams.update(matplotlib.rcParamsDefault)
    plt.rcParams.update(_BASE)
    if projector:
        plt.rcParams.update(_PROJECTOR)
    if dark:
        plt.rcParams.update(_DARK)


def projector(enable: bool = True, dark: bool = False) -> None:
    """Projector mode for lecture halls: ``viz.projector()``; ``viz.projector(False)`` undoes it."""
    use_style(projector=enable, dark=dark)


def fig_to_png(fig, dpi: int | None = None) -> bytes:
    """Render a figure to PNG bytes (used by the demos, which show frames in an Image widget)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi or fig.dpi, metadata={"Software": None})
    return buf.getvalue()
