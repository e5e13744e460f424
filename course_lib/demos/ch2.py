"""Chapter 2's demos (discrete diffusion): each demo's builder (``*_demo``) and the function that computes its inputs
from the shipped checkpoints (``*_inputs``), which the chapter and the lecture gallery both call:
``demo = noising_demo(**noising_inputs())``. The ``*_inputs`` functions import the models when they run, so that
the gallery, which builds every demo from stored inputs, starts without torch.
"""
from __future__ import annotations

from typing import Sequence
import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
from .. import viz
from .base import Chips, Demo, INK, check_words, colorbar, esc, font_scale, lines_for, new_figure, short, slider, text_px, word_style


_SPECIAL_TOKENS = ("[PAD]", "[EOS]")


def _word_row(ax, n_words: int, y_top: float, per_line: int, fontsize: float, x0: float = 0.0):
    """``n_words`` text artists on a fixed grid (``per_line`` columns of width 1 starting at ``x0``,
    lines 1 apart going down from ``y_top``)."""
    texts = []
    for j in range(n_words):
        r, c = divmod(j, per_line)
        texts.append(ax.text(x0 + c + 0.5, y_top - r, "", ha="center", va="center", fontsize=fontsize, color=INK))
    return texts


def _refresh_background(demo: Demo) -> None:
    """Redraw the static layer (after axis limits changed) and cache it again for blitting."""
    demo.fig.canvas.draw()
    demo._background = demo.fig.canvas.copy_from_bbox(demo.fig.bbox)


