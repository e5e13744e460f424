"""Interactive demos: a control panel plus a figure, with a static form for readers of exported pages.

Introduced in chapter 1, section 1 (first demo). House rules (COURSE_GUIDE section 6): a demo takes
precomputed arrays; its callback only indexes them and updates matplotlib artists in place
(``set_offsets``, ``set_data``, ``set_UVC``...). It never retrains or resamples.

To stay well inside the 50 ms budget on a laptop CPU, a demo draws its static parts (axes, ticks,
labels) once, and on each update redraws only its *animated* artists over that cached background
(matplotlib "blitting"), then encodes the frame as PNG into an ``ipywidgets.Image``. Text that
changes goes into an HTML caption under the figure. Every demo records how long each update took
(``demo.timings_ms``) and carries a stable DOM class (``demo-<name>``) for browser tests.
``demo.static(...)`` renders the same update path at a few control values into one frame-strip figure,
the form that survives in static HTML.
"""
from __future__ import annotations

import io
import time
from typing import Callable, Sequence

import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from . import viz


def new_figure(nrows: int = 1, ncols: int = 1, figsize=(6, 4), **kwargs):
    """A figure outside pyplot (so the notebook does not also show it inline), on an Agg canvas."""
    fig = Figure(figsize=figsize, dpi=plt.rcParams["figure.dpi"])
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, **kwargs)
    return fig, axes


class Demo(W.VBox):
    """A figure driven by controls. ``update(**values)`` mutates the ``animated`` artists and returns
    the caption text."""

    def __init__(self, name: str, title: str, controls: dict, fig, update: Callable[..., str | None],
                 animated: Sequence):
        self.name, self.title, self.fig, self._update = name, title, fig, update
        self.controls, self.animated = controls, list(animated)
        if not self.animated:
            raise ValueError("a demo needs at least one animated artist")
        self.image = W.Image(format="png", layout=W.Layout(max_width="100%"))
        self.caption = W.HTML()
        self.timings_ms: list[float] = []
        for key, c in controls.items():
            c.add_class(f"demo-control-{key}")
            c.observe(lambda _change: self.render(), names="value")
        self.image.add_class("demo-image")
        self.caption.add_class("demo-caption")
        header = W.HTML(f"<b>{title}</b>")
        super().__init__([header, W.HBox(list(controls.values())), self.image, self.caption])
        self.add_class(f"demo-{name}")
        for a in self.animated:
            a.set_animated(True)
        fig.canvas.draw()                         # everything static, once
        self._background = fig.canvas.copy_from_bbox(fig.bbox)
        self.render()

    def values(self) -> dict:
        return {k: c.value for k, c in self.controls.items()}

    def render(self) -> None:
        t0 = time.perf_counter()
        text = self._update(**self.values())
        canvas = self.fig.canvas
        canvas.restore_region(self._background)
        for a in self.animated:
            a.axes.draw_artist(a) if a.axes is not None else self.fig.draw_artist(a)
        buf = io.BytesIO()
        Image.fromarray(np.asarray(canvas.buffer_rgba())).save(buf, format="png", compress_level=1)
        self.image.value = buf.getvalue()
        if text is not None:
            self.caption.value = text
        self.timings_ms.append(1000 * (time.perf_counter() - t0))

    def set(self, **values) -> None:
        """Move controls programmatically (what a user's click does); each change re-renders once."""
        for k, v in values.items():
            if k not in self.controls:
                raise ValueError(f"demo {self.name!r} has no control {k!r}; controls: {list(self.controls)}")
            self.controls[k].value = v

    def static(self, settings: Sequence[dict], ncols: int | None = None, width: float = 4.0,
               titles: Sequence[str] | None = None):
        """Frame strip: render the demo at each settings dict (same update path) and tile the frames,
        each ``width`` inches wide, titled by ``titles`` (default: the control values).
        Returns a pyplot figure (shown inline by the notebook)."""
        if titles is not None and len(titles) != len(settings):
            raise ValueError("give one title per settings dict")
        saved = self.values()
        frames, captions = [], []
        for k, s in enumerate(settings):
            self.set(**s)
            frames.append(plt.imread(io.BytesIO(self.image.value), format="png"))
            captions.append(titles[k] if titles is not None else ", ".join(f"{a} = {v}" for a, v in s.items()))
        self.set(**saved)
        ncols = ncols or len(frames)
        nrows = int(np.ceil(len(frames) / ncols))
        h, w = frames[0].shape[:2]
        fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, (width * h / w + 0.35) * nrows), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, fr, c in zip(axes.flat, frames, captions):
            ax.imshow(fr)
            ax.set_title(c, fontsize=10)
        fig.tight_layout()
        return fig

    def __repr__(self) -> str:  # short text/plain for notebooks and nbval
        return f"<Demo {self.name}: {self.title}>"


