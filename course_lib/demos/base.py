"""The demo framework: a control panel plus a figure, with a static form for readers of exported pages, and
the drawing helpers the chapters' demos share (token chips, colours, sliders).

A demo takes precomputed arrays; its callback only indexes them and updates matplotlib artists in place
(``set_offsets``, ``set_data``, ``set_UVC``...). It never retrains or resamples. To stay well inside 50 ms per
update on a laptop CPU, a demo draws its static parts (axes, ticks, labels) once, and on each update redraws only
its *animated* artists over that cached background (matplotlib "blitting"), then encodes the frame as PNG into an
``ipywidgets.Image``. Text that changes goes into an HTML caption under the figure. Every demo records how long
each update took (``demo.timings_ms``) and carries a stable DOM class (``demo-<name>``) for browser tests.
``demo.static(...)`` renders the same update path at a few control values into one frame-strip figure, the form
that survives in static HTML.
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
from matplotlib.text import Text
from PIL import Image
from .. import viz


def blank_figure(figsize) -> Figure:
    """An empty figure on an Agg canvas, for layouts that need a gridspec."""
    fig = Figure(figsize=figsize, dpi=plt.rcParams["figure.dpi"])
    FigureCanvasAgg(fig)
    return fig


def new_figure(nrows: int = 1, ncols: int = 1, figsize=(6, 4), **kwargs):
    """A figure outside pyplot (so the notebook does not also show it inline), on an Agg canvas."""
    fig = blank_figure(figsize)
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

    def min_text_px(self) -> float:
        """The smallest visible text of the figure, in pixels of the drawn image (font size in points x dpi / 72)."""
        hidden = set()                                   # the tick labels of axes that are switched off
        for ax in self.fig.axes:
            if not ax.axison:
                hidden |= {*ax.xaxis.get_ticklabels(which="both"), *ax.yaxis.get_ticklabels(which="both")}
        sizes = [t.get_fontsize() * self.fig.dpi / 72 for t in self.fig.findobj(Text)
                 if t.get_visible() and t.get_text().strip() and t not in hidden]
        return round(min(sizes), 1) if sizes else float("nan")

    def static(self, settings: Sequence[dict], ncols: int | None = None, width: float | None = None,
               titles: Sequence[str] | None = None):
        """Frame strip: render the demo at each settings dict (same update path) and tile the frames,
        each ``width`` inches wide (default: the frame's own size, so its text is shown at the size it was drawn),
        titled by ``titles`` (default: the control values). Returns a pyplot figure (shown inline by the notebook)."""
        if titles is not None and len(titles) != len(settings):
            raise ValueError("give one title per settings dict")
        saved = self.values()
        frames, captions = [], []
        for k, s in enumerate(settings):
            self.set(**s)
            frames.append(plt.imread(io.BytesIO(self.image.value), format="png"))
            captions.append(titles[k] if titles is not None else ", ".join(f"{a} = {v}" for a, v in s.items()))
        self.set(**saved)
        h, w = frames[0].shape[:2]
        if width is None:
            width = w / plt.rcParams["figure.dpi"]
            ncols = ncols or max(1, min(len(frames), int(MAX_STRIP_PX // w)))      # as many as fit a page's width
        ncols = ncols or len(frames)
        nrows = int(np.ceil(len(frames) / ncols))
        fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, (width * h / w + 0.35) * nrows), squeeze=False)
        for ax in axes.flat:
            ax.axis("off")
        for ax, fr, c in zip(axes.flat, frames, captions):
            ax.imshow(fr)
            ax.set_title(c, fontsize=10)
        fig.tight_layout()
        return fig

    def __repr__(self) -> str:  # short text/plain for notebooks and nbval
        # what a notebook shows where the widget cannot be drawn: before the cells above have run in this session
        return (f"<Demo {self.name}: {self.title}>  To use this demo, run the cells above it "
                f"(Run > Run All Above Selected Cell), then this one.")


MAX_STRIP_PX = 960        # a frame strip shown at its frames' own size is at most this wide (a notebook's column)


def slider(label: str, lo: int, hi: int, value: int, step: int = 1) -> W.IntSlider:
    return W.IntSlider(value=value, min=lo, max=hi, step=step, description=label, continuous_update=True,
                       layout=W.Layout(width="420px"))


INK = "#222222"            # an unchanged word


MAX_WORD_CHARS = 9


def esc(s: str) -> str:
    """HTML-escape a token for a caption."""
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def short(word: str, n: int = MAX_WORD_CHARS) -> str:
    """A word cut to at most ``n`` characters (with an ellipsis), so that it fits its cell."""
    return word if len(word) <= n else word[: n - 1] + "\u2026"


def lines_for(n_words: int, per_line: int = 8) -> tuple[int, int]:
    """(number of lines, words per line) to lay out ``n_words`` at most ``per_line`` a line, balanced."""
    n_lines = max(1, int(np.ceil(n_words / per_line)))
    return n_lines, int(np.ceil(n_words / n_lines))


def text_px(fig, word: str, fontsize: float) -> float:
    """Width in pixels of ``word`` drawn at ``fontsize`` on ``fig``'s canvas."""
    from matplotlib.font_manager import FontProperties
    w, _, _ = fig.canvas.get_renderer().get_text_width_height_descent(word, FontProperties(size=fontsize), ismath=False)
    return w


class Chips:
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
            self._w[word] = text_px(self.ax.figure, word, self.fontsize)
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


def word_style(word: str, clean: str | None, mask_token: str) -> tuple[str, str, str]:
    """(shown text, text colour, chip colour) of one word of a corrupted sentence: [MASK] on a chip in
    the mask colour, a word changed into another word on a T2T-orange chip, an unchanged word plain."""
    if word == mask_token:
        return short(word), "black", viz.COLORS["mask"]
    if clean is not None and word != clean:
        return short(word), "black", viz.COLORS["t2t"]
    return short(word), INK, "none"


def colorbar(fig, mappable, ax, label: str, fontsize: float, **kwargs):
    """``fig.colorbar`` with its label and tick labels at ``fontsize`` (the demo's own text size, not the style's)."""
    cbar = fig.colorbar(mappable, ax=ax, **kwargs)
    cbar.set_label(label, fontsize=fontsize)
    cbar.ax.tick_params(labelsize=fontsize)
    return cbar


def font_scale() -> float:
    """How much bigger than the course's base style (10 pt) the current style's fonts are (1.6 in
    projector mode). The chapter-2 demos lay out words on fixed grids, so they scale their figure size,
    word fonts and margins by this factor: the same layout, just larger."""
    return float(np.clip(plt.rcParams["font.size"] / 10.0, 0.8, 2.5))


def check_words(words, n: int | None, what: str) -> list[str]:
    if isinstance(words, str) or not all(isinstance(w, str) for w in words):
        raise ValueError(f"{what} must be a list of word strings, got {words!r:.80}")
    words = list(words)
    if n is not None and len(words) != n:
        raise ValueError(f"{what} has {len(words)} words, expected {n}")
    return words


RIGHT, WRONG = "#2CA02C", "#D62728"            # a right / a wrong answer (text and bars)


RIGHT_INK, WRONG_INK, NEUTRAL_INK = "#1B6E1B", "#B01C1C", "#6E6E6E"


class StrictDemo(Demo):
    """A :class:`Demo` whose :meth:`set` checks values: a choice that is not among a dropdown's options, or a
    slider value outside its range, raises ValueError (instead of traitlets' TraitError, or a silent clamp).
    Dropdowns are set before sliders, so that a slider whose range follows a dropdown (the generation
    demo's step) is checked against the new range; on an error the controls are put back as they were."""

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
                elif hasattr(c, "max") and not (is_int(v) and c.min <= v <= c.max):
                    raise ValueError(f"{k} must be an integer in [{c.min}, {c.max}] for demo {self.name!r}, "
                                     f"got {v!r}")
                super().set(**{k: v})
        except ValueError:
            if self.values() != saved:
                super().set(**saved)
            raise


def is_int(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def pale(color, amount: float = 0.55) -> tuple:
    """``color`` mixed with ``amount`` of white (a bar or cell background that dark text reads on)."""
    rgb = np.array(plt.matplotlib.colors.to_rgb(color))
    return tuple(amount + (1 - amount) * rgb) + (1.0,)


def ring_verts(ax, corners, w: float, h: float, gap_px: float) -> list:
    """Rectangles ``gap_px`` pixels outside cells of size ``w`` x ``h`` (data units) at lower-left ``corners``:
    the rings that mark freshly unmasked cells (same look as the chapter-2 playback)."""
    box = ax.get_window_extent()
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    dx, dy = gap_px * (x1 - x0) / box.width, gap_px * (y1 - y0) / box.height
    return [np.array([[x - dx, y - dy], [x + w + dx, y - dy], [x + w + dx, y + h + dy], [x - dx, y + h + dy]])
            for x, y in corners]


def check_token_args(itos, mask_id, prompt_length) -> tuple[list, int, int, int]:
    """``(itos as strings, V, mask_id, prompt_length)`` after checking the ids of a token-row demo."""
    itos = [str(s) for s in itos]
    V = len(itos)
    if not is_int(mask_id) or not 0 <= mask_id < V:
        raise ValueError(f"mask_id must be an integer in [0, {V - 1}], got {mask_id!r}")
    if not is_int(prompt_length) or prompt_length < 0:
        raise ValueError(f"prompt_length must be an integer >= 0, got {prompt_length!r}")
    return itos, V, int(mask_id), int(prompt_length)


def mask_runs(tokens: Sequence[str | None]) -> str:
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
            out.append(esc(tok))
    return " ".join(out)
