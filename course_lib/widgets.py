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


# ------------------------------------------------------------------ chapter 2 demos
_INK = "#222222"            # an unchanged word
_SPECIAL_TOKENS = ("[PAD]", "[EOS]")
_MAX_WORD_CHARS = 9


def _esc(s: str) -> str:
    """HTML-escape a token for a caption."""
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _short(word: str, n: int = _MAX_WORD_CHARS) -> str:
    """A word cut to at most ``n`` characters (with an ellipsis), so that it fits its cell."""
    return word if len(word) <= n else word[: n - 1] + "\u2026"


def _lines_for(n_words: int, per_line: int = 8) -> tuple[int, int]:
    """(number of lines, words per line) to lay out ``n_words`` at most ``per_line`` a line, balanced."""
    n_lines = max(1, int(np.ceil(n_words / per_line)))
    return n_lines, int(np.ceil(n_words / n_lines))


def _word_row(ax, n_words: int, y_top: float, per_line: int, fontsize: float, x0: float = 0.0):
    """``n_words`` text artists on a fixed grid (``per_line`` columns of width 1 starting at ``x0``,
    lines 1 apart going down from ``y_top``)."""
    texts = []
    for j in range(n_words):
        r, c = divmod(j, per_line)
        texts.append(ax.text(x0 + c + 0.5, y_top - r, "", ha="center", va="center", fontsize=fontsize, color=_INK))
    return texts


def _text_px(fig, word: str, fontsize: float) -> float:
    """Width in pixels of ``word`` drawn at ``fontsize`` on ``fig``'s canvas."""
    from matplotlib.font_manager import FontProperties
    w, _, _ = fig.canvas.get_renderer().get_text_width_height_descent(word, FontProperties(size=fontsize), ismath=False)
    return w


class _Chips:
    """Rounded "chips" behind words (one PolyCollection, so one cheap artist to blit). Each frame's
    polygons are precomputed by :meth:`frame` from the words' centres and measured text widths;
    :meth:`show` swaps them in. Call it once the axes' limits and the figure layout are final."""

    def __init__(self, ax, fontsize: float):
        self.ax, self.fontsize = ax, fontsize
        self.coll = plt.matplotlib.collections.PolyCollection([], edgecolors="none", zorder=0.9)
        ax.add_collection(self.coll)
        box = ax.get_window_extent()
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        self.sx, self.sy = (x1 - x0) / box.width, (y1 - y0) / box.height    # data units per pixel
        self.h_px = 1.45 * fontsize * ax.figure.dpi / 72
        self._w: dict[str, float] = {}

    def _verts(self, cx: float, cy: float, word: str) -> np.ndarray:
        if word not in self._w:
            self._w[word] = _text_px(self.ax.figure, word, self.fontsize)
        w, h = self._w[word] + 0.5 * self.h_px, self.h_px
        r = 0.25 * h
        ang = np.linspace(0, np.pi / 2, 5)
        pts = []
        for (qx, qy), a0 in (((1, 1), 0.0), ((-1, 1), np.pi / 2), ((-1, -1), np.pi), ((1, -1), 1.5 * np.pi)):
            ox, oy = qx * (w / 2 - r), qy * (h / 2 - r)
            pts.append(np.c_[ox + r * np.cos(ang + a0), oy + r * np.sin(ang + a0)])
        p = np.concatenate(pts)
        return np.c_[cx + p[:, 0] * self.sx, cy + p[:, 1] * self.sy]

    def frame(self, texts, words: Sequence[str], colors: Sequence[str]):
        """(polygons, face colours) for the chips of ``words`` shown at the ``texts`` artists' positions;
        a word whose colour is "none" gets no chip."""
        verts, fcs = [], []
        for txt, w, c in zip(texts, words, colors):
            if c != "none":
                verts.append(self._verts(*txt.get_position(), w))
                fcs.append(c)
        return verts, fcs

    def show(self, frame) -> None:
        verts, fcs = frame
        self.coll.set_verts(verts)
        self.coll.set_facecolor(fcs if fcs else "none")


def _word_style(word: str, clean: str | None, mask_token: str) -> tuple[str, str, str]:
    """(shown text, text colour, chip colour) of one word of a corrupted sentence: [MASK] on a chip in
    the mask colour, a word changed into another word on a T2T-orange chip, an unchanged word plain."""
    if word == mask_token:
        return _short(word), "black", viz.COLORS["mask"]
    if clean is not None and word != clean:
        return _short(word), "black", viz.COLORS["t2t"]
    return _short(word), _INK, "none"


def _font_scale() -> float:
    """How much bigger than the course's base style (10 pt) the current style's fonts are (1.6 in
    projector mode). The chapter-2 demos lay out words on fixed grids, so they scale their figure size,
    word fonts and margins by this factor: the same layout, just larger."""
    return float(np.clip(plt.rcParams["font.size"] / 10.0, 0.8, 2.5))


def _check_words(words, n: int | None, what: str) -> list[str]:
    if isinstance(words, str) or not all(isinstance(w, str) for w in words):
        raise ValueError(f"{what} must be a list of word strings, got {words!r:.80}")
    words = list(words)
    if n is not None and len(words) != n:
        raise ValueError(f"{what} has {len(words)} words, expected {n}")
    return words


def _refresh_background(demo: Demo) -> None:
    """Redraw the static layer (after axis limits changed) and cache it again for blitting."""
    demo.fig.canvas.draw()
    demo._background = demo.fig.canvas.copy_from_bbox(demo.fig.bbox)


def transition_demo(matrices: dict, times: Sequence[int], sentence: Sequence[str], corrupted: dict,
                    mask_token: str = "[MASK]") -> Demo:
    """(Demo 2a) Transition matrices: drag t. Introduced in chapter 2, section 1.

    Left, the cumulative matrix Q-bar_t (row: the clean token x_0, column: the noisy token x_t) of the
    chosen kind of noise as a heatmap on [0, 1]; right, one sentence and its corrupted versions at the
    same t, one row per kind in ``corrupted``: an unchanged word in ink, a word changed into another
    word on an orange (T2T) chip, a ``[MASK]`` on a grey chip.

    ``matrices`` maps a kind name to an array (len(times), K, K) of row-stochastic matrices (all kinds
    share ``times`` and K); ``sentence`` is the clean sentence (a list of words); ``corrupted`` maps
    some of the kinds to one corrupted copy of the sentence per time (a list of word lists).
    Controls: ``"i"`` (index into ``times``) and ``"kind"`` (a key of ``matrices``).
    """
    if not isinstance(matrices, dict) or not matrices:
        raise ValueError("matrices must be a non-empty dict: kind name -> array (len(times), K, K)")
    times = list(times)
    n = len(times)
    if n < 1:
        raise ValueError("times must hold at least one time")
    kinds = list(matrices)
    mats, K = {}, None
    for kind, m in matrices.items():
        m = np.asarray(m, dtype=np.float64)
        if m.ndim != 3 or m.shape[0] != n or m.shape[1] != m.shape[2] or m.shape[1] < 2:
            raise ValueError(f"matrices[{kind!r}] must have shape (len(times)={n}, K, K), got {m.shape}")
        if K is not None and m.shape[1] != K:
            raise ValueError(f"all kinds must share K: matrices[{kind!r}] is {m.shape[1]}x{m.shape[1]}, "
                             f"expected {K}x{K}")
        K = m.shape[1]
        if not np.isfinite(m).all() or (m < -1e-9).any():
            raise ValueError(f"matrices[{kind!r}] must have finite, non-negative entries")
        bad = np.abs(m.sum(-1) - 1) > 1e-4                 # float32 cumulative products drift ~1e-6
        if bad.any():
            i, r = map(int, np.argwhere(bad)[0])
            raise ValueError(f"every row of Q-bar_t must sum to 1: matrices[{kind!r}] at t = {times[i]}, "
                             f"row {r} sums to {m[i, r].sum():.6g}")
        mats[kind] = np.clip(m, 0.0, 1.0)
    sentence = _check_words(sentence, None, "sentence")
    L = len(sentence)
    if L < 1:
        raise ValueError("sentence must hold at least one word")
    if not isinstance(corrupted, dict):
        raise ValueError("corrupted must be a dict: kind name -> one corrupted sentence per time")
    rows = list(corrupted)
    for kind in rows:
        if kind not in mats:
            raise ValueError(f"corrupted has kind {kind!r}, which is not a key of matrices {kinds}")
        if len(corrupted[kind]) != n:
            raise ValueError(f"corrupted[{kind!r}] must hold one sentence per time ({n}), "
                             f"got {len(corrupted[kind])}")
    corr = {k: [_check_words(s, L, f"corrupted[{k!r}][{i}]") for i, s in enumerate(v)] for k, v in corrupted.items()}

    # precomputed: per kind and time, every word's (text, colour, chip) and the caption's numbers
    keep = {k: np.einsum("tkk->t", m) / K for k, m in mats.items()}
    styles = {k: [[_word_style(w, c, mask_token) for w, c in zip(s, sentence)] for s in v] for k, v in corr.items()}
    frac = {k: [(sum(w != c and w != mask_token for w, c in zip(s, sentence)) / L,
                 sum(w == mask_token for w in s) / L) for s in v] for k, v in corr.items()}

    # layout: heatmap left; right, one block per sentence row (a label line, then the words on a fixed
    # grid of columns wide enough for the longest shown word, at most 8 words a line)
    sc = _font_scale()
    fig_w, fs = 11.5 * sc, 11 * sc
    fig, (ax, axw) = new_figure(1, 2, figsize=(fig_w, 4.1 * sc), gridspec_kw={"width_ratios": [1.0, 1.9]})
    shown = {_short(w) for x in [sentence, [mask_token]] + [x for v in corr.values() for x in v] for w in x}
    col_px = max(_text_px(fig, w, fs) for w in shown) + 1.1 * fs * fig.dpi / 72
    panel_px = fig_w * fig.dpi * 0.94 * 1.9 / 2.9
    n_lines, per_line = _lines_for(L, max(3, min(8, int(panel_px / col_px))))
    labels = ["clean"] + rows
    block = 0.9 + n_lines + 0.3                      # label, word lines, gap (in lines)
    fig_h = max(4.1, 0.4 * block * len(labels) + 0.9) * sc
    fig.set_size_inches(fig_w, fig_h)
    im = ax.imshow(mats[kinds[0]][0], vmin=0, vmax=1, cmap=viz.CONFIDENCE_CMAP, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="probability")
    ax.set(xlabel="$x_t$ (to)", ylabel="$x_0$ (from)")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.grid(False)
    title = ax.set_title(" ")

    axw.axis("off")
    axw.set_xlim(0, per_line)
    axw.set_ylim(-block * len(labels) + 0.3, 0.4)
    word_texts, row_labels = {}, {}
    for r, lab in enumerate(labels):
        y = -r * block
        if r > 0:
            axw.axhline(y + 0.45, color="#DDDDDD", lw=1)
        t = axw.text(0.05, y, lab if lab == "clean" else f"{lab} noise", ha="left", va="center", fontsize=fs,
                     color=_INK, fontweight="bold", fontstyle="italic")
        if lab == "clean":
            for w, txt in zip(sentence, _word_row(axw, L, y - 0.9, per_line, fs)):
                txt.set_text(_short(w))
        else:
            row_labels[lab] = t
            word_texts[lab] = _word_row(axw, L, y - 0.9, per_line, fs)
    fig.subplots_adjust(left=0.05, right=0.99, top=1 - 0.45 * sc / fig_h, bottom=0.55 * sc / fig_h, wspace=0.1)
    chips = _Chips(axw, fs)
    chip_frames = []
    for i in range(n):
        frames = [chips.frame(word_texts[k], [s for s, _, _ in styles[k][i]], [c for _, _, c in styles[k][i]])
                  for k in rows]
        chip_frames.append(([v for f in frames for v in f[0]], [c for f in frames for c in f[1]]))

    def update(i: int, kind: str) -> str:
        title.set_text(f"$\\bar Q_t$, {kind} noise, t = {times[i]}")
        im.set_data(mats[kind][i])
        chips.show(chip_frames[i])
        for k, texts in word_texts.items():
            for txt, (s, col, _) in zip(texts, styles[k][i]):
                txt.set_text(s)
                txt.set_color(col)
            row_labels[k].set_color(_INK if k == kind else "#8A8A8A")      # the row of the heatmap's kind
        rows_html = "; ".join(f"{k}: {100 * frac[k][i][0]:.0f}% changed, {100 * frac[k][i][1]:.0f}% masked"
                              for k in rows)
        return (f"<b>{_esc(kind)}</b> noise, t = {times[i]}: keep probability (mean diagonal of Q&#772;<sub>t</sub>) "
                f"= <b>{keep[kind][i]:.3f}</b>. Corrupted sentence, {rows_html}.")

    controls = {"i": _slider("t", 0, n - 1, 0),
                "kind": W.Dropdown(options=kinds, value=kinds[0], description="noise")}
    animated = [im, title, chips.coll] + list(row_labels.values()) + [t for ts in word_texts.values() for t in ts]
    return Demo("transition", "Transition matrices: drag t", controls, fig, update, animated)