def _slider(label: str, lo: int, hi: int, value: int, step: int = 1) -> W.IntSlider:
    return W.IntSlider(value=value, min=lo, max=hi, step=step, description=label, continuous_update=True,
                       layout=W.Layout(width="420px"))


# ------------------------------------------------------------------ chapter 1 demos
def noising_demo(x0, schedules: dict, seed: int = 0, step: int = 10) -> Demo:
    """(Demo 1a) Drag t: the 2-D cloud x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, beside alpha-bar_t and
    log SNR(t) of the chosen schedule with a marker at t. ``schedules`` maps names to NoiseSchedule."""
    names = list(schedules)
    T = schedules[names[0]].T
    x0 = np.asarray(x0, dtype=np.float64)
    if x0.ndim != 2 or x0.shape[1] != 2:
        raise ValueError(f"x0 must have shape (N, 2), got {x0.shape}")
    eps = np.random.RandomState(seed).randn(*x0.shape)
    ab = {n: s.alpha_bars.numpy() for n, s in schedules.items()}
    log_snr = {n: np.log10(a[1:] / (1 - a[1:])) for n, a in ab.items()}
    fig, (ax, ax2) = new_figure(1, 2, figsize=(8.4, 3.6))
    sc = ax.scatter(x0[:, 0], x0[:, 1], s=3, alpha=0.5, color=viz.COLORS["data"])
    ax.set(xlim=(-4, 4), ylim=(-4, 4), aspect="equal", title="$x_t$")
    ts = np.arange(T + 1)
    (l_ab,) = ax2.plot(ts, ab[names[0]], color=viz.COLORS["data"], label=r"$\bar\alpha_t$")
    ax3 = ax2.twinx()
    (l_snr,) = ax3.plot(ts[1:], log_snr[names[0]], color=viz.COLORS["model"], label=r"$\log_{10}$ SNR")
    ax2.set(xlabel="t", ylim=(-0.02, 1.02), xlim=(0, T))
    ax3.set(ylim=(-5.5, 4.5), ylabel=r"$\log_{10}$ SNR")
    ax3.grid(False)
    vline = ax2.axvline(0, color="k", lw=1.2)
    ax2.legend(handles=[l_ab, l_snr], loc="center right")
    fig.tight_layout()

    def update(t: int, schedule: str) -> str:
        a = ab[schedule][t]
        sc.set_offsets(np.sqrt(a) * x0 + np.sqrt(1 - a) * eps)
        l_ab.set_ydata(ab[schedule])
        l_snr.set_ydata(log_snr[schedule])
        vline.set_xdata([t, t])
        snr_t = "&infin;" if t == 0 else f"{a / (1 - a):.3g}"
        return (f"<b>{schedule}</b> schedule, t = {t}: &alpha;&#772; = {a:.4f}, signal scale &radic;&alpha;&#772; = "
                f"{np.sqrt(a):.3f}, noise scale = {np.sqrt(1 - a):.3f}, SNR = {snr_t}")

    controls = {"t": _slider("t", 0, T, 0, step),
                "schedule": W.Dropdown(options=names, value=names[0], description="schedule")}
    return Demo("noising", "Forward process: drag t", controls, fig, update, [sc, l_ab, l_snr, vline])


def trajectory_demo(trajectories: dict, n_paths: int = 25) -> Demo:
    """(Demo 1c) Scrub through reverse trajectories. ``trajectories`` maps a sampler name to
    ``(times, states)`` with states (K, N, 2), first x_T and last x_0 (all with the same K)."""
    names = list(trajectories)
    K = len(trajectories[names[0]][0])
    if any(len(v[0]) != K or len(v[1]) != K for v in trajectories.values()):
        raise ValueError("all trajectories must hold the same number of frames")
    data = {n: (list(ts), np.asarray(st)) for n, (ts, st) in trajectories.items()}
    fig, ax = new_figure(1, 1, figsize=(4.6, 4.4))
    st0 = data[names[0]][1]
    sc = ax.scatter(st0[0, :, 0], st0[0, :, 1], s=3, alpha=0.5, color=viz.SAMPLER_COLORS.get(names[0], viz.COLORS["model"]))
    paths = [ax.plot([], [], lw=0.8, alpha=0.7, color="k")[0] for _ in range(n_paths)]
    ax.set(xlim=(-4, 4), ylim=(-4, 4), aspect="equal")
    fig.tight_layout()

    def update(step: int, sampler: str) -> str:
        ts, st = data[sampler]
        sc.set_offsets(st[step])
        sc.set_color(viz.SAMPLER_COLORS.get(sampler, viz.COLORS["model"]))
        for i, p in enumerate(paths):
            p.set_data(st[: step + 1, i, 0], st[: step + 1, i, 1])
        return (f"<b>{sampler}</b>: frame {step} of {K - 1}, t = {ts[step]:.0f} "
                f"(frame 0 is pure noise x_T, frame {K - 1} the samples); black lines follow {n_paths} particles")

    controls = {"step": _slider("frame", 0, K - 1, 0),
                "sampler": W.Dropdown(options=names, value=names[0], description="sampler")}
    return Demo("trajectory", "Reverse process: scrub the trajectory", controls, fig, update, [sc] + paths)