def transition_demo(matrices: dict, times: Sequence[int], sentence: Sequence[str], corrupted: dict,
                    mask_token: str = "[MASK]") -> Demo:
    """(Demo 2a) Transition matrices: drag t.

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
    sentence = check_words(sentence, None, "sentence")
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
    corr = {k: [check_words(s, L, f"corrupted[{k!r}][{i}]") for i, s in enumerate(v)] for k, v in corrupted.items()}

    # precomputed: per kind and time, every word's (text, colour, chip) and the caption's numbers
    keep = {k: np.einsum("tkk->t", m) / K for k, m in mats.items()}
    styles = {k: [[word_style(w, c, mask_token) for w, c in zip(s, sentence)] for s in v] for k, v in corr.items()}
    frac = {k: [(sum(w != c and w != mask_token for w, c in zip(s, sentence)) / L,
                 sum(w == mask_token for w in s) / L) for s in v] for k, v in corr.items()}

    # layout: heatmap left; right, one block per sentence row (a label line, then the words on a fixed
    # grid of columns wide enough for the longest shown word, at most 8 words a line)
    sc = font_scale()
    fig_w, fs = 9.0 * sc, 11 * sc            # 9 x 3.8 in: text of 18 px on a 1280 x 720 screen
    fig, (ax, axw) = new_figure(1, 2, figsize=(fig_w, 4.1 * sc), gridspec_kw={"width_ratios": [1.0, 1.9]})
    shown = {short(w) for x in [sentence, [mask_token]] + [x for v in corr.values() for x in v] for w in x}
    col_px = max(text_px(fig, w, fs) for w in shown) + 1.1 * fs * fig.dpi / 72
    panel_px = fig_w * fig.dpi * 0.94 * 1.9 / 2.9
    n_lines, per_line = lines_for(L, max(3, min(8, int(panel_px / col_px))))
    labels = ["clean"] + rows
    block = 0.85 + n_lines + 0.25                    # label, word lines, gap (in lines)
    fig_h = max(3.6, 0.34 * block * len(labels) + 0.7) * sc
    fig.set_size_inches(fig_w, fig_h)
    im = ax.imshow(mats[kinds[0]][0], vmin=0, vmax=1, cmap=viz.CONFIDENCE_CMAP, interpolation="nearest")
    colorbar(fig, im, ax, "probability", 10 * sc, fraction=0.046, pad=0.04)
    ax.set_xlabel("$x_t$ (to)", fontsize=10 * sc)
    ax.set_ylabel("$x_0$ (from)", fontsize=10 * sc)
    ax.tick_params(labelsize=10 * sc)
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
                     color=INK, fontweight="bold", fontstyle="italic")
        if lab == "clean":
            for w, txt in zip(sentence, _word_row(axw, L, y - 0.9, per_line, fs)):
                txt.set_text(short(w))
        else:
            row_labels[lab] = t
            word_texts[lab] = _word_row(axw, L, y - 0.9, per_line, fs)
    fig.subplots_adjust(left=0.06, right=0.99, top=1 - 0.45 * sc / fig_h, bottom=0.55 * sc / fig_h, wspace=0.3)
    chips = Chips(axw, fs)
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
            row_labels[k].set_color(INK if k == kind else "#8A8A8A")      # the row of the heatmap's kind
        rows_html = "; ".join(f"{k}: {100 * frac[k][i][0]:.0f}% changed, {100 * frac[k][i][1]:.0f}% masked"
                              for k in rows)
        return (f"<b>{esc(kind)}</b> noise, t = {times[i]}: keep probability (mean diagonal of Q&#772;<sub>t</sub>) "
                f"= <b>{keep[kind][i]:.3f}</b>. Corrupted sentence, {rows_html}.")

    controls = {"i": slider("t", 0, n - 1, 0),
                "kind": W.Dropdown(options=kinds, value=kinds[0], description="noise")}
    animated = [im, title, chips.coll] + list(row_labels.values()) + [t for ts in word_texts.values() for t in ts]
    return Demo("transition", "Transition matrices: drag t", controls, fig, update, animated)


def playback_demo(trajectories: dict, itos: Sequence[str], mask_id: int) -> Demo:
    """(Demo 2c) Denoising playback: tokens appear as they are unmasked.

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
        words = [short(itos[t]) for t in final]
        faces = np.where(unmasked[..., None], face_on[None], mask_rgba)   # (S+1, L, 4)
        inks = np.where(unmasked, ink_on[None], "black")
        texts = np.where(unmasked, np.array(words, dtype=object)[None], "[MASK]")
        fresh = unmasked & (first[None] == np.arange(S + 1)[:, None]) & (first[None] > 0)
        fresh = [np.flatnonzero(f) for f in fresh]                       # cells unmasked at each step
        captions = []
        for k in range(S + 1):
            row = z[k]
            stop = next((j for j in range(L) if row[j] in eos_ids), L)
            so_far = " ".join("\u2581\u2581" if t == mask_id else esc(itos[t])
                              for t in row[:stop] if t not in pad_ids)
            n_masked = int((row == mask_id).sum())
            captions.append(f"<b>{esc(name)}</b>: step {k} of {S}: {n_masked} masked, "
                            f"the sentence so far: <i>{so_far or '(empty)'}</i>")
        note = " (blue: the prompt)" if prompt.any() else ""
        pre[name] = (faces, inks, texts, fresh, captions, note)

    sc = font_scale()
    fig_h = (0.55 * nrows + 0.8) * sc              # about 9 x 3.8 in: text of 18 px on a 1280 x 720 screen
    fig, ax = new_figure(1, 1, figsize=((0.8 * ncols + 1.0) * sc, fig_h))
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
    colorbar(fig, sm, ax, "unmasked at step", 10 * sc, fraction=0.03, pad=0.02)
    fig.subplots_adjust(left=0.01, right=0.93, top=1 - 0.45 * sc / fig_h, bottom=0.02)   # room for the colour bar label
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

    controls = {"step": slider("step", 0, S, 0),
                "order": W.Dropdown(options=names, value=names[0], description="order")}
    return Demo("playback", "Denoising playback: tokens appear as they are unmasked", controls, fig, update,
                [coll, ring_coll, title] + cell_texts)