def playback_demo(trajectories: dict, itos: Sequence[str], mask_id: int) -> Demo:
    """(Demo 2b) Denoising playback: tokens appear as they are unmasked. Introduced in chapter 2, section 7.

    ``trajectories`` maps an order's name to an integer array (S+1, L): the canvas at each sampler
    state, from all-[MASK] (row 0) to the final sample (row S); once a position is not ``mask_id`` it
    never changes. A cell's colour says at which step it was unmasked; the cells unmasked at the
    current step get a green (M2T) ring; [PAD] and [EOS] are greyed; positions already
    unmasked in row 0 (a prompt) are pale blue with blue text. ``itos[id]`` is the token string.
    Controls: ``"step"`` (0..S) and ``"order"`` (a key of ``trajectories``).
    """
    if not isinstance(trajectories, dict) or not trajectories:
        raise ValueError("trajectories must be a non-empty dict: name -> int array (S+1, L)")
    itos = [str(s) for s in itos]
    V = len(itos)
    if isinstance(mask_id, bool) or not isinstance(mask_id, (int, np.integer)) or not 0 <= mask_id < V:
        raise ValueError(f"mask_id must be an integer in [0, {V - 1}], got {mask_id!r}")
    mask_id = int(mask_id)
    names, trajs, shape = list(trajectories), {}, None
    for name, z in trajectories.items():
        z = np.asarray(z)
        if z.dtype.kind not in "iu":
            raise ValueError(f"trajectories[{name!r}] must hold integer token ids, got dtype {z.dtype}")
        if z.ndim != 2 or z.shape[0] < 2 or z.shape[1] < 1:
            raise ValueError(f"trajectories[{name!r}] must have shape (S+1, L) with S >= 1, got {z.shape}")
        if shape is not None and z.shape != shape:
            raise ValueError(f"all trajectories must share (S+1, L): {name!r} has {z.shape}, expected {shape}")
        shape = z.shape
        if z.min() < 0 or z.max() >= V:
            raise ValueError(f"trajectories[{name!r}] holds ids outside [0, {V - 1}] (len(itos) = {V})")
        changed = (z[:-1] != mask_id) & (z[1:] != z[:-1])
        if changed.any():
            k, l = map(int, np.argwhere(changed)[0])
            raise ValueError(f"trajectories[{name!r}]: position {l} is {itos[z[k, l]]!r} at step {k} but "
                             f"{itos[z[k + 1, l]]!r} at step {k + 1}; an unmasked token must never change")
        trajs[name] = z.astype(np.int64)
    S, L = shape[0] - 1, shape[1]

    ncols = min(L, 8 if L <= 24 else 10)
    nrows = int(np.ceil(L / ncols))
    cmap = plt.matplotlib.colormaps[viz.CONFIDENCE_CMAP]
    norm = plt.Normalize(1, max(S, 2))
    mask_rgba = np.array(plt.matplotlib.colors.to_rgba(viz.COLORS["mask"]))
    prompt_rgba = np.array(plt.matplotlib.colors.to_rgba(viz.COLORS["prompt"]))
    special = np.array([s in _SPECIAL_TOKENS for s in itos])
    eos_ids = [i for i, s in enumerate(itos) if s == "[EOS]"]
    pad_ids = {i for i, s in enumerate(itos) if s == "[PAD]"}

    # precomputed per order and step: face colours, text colours, texts, fresh cells, captions
    pre = {}
    for name, z in trajs.items():
        unmasked = z != mask_id                                         # (S+1, L)
        first = np.where(unmasked.any(0), unmasked.argmax(0), S + 1)     # step each position appears
        final = z[-1]
        face_on = cmap(norm(np.clip(first, 1, S)))                       # colour once unmasked
        sp = special[final]
        face_on[sp] = 0.35 * face_on[sp] + 0.65                          # greyed specials
        prompt = first == 0
        face_on[prompt] = 0.25 * prompt_rgba + 0.75                       # a prompt: pale blue, blue ink
        lum = face_on[:, :3] @ np.array([0.299, 0.587, 0.114])
        ink_on = np.where(sp, "#555555", np.where(lum < 0.55, "white", "black")).astype(object)
        ink_on[prompt] = viz.COLORS["prompt"]
        words = [_short(itos[t]) for t in final]
        faces = np.where(unmasked[..., None], face_on[None], mask_rgba)   # (S+1, L, 4)
        inks = np.where(unmasked, ink_on[None], "black")
        texts = np.where(unmasked, np.array(words, dtype=object)[None], "[MASK]")
        fresh = unmasked & (first[None] == np.arange(S + 1)[:, None]) & (first[None] > 0)
        fresh = [np.flatnonzero(f) for f in fresh]                       # cells unmasked at each step
        captions = []
        for k in range(S + 1):
            row = z[k]
            stop = next((j for j in range(L) if row[j] in eos_ids), L)
            so_far = " ".join("\u2581\u2581" if t == mask_id else _esc(itos[t])
                              for t in row[:stop] if t not in pad_ids)
            n_masked = int((row == mask_id).sum())
            captions.append(f"<b>{_esc(name)}</b>: step {k} of {S}: {n_masked} masked, "
                            f"the sentence so far: <i>{so_far or '(empty)'}</i>")
        note = " (blue: the prompt)" if prompt.any() else ""
        pre[name] = (faces, inks, texts, fresh, captions, note)

    sc = _font_scale()
    fig_h = (0.62 * nrows + 1.0) * sc
    fig, ax = new_figure(1, 1, figsize=((0.98 * ncols + 1.3) * sc, fig_h))
    ax.axis("off")
    ax.set_xlim(-0.05, ncols + 0.05)
    ax.set_ylim(-nrows - 0.05, 0.05)
    cells = [plt.matplotlib.patches.Rectangle((l % ncols + 0.05, -(l // ncols) - 0.9), 0.9, 0.8)
             for l in range(L)]
    coll = plt.matplotlib.collections.PatchCollection(cells, facecolors=pre[names[0]][0][0], edgecolors="white",
                                                      linewidths=sc)
    ax.add_collection(coll)
    cell_texts = [ax.text(l % ncols + 0.5, -(l // ncols) - 0.5, "", ha="center", va="center", fontsize=10.5 * sc)
                  for l in range(L)]
    title = ax.set_title(" ", loc="left")
    sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=ax, fraction=0.03, pad=0.02, label="unmasked at step")
    fig.subplots_adjust(left=0.01, right=0.97, top=1 - 0.5 * sc / fig_h, bottom=0.02)
    # a freshly unmasked cell gets a green (M2T) ring just outside it, with a white gap, so that it stands
    # out whatever the cell's own colour
    box = ax.get_window_extent()
    gap = 3.5 * sc * fig.dpi / 72
    dx, dy = gap * (ncols + 0.1) / box.width, gap * (nrows + 0.1) / box.height
    rings = [np.array([[x0 - dx, y0 - dy], [x0 + 0.9 + dx, y0 - dy], [x0 + 0.9 + dx, y0 + 0.8 + dy],
                       [x0 - dx, y0 + 0.8 + dy]]) for x0, y0 in (c.get_xy() for c in cells)]
    ring_coll = plt.matplotlib.collections.PolyCollection([], facecolors="none", edgecolors=viz.COLORS["m2t"],
                                                          linewidths=3.0 * sc)
    ax.add_collection(ring_coll)

    def update(step: int, order: str) -> str:
        faces, inks, texts, fresh, captions, note = pre[order]
        coll.set_facecolor(faces[step])
        ring_coll.set_verts([rings[l] for l in fresh[step]])
        for txt, s, c in zip(cell_texts, texts[step], inks[step]):
            txt.set_text(s)
            txt.set_color(c)
        title.set_text(f"{order}: step {step} of {S}{note}")
        return captions[step]

    controls = {"step": _slider("step", 0, S, 0),
                "order": W.Dropdown(options=names, value=names[0], description="order")}
    return Demo("playback", "Denoising playback: tokens appear as they are unmasked", controls, fig, update,
                [coll, ring_coll, title] + cell_texts)


def nelbo_integrand_demo(t_grid, integrands: dict, examples: dict) -> Demo:
    """(Demo 2c) The NELBO integrand over t. Introduced in chapter 2, section 5.

    For the chosen sentence: the Monte-Carlo mean of the integrand w(t) * sum over masked positions of
    -log p(x^l | z_t) (nats) against t with a +-2 standard-error band, the area from 0 to the current
    t filled (the running integral; over all of (0, 1] it is the sentence's NELBO), and below, one
    masked version z_t of the sentence ([MASK] on grey chips).

    ``t_grid``: n increasing floats in (0, 1]; ``integrands`` maps a sentence label to
    ``{"mean": (n,), "se": (n,), "nelbo": float (optional)}``; ``examples`` maps the same labels to n
    word lists (z_t at each t). The running integral uses the trapezoid rule on the grid, with the
    integrand held at its first value between 0 and t_grid[0].
    Controls: ``"i"`` (index into ``t_grid``) and ``"sentence"`` (a label).
    """
    t = np.asarray(t_grid, dtype=np.float64)
    if t.ndim != 1 or len(t) < 2:
        raise ValueError(f"t_grid must be a 1-D array of at least 2 times, got shape {t.shape}")
    if not np.isfinite(t).all() or t[0] <= 0 or t[-1] > 1 or (np.diff(t) <= 0).any():
        raise ValueError("t_grid must be strictly increasing, in (0, 1]")
    n = len(t)
    if not isinstance(integrands, dict) or not integrands:
        raise ValueError("integrands must be a non-empty dict: label -> {'mean': (n,), 'se': (n,)}")
    if not isinstance(examples, dict) or set(examples) != set(integrands):
        raise ValueError(f"examples must have the same labels as integrands: {sorted(integrands)} vs "
                         f"{sorted(examples) if isinstance(examples, dict) else examples!r:.80}")
    labels = list(integrands)
    curves, masked_sents = {}, {}
    for lab, d in integrands.items():
        if not isinstance(d, dict) or "mean" not in d or "se" not in d:
            raise ValueError(f"integrands[{lab!r}] must be a dict with keys 'mean' and 'se'")
        mean, se = np.asarray(d["mean"], dtype=np.float64), np.asarray(d["se"], dtype=np.float64)
        if mean.shape != (n,) or se.shape != (n,):
            raise ValueError(f"integrands[{lab!r}]: 'mean' and 'se' must have shape ({n},) like t_grid, got "
                             f"{mean.shape} and {se.shape}")
        if not (np.isfinite(mean).all() and np.isfinite(se).all()) or (se < 0).any():
            raise ValueError(f"integrands[{lab!r}]: 'mean' and 'se' must be finite and 'se' >= 0")
        nelbo = d.get("nelbo")
        if nelbo is not None and not np.isfinite(float(nelbo)):
            raise ValueError(f"integrands[{lab!r}]['nelbo'] must be a finite number, got {nelbo!r}")
        ex = examples[lab]
        if len(ex) != n:
            raise ValueError(f"examples[{lab!r}] must hold one masked sentence per t ({n}), got {len(ex)}")
        first = _check_words(ex[0], None, f"examples[{lab!r}][0]")
        sents = [first] + [_check_words(s, len(first), f"examples[{lab!r}][{i}]") for i, s in enumerate(ex[1:], 1)]
        running = np.concatenate([[0.0], np.cumsum(0.5 * (mean[1:] + mean[:-1]) * np.diff(t))]) + t[0] * mean[0]
        curves[lab] = (mean, se, running, None if nelbo is None else float(nelbo))
        masked_sents[lab] = sents
    mask_token = "[MASK]"

    # precomputed geometry: the +-2 se band, the filled area up to each t, the y-range of each sentence
    pre = {}
    for lab, (mean, se, running, nelbo) in curves.items():
        band = np.concatenate([np.c_[t, mean + 2 * se], np.c_[t, mean - 2 * se][::-1]])
        areas = [np.concatenate([[[0.0, 0.0], [0.0, mean[0]]], np.c_[t[: i + 1], mean[: i + 1]], [[t[i], 0.0]]])
                 for i in range(n)]
        lo, hi = min(0.0, float((mean - 2 * se).min())), float((mean + 2 * se).max())
        ylim = (lo - 0.04 * (hi - lo or 1), hi + 0.08 * (hi - lo or 1))
        styles = [[_word_style(w, None, mask_token) for w in s] for s in masked_sents[lab]]
        n_masked = [sum(w == mask_token for w in s) for s in masked_sents[lab]]
        pre[lab] = (band, areas, ylim, styles, n_masked)

    L_max = max(len(s[0]) for s in masked_sents.values())
    col = viz.COLORS["diffusion"]
    sc = _font_scale()
    fs = 11 * sc
    fig, (ax, axw) = new_figure(2, 1, figsize=(8.4 * sc, 4.5 * sc))
    shown = {s for st in pre.values() for row in st[3] for s, _, _ in row} | {_short(mask_token)}
    col_px = max(_text_px(fig, w, fs) for w in shown) + 1.1 * fs * fig.dpi / 72
    n_lines, per_line = _lines_for(L_max, max(3, min(8, int(0.8 * 8.4 * sc * fig.dpi / col_px))))
    fig_h = (3.4 + 0.5 * n_lines + 0.3) * sc
    fig.set_size_inches(8.4 * sc, fig_h)
    ax.get_gridspec().set_height_ratios([3.4, 0.5 * n_lines + 0.3])
    mean0, se0, _, _ = curves[labels[0]]
    band = plt.matplotlib.collections.PolyCollection([pre[labels[0]][0]], facecolors=col, alpha=0.2,
                                                     edgecolors="none", label="$\\pm 2$ s.e.")
    area = plt.matplotlib.collections.PolyCollection([pre[labels[0]][1][0]], facecolors=col, alpha=0.38,
                                                     edgecolors="none", label="area up to t (running integral)")
    ax.add_collection(area)
    ax.add_collection(band)
    (line,) = ax.plot(t, mean0, color=col, label="integrand $w(t)\\,\\Sigma_{\\ell\\ \\mathrm{masked}} -\\log p(x^\\ell | z_t)$ (MC mean)")
    (dot,) = ax.plot([t[0]], [mean0[0]], "o", color=col, markeredgecolor="black", ms=7 * sc)
    vline = ax.axvline(t[0], color="black", lw=1.2)
    ax.set(xlim=(0, 1), ylim=pre[labels[0]][2], xlabel="t",
           ylabel="integrand (nats)")
    ax.legend(handles=[line, band, area], loc="upper left", frameon=False)
    title = ax.set_title(" ", loc="left")
    axw.axis("off")
    axw.set_xlim(-1.1, per_line)
    axw.set_ylim(-n_lines + 0.45, 0.55)
    axw.text(-0.15, 0, "$z_t$:", ha="right", va="center", fontsize=12 * sc)
    words = _word_row(axw, L_max, 0, per_line, fs)
    fig.subplots_adjust(left=0.1, right=0.98, top=0.93, bottom=0.02, hspace=0.32)
    chips = _Chips(axw, fs)
    chip_frames = {lab: [chips.frame(words, [s for s, _, _ in row], [c for _, _, c in row]) for row in st[3]]
                   for lab, st in pre.items()}
    state = {"label": labels[0], "demo": None}

    def update(i: int, sentence: str) -> str:
        band_v, areas, ylim, styles, n_masked = pre[sentence]
        mean, se, running, nelbo = curves[sentence]
        if sentence != state["label"]:
            state["label"] = sentence
            line.set_data(t, mean)
            band.set_verts([band_v])
            ax.set_ylim(*ylim)
            if state["demo"] is not None:
                _refresh_background(state["demo"])
        area.set_verts([areas[i]])
        dot.set_data([t[i]], [mean[i]])
        vline.set_xdata([t[i], t[i]])
        title.set_text(f"{_short(sentence, 40)}: t = {t[i]:.3f}, running integral = {running[i]:.2f} nats")
        chips.show(chip_frames[sentence][i])
        for j, txt in enumerate(words):
            s, c, _ = styles[i][j] if j < len(styles[i]) else ("", _INK, "none")
            txt.set_text(s)
            txt.set_color(c)
        full = (f"<b>{nelbo:.2f}</b> nats" if nelbo is not None
                else f"{running[-1]:.2f} nats by the trapezoid over the whole grid")
        return (f"<b>{_esc(sentence)}</b>, t = {t[i]:.3f}: integrand = <b>{mean[i]:.2f} &plusmn; {se[i]:.2f}</b> "
                f"nats (&plusmn; 1 s.e.); running integral from 0 to t = <b>{running[i]:.2f}</b> nats. Over all of "
                f"(0, 1] the integral is the sentence's NELBO: {full}. "
                f"z<sub>t</sub> has {n_masked[i]} of {len(styles[i])} words masked.")

    controls = {"i": _slider("t index", 0, n - 1, 0),
                "sentence": W.Dropdown(options=labels, value=labels[0], description="sentence")}
    demo = Demo("nelbo", "The NELBO integrand over t", controls, fig, update,
                [band, area, line, dot, vline, title, chips.coll] + words)
    state["demo"] = demo
    return demo


# ------------------------------------------------------------------ chapter 3 demos
_RIGHT, _WRONG = "#2CA02C", "#D62728"            # a right / a wrong answer (text and bars)
_RIGHT_INK, _WRONG_INK, _NEUTRAL_INK = "#1B6E1B", "#B01C1C", "#6E6E6E"
_RIGHT_BG, _WRONG_BG, _NEUTRAL_BG, _QUERY_BG = "#D5EFD0", "#F9D4D2", "#ECECEC", "#F6F6F6"


class _StrictDemo(Demo):
    """A :class:`Demo` whose :meth:`set` checks values: a choice that is not among a dropdown's options, or a
    slider value outside its range, raises ValueError (instead of traitlets' TraitError, or a silent clamp).
    Dropdowns are set before sliders, so that a slider whose range follows a dropdown (the generation
    demo's step) is checked against the new range; on an error the controls are put back as they were.
    Introduced in chapter 3, section 1."""

    def set(self, **values) -> None:
        for k in values:
            if k not in self.controls:
                raise ValueError(f"demo {self.name!r} has no control {k!r}; controls: {list(self.controls)}")
        saved = self.values()
        try:
            for k in sorted(values, key=lambda k: not hasattr(self.controls[k], "options")):
                c, v = self.controls[k], values[k]
                if hasattr(c, "options"):
                    if v not in c.options:
                        raise ValueError(f"unknown {k} {v!r} for demo {self.name!r}; choose one of {list(c.options)}")
                elif hasattr(c, "max") and not (_is_int(v) and c.min <= v <= c.max):
                    raise ValueError(f"{k} must be an integer in [{c.min}, {c.max}] for demo {self.name!r}, "
                                     f"got {v!r}")
                super().set(**{k: v})
        except ValueError:
            if self.values() != saved:
                super().set(**saved)
            raise


def _is_int(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def _pale(color, amount: float = 0.55) -> tuple:
    """``color`` mixed with ``amount`` of white (a bar or cell background that dark text reads on)."""
    rgb = np.array(plt.matplotlib.colors.to_rgb(color))
    return tuple(amount + (1 - amount) * rgb) + (1.0,)


def _ring_verts(ax, corners, w: float, h: float, gap_px: float) -> list:
    """Rectangles ``gap_px`` pixels outside cells of size ``w`` x ``h`` (data units) at lower-left ``corners``:
    the rings that mark freshly unmasked cells (same look as the chapter-2 playback)."""
    box = ax.get_window_extent()
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    dx, dy = gap_px * (x1 - x0) / box.width, gap_px * (y1 - y0) / box.height
    return [np.array([[x - dx, y - dy], [x + w + dx, y - dy], [x + w + dx, y + h + dy], [x - dx, y + h + dy]])
            for x, y in corners]


def _check_token_args(itos, mask_id, prompt_length) -> tuple[list, int, int, int]:
    """``(itos as strings, V, mask_id, prompt_length)`` after checking the ids of a token-row demo."""
    itos = [str(s) for s in itos]
    V = len(itos)
    if not _is_int(mask_id) or not 0 <= mask_id < V:
        raise ValueError(f"mask_id must be an integer in [0, {V - 1}], got {mask_id!r}")
    if not _is_int(prompt_length) or prompt_length < 0:
        raise ValueError(f"prompt_length must be an integer >= 0, got {prompt_length!r}")
    return itos, V, int(mask_id), int(prompt_length)


def _mask_runs(tokens: Sequence[str | None]) -> str:
    """Caption text of a partly masked sequence: ``None`` is a mask, shown as a "blank"; runs of 3 or more
    masks are shortened to one blank with a count."""
    out, run = [], 0
    for tok in list(tokens) + ["\0"]:
        if tok is None:
            run += 1
            continue
        if run:
            out.append("\u2581\u2581" if run == 1 else ("\u2581\u2581 \u2581\u2581" if run == 2
                                                        else f"\u2581\u2581<sub>&times;{run}</sub>"))
            run = 0
        if tok != "\0":
            out.append(_esc(tok))
    return " ".join(out)


def generation_demo(records: dict, itos: Sequence[str], mask_id: int, prompt_length: int) -> Demo:
    """(Demo 3b) LLaDA generation viewer: which answer tokens get committed at each step, and how sure the
    model was. Introduced in chapter 3, section 4.

    ``records`` maps a strategy's name (e.g. ``"low_confidence, block 41"``) to a dict of numpy arrays
    for one sample (what :func:`course_lib.llada.generate` records with ``record=True``, for one row):

    - ``"canvases"``: int (S+1, N), the canvas (``prompt_length`` prompt positions, then the answer)
      before any step, then after each of the S steps. The answer starts all ``mask_id``; a committed
      token never changes; the prompt never changes;
    - ``"commit_step"``: int (N - prompt_length,), the step 1..S that committed each answer position;
    - ``"commit_conf"``: float (N - prompt_length,) in [0, 1], the model's probability of the token when
      it was committed.

    Strategies share N but may have different S. The figure shows the canvas as cells: the prompt pale
    blue, [MASK] grey, a committed token coloured by its confidence (the course's confidence colour map),
    and the tokens committed *at* the current step in bold with a green (M2T) ring.
    Controls: ``"strategy"`` (a key of ``records``) and ``"step"`` (0..S of that strategy; its maximum
    follows the strategy, and a step past the end is clamped). In ``demo.static`` settings, put
    ``"strategy"`` before ``"step"``.
    """
    if not isinstance(records, dict) or not records:
        raise ValueError("records must be a non-empty dict: strategy name -> {'canvases', 'commit_step', "
                         "'commit_conf'}")
    itos, V, mask_id, P = _check_token_args(itos, mask_id, prompt_length)
    data, N = {}, None
    for name, rec in records.items():
        if not isinstance(name, str):
            raise ValueError(f"strategy names must be strings, got {name!r}")
        if not isinstance(rec, dict):
            raise ValueError(f"records[{name!r}] must be a dict with keys 'canvases', 'commit_step', 'commit_conf'")
        missing = [k for k in ("canvases", "commit_step", "commit_conf") if k not in rec]
        if missing:
            raise ValueError(f"records[{name!r}] lacks {missing}; it needs 'canvases', 'commit_step', 'commit_conf'")
        z = np.asarray(rec["canvases"])
        if z.dtype.kind not in "iu":
            raise ValueError(f"records[{name!r}]['canvases'] must hold integer token ids, got dtype {z.dtype}")
        if z.ndim != 2 or z.shape[0] < 2:
            raise ValueError(f"records[{name!r}]['canvases'] must have shape (S+1, N) with S >= 1, got {z.shape}")
        if N is not None and z.shape[1] != N:
            raise ValueError(f"all strategies must share the canvas length N: records[{name!r}] has "
                             f"N = {z.shape[1]}, expected {N}")
        N, S = z.shape[1], z.shape[0] - 1
        if P >= N:
            raise ValueError(f"prompt_length ({P}) must be smaller than the canvas length N ({N})")
        G = N - P
        if z.min() < 0 or z.max() >= V:
            raise ValueError(f"records[{name!r}]['canvases'] holds ids outside [0, {V - 1}] (len(itos) = {V})")
        if (z[:, :P] != z[:1, :P]).any():
            raise ValueError(f"records[{name!r}]: the prompt (the first {P} positions) must not change over "
                             f"steps; is prompt_length right?")
        if (z[0, :P] == mask_id).any():
            raise ValueError(f"records[{name!r}]: the prompt (the first {P} positions) contains [MASK]; "
                             f"is prompt_length right?")
        if (z[0, P:] != mask_id).any():
            raise ValueError(f"records[{name!r}]: canvases[0] must be the prompt then all [MASK] (nothing is "
                             f"committed before step 1); is prompt_length right?")
        cs = np.asarray(rec["commit_step"])
        if cs.dtype.kind not in "iu" or cs.shape != (G,):
            raise ValueError(f"records[{name!r}]['commit_step'] must be integers of shape (N - prompt_length,) = "
                             f"({G},), got dtype {cs.dtype}, shape {cs.shape}")
        if cs.min() < 1 or cs.max() > S:
            raise ValueError(f"records[{name!r}]['commit_step'] must lie in 1..S = 1..{S}, got "
                             f"{int(cs.min())}..{int(cs.max())}")
        cc = np.asarray(rec["commit_conf"], dtype=np.float64)
        if cc.shape != (G,):
            raise ValueError(f"records[{name!r}]['commit_conf'] must have shape (N - prompt_length,) = ({G},), "
                             f"got {cc.shape}")
        if not np.isfinite(cc).all() or (cc < 0).any() or (cc > 1).any():
            raise ValueError(f"records[{name!r}]['commit_conf'] must hold probabilities in [0, 1]")
        shown = z[:, P:] != mask_id
        expect = np.arange(S + 1)[:, None] >= cs[None]
        if (shown != expect).any():
            s, j = map(int, np.argwhere(shown != expect)[0])
            raise ValueError(f"records[{name!r}]: commit_step says answer position {j} is committed at step "
                             f"{int(cs[j])}, but canvases[{s}] shows it {'unmasked' if shown[s, j] else 'masked'}")
        if (z[1:, P:] != z[-1:, P:])[shown[1:]].any():
            raise ValueError(f"records[{name!r}]: a committed token changed at a later step; committed tokens "
                             f"never change")
        data[name] = (z.astype(np.int64), cs.astype(np.int64), cc)
    names = list(data)
    G = N - P

    # precomputed per strategy and step: faces, ink, text, bold, fresh cells, title and caption
    cmap = plt.matplotlib.colormaps[viz.CONFIDENCE_CMAP]
    mask_rgba = np.array(plt.matplotlib.colors.to_rgba(viz.COLORS["mask"]))
    prompt_face = 0.25 * np.array(plt.matplotlib.colors.to_rgba(viz.COLORS["prompt"])) + 0.75
    eos_ids = {i for i, s in enumerate(itos) if s == "[EOS]"}
    pad_ids = {i for i, s in enumerate(itos) if s == "[PAD]"}
    pre = {}
    for name, (z, cs, cc) in data.items():
        S = len(z) - 1
        step_of = np.r_[np.zeros(P, dtype=np.int64), cs]                    # 0 for the prompt
        face_on = np.r_[np.tile(prompt_face, (P, 1)), cmap(cc)].reshape(N, 4)
        lum = face_on[:, :3] @ np.array([0.299, 0.587, 0.114])
        ink_on = np.where(lum < 0.55, "white", "black").astype(object)
        ink_on[:P] = viz.COLORS["prompt"]
        words = np.array([_short(itos[t]) for t in z[-1]], dtype=object)
        on = np.arange(S + 1)[:, None] >= step_of[None]                      # (S+1, N)
        faces = np.where(on[..., None], face_on[None], mask_rgba)
        inks = np.where(on, ink_on[None], "black")
        texts = np.where(on, words[None], "[MASK]")
        fresh_b = step_of[None] == np.arange(S + 1)[:, None]
        fresh_b[:, :P] = False
        weights = np.where(fresh_b, "bold", "normal")
        fresh = [np.flatnonzero(f) for f in fresh_b]
        prompt_txt = " ".join(_esc(itos[t]) for t in z[0, :P] if t not in pad_ids)
        titles, captions = [], []
        for k in range(S + 1):
            new = cs == k
            n_done, n_new = int((cs <= k).sum()), int(new.sum())
            conf = ("none committed at this step" if n_new == 0 else f"confidence <b>{cc[new][0]:.2f}</b>"
                    if n_new == 1 else f"mean confidence <b>{cc[new].mean():.2f}</b>, min {cc[new].min():.2f}")
            answer = []
            for t in z[k, P:]:
                if t in eos_ids:
                    answer.append("[EOS]")
                    break
                if t not in pad_ids:
                    answer.append(None if t == mask_id else itos[t])
            so_far = _mask_runs(answer)
            titles.append(f"{name}: step {k} of {S}, {n_new} committed at this step"
                          + (" (blue: the prompt)" if P else ""))
            captions.append(f"<b>{_esc(name)}</b>: step {k} of {S}: <b>{n_done}</b> of {G} answer positions "
                            f"committed, {n_new} at this step ({conf}). Text so far: "
                            f"<span style='color:{viz.COLORS['prompt']}'>{prompt_txt}</span> "
                            f"<i>{so_far or '(empty)'}</i>")
        pre[name] = (S, faces, inks, texts, weights, fresh, titles, captions)

    # layout: the prompt's lines, a small gap, then the answer's lines, on one grid of cells
    ncols = min(max(P, G), 8 if N <= 24 else 10)
    rows_p, rows_a = -(-P // ncols), -(-G // ncols)
    gap = 0.3 if P else 0.0
    corners = []
    for l in range(N):
        r, c = divmod(l, ncols) if l < P else divmod(l - P, ncols)
        corners.append((c + 0.05, -(r + (rows_p if l >= P else 0)) - 0.9 - (gap if l >= P else 0.0)))
    n_rows = rows_p + rows_a
    sc = _font_scale()
    fig_h = (0.62 * (n_rows + gap) + 1.0) * sc
    fig, ax = new_figure(1, 1, figsize=((0.98 * ncols + 1.5) * sc, fig_h))
    ax.axis("off")
    ax.set_xlim(-0.05, ncols + 0.05)
    ax.set_ylim(-n_rows - gap - 0.05, 0.05)
    cells = [plt.matplotlib.patches.Rectangle(xy, 0.9, 0.8) for xy in corners]
    s0 = pre[names[0]]
    coll = plt.matplotlib.collections.PatchCollection(cells, facecolors=s0[1][0], edgecolors="white", linewidths=sc)
    ax.add_collection(coll)
    cell_texts = [ax.text(x + 0.45, y + 0.4, "", ha="center", va="center", fontsize=10.5 * sc) for x, y in corners]
    title = ax.set_title(" ", loc="left")
    sm = plt.cm.ScalarMappable(norm=plt.Normalize(0, 1), cmap=cmap)
    fig.colorbar(sm, ax=ax, fraction=0.03, pad=0.02, label="confidence when committed")
    fig.subplots_adjust(left=0.01, right=0.97, top=1 - 0.5 * sc / fig_h, bottom=0.02)
    rings = _ring_verts(ax, corners, 0.9, 0.8, 3.5 * sc * fig.dpi / 72)
    ring_coll = plt.matplotlib.collections.PolyCollection([], facecolors="none", edgecolors=viz.COLORS["m2t"],
                                                          linewidths=3.0 * sc)
    ax.add_collection(ring_coll)

    def update(strategy: str, step: int) -> str:
        S, faces, inks, texts, weights, fresh, titles, captions = pre[strategy]
        step = min(step, S)                      # the slider's max follows the strategy just after this call
        coll.set_facecolor(faces[step])
        ring_coll.set_verts([rings[l] for l in fresh[step]])
        for txt, s, c, w in zip(cell_texts, texts[step], inks[step], weights[step]):
            txt.set_text(s)
            txt.set_color(c)
            txt.set_fontweight(w)
        title.set_text(titles[step])
        return captions[step]

    controls = {"strategy": W.Dropdown(options=names, value=names[0], description="strategy",
                                       layout=W.Layout(width="360px")),
                "step": _slider("step", 0, pre[names[0]][0], 0)}
    demo = _StrictDemo("generation", "LLaDA generation: what is committed at each step, and how sure", controls, fig,
                update, [coll, ring_coll, title] + cell_texts)

    def on_strategy(change) -> None:             # a step past the new end is clamped (and re-rendered)
        controls["step"].max = pre[change["new"]][0]

    controls["strategy"].observe(on_strategy, names="value")
    return demo


def masking_demo(t_values: Sequence[float], sentence: Sequence[str], masks: np.ndarray, top_words: list,
                 top_probs: np.ndarray) -> Demo:
    """(Demo 3a) Masking explorer: mask a sentence at level t and read the model's guesses. Introduced in
    chapter 3, section 1.

    ``t_values``: T increasing masking levels in [0, 1]; ``sentence``: the N clean words; ``masks``: bool
    (T, N), the positions masked at each t, nested (a position masked at one t stays masked at every
    larger t); ``top_words[i][j]``: the model's K (usually 3) most likely words at position j for the
    i-th t, best first, or ``""`` where position j is not masked; ``top_probs``: (T, N, K) their
    probabilities (read only at masked positions; non-increasing, in [0, 1]).

    The figure shows the sentence with [MASK] chips and, under each [MASK], the K guesses as bars of
    length = probability: the top guess green when it is the true word and red when not; a lower guess
    green when it is the true word, grey otherwise. Control: ``"t"`` (an index into ``t_values``).
    """
    t = np.asarray(t_values, dtype=np.float64)
    if t.ndim != 1 or len(t) < 1:
        raise ValueError(f"t_values must be a 1-D sequence of at least one t, got shape {t.shape}")
    if not np.isfinite(t).all() or t.min() < 0 or t.max() > 1:
        raise ValueError(f"t_values must lie in [0, 1], got {t.min():.3g}..{t.max():.3g}")
    if (np.diff(t) <= 0).any():
        raise ValueError("t_values must be strictly increasing")
    T = len(t)
    sentence = _check_words(sentence, None, "sentence")
    N = len(sentence)
    if N < 1:
        raise ValueError("sentence must hold at least one word")
    m = np.asarray(masks)
    if m.dtype.kind not in "biu" or (m.dtype.kind != "b" and not np.isin(m, (0, 1)).all()):
        raise ValueError(f"masks must be booleans (True = masked), got dtype {m.dtype}")
    m = m.astype(bool)
    if m.shape != (T, N):
        raise ValueError(f"masks must have shape (len(t_values), len(sentence)) = ({T}, {N}), got {m.shape}")
    if (m[:-1] & ~m[1:]).any():
        i, j = map(int, np.argwhere(m[:-1] & ~m[1:])[0])
        raise ValueError(f"masks must be nested: position {j} is masked at t = {t[i]:.3g} but not at the larger "
                         f"t = {t[i + 1]:.3g}")
    p = np.asarray(top_probs, dtype=np.float64)
    if p.ndim != 3 or p.shape[:2] != (T, N) or not 1 <= p.shape[2] <= 5:
        raise ValueError(f"top_probs must have shape (len(t_values), len(sentence), K) = ({T}, {N}, K) with "
                         f"1 <= K <= 5, got {p.shape}")
    K = p.shape[2]
    pm = p[m]                                                            # (number masked, K)
    if not np.isfinite(pm).all() or (pm < 0).any() or (pm > 1).any() or (pm.sum(-1) > 1 + 1e-4).any():
        raise ValueError("top_probs must hold probabilities in [0, 1] (summing to at most 1) at masked positions")
    if (np.diff(pm, axis=-1) > 1e-9).any():
        raise ValueError("top_probs must be non-increasing along the last axis (best guess first)")
    if isinstance(top_words, (str, np.ndarray)) or len(top_words) != T:
        raise ValueError(f"top_words must be a list of {T} lists (one per t) of {N} entries")
    guesses = []
    for i in range(T):
        row = top_words[i]
        if isinstance(row, str) or len(row) != N:
            raise ValueError(f"top_words[{i}] must hold one entry per word ({N}), got {row!r:.80}")
        g_row = []
        for j, g in enumerate(row):
            if not m[i, j]:
                g_row.append(None)
                continue
            if isinstance(g, str) or len(g) != K or not all(isinstance(w, str) for w in g):
                raise ValueError(f"top_words[{i}][{j}] (a masked position) must be a list of {K} words, got {g!r:.80}")
            g_row.append([str(w) for w in g])
        guesses.append(g_row)
    mask_token = "[MASK]"

    # layout: one block per line of words: the word (or a [MASK] chip), then K bars under each [MASK]
    sc = _font_scale()
    fig_w, fs, fl = 11.0 * sc, 12.0 * sc, 9.5 * sc
    fig, ax = new_figure(1, 1, figsize=(fig_w, 4 * sc))
    shown_words = {_short(w) for w in sentence} | {mask_token}
    shown_labels = {f"{_short(w)} 100%" for row in guesses for g in row if g for w in g} or {"x 100%"}
    col_px = max(max(_text_px(fig, w, fs) for w in shown_words) + 1.2 * fs * fig.dpi / 72,
                 max(_text_px(fig, w, fl) for w in shown_labels) + 1.2 * fl * fig.dpi / 72)
    n_lines, per_line = _lines_for(N, max(2, min(8, int(0.97 * fig_w * fig.dpi / col_px))))
    bar_h, bar_dy = 0.46, 0.56
    bar_top = 1.3                                    # from a word's centre down to its first bar's centre
    block = bar_top + (K - 1) * bar_dy + 0.5 + 0.55
    line_in = 0.4 * sc
    fig_h = (block * n_lines + 0.3) * line_in + 1.05 * sc
    fig.set_size_inches(fig_w, fig_h)
    ax.axis("off")
    ax.set_xlim(0, per_line)
    ax.set_ylim(-block * n_lines + 0.55, 0.6)
    fig.subplots_adjust(left=0.015, right=0.985, top=1 - 0.55 * sc / fig_h, bottom=0.5 * sc / fig_h)
    title = ax.set_title(" ", loc="left")
    fig.text(0.015, 0.012, f"Under each [MASK]: the hidden word (grey) and the model's top-{K} guesses, bar length = "
             "probability; green: the true word, red: a wrong top guess", fontsize=9.5 * sc, color=_NEUTRAL_INK,
             va="bottom")
    centres = [((j % per_line) + 0.5, -(j // per_line) * block) for j in range(N)]
    word_texts = [ax.text(x, y, "", ha="center", va="center", fontsize=fs, color=_INK) for x, y in centres]
    truth_texts = [ax.text(x, y - 0.66, "", ha="center", va="center", fontsize=fl, color=_NEUTRAL_INK,
                           fontstyle="italic") for x, y in centres]
    label_texts = [[ax.text(x - 0.44, y - bar_top - k * bar_dy, "", ha="left", va="center", fontsize=fl)
                    for k in range(K)] for x, y in centres]
    bars = plt.matplotlib.collections.PolyCollection([], edgecolors="none", zorder=0.8)
    ax.add_collection(bars)
    chips = _Chips(ax, fs)

    def rect(x0, yc, w):
        return np.array([[x0, yc - bar_h / 2], [x0 + w, yc - bar_h / 2], [x0 + w, yc + bar_h / 2],
                         [x0, yc + bar_h / 2]])

    track, right_bar, wrong_bar, other_bar = "#F0F0F0", _pale(_RIGHT, 0.5), _pale(_WRONG, 0.5), "#D2D2D2"
    pre = []
    for i in range(T):
        styles = [_word_style(mask_token if m[i, j] else w, None, mask_token) for j, w in enumerate(sentence)]
        chip = chips.frame(word_texts, [s for s, _, _ in styles], [c for _, _, c in styles])
        verts, fcs, labels = [], [], []
        n_right, misses = 0, []
        for j in range(N):
            g = guesses[i][j]
            if g is None:
                labels.append([("", _INK, "normal")] * K)
                continue
            x, y = centres[j]
            lab = []
            for k in range(K):
                yc = y - bar_top - k * bar_dy
                ok = g[k] == sentence[j]
                verts += [rect(x - 0.46, yc, 0.92), rect(x - 0.46, yc, 0.92 * p[i, j, k])]
                fcs += [track, right_bar if ok else (wrong_bar if k == 0 else other_bar)]
                ink = _RIGHT_INK if ok else (_WRONG_INK if k == 0 else _INK)
                lab.append((f"{_short(g[k])} {100 * p[i, j, k]:.0f}%", ink, "bold" if k == 0 or ok else "normal"))
            labels.append(lab)
            if g[0] == sentence[j]:
                n_right += 1
            else:
                misses.append(f"{_esc(sentence[j])}&rarr;{_esc(g[0])}")
        n_m = int(m[i].sum())
        head = (f"t = {t[i]:.2f}: {n_m} of {N} words masked" +
                (f", top guess right at {n_right} of {n_m}" if n_m else ""))
        cap = (f"t = <b>{t[i]:.3f}</b> (index {i} of {T - 1}): <b>{n_m}</b> of {N} words masked "
               f"({100 * n_m / N:.0f}%)")
        if n_m:
            cap += (f"; the model's top guess is right at <b>{n_right} of {n_m}</b> masked positions "
                    f"({100 * n_right / n_m:.0f}%)")
            cap += f". Misses (true&rarr;guessed): {', '.join(misses)}." if misses else ". No misses."
        else:
            cap += "; nothing to guess."
        truths = [_short(w) if m[i, j] else "" for j, w in enumerate(sentence)]
        pre.append((styles, truths, chip, (verts, fcs), labels, head, cap))

    def update(t: int) -> str:           # the control's key is "t"; it is an index into t_values
        styles, truths, chip, (verts, fcs), labels, head, cap = pre[t]
        chips.show(chip)
        bars.set_verts(verts)
        bars.set_facecolor(fcs if fcs else "none")
        for txt, (s, c, _), truth, tt in zip(word_texts, styles, truths, truth_texts):
            txt.set_text(s)
            txt.set_color(c)
            tt.set_text(truth)
        for texts, lab in zip(label_texts, labels):
            for txt, (s, c, w) in zip(texts, lab):
                txt.set_text(s)
                txt.set_color(c)
                txt.set_fontweight(w)
        title.set_text(head)
        return cap

    controls = {"t": _slider("t index", 0, T - 1, 0)}
    animated = [chips.coll, bars, title] + word_texts + truth_texts + [x for texts in label_texts for x in texts]
    return _StrictDemo("masking", "Masking explorer: mask at level t, read the model's guesses", controls, fig, update,
                       animated)


_REVERSAL_KINDS = {"forward": "forward", "reverse": "reverse", "left_masked": "left-masked", "control": "control"}


def reversal_demo(people: Sequence[str], answers: dict) -> Demo:
    """(Demo 3c) Reversal explorer: one held-out person's four queries, answered by the AR model and the
    masked diffusion model (MDM). Introduced in chapter 3, section 6.

    ``people``: the P held-out names. ``answers`` maps each query kind, ``"forward"``, ``"reverse"``,
    ``"left_masked"`` and ``"control"`` (all four, no other), to a dict of four lists of P strings:
    ``"prompt"`` (the query's text), ``"truth"`` (the right answer, ``""`` when there is none, as for
    the control), ``"ar"`` (the AR model's answer, ``""`` when AR cannot pose the query, as for the
    left-masked one) and ``"mdm"``. An answer is right when it equals the truth (spaces at the ends
    ignored). The table colours a right answer green, a wrong one red, and grey where there is no
    right answer or AR cannot pose the query. Control: ``"person"`` (an index into ``people``).
    """
    if isinstance(people, str) or not all(isinstance(p, str) for p in people):
        raise ValueError(f"people must be a list of name strings, got {people!r:.80}")
    people = list(people)
    P = len(people)
    if P < 1:
        raise ValueError("people must hold at least one name")
    if not isinstance(answers, dict):
        raise ValueError(f"answers must be a dict: query kind -> {{'prompt', 'truth', 'ar', 'mdm'}}; kinds "
                         f"{list(_REVERSAL_KINDS)}")
    missing = [k for k in _REVERSAL_KINDS if k not in answers]
    unknown = [k for k in answers if k not in _REVERSAL_KINDS]
    if missing or unknown:
        raise ValueError(f"answers must have exactly the kinds {list(_REVERSAL_KINDS)}; missing {missing}, "
                         f"unknown {unknown}")
    table = {}
    for kind in _REVERSAL_KINDS:
        d = answers[kind]
        if not isinstance(d, dict):
            raise ValueError(f"answers[{kind!r}] must be a dict with keys 'prompt', 'truth', 'ar', 'mdm'")
        lacking = [c for c in ("prompt", "truth", "ar", "mdm") if c not in d]
        if lacking:
            raise ValueError(f"answers[{kind!r}] lacks {lacking}; it needs 'prompt', 'truth', 'ar', 'mdm'")
        cols = {}
        for c in ("prompt", "truth", "ar", "mdm"):
            v = d[c]
            if isinstance(v, str) or len(v) != P or not all(isinstance(s, str) for s in v):
                raise ValueError(f"answers[{kind!r}][{c!r}] must be a list of {P} strings (one per person), got "
                                 f"{v!r:.80}")
            cols[c] = [s.strip() for s in v]
        table[kind] = cols
    kinds = list(_REVERSAL_KINDS)
    CHECK, CROSS = "\u2713", "\u2717"

    def judge(answer: str, truth: str, can_pose: bool = True) -> tuple[str, str, str, str, str | None]:
        """(cell text, ink, background, font style, verdict: 'right'/'wrong'/None)."""
        if not can_pose:
            return "cannot pose", _NEUTRAL_INK, _NEUTRAL_BG, "italic", None
        shown = _short(answer, 16) if answer else "\u2014"
        if not truth:
            return shown, _NEUTRAL_INK, _NEUTRAL_BG, "normal", None
        if answer == truth:
            return f"{shown} {CHECK}", _RIGHT_INK, _RIGHT_BG, "normal", "right"
        return f"{shown} {CROSS}", _WRONG_INK, _WRONG_BG, "normal", "wrong"

    # precomputed: every cell of every person's table, and the accuracies over all people
    cells, verdicts = [], []
    for i in range(P):
        rows, v = [], {}
        for kind in kinds:
            d = table[kind]
            truth = d["truth"][i]
            q = (_short(d["prompt"][i], 40), _INK, _QUERY_BG, "normal", None)
            tr = ((_short(truth, 16), _INK, "#FFFFFF", "normal", None) if truth
                  else ("none", _NEUTRAL_INK, "#FFFFFF", "italic", None))
            ar = judge(d["ar"][i], truth, can_pose=bool(d["ar"][i]))
            md = judge(d["mdm"][i], truth)
            rows.append((q, tr, ar, md))
            v[kind] = (ar, md)
        cells.append(rows)
        verdicts.append(v)

    def acc(kind: str, model: int) -> str:
        vs = [verdicts[i][kind][model][4] for i in range(P)]
        n = sum(x is not None for x in vs)
        return "&ndash;" if n == 0 else f"{100 * sum(x == 'right' for x in vs) / n:.0f}%"

    totals = "; ".join(f"{_REVERSAL_KINDS[k]} AR {acc(k, 0)}, MDM {acc(k, 1)}" for k in kinds
                       if any(table[k]["truth"]))

    def summary(i: int) -> str:
        parts = []
        for kind in kinds:
            (ar_t, _, _, _, ar_v), (md_t, _, _, _, md_v) = verdicts[i][kind]
            lab = _REVERSAL_KINDS[kind]
            if not table[kind]["truth"][i]:
                parts.append(f"{lab} (no right answer): AR &ldquo;{_esc(ar_t)}&rdquo;, MDM &ldquo;{_esc(md_t)}&rdquo;")
                continue
            mark = {"right": CHECK, "wrong": CROSS, None: "cannot pose"}
            parts.append(f"{lab}: AR {mark[ar_v]}, MDM {mark[md_v]}")
        return " &middot; ".join(parts)

    # layout in inches: a header row, then one row per kind; columns sized to their widest text
    sc = _font_scale()
    fs = 12.5 * sc
    fig, ax = new_figure(1, 1, figsize=(10 * sc, 4 * sc))
    pad = 0.3 * sc

    def width(strings, bold=False):
        from matplotlib.font_manager import FontProperties
        r = fig.canvas.get_renderer()
        fp = FontProperties(size=fs, weight="bold" if bold else "normal")
        return max(r.get_text_width_height_descent(s, fp, ismath=False)[0] for s in strings) / fig.dpi + pad

    col_w = [width([_REVERSAL_KINDS[k] for k in kinds], bold=True)]
    for c in range(4):
        col_w.append(max(width([row[c][0] for rows in cells for row in rows] + ["cannot pose"]),
                         width(["query", "truth", "AR", "MDM"], bold=True), 1.1 * sc))
    x_edges = np.r_[0.0, np.cumsum(col_w)]
    row_h, margin, top = 0.62 * sc, 0.15 * sc, 0.55 * sc
    fig_w, fig_h = x_edges[-1] + 2 * margin, top + row_h * 5 + 0.15 * sc
    fig.set_size_inches(fig_w, fig_h)
    ax.set_position([0, 0, 1, 1])
    ax.axis("off")
    ax.set_xlim(-margin, fig_w - margin)
    ax.set_ylim(-fig_h + top, top)
    heads = [("query", _INK), ("truth", _INK), ("AR", viz.COLORS["ar"]), ("MDM", viz.COLORS["diffusion"])]
    for c, (h, col) in enumerate(heads, 1):
        x = x_edges[c] + 0.12 * sc if c == 1 else 0.5 * (x_edges[c] + x_edges[c + 1])
        ax.text(x, -0.5 * row_h, h, ha="left" if c == 1 else "center", va="center", fontsize=fs, fontweight="bold",
                color=col)
    ax.plot([0, x_edges[-1]], [-row_h + 0.03 * sc] * 2, color=_INK, lw=1.2 * sc)
    boxes, texts = [], []
    for r, kind in enumerate(kinds, 1):
        y = -(r + 0.5) * row_h
        ax.text(0.08 * sc, y, _REVERSAL_KINDS[kind], ha="left", va="center", fontsize=fs, fontweight="bold",
                color=_INK)
        for c in range(1, 5):
            boxes.append(plt.matplotlib.patches.Rectangle((x_edges[c] + 0.03 * sc, y - 0.5 * row_h + 0.05 * sc),
                                                          col_w[c] - 0.06 * sc, row_h - 0.1 * sc))
            x = x_edges[c] + 0.12 * sc if c == 1 else 0.5 * (x_edges[c] + x_edges[c + 1])
            texts.append(ax.text(x, y, "", ha="left" if c == 1 else "center", va="center", fontsize=fs))
    coll = plt.matplotlib.collections.PatchCollection(boxes, facecolors=_NEUTRAL_BG, edgecolors="none")
    ax.add_collection(coll)
    title = ax.text(0, top - 0.28 * sc, " ", ha="left", va="center", fontsize=fs * 1.1, color=_INK, fontweight="bold")
    frames = []
    for i in range(P):
        flat = [cell for row in cells[i] for cell in row]
        frames.append(([cl[1] for cl in flat], [cl[2] for cl in flat], [cl[0] for cl in flat],
                       [cl[3] for cl in flat]))
    captions = [f"<b>{_esc(people[i])}</b> (held-out person {i + 1} of {P}): {summary(i)}.<br>"
                f"<small>Right answers over all {P} people: {totals}.</small>" for i in range(P)]

    def update(person: int) -> str:
        inks, faces, strs, styles = frames[person]
        coll.set_facecolor(faces)
        for txt, s, c, st in zip(texts, strs, inks, styles):
            txt.set_text(s)
            txt.set_color(c)
            txt.set_fontstyle(st)
        title.set_text(f"{people[person]}: held-out person {person + 1} of {P}")
        return captions[person]

    controls = {"person": _slider("person", 0, P - 1, 0)}
    return _StrictDemo("reversal", "Reversal explorer: who can answer which query?", controls, fig, update,
                [coll, title] + texts)


# ------------------------------------------------------------------ chapter 4 demos
def _figure(figsize) -> Figure:
    """An empty figure on an Agg canvas (for layouts that need a gridspec)."""
    fig = Figure(figsize=figsize, dpi=plt.rcParams["figure.dpi"])
    FigureCanvasAgg(fig)
    return fig


def _index_slider(label: str, n: int, value: int = 0) -> W.IntSlider:
    """A keyboard-movable slider over the indices 0..n-1 of a list of values. Its readout is off: the
    demo writes the value itself (``label = value``) into the description on every update."""
    return W.IntSlider(value=value, min=0, max=n - 1, step=1, description=label, continuous_update=True,
                       readout=False, style={"description_width": "initial"}, layout=W.Layout(width="420px"))


def router_demo(words: Sequence[str], experts, weights, n_experts: int,
                layer_names: Sequence[str] | None = None) -> Demo:
    """(Demo 4a) Router explorer: which experts each token of a sentence is sent to, layer by layer.
    Introduced in chapter 4, section 1.

    A mixture-of-experts layer sends each token to ``k`` of its ``n_experts`` feed-forward experts, with
    gate weights (Switch Transformer, Fedus et al. 2022; LLaDA 2.0, REFERENCE.md section 4 "MoE configs":
    sigmoid scores, top-8 of 256, weights renormalised over the chosen experts).

    ``words``: the n tokens of one sentence (strings); ``experts``: int (n_layers, n, k), the expert ids
    chosen for each token in each MoE layer (k distinct ids in [0, n_experts)); ``weights``: float
    (n_layers, n, k) >= 0, their gate weights; ``layer_names``: one label per layer (default "MoE layer i").

    Left, the tokens x experts grid of the chosen layer, cell colour = gate weight (0 where the expert
    was not chosen), the selected token's row framed; right, the selected token's weight per expert, and
    the layer's load (share of the n * k token-to-expert assignments each expert receives; the dashed
    line is a perfectly balanced load 1 / n_experts). Controls: ``"layer"`` and ``"token"`` (indices).
    """
    words = _check_words(words, None, "words")
    n = len(words)
    if n < 1:
        raise ValueError("words must hold at least one token")
    if not _is_int(n_experts) or n_experts < 1:
        raise ValueError(f"n_experts must be an integer >= 1, got {n_experts!r}")
    E = int(n_experts)
    e = np.asarray(experts)
    if e.dtype.kind not in "iu":
        raise ValueError(f"experts must hold integer expert ids, got dtype {e.dtype}")
    if e.ndim != 3 or e.shape[0] < 1 or e.shape[1] != n or e.shape[2] < 1:
        raise ValueError(f"experts must have shape (n_layers, len(words) = {n}, k), got {e.shape}")
    n_layers, _, k = e.shape
    if k > E:
        raise ValueError(f"each token chooses k = {k} experts, more than n_experts = {E}")
    if e.min() < 0 or e.max() >= E:
        raise ValueError(f"experts holds ids outside [0, {E - 1}] (n_experts = {E})")
    dup = (np.diff(np.sort(e, -1), axis=-1) == 0).any(-1)
    if dup.any():
        l, i = map(int, np.argwhere(dup)[0])
        raise ValueError(f"token {i} ({words[i]!r}) chooses the same expert twice in layer {l}: {e[l, i].tolist()}")
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != e.shape:
        raise ValueError(f"weights must have the shape of experts {e.shape}, got {w.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("weights must be finite gate weights >= 0")
    if layer_names is None:
        layer_names = [f"MoE layer {l}" for l in range(n_layers)]
    if isinstance(layer_names, str) or len(layer_names) != n_layers or not all(isinstance(s, str) for s in layer_names):
        raise ValueError(f"layer_names must be a list of {n_layers} strings (one per layer), got {layer_names!r:.80}")
    layer_names = list(layer_names)

    # precomputed: the (n, E) weight grid and the load of each layer, the captions of every (layer, token)
    grid = np.zeros((n_layers, n, E))
    grid[np.arange(n_layers)[:, None, None], np.arange(n)[None, :, None], e] = w
    load = np.stack([np.bincount(e[l].ravel(), minlength=E) for l in range(n_layers)])     # (n_layers, E)
    share = load / (n * k)
    vmax = float(w.max()) or 1.0
    cmap = plt.matplotlib.colormaps[viz.CONFIDENCE_CMAP]
    captions = []
    for l in range(n_layers):
        busiest = int(load[l].argmax())
        idle = int((load[l] == 0).sum())
        load_txt = ", ".join(f"E{x}: {int(load[l, x])}" for x in range(E))
        row = []
        for i in range(n):
            order = np.argsort(-w[l, i], kind="stable")
            chosen = ", ".join(f"<b>E{int(e[l, i, j])}</b> (weight {w[l, i, j]:.2f})" for j in order)
            row.append(f"<b>{_esc(layer_names[l])}</b>, token <b>&ldquo;{_esc(words[i])}&rdquo;</b> (position {i} of "
                       f"{n}): experts {chosen}, weights summing to {w[l, i].sum():.2f}. Load of this layer "
                       f"(assignments per expert, out of n&times;k = {n * k}): {load_txt}; busiest E{busiest} with "
                       f"{int(load[l, busiest])} ({100 * share[l, busiest]:.0f}%, balanced would be "
                       f"{100 / E:.0f}%), {idle} expert{'s' if idle != 1 else ''} idle.")
        captions.append(row)

    sc = _font_scale()
    fig_h = max(4.2, 0.3 * n + 1.8) * sc
    fig = _figure((11.0 * sc, fig_h))
    gs = fig.add_gridspec(2, 2, width_ratios=[1.25, 1.0], hspace=0.55, wspace=0.3)
    ax = fig.add_subplot(gs[:, 0])
    ax_w, ax_l = fig.add_subplot(gs[0, 1]), fig.add_subplot(gs[1, 1])
    im = ax.pcolormesh(np.arange(E + 1) - 0.5, np.arange(n + 1) - 0.5, grid[0], vmin=0, vmax=vmax, cmap=cmap)
    ax.set(xlim=(-0.5, E - 0.5), ylim=(n - 0.5, -0.5))                # token 0 on top
    fig.colorbar(im, ax=ax, fraction=0.05, pad=0.03, label="gate weight (0: not chosen)")
    ax.set_yticks(range(n))
    ax.set_yticklabels([_short(x, 12) for x in words])
    ax.set_xticks(range(E) if E <= 32 else np.linspace(0, E - 1, 9).round().astype(int))
    ax.set_xlabel("expert")
    ax.grid(False)
    title = ax.set_title(" ", loc="left")
    frame_w = plt.matplotlib.patches.Rectangle((-0.5, -0.5), E, 1, fill=False, edgecolor="white", lw=4.5 * sc)
    frame_k = plt.matplotlib.patches.Rectangle((-0.5, -0.5), E, 1, fill=False, edgecolor="black", lw=2.0 * sc)
    ax.add_patch(frame_w)
    ax.add_patch(frame_k)

    def bar_verts(heights):                    # one rectangle per expert, 0.8 wide, from 0 up to the height
        return [np.array([[x - 0.4, 0.0], [x + 0.4, 0.0], [x + 0.4, h], [x - 0.4, h]]) for x, h in enumerate(heights)]

    bars_w = plt.matplotlib.collections.PolyCollection([], edgecolors="none")
    ax_w.add_collection(bars_w)
    ax_w.set(ylim=(0, 1.2 * vmax), xlim=(-0.6, E - 0.4), ylabel="gate weight", title="this token's gate weights")
    bar_labels = [ax_w.text(0, 0, "", ha="center", va="bottom", fontsize=9 * sc) for _ in range(k)]
    bars_l = plt.matplotlib.collections.PolyCollection([], edgecolors="none")
    ax_l.add_collection(bars_l)
    ax_l.set(ylim=(0, 1.2 * max(float(share.max()), 1 / E)), xlim=(-0.6, E - 0.4), xlabel="expert",
             ylabel="share of assignments", title="this layer's load")
    (balanced,) = ax_l.plot([-0.6, E - 0.4], [1 / E, 1 / E], ls="--", color=_INK, lw=1.0 * sc)
    for a in (ax_w, ax_l):
        a.set_xticks(range(E) if E <= 16 else np.linspace(0, E - 1, 9).round().astype(int))
        a.grid(False, axis="x")
    fig.subplots_adjust(left=0.12, right=0.98, top=1 - 0.55 * sc / fig_h, bottom=0.6 * sc / fig_h)
    chosen_rgba, other_rgba = plt.matplotlib.colors.to_rgba("#4A4A4A"), plt.matplotlib.colors.to_rgba("#C8C8C8")
    load_verts = [bar_verts(share[l]) for l in range(n_layers)]
    is_chosen = np.zeros((n_layers, n, E), dtype=bool)
    is_chosen[np.arange(n_layers)[:, None, None], np.arange(n)[None, :, None], e] = True
    load_faces = np.where(is_chosen[..., None], chosen_rgba, other_rgba)            # (n_layers, n, E, 4)

    def update(layer: int, token: int) -> str:
        heights = grid[layer, token]
        im.set_array(grid[layer].ravel())
        frame_w.set_y(token - 0.5)
        frame_k.set_y(token - 0.5)
        bars_w.set_verts(bar_verts(heights))
        bars_w.set_facecolor(cmap(heights / vmax))
        for j, txt in enumerate(bar_labels):
            x = int(e[layer, token, j])
            txt.set_position((x, heights[x] + 0.02 * vmax))
            txt.set_text(f"{heights[x]:.2f}")
        bars_l.set_verts(load_verts[layer])
        bars_l.set_facecolor(load_faces[layer, token])
        title.set_text(f"{layer_names[layer]}: token \u201c{_short(words[token], 16)}\u201d (position {token})")
        return captions[layer][token]

    controls = {"layer": _slider("layer", 0, n_layers - 1, 0), "token": _slider("token", 0, n - 1, 0)}
    animated = [im, frame_w, frame_k, title, bars_w, bars_l, balanced] + bar_labels
    return _StrictDemo("router", "Router explorer: which experts does each token use?", controls, fig, update,
                       animated)


_QUADRANT_COLORS = {"bd": viz.COLORS["diffusion"], "obc": viz.COLORS["prompt"], "bc": viz.COLORS["ar"]}


def block_mask_demo(L: int, block_sizes: Sequence[int], masks: dict) -> Demo:
    """(Demo 4b) Block-mask explorer: the block-diffusion training mask for each block size.
    Introduced in chapter 4, section 2.

    BD3-LM (Arriola et al., ICLR 2025) and LLaDA 2.0 (REFERENCE.md section 4, "Attention masks", eq. 3-4)
    train on the concatenation ``[x_t ; x_0]`` (2L positions) with one mask made of four parts, where
    b(k) is the block of position k:

    - x_t -> x_t: block-diagonal (M_BD), a noisy token sees its own noisy block, both ways;
    - x_t -> x_0: offset block-causal (M_OBC, strict b(i) > b(j)), the clean tokens of *earlier* blocks;
    - x_0 -> x_0: block-causal (M_BC, b(i) >= b(j)), clean tokens see their own and earlier blocks;
    - x_0 -> x_t: empty (clean tokens never see noisy ones).

    ``L``: the sequence length; ``block_sizes``: strictly increasing block sizes, each dividing L;
    ``masks``: block size -> bool array (2L, 2L), entry [i, j] True when query i may attend to key j
    (rows: queries, first x_t then x_0; columns: keys in the same order). Allowed cells are coloured by
    their part (teal M_BD, blue M_OBC, purple M_BC), with gridlines at block boundaries.
    Control: ``"block"``, an index into ``block_sizes`` (the slider's label shows the block size).
    """
    if not _is_int(L) or L < 1:
        raise ValueError(f"L must be an integer >= 1, got {L!r}")
    L = int(L)
    if isinstance(block_sizes, (str, bytes)) or len(block_sizes) < 1 or not all(_is_int(b) for b in block_sizes):
        raise ValueError(f"block_sizes must be a non-empty list of integers, got {block_sizes!r:.80}")
    sizes = [int(b) for b in block_sizes]
    for b in sizes:
        if b < 1 or L % b:
            raise ValueError(f"block size {b} must be a positive divisor of L = {L}")
    if any(b1 >= b2 for b1, b2 in zip(sizes, sizes[1:])):
        raise ValueError(f"block_sizes must be strictly increasing, got {sizes}")
    if not isinstance(masks, dict):
        raise ValueError("masks must be a dict: block size -> bool array (2L, 2L)")
    keys = {int(k) if _is_int(k) else k for k in masks}
    if keys != set(sizes):
        raise ValueError(f"masks must have one entry per block size {sizes}, got keys {sorted(masks, key=str)}")
    M = {}
    for key, m in masks.items():
        m = np.asarray(m)
        if m.dtype != bool:
            raise ValueError(f"masks[{key}] must be a bool array (True = may attend), got dtype {m.dtype}")
        if m.shape != (2 * L, 2 * L):
            raise ValueError(f"masks[{key}] must have shape (2L, 2L) = ({2 * L}, {2 * L}), got {m.shape}")
        if m[L:, :L].any():
            i, j = map(int, np.argwhere(m[L:, :L])[0])
            raise ValueError(f"masks[{key}]: x_0 position {i} attends to x_t position {j}; in the block-diffusion "
                             f"mask the x_0 -> x_t part is empty")
        M[int(key)] = m

    # precomputed per block size: the RGB image, the gridlines, the counts for the caption
    part = np.zeros((2 * L, 2 * L), dtype=int)                       # 1: x_t->x_t, 2: x_t->x_0, 3: x_0->x_0
    part[:L, :L], part[:L, L:], part[L:, L:] = 1, 2, 3
    palette = plt.matplotlib.colors.ListedColormap(["#F2F2F2"] + [_QUADRANT_COLORS[q] for q in ("bd", "obc", "bc")])
    images, grids, captions = [], [], []
    for b in sizes:
        m = M[b]
        images.append(np.where(m, part, 0).ravel())                 # 0 = blocked, else the cell's part
        cuts = [c * b - 0.5 for c in range(1, L // b)]
        cuts = cuts + [L + c for c in cuts]
        grids.append([[(c, -0.5), (c, 2 * L - 0.5)] for c in cuts] + [[(-0.5, c), (2 * L - 0.5, c)] for c in cuts])
        K = L // b
        n_tt, n_t0, n_00 = int(m[:L, :L].sum()), int(m[:L, L:].sum()), int(m[L:, L:].sum())
        if b == 1:
            limit = ("<b>the AR limit</b> (L<sub>B</sub> = 1): every block is one token, so each noisy token is "
                     "predicted from the clean tokens strictly before it: next-token prediction")
        elif b == L:
            limit = ("<b>the MDLM limit</b> (L<sub>B</sub> = L): one block, x<sub>t</sub> attends to all of "
                     "x<sub>t</sub> both ways and to no clean token; the x<sub>0</sub> half is not needed")
        else:
            limit = (f"between the limits (L<sub>B</sub> = 1 is AR, L<sub>B</sub> = L = {L} is MDLM): "
                     f"bidirectional inside each block of {b} tokens, causal across the {K} blocks")
        captions.append(f"block size L<sub>B</sub> = <b>{b}</b>: K = L / L<sub>B</sub> = {L} / {b} = <b>{K}</b> "
                        f"block{'s' if K != 1 else ''}; {limit}. Allowed attention pairs: <b>{n_tt + n_t0 + n_00}</b> "
                        f"of (2L)<sup>2</sup> = {4 * L * L} (x<sub>t</sub>&rarr;x<sub>t</sub> {n_tt}, "
                        f"x<sub>t</sub>&rarr;x<sub>0</sub> {n_t0}, x<sub>0</sub>&rarr;x<sub>0</sub> {n_00}, "
                        f"x<sub>0</sub>&rarr;x<sub>t</sub> 0).")

    sc = _font_scale()
    fig, ax = new_figure(1, 1, figsize=(6.6 * sc, 6.4 * sc))
    edges = np.arange(2 * L + 1) - 0.5
    im = ax.pcolormesh(edges, edges, images[0].reshape(2 * L, 2 * L), cmap=palette, vmin=-0.5, vmax=3.5,
                       edgecolors="white", linewidth=0.4 * sc)            # thin white lines between tokens
    ax.set(xlim=(-0.5, 2 * L - 0.5), ylim=(2 * L - 0.5, -0.5), aspect="equal")      # query 0 on top
    ax.set_xticks([(L - 1) / 2, L + (L - 1) / 2])
    ax.set_xticklabels(["keys in x\u209c", "keys in x\u2080"])
    ax.set_yticks([(L - 1) / 2, L + (L - 1) / 2])
    ax.set_yticklabels(["queries\nin x\u209c", "queries\nin x\u2080"])
    ax.tick_params(length=0)
    ax.grid(False)
    title = ax.set_title(" ", loc="left")
    grid_lines = plt.matplotlib.collections.LineCollection(grids[0], colors="#9A9A9A", linewidths=0.7 * sc)
    halves = plt.matplotlib.collections.LineCollection([[(L - 0.5, -0.5), (L - 0.5, 2 * L - 0.5)],
                                                        [(-0.5, L - 0.5), (2 * L - 0.5, L - 0.5)]],
                                                       colors=_INK, linewidths=2.2 * sc)
    ax.add_collection(grid_lines)
    ax.add_collection(halves)
    fs, pad = 9 * sc, 0.03 * L
    box = {"boxstyle": "round,pad=0.25", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}
    labels = [
        ax.text(-0.5 + pad, L - 0.5 - pad, "x\u209c \u2192 x\u209c: block-diagonal\n(M_BD)", ha="left", va="bottom",
                fontsize=fs, color=_QUADRANT_COLORS["bd"], bbox=box),
        ax.text(2 * L - 0.5 - pad, -0.5 + pad, "x\u209c \u2192 x\u2080: offset\nblock-causal (M_OBC, >)", ha="right",
                va="top", fontsize=fs, color=_QUADRANT_COLORS["obc"], bbox=box),
        ax.text(2 * L - 0.5 - pad, L - 0.5 + pad, "x\u2080 \u2192 x\u2080: block-\ncausal (M_BC, \u2265)", ha="right",
                va="top", fontsize=fs, color=_QUADRANT_COLORS["bc"], bbox=box),
        ax.text((L - 1) / 2, L + (L - 1) / 2, "x\u2080 \u2192 x\u209c: empty\n(x\u2080 never sees x\u209c)", ha="center",
                va="center", fontsize=fs, color=_NEUTRAL_INK, bbox=box),
    ]
    fig.tight_layout()
    controls = {"block": _index_slider("block size", len(sizes))}

    def update(block: int) -> str:
        b = sizes[block]
        im.set_array(images[block])
        grid_lines.set_segments(grids[block])
        title.set_text(f"L = {L}, block size L_B = {b}: K = {L // b} block{'s' if L // b != 1 else ''}")
        controls["block"].description = f"block size L_B = {b}"
        return captions[block]

    return _StrictDemo("block_mask", "Block-mask explorer: the block-diffusion training mask", controls, fig, update,
                       [im, grid_lines, halves, title] + labels)


def _check_frames(name: str, frames, V: int, P: int, mask_id: int, N: int | None):
    """Validate one editing run (a list of frame dicts, see :func:`editing_playback_demo`) and return
    (canvases (S+1, N) with the state before step 1 reconstructed in row 0, m2t lists, t2t lists,
    confidences (S+1, N), reference or None)."""
    if isinstance(frames, (str, dict)) or not hasattr(frames, "__len__") or len(frames) < 1:
        raise ValueError(f"run {name!r}: frames must be a non-empty list of dicts (one per decoder step)")
    canv, m2ts, t2ts, confs, reference = [], [], [], [], None
    for s, f in enumerate(frames):
        where = f"run {name!r}, frame {s} (step {s + 1})"
        if not isinstance(f, dict):
            raise ValueError(f"{where}: a frame must be a dict with keys 'tokens', 'm2t', 't2t', 'conf'")
        missing = [k for k in ("tokens", "m2t", "t2t", "conf") if k not in f]
        if missing:
            raise ValueError(f"{where} lacks {missing}; a frame needs 'tokens', 'm2t', 't2t', 'conf'")
        tok = np.asarray(f["tokens"])
        if tok.dtype.kind not in "iu" or tok.ndim != 1:
            raise ValueError(f"{where}: 'tokens' must be a list of integer token ids, got {f['tokens']!r:.80}")
        if N is None:
            N = len(tok)
            if not P < N:
                raise ValueError(f"prompt_length ({P}) must be smaller than the canvas length ({N})")
        if len(tok) != N:
            raise ValueError(f"{where}: 'tokens' has {len(tok)} ids, expected {N} (every frame of every run holds "
                             f"the whole canvas, prompt + generated part)")
        if tok.min() < 0 or tok.max() >= V:
            raise ValueError(f"{where}: 'tokens' holds ids outside [0, {V - 1}] (len(itos) = {V})")
        tok = tok.astype(np.int64)
        m2t, t2t_in = f["m2t"], f["t2t"]
        if not isinstance(m2t, (list, tuple, np.ndarray)) or not all(_is_int(p) for p in m2t):
            raise ValueError(f"{where}: 'm2t' must be a list of integer positions, got {m2t!r:.80}")
        m2t = [int(p) for p in m2t]
        if not isinstance(t2t_in, (list, tuple)):
            raise ValueError(f"{where}: 't2t' must be a list of (position, old_id, new_id), got {t2t_in!r:.80}")
        t2t = []
        for e in t2t_in:
            if isinstance(e, (str, bytes)) or len(e) != 3 or not all(_is_int(v) for v in e):
                raise ValueError(f"{where}: each 't2t' entry must be (position, old_id, new_id), got {e!r:.80}")
            t2t.append(tuple(int(v) for v in e))
        pos = m2t + [p for p, _, _ in t2t]
        if len(set(pos)) != len(pos):
            raise ValueError(f"{where}: a position appears twice among the M2T and T2T events {pos}")
        bad = [p for p in pos if not P <= p < N]
        if bad:
            raise ValueError(f"{where}: events at positions {bad} outside the generated part [{P}, {N - 1}]; the "
                             f"prompt is never decoded or edited (is prompt_length right?)")
        for p in m2t:
            if tok[p] == mask_id:
                raise ValueError(f"{where}: M2T position {p} is still [MASK] in 'tokens' (the canvas after the step)")
        for p, old, new in t2t:
            if old == new or mask_id in (old, new) or not (0 <= old < V and 0 <= new < V):
                raise ValueError(f"{where}: T2T edit {(p, old, new)} must replace one vocabulary token by a different "
                                 f"one, neither [MASK]")
            if tok[p] != new:
                raise ValueError(f"{where}: T2T edit {(p, old, new)} but 'tokens'[{p}] = {int(tok[p])}")
        prev = tok.copy()                                   # the canvas before this step, from the events
        prev[m2t] = mask_id
        for p, old, _ in t2t:
            prev[p] = old
        if s == 0:
            if (prev[:P] == mask_id).any():
                raise ValueError(f"run {name!r}: the prompt (the first {P} positions) contains [MASK]; is "
                                 f"prompt_length right?")
            canv.append(prev)
        elif not np.array_equal(prev, canv[-1]):
            p = int(np.flatnonzero(prev != canv[-1])[0])
            raise ValueError(f"{where}: position {p} changed from {int(canv[-1][p])} to {int(tok[p])} without an M2T "
                             f"or T2T event; 'tokens' must be the canvas after the step")
        conf = np.asarray(f["conf"], dtype=np.float64)
        if conf.shape != (N,):
            raise ValueError(f"{where}: 'conf' must hold one confidence per position ({N}), got shape {conf.shape}")
        ok = np.isnan(conf) | ((conf >= 0) & (conf <= 1))
        if not ok.all():
            raise ValueError(f"{where}: 'conf' must hold probabilities in [0, 1] (NaN where not defined)")
        if "reference" in f:
            if s != 0:
                raise ValueError(f"{where}: 'reference' goes on frame 0 only")
            ref = np.asarray(f["reference"])
            if ref.dtype.kind not in "iu" or ref.shape != (N - P,) or ref.min() < 0 or ref.max() >= V:
                raise ValueError(f"{where}: 'reference' must be {N - P} token ids in [0, {V - 1}] (the right answer "
                                 f"for the generated part)")
            reference = ref.astype(np.int64)
        canv.append(tok)
        m2ts.append(m2t)
        t2ts.append(t2t)
        confs.append(conf)
    confs.insert(0, np.full(N, np.nan))
    return np.stack(canv), [[]] + m2ts, [[]] + t2ts, np.stack(confs), reference


def editing_playback_demo(frames, itos: Sequence[str], prompt_length: int, mask_id: int,
                          title: str | None = None) -> Demo:
    """(Demo 4c) Editing playback: a LLaDA 2.1 decode step by step, M2T commits and T2T edits.
    Introduced in chapter 4, section 5.

    LLaDA 2.1 (REFERENCE.md section 5, eq. 1-3) updates, at each step, the masked positions whose top
    candidate is confident enough (Mask-to-Token, M2T: p > tau_mask) *and* the committed tokens whose
    top candidate differs and is confident enough (Token-to-Token, T2T: p > tau_edit).

    ``frames``: one decode as a list of dicts, one per decoder step, or several as a dict name ->
    such a list (e.g. "S-Mode", "Q-Mode", "T2T off"). A frame holds ``"tokens"`` (the canvas *after*
    the step: prompt_length prompt ids, then the generated part), ``"m2t"`` (the positions unmasked at
    this step), ``"t2t"`` (``(position, old_id, new_id)`` edits at this step) and ``"conf"`` (the
    confidence of every position at this step, NaN where not defined); frame 0 may hold
    ``"reference"`` (the right answer for the generated part), to mark wrong tokens. Positions index
    the whole canvas. Step 0 shows the canvas before the first step (rebuilt from frame 0's events);
    step s the canvas after step s. Every change between frames must be an M2T or T2T event.

    The canvas is a row of cells: the prompt pale blue, [MASK] grey, a committed token white shaded by
    its confidence (pale viridis); cells committed at this step are ringed green (M2T), cells edited at
    this step ringed orange (T2T) with the old token struck through above; tokens that differ from the
    reference are red with a cross. Below, how many M2T and T2T events each step had; the line marks
    the current step. Controls: ``"mode"`` (only when ``frames`` is a dict) and ``"step"`` (its maximum
    follows the mode; in ``demo.static`` settings, put ``"mode"`` before ``"step"``).
    """
    itos, V, mask_id, P = _check_token_args(itos, mask_id, prompt_length)
    if title is not None and not isinstance(title, str):
        raise ValueError(f"title must be a string, got {title!r:.80}")
    multi = isinstance(frames, dict)
    if multi:
        if not frames or not all(isinstance(k, str) for k in frames):
            raise ValueError("frames must be a non-empty dict: mode name (a string) -> list of frames")
        runs_in = dict(frames)
    else:
        runs_in = {title or "decode": frames}
    runs, N = {}, None
    for name, fr in runs_in.items():
        runs[name] = _check_frames(name, fr, V, P, mask_id, N)
        N = runs[name][0].shape[1]
    names = list(runs)
    G = N - P
    S_max = max(len(r[0]) - 1 for r in runs.values())

    # layout (data units): prompt rows of cells, a gap, then answer rows, each with a strip above its cells
    # for the old token of a T2T edit
    ncols = min(max(P, G), 8 if N <= 24 else 10)
    rows_p, rows_a = -(-P // ncols), -(-G // ncols)
    gap, strip = (0.3 if P else 0.0), 0.45
    corners = []
    for l in range(N):
        r, c = divmod(l, ncols) if l < P else divmod(l - P, ncols)
        y = -r - 0.9 if l < P else -rows_p - gap - r * (1 + strip) - strip - 0.9
        corners.append((c + 0.05, y))
    height = rows_p + gap + rows_a * (1 + strip)
    sc = _font_scale()
    fs, fs_old = 10.5 * sc, 9 * sc
    canvas_h, timeline_h = 0.62 * height + 0.5, 1.7
    fig_h = (canvas_h + timeline_h + 1.0) * sc
    fig = _figure(((0.98 * ncols + 1.6) * sc, fig_h))
    gs = fig.add_gridspec(2, 1, height_ratios=[canvas_h, timeline_h], hspace=0.45)
    ax, ax_t = fig.add_subplot(gs[0]), fig.add_subplot(gs[1])
    ax.axis("off")
    ax.set_xlim(-0.05, ncols + 0.05)
    ax.set_ylim(-height - 0.05, 0.05)
    cmap = plt.matplotlib.colormaps[viz.CONFIDENCE_CMAP]
    pale = plt.matplotlib.colors.ListedColormap([_pale(c, 0.45) for c in cmap(np.linspace(0, 1, 256))])
    sm = plt.cm.ScalarMappable(norm=plt.Normalize(0, 1), cmap=pale)
    fig.colorbar(sm, ax=ax, fraction=0.03, pad=0.02, label="confidence")
    cells = [plt.matplotlib.patches.Rectangle(xy, 0.9, 0.8) for xy in corners]
    coll = plt.matplotlib.collections.PatchCollection(cells, facecolors="white", edgecolors="white", linewidths=sc)
    ax.add_collection(coll)
    cell_texts = [ax.text(x + 0.45, y + 0.4, "", ha="center", va="center", fontsize=fs) for x, y in corners]
    old_texts = [ax.text(x + 0.45, y + 0.8 + strip / 2 + 0.03, "", ha="center", va="center", fontsize=fs_old,
                         color=viz.COLORS["t2t"]) for x, y in corners[P:]]
    head = ax.set_title(" ", loc="left")
    fig.text(0.01, 0.005, "green ring: M2T (unmasked at this step); orange ring: T2T (edited; the old token struck "
             "through above)" + ("; red \u2717: differs from the reference" if any(r[4] is not None for r in
                                                                                  runs.values()) else ""),
             fontsize=8.5 * sc, color=_NEUTRAL_INK, va="bottom")
    fig.subplots_adjust(left=0.06, right=0.93, top=1 - 0.45 * sc / fig_h, bottom=0.75 * sc / fig_h)
    ring_px = 3.5 * sc * fig.dpi / 72
    rings = _ring_verts(ax, corners, 0.9, 0.8, ring_px)
    ring_m2t = plt.matplotlib.collections.PolyCollection([], facecolors="none", edgecolors=viz.COLORS["m2t"],
                                                         linewidths=3.0 * sc)
    ring_t2t = plt.matplotlib.collections.PolyCollection([], facecolors="none", edgecolors=viz.COLORS["t2t"],
                                                         linewidths=3.0 * sc)
    strikes = plt.matplotlib.collections.LineCollection([], colors=viz.COLORS["t2t"], linewidths=1.3 * sc)
    wrong_marks = ax.scatter(np.zeros(0), np.zeros(0), marker="x", s=30 * sc ** 2, color=_WRONG, linewidths=2 * sc)
    for a in (ring_m2t, ring_t2t, strikes):
        ax.add_collection(a)
    box = ax.get_window_extent()
    x_per_px = (ncols + 0.1) / box.width

    # the timeline: M2T and T2T events per step, one x-axis for every mode (so their lengths compare)
    ax_t.set(xlim=(-0.4, S_max + 0.7), xlabel="step", ylabel="events")
    ax_t.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax_t.yaxis.set_major_locator(plt.MaxNLocator(integer=True, nbins=4))
    ax_t.grid(False, axis="x")
    y_max = max(max(max(len(m) for m in r[1]), max(len(t) for t in r[2])) for r in runs.values())
    ax_t.set_ylim(0, 1.3 * max(y_max, 1))
    bars_m2t = plt.matplotlib.collections.PolyCollection([], facecolors=viz.COLORS["m2t"], edgecolors="none",
                                                         label="M2T commits")
    bars_t2t = plt.matplotlib.collections.PolyCollection([], facecolors=viz.COLORS["t2t"], edgecolors="none",
                                                         label="T2T edits")
    ax_t.add_collection(bars_m2t)
    ax_t.add_collection(bars_t2t)
    now = ax_t.axvline(0, color=_INK, lw=1.5 * sc)
    ax_t.legend(handles=[bars_m2t, bars_t2t], loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, frameon=False,
                borderaxespad=0.1)                                  # above the axes: static

    def rect(x0, w, h):
        return np.array([[x0, 0.0], [x0 + w, 0.0], [x0 + w, h], [x0, h]])

    # precomputed per mode and step
    prompt_face = _pale(viz.COLORS["prompt"], 0.75)
    mask_face = plt.matplotlib.colors.to_rgba(viz.COLORS["mask"])
    eos_ids = {i for i, s in enumerate(itos) if s == "[EOS]"}
    pad_ids = {i for i, s in enumerate(itos) if s == "[PAD]"}
    width_cache: dict[str, float] = {}
    pre = {}
    for name, (canv, m2ts, t2ts, confs, ref) in runs.items():
        S = len(canv) - 1
        timeline = ([rect(s - 0.38, 0.36, len(m2ts[s])) for s in range(1, S + 1)],
                    [rect(s + 0.02, 0.36, len(t2ts[s])) for s in range(1, S + 1)])
        prompt_txt = " ".join(_esc(itos[t]) for t in canv[0, :P] if t not in pad_ids)
        steps = []
        for s in range(S + 1):
            tok, conf = canv[s], confs[s]
            masked = tok == mask_id
            faces, inks, texts, weights = [], [], [], []
            wrong = np.zeros(N, dtype=bool)
            if ref is not None:
                wrong[P:] = ~masked[P:] & (tok[P:] != ref)
            changed = set(m2ts[s]) | {p for p, _, _ in t2ts[s]}
            for l in range(N):
                if l < P:
                    faces.append(prompt_face)
                    inks.append(viz.COLORS["prompt"])
                elif masked[l]:
                    faces.append(mask_face)
                    inks.append("black")
                else:
                    faces.append(_pale(cmap(conf[l]), 0.45) if np.isfinite(conf[l]) else (1.0, 1.0, 1.0, 1.0))
                    inks.append(_WRONG_INK if wrong[l] else "black")
                texts.append("[MASK]" if masked[l] else _short(itos[tok[l]]))
                weights.append("bold" if l in changed else "normal")
            olds = [""] * G
            segs = []
            for p, old, _ in t2ts[s]:
                word = _short(itos[old])
                olds[p - P] = word
                if word not in width_cache:
                    width_cache[word] = _text_px(fig, word, fs_old) * x_per_px
                x, y = corners[p]
                yc = y + 0.8 + strip / 2 + 0.03
                segs.append([(x + 0.45 - width_cache[word] / 2, yc), (x + 0.45 + width_cache[word] / 2, yc)])
            marks = np.array([(corners[l][0] + 0.82, corners[l][1] + 0.14)
                              for l in np.flatnonzero(wrong)]).reshape(-1, 2)
            # the caption
            if s == 0:
                events = f"before the first step, {int(masked[P:].sum())} of {G} generated positions are [MASK]"
            else:
                m2t_txt = (", ".join(f"&ldquo;{_esc(itos[tok[p]])}&rdquo; at {p}" for p in m2ts[s]) or "nothing")
                if m2ts[s]:
                    c = conf[m2ts[s]]
                    c = c[np.isfinite(c)]
                    if len(c):
                        m2t_txt += f" ({'' if len(c) == 1 else 'mean '}confidence {c.mean():.2f})"
                t2t_txt = (", ".join(f"&ldquo;{_esc(itos[o])}&rdquo;&rarr;&ldquo;{_esc(itos[nw])}&rdquo; at "
                                     f"position {p}" for p, o, nw in t2ts[s]) or "nothing")
                events = (f"M2T commits <b>{len(m2ts[s])}</b>: {m2t_txt}; T2T edits <b>{len(t2ts[s])}</b>: {t2t_txt}; "
                          f"{int(masked[P:].sum())} of {G} still [MASK]")
            if ref is not None:
                events += f"; <b>{int(wrong.sum())}</b> wrong vs the reference"
                if wrong.any():
                    events += " (at " + ", ".join(str(int(p)) for p in np.flatnonzero(wrong)) + ")"
            answer = []
            for t in tok[P:]:
                if t in eos_ids:
                    answer.append("[EOS]")
                    break
                if t not in pad_ids:
                    answer.append(None if t == mask_id else itos[t])
            n_m2t = sum(len(m) for m in m2ts[: s + 1])
            n_t2t = sum(len(t) for t in t2ts[: s + 1])
            caption = (f"<b>{_esc(name)}</b>, step {s} of {S}: {events}. So far {n_m2t} M2T commits and {n_t2t} T2T "
                       f"edits. Text: <span style='color:{viz.COLORS['prompt']}'>{prompt_txt}</span> "
                       f"<i>{_mask_runs(answer) or '(empty)'}</i>")
            heading = f"{name}: step {s} of {S}" + ("" if s == 0 else f", {len(m2ts[s])} M2T, {len(t2ts[s])} T2T")
            steps.append((faces, inks, texts, weights, [rings[p] for p in m2ts[s]],
                          [rings[p] for p, _, _ in t2ts[s]], olds, segs, marks, heading, caption))
        pre[name] = (S, timeline, steps)

    def update(step: int, mode: str = names[0]) -> str:
        S, (tl_m2t, tl_t2t), steps = pre[mode]
        step = min(step, S)                  # the slider's max follows the mode just after this call
        faces, inks, texts, weights, r_m2t, r_t2t, olds, segs, marks, heading, caption = steps[step]
        coll.set_facecolor(faces)
        for txt, s, c, w in zip(cell_texts, texts, inks, weights):
            txt.set_text(s)
            txt.set_color(c)
            txt.set_fontweight(w)
        for txt, s in zip(old_texts, olds):
            txt.set_text(s)
        ring_m2t.set_verts(r_m2t)
        ring_t2t.set_verts(r_t2t)
        strikes.set_segments(segs)
        wrong_marks.set_offsets(marks)
        bars_m2t.set_verts(tl_m2t)
        bars_t2t.set_verts(tl_t2t)
        now.set_xdata([step, step])
        head.set_text(heading)
        return caption

    controls = {}
    if multi:
        controls["mode"] = W.Dropdown(options=names, value=names[0], description="mode", layout=W.Layout(width="300px"))
    controls["step"] = _slider("step", 0, pre[names[0]][0], 0)
    animated = ([coll, ring_m2t, ring_t2t, strikes, wrong_marks, head, bars_m2t, bars_t2t, now]
                + cell_texts + old_texts)
    demo = _StrictDemo("editing", title or "Editing playback: M2T commits and T2T edits, step by step", controls, fig,
                       update, animated)
    if multi:
        def on_mode(change) -> None:         # a step past the new end is clamped (and re-rendered)
            controls["step"].max = pre[change["new"]][0]

        controls["mode"].observe(on_mode, names="value")
    return demo


def threshold_demo(tau_mask_values, tau_edit_values, tpf, accuracy, references: dict | None = None) -> Demo:
    """(Demo 4d) Threshold explorer: speed against accuracy over a grid of (tau_mask, tau_edit).
    Introduced in chapter 4, section 5.

    LLaDA 2.1's decoder (REFERENCE.md section 5, eq. 1-3) has two thresholds: tau_mask, how confident a
    masked position must be to be committed (M2T), and tau_edit, how confident a different token must
    be to overwrite a committed one (T2T). The paper's S Mode lowers tau_mask and relies on T2T to fix
    the drafts; Q Mode is conservative (Table 1: flash S 72.34 | 5.93 TPF, Q 73.54 | 3.64 TPF).

    ``tau_mask_values`` (n_mask,) and ``tau_edit_values`` (n_edit,): strictly increasing thresholds in
    [0, 1]; ``tpf`` and ``accuracy``: float arrays (n_mask, n_edit), the tokens per forward pass (> 0)
    and the accuracy **in percent** ([0, 100]) measured at each grid point; ``references``: optional
    name -> (tpf, accuracy in percent), e.g. ``{"S-Mode (ours)": (3.1, 78.0), "Q-Mode (ours)": (...)}``,
    drawn as labelled stars. The figure shows every grid point faintly in the (TPF, accuracy) plane, the
    current setting as a big marker, and the points reached by moving only tau_edit (orange, T2T) or
    only tau_mask (green, M2T) from it. Controls: ``"tau_mask"`` and ``"tau_edit"`` (indices into the
    value lists; each slider's label shows its threshold).
    """
    tm = np.asarray(tau_mask_values, dtype=np.float64)
    te = np.asarray(tau_edit_values, dtype=np.float64)
    for nm, v in (("tau_mask_values", tm), ("tau_edit_values", te)):
        if v.ndim != 1 or len(v) < 1:
            raise ValueError(f"{nm} must be a 1-D list of at least one threshold, got shape {v.shape}")
        if not np.isfinite(v).all() or v.min() < 0 or v.max() > 1:
            raise ValueError(f"{nm} must hold thresholds in [0, 1], got {v.min():.3g}..{v.max():.3g}")
        if (np.diff(v) <= 0).any():
            raise ValueError(f"{nm} must be strictly increasing")
    shape = (len(tm), len(te))
    tpf = np.asarray(tpf, dtype=np.float64)
    acc = np.asarray(accuracy, dtype=np.float64)
    for nm, v in (("tpf", tpf), ("accuracy", acc)):
        if v.shape != shape:
            raise ValueError(f"{nm} must have shape (len(tau_mask_values), len(tau_edit_values)) = {shape}, "
                             f"got {v.shape}")
        if not np.isfinite(v).all():
            raise ValueError(f"{nm} must be finite")
    if (tpf <= 0).any():
        raise ValueError("tpf (tokens per forward pass) must be > 0")
    if (acc < 0).any() or (acc > 100).any():
        raise ValueError(f"accuracy must be in percent, in [0, 100], got {acc.min():.3g}..{acc.max():.3g}")
    refs = {}
    if references is not None:
        if not isinstance(references, dict):
            raise ValueError("references must be a dict: name -> (tpf, accuracy in percent)")
        for nm, v in references.items():
            if not isinstance(nm, str):
                raise ValueError(f"reference names must be strings, got {nm!r}")
            try:
                v = np.asarray(v, dtype=np.float64) if not isinstance(v, (str, bytes)) else np.zeros(0)
            except (TypeError, ValueError):
                v = np.zeros(0)
            if v.shape != (2,) or not np.isfinite(v).all() or v[0] <= 0 or not 0 <= v[1] <= 100:
                raise ValueError(f"references[{nm!r}] must be (tpf > 0, accuracy in [0, 100]), got "
                                 f"{references[nm]!r:.80}")
            refs[nm] = (float(v[0]), float(v[1]))

    # precomputed captions
    best = np.unravel_index(np.argmax(acc), shape)
    fast = np.unravel_index(np.argmax(tpf), shape)
    summary = (f"Over the grid: accuracy {acc.min():.1f}&ndash;{acc.max():.1f}% (best {acc[best]:.1f}% at "
               f"&tau;<sub>mask</sub> = {tm[best[0]]:.2f}, &tau;<sub>edit</sub> = {te[best[1]]:.2f}), TPF "
               f"{tpf.min():.2f}&ndash;{tpf.max():.2f} (fastest {tpf[fast]:.2f} at &tau;<sub>mask</sub> = "
               f"{tm[fast[0]]:.2f}, &tau;<sub>edit</sub> = {te[fast[1]]:.2f}).")
    captions = []
    for i in range(shape[0]):
        row = []
        for j in range(shape[1]):
            notes = []
            if tm[i] == 1.0:
                notes.append("&tau;<sub>mask</sub> = 1: no probability exceeds it, so only the fallback commits, one "
                             "token a step")
            if te[j] == 1.0:
                notes.append("&tau;<sub>edit</sub> = 1: no edit can pass, T2T is off")
            cmp = "; ".join(f"{_esc(nm)}: TPF {t:.2f}, {a:.1f}% (this setting {tpf[i, j] - t:+.2f} TPF, "
                            f"{acc[i, j] - a:+.1f} points)" for nm, (t, a) in refs.items())
            row.append(f"&tau;<sub>mask</sub> = <b>{tm[i]:.2f}</b>, &tau;<sub>edit</sub> = <b>{te[j]:.2f}</b>: "
                       f"<b>{tpf[i, j]:.2f}</b> tokens per forward pass (TPF), accuracy <b>{acc[i, j]:.1f}%</b>. "
                       + (" ".join(n + "." for n in notes) + " " if notes else "")
                       + summary + (f" References: {cmp}." if cmp else ""))
        captions.append(row)

    sc = _font_scale()
    fig, ax = new_figure(1, 1, figsize=(8.8 * sc, 5.0 * sc))
    xs = np.r_[tpf.ravel(), [t for t, _ in refs.values()]]
    ys = np.r_[acc.ravel(), [a for _, a in refs.values()]]
    dx, dy = (xs.max() - xs.min()) or 1.0, (ys.max() - ys.min()) or 1.0
    ax.set(xlim=(xs.min() - 0.08 * dx, xs.max() + 0.22 * dx), ylim=(ys.min() - 0.1 * dy, ys.max() + 0.12 * dy),
           xlabel="tokens per forward pass (TPF)", ylabel="accuracy (%)")
    ax.scatter(tpf.ravel(), acc.ravel(), s=16 * sc ** 2, color="#B8B8B8", alpha=0.7, linewidths=0, label="grid")
    for nm, (t, a) in refs.items():
        ax.scatter([t], [a], marker="*", s=260 * sc ** 2, color="#333333", edgecolors="white", linewidths=0.8, zorder=3)
        ax.annotate(nm, (t, a), xytext=(7 * sc, 5 * sc), textcoords="offset points", fontsize=9.5 * sc, color="#333333")
    (along_edit,) = ax.plot([], [], "-o", color=viz.COLORS["t2t"], ms=3.5 * sc, lw=1.4 * sc, alpha=0.9,
                            label="\u03c4_edit varies (T2T)")
    (along_mask,) = ax.plot([], [], "-o", color=viz.COLORS["m2t"], ms=3.5 * sc, lw=1.4 * sc, alpha=0.9,
                            label="\u03c4_mask varies (M2T)")
    (marker,) = ax.plot([], [], "o", ms=15 * sc, color=viz.COLORS["diffusion"], markeredgecolor="black",
                        markeredgewidth=1.5 * sc, label="current setting")
    head = ax.set_title(" ", loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9 * sc, frameon=False)   # outside: static
    fig.tight_layout()
    controls = {"tau_mask": _index_slider("tau_mask", shape[0]), "tau_edit": _index_slider("tau_edit", shape[1])}

    def update(tau_mask: int, tau_edit: int) -> str:
        i, j = tau_mask, tau_edit
        along_edit.set_data(tpf[i], acc[i])
        along_mask.set_data(tpf[:, j], acc[:, j])
        marker.set_data([tpf[i, j]], [acc[i, j]])
        head.set_text(f"\u03c4_mask = {tm[i]:.2f}, \u03c4_edit = {te[j]:.2f}: TPF {tpf[i, j]:.2f}, "   # no mathtext:
                      f"accuracy {acc[i, j]:.1f}%")                                     # it costs ~20 ms
        controls["tau_mask"].description = f"\u03c4_mask = {tm[i]:.2f}"
        controls["tau_edit"].description = f"\u03c4_edit = {te[j]:.2f}"
        return captions[i][j]

    return _StrictDemo("threshold", "Threshold explorer: speed (TPF) against accuracy", controls, fig, update,
                       [along_edit, along_mask, marker, head])