def score_field_demo(grid: np.ndarray, times: Sequence[int], learned: np.ndarray, exact: np.ndarray,
                     log_density: np.ndarray, errors: Sequence[float]) -> Demo:
    """(Demo 1b) Learned versus exact score field over t. ``grid`` (G, G, 2); ``learned``/``exact``
    (len(times), G, G, 2); ``log_density`` (len(times), H, W) of q_t; ``errors`` the mean relative error."""
    learned, exact, log_density = np.asarray(learned), np.asarray(exact), np.asarray(log_density)
    if learned.shape != exact.shape or len(learned) != len(times) or len(log_density) != len(times):
        raise ValueError("learned, exact and log_density need one entry per time")

    def unit(v):
        return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)

    fig, axes = new_figure(1, 2, figsize=(8.4, 4.1))
    ext = (grid[..., 0].min(), grid[..., 0].max(), grid[..., 1].min(), grid[..., 1].max())
    ims, qs = [], []
    for ax, field, title, col in zip(axes, (exact, learned), ("exact score", "learned score"),
                                     (viz.COLORS["exact"], viz.COLORS["learned"])):
        ims.append(ax.imshow(log_density[0], origin="lower", extent=ext, cmap="Blues", aspect="equal"))
        u = unit(field[0])
        qs.append(ax.quiver(grid[..., 0], grid[..., 1], u[..., 0], u[..., 1], color=col, scale=28, width=0.005))
        ax.set_title(title)
        ax.grid(False)
    fig.tight_layout()

    def update(i: int) -> str:
        for im, q, field in zip(ims, qs, (exact, learned)):
            im.set_data(log_density[i])
            im.set_clim(log_density[i].max() - 8, log_density[i].max())
            u = unit(field[i])
            q.set_UVC(u[..., 0], u[..., 1])
        return (f"t = {times[i]} (t/T = {times[i] / 1000:.3f}): mean relative error ||s<sub>&theta;</sub> - s|| / ||s|| "
                f"over samples of q<sub>t</sub> = <b>{errors[i]:.3f}</b>. Arrows show directions; shading is log q<sub>t</sub>.")

    controls = {"i": _slider("t index", 0, len(times) - 1, 0)}
    return Demo("score", "Learned vs exact score field", controls, fig, update, ims + qs)


def digits_demo(times: Sequence[int], forward: np.ndarray, reverse: np.ndarray) -> Demo:
    """(Demo 1d) Digits: real digits noised to t (top) and one reverse run passing through t (bottom).
    ``forward``/``reverse``: (len(times), n, 8, 8) images in [0, 16]."""
    forward, reverse = np.asarray(forward), np.asarray(reverse)
    if forward.shape != reverse.shape or forward.ndim != 4 or len(forward) != len(times):
        raise ValueError("forward and reverse must both have shape (len(times), n, 8, 8)")
    n = forward.shape[1]
    fig, axes = new_figure(2, n, figsize=(0.95 * n, 2.1))
    ims = []
    for r, arr in enumerate((forward, reverse)):
        for j in range(n):
            ax = axes[r, j]
            ims.append((r, j, ax.imshow(np.clip(arr[0, j], 0, 16), cmap="gray_r", vmin=0, vmax=16)))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
    axes[0, 0].set_ylabel("forward", fontsize=8)
    axes[1, 0].set_ylabel("reverse", fontsize=8)
    fig.subplots_adjust(left=0.06, right=0.99, top=0.98, bottom=0.02, wspace=0.05, hspace=0.08)

    def update(i: int) -> str:
        for r, j, im in ims:
            im.set_data(np.clip((forward, reverse)[r][i, j], 0, 16))
        return (f"t = {times[i]}: top, real held-out digits noised to t; bottom, one DDPM reverse run "
                f"at the same t (it ends, at t = 0, in generated digits)")

    controls = {"i": _slider("t index", 0, len(times) - 1, 0)}
    return Demo("digits", "Digits: noising and denoising", controls, fig, update, [im for _, _, im in ims])