def nelbo_integrand_demo(t_grid, integrands: dict, examples: dict) -> Demo:
    """(Demo 2b) The NELBO integrand over t.

    For the chosen sentence: the Monte-Carlo mean of the integrand w(t) * sum over masked positions of
    -log p(x^l | z_t) (nats) against t with a +-2 standard-error band, the area from 0 to the current
    t filled (the running integral; over all of (0, 1] it is the sentence's NELBO), and below, one
    masked version z_t of the sentence ([MASK] on grey chips).

    ``t_grid``: n increasing floats in (0, 1]; ``integrands`` maps a sentence label to
    ``{"mean": (n,), "se": (n,), "nelbo": float (optional)}`` (other keys are ignored); ``examples`` maps the
    same labels to n word lists (z_t at each t). The running integral uses the trapezoid rule on the grid, with the
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
        first = check_words(ex[0], None, f"examples[{lab!r}][0]")
        sents = [first] + [check_words(s, len(first), f"examples[{lab!r}][{i}]") for i, s in enumerate(ex[1:], 1)]
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
        styles = [[word_style(w, None, mask_token) for w in s] for s in masked_sents[lab]]
        n_masked = [sum(w == mask_token for w in s) for s in masked_sents[lab]]
        pre[lab] = (band, areas, ylim, styles, n_masked)

    L_max = max(len(s[0]) for s in masked_sents.values())
    col = viz.COLORS["diffusion"]
    sc = font_scale()
    fs = 11 * sc
    fig, (ax, axw) = new_figure(2, 1, figsize=(8.4 * sc, 4.5 * sc))
    shown = {s for st in pre.values() for row in st[3] for s, _, _ in row} | {short(mask_token)}
    col_px = max(text_px(fig, w, fs) for w in shown) + 1.1 * fs * fig.dpi / 72
    n_lines, per_line = lines_for(L_max, max(3, min(8, int(0.8 * 8.4 * sc * fig.dpi / col_px))))
    fig_h = (2.2 + 0.36 * n_lines + 0.2) * sc          # the curve over the words: 8.4 x 3.8 in for 4 lines of words,
    fig.set_size_inches(8.4 * sc, fig_h)                # text of 18 px on a 1280 x 720 screen
    ax.get_gridspec().set_height_ratios([1.5, 0.36 * n_lines + 0.2])
    mean0, se0, _, _ = curves[labels[0]]
    band = plt.matplotlib.collections.PolyCollection([pre[labels[0]][0]], facecolors=col, alpha=0.2,
                                                     edgecolors="none", label="$\\pm 2$ s.e.")
    area = plt.matplotlib.collections.PolyCollection([pre[labels[0]][1][0]], facecolors=col, alpha=0.38,
                                                     edgecolors="none", label="area up to t")
    ax.add_collection(area)
    ax.add_collection(band)
    (line,) = ax.plot(t, mean0, color=col, label="integrand (mean)")
    (dot,) = ax.plot([t[0]], [mean0[0]], "o", color=col, markeredgecolor="black", ms=7 * sc)
    vline = ax.axvline(t[0], color="black", lw=1.2)
    ax.set(xlim=(0, 1), ylim=pre[labels[0]][2])
    ax.set_xlabel("t", fontsize=10 * sc, labelpad=0)
    ax.set_ylabel("$w(t)\\,\\Sigma_{\\ell\\ \\mathrm{masked}} -\\log p(x^\\ell | z_t)$\n(nats)", fontsize=10 * sc)
    ax.tick_params(labelsize=10 * sc)
    # the legend sits above the axes on the right, off the data; the title (time and running integral) on the left
    ax.legend(handles=[line, band, area], loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=3, frameon=False,
              fontsize=10 * sc, borderaxespad=0.1, handlelength=1.2, columnspacing=0.8, handletextpad=0.4)
    title = ax.set_title(" ", loc="left", fontsize=10.5 * sc)
    axw.axis("off")
    axw.set_xlim(-1.1, per_line)
    axw.set_ylim(-n_lines + 0.45, 0.55)
    axw.text(-0.15, 0, "$z_t$:", ha="right", va="center", fontsize=12 * sc)
    words = _word_row(axw, L_max, 0, per_line, fs)
    fig.subplots_adjust(left=0.12, right=0.98, top=1 - 0.4 * sc / fig_h, bottom=0.01, hspace=0.3)
    chips = Chips(axw, fs)
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
        total = f" of {nelbo:.2f}" if nelbo is not None else ""
        title.set_text(f"t = {t[i]:.3f}: integral so far {running[i]:.2f}{total} nats")
        chips.show(chip_frames[sentence][i])
        for j, txt in enumerate(words):
            s, c, _ = styles[i][j] if j < len(styles[i]) else ("", INK, "none")
            txt.set_text(s)
            txt.set_color(c)
        full = (f"<b>{nelbo:.2f}</b> nats" if nelbo is not None
                else f"{running[-1]:.2f} nats by the trapezoid over the whole grid")
        return (f"<b>{esc(sentence)}</b>, t = {t[i]:.3f}: integrand = <b>{mean[i]:.2f} &plusmn; {se[i]:.2f}</b> "
                f"nats (&plusmn; 1 s.e.); running integral from 0 to t = <b>{running[i]:.2f}</b> nats. Over all of "
                f"(0, 1] the integral is the sentence's NELBO: {full}. "
                f"z<sub>t</sub> has {n_masked[i]} of {len(styles[i])} words masked.")

    controls = {"i": slider("t index", 0, n - 1, 0),
                "sentence": W.Dropdown(options=labels, value=labels[0], description="sentence")}
    demo = Demo("nelbo", "The NELBO integrand over t", controls, fig, update,
                [band, area, line, dot, vline, title, chips.coll] + words)
    state["demo"] = demo
    return demo


# ------------------------------------------------------------------ inputs (from the shipped checkpoints)
def transition_inputs() -> dict:
    """Demo 2a: Q-bar_t of the three kinds of noise over K = 12 tokens at 51 times, and one 10-word training
    sentence corrupted by uniform and by absorbing noise at those times (one uniform draw per word, kept fixed)."""
    from course_lib import d3pm, language, textlm, tokenizer
    tok = tokenizer.Tokenizer.for_language(language.default_grammar())
    small = {kind: d3pm.make_discrete_schedule(kind, 12, T=1000) for kind in ("uniform", "absorbing", "gaussian")}
    times = list(range(0, 1001, 20))
    sentence = next(s for s in language.read_split("train") if len(s) == 10)
    n_ids = len(tok.encode(sentence))
    noise_u = np.random.RandomState(5).rand(n_ids)
    random_words = np.random.RandomState(6).randint(3, len(tok), n_ids)
    corrupted = {}
    for kind in ("uniform", "absorbing"):
        nz = textlm.D3PMNoise(kind, len(tok), 1000)
        rows = []
        for t in times:
            hit = noise_u >= float(nz.alpha_bars[t])
            rows.append([("[MASK]" if kind == "absorbing" else tok.itos[int(random_words[i])]) if hit[i] else w
                         for i, w in enumerate(sentence)])
        corrupted[kind] = rows
    return {"matrices": {k: s.Qbars[times].numpy() for k, s in small.items()}, "times": times,
            "sentence": list(sentence), "corrupted": corrupted}


def playback_inputs() -> dict:
    """Demo 2c: the canvases of one MDLM sample (``lm_mdlm``, 41 steps) drawn in random order and in confidence
    order, from the same seed."""
    import torch
    from course_lib import language, masked, textlm, tokenizer
    tok = tokenizer.Tokenizer.for_language(language.default_grammar())
    mdlm = textlm.load_text_model("lm_mdlm")
    play = {}
    for order in ("random", "confidence"):
        g = torch.Generator().manual_seed(51)
        with torch.no_grad():
            states = [st.x[0].numpy() for st in masked.ancestral_sampler(
                lambda z: mdlm(z).float(), textlm.SEQ_LEN, textlm.SEQ_LEN, tok.mask_id, g, order=order)]
        play[f"{order} order"] = np.stack(states)
    return {"trajectories": play, "itos": list(tok.itos), "mask_id": tok.mask_id}


def nelbo_integrand_inputs() -> dict:
    """Demo 2b: the NELBO integrand of three validation sentences (short, medium, long) at 40 times, each the mean
    of 32 mask draws with its standard error, one masked example per time, and each sentence's text and exact -log p."""
    import math
    import torch
    from course_lib import language, masked, textlm, tokenizer
    tok = tokenizer.Tokenizer.for_language(language.default_grammar())
    mdlm = textlm.load_text_model("lm_mdlm")
    t_grid = (np.arange(40) + 0.5) / 40
    by_len = sorted(language.read_split("valid")[:300], key=len)
    picked = {"short": by_len[20], "medium": by_len[150], "long": by_len[-5]}
    integrands, examples = {}, {}
    g = torch.Generator().manual_seed(13)
    with torch.no_grad():
        for label, sent in picked.items():
            x = tokenizer.batchify([sent], tok, textlm.SEQ_LEN)
            tt = torch.tensor(t_grid, dtype=torch.float64).repeat_interleave(32)
            xs = x.repeat(len(tt), 1)
            zt, msk = masked.forward_mask(xs, tt, "linear", tok.mask_id, g)
            vals = masked.mdlm_loss(mdlm(zt), xs, zt, msk, tt, "linear", mask_id=tok.mask_id).nelbo.reshape(40, 32)
            mean, se = vals.mean(1).numpy(), (vals.std(1) / math.sqrt(32)).numpy()
            key = f"{label} sentence, {len(sent)} words"
            integrands[key] = {"mean": mean, "se": se, "nelbo": float(np.mean(mean)), "text": " ".join(sent),
                               "exact": -language.log_prob(sent, language.default_grammar())}
            examples[key] = [[tok.itos[int(i)] for i in zt[32 * k, :len(sent) + 1]] for k in range(40)]
    return {"t_grid": t_grid, "integrands": integrands, "examples": examples}
