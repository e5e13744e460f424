"""Chapter 4's demos (LLaDA 2.0 and 2.1): each demo's builder (``*_demo``) and the function that computes its inputs
from the shipped checkpoints (``*_inputs``), which the chapter and the lecture gallery both call:
``demo = noising_demo(**noising_inputs())``. The ``*_inputs`` functions import the models when they run, so that
the gallery, which builds every demo from stored inputs, starts without torch.
"""
from __future__ import annotations

import json

from typing import Sequence
import ipywidgets as W
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from .. import viz
from .base import Demo, INK, NEUTRAL_INK, StrictDemo, WRONG, WRONG_INK, blank_figure, check_token_args, check_words, colorbar, esc, font_scale, is_int, mask_runs, new_figure, pale, ring_verts, short, slider, text_px


def _index_slider(label: str, n: int, value: int = 0) -> W.IntSlider:
    """A keyboard-movable slider over the indices 0..n-1 of a list of values. Its readout is off: the demo writes
    the value itself (``label = value``) into the description, as HTML (``&tau;<sub>mask</sub>``)."""
    return W.IntSlider(value=value, min=0, max=n - 1, step=1, description=label, description_allow_html=True,
                       continuous_update=True, readout=False, style={"description_width": "initial"},
                       layout=W.Layout(width="420px"))


def router_demo(words: Sequence[str], experts, weights, n_experts: int,
                layer_names: Sequence[str] | None = None) -> Demo:
    """(Demo 4a) Router explorer: which experts each token of a sentence is sent to, layer by layer.

    A mixture-of-experts layer sends each token to ``k`` of its ``n_experts`` feed-forward experts, with
    gate weights (Switch Transformer, Fedus et al. 2022; LLaDA 2.0, arXiv 2512.15745, and its inclusionAI/dFactory model configs:
    sigmoid scores, top-8 of 256, weights renormalised over the chosen experts).

    ``words``: the n tokens of one sentence (strings); ``experts``: int (n_layers, n, k), the expert ids
    chosen for each token in each MoE layer (k distinct ids in [0, n_experts)); ``weights``: float
    (n_layers, n, k) >= 0, their gate weights; ``layer_names``: one label per layer (default "MoE layer i").

    Left, the tokens x experts grid of the chosen layer, cell colour = gate weight (0 where the expert
    was not chosen), the selected token's row framed; right, the selected token's weight per expert, and
    the layer's load (share of the n * k token-to-expert assignments each expert receives; the dashed
    line is a perfectly balanced load 1 / n_experts). Controls: ``"layer"`` and ``"token"`` (indices).
    """
    words = check_words(words, None, "words")
    n = len(words)
    if n < 1:
        raise ValueError("words must hold at least one token")
    if not is_int(n_experts) or n_experts < 1:
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
            row.append(f"<b>{esc(layer_names[l])}</b>, token <b>&ldquo;{esc(words[i])}&rdquo;</b> (position {i} of "
                       f"{n}): experts {chosen}, weights summing to {w[l, i].sum():.2f}. Load of this layer "
                       f"(assignments per expert, out of n&times;k = {n * k}): {load_txt}; busiest E{busiest} with "
                       f"{int(load[l, busiest])} ({100 * share[l, busiest]:.0f}%, balanced would be "
                       f"{100 / E:.0f}%), {idle} expert{'s' if idle != 1 else ''} idle.")
        captions.append(row)

    sc = font_scale()
    fig_h = max(3.8, 0.2 * n + 1.0) * sc             # 9 x 3.8 in for up to 14 tokens: 18 px text on a 1280 x 720 screen
    fig = blank_figure((9.0 * sc, fig_h))
    gs = fig.add_gridspec(2, 2, width_ratios=[1.25, 1.0], hspace=0.6, wspace=0.5)
    ax = fig.add_subplot(gs[:, 0])
    ax_w, ax_l = fig.add_subplot(gs[0, 1]), fig.add_subplot(gs[1, 1])
    im = ax.pcolormesh(np.arange(E + 1) - 0.5, np.arange(n + 1) - 0.5, grid[0], vmin=0, vmax=vmax, cmap=cmap)
    ax.set(xlim=(-0.5, E - 0.5), ylim=(n - 0.5, -0.5))                # token 0 on top
    colorbar(fig, im, ax, "gate weight (0: not chosen)", 10 * sc, fraction=0.05, pad=0.03)
    ax.set_yticks(range(n))
    ax.set_yticklabels([short(x, 12) for x in words])
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
    bar_labels = [ax_w.text(0, 0, "", ha="center", va="bottom", fontsize=10 * sc) for _ in range(k)]
    bars_l = plt.matplotlib.collections.PolyCollection([], edgecolors="none")
    ax_l.add_collection(bars_l)
    ax_l.set(ylim=(0, 1.2 * max(float(share.max()), 1 / E)), xlim=(-0.6, E - 0.4), xlabel="expert",
             ylabel="share of assignments", title="this layer's load")
    (balanced,) = ax_l.plot([-0.6, E - 0.4], [1 / E, 1 / E], ls="--", color=INK, lw=1.0 * sc)
    for a in (ax_w, ax_l):                   # every other expert: a number per bar would not fit at this size
        a.set_xticks(range(0, E, 2) if E <= 32 else np.linspace(0, E - 1, 9).round().astype(int))
        a.grid(False, axis="x")
    for a in (ax, ax_w, ax_l):
        a.tick_params(labelsize=10 * sc)
    fig.subplots_adjust(left=0.13, right=0.985, top=1 - 0.4 * sc / fig_h, bottom=0.55 * sc / fig_h)
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
        title.set_text(f"{layer_names[layer]}: token \u201c{short(words[token], 16)}\u201d (position {token})")
        return captions[layer][token]

    controls = {"layer": slider("layer", 0, n_layers - 1, 0), "token": slider("token", 0, n - 1, 0)}
    animated = [im, frame_w, frame_k, title, bars_w, bars_l, balanced] + bar_labels
    return StrictDemo("router", "Router explorer: which experts does each token use?", controls, fig, update,
                       animated)


_QUADRANT_COLORS = {"bd": viz.COLORS["diffusion"], "obc": viz.COLORS["prompt"], "bc": viz.COLORS["ar"]}


def block_mask_demo(L: int, block_sizes: Sequence[int], masks: dict) -> Demo:
    """(Demo 4b) Block-mask explorer: the block-diffusion training mask for each block size.

    BD3-LM (Arriola et al., ICLR 2025) and LLaDA 2.0 (arXiv 2512.15745, section 4.2, eq. 3-4)
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
    if not is_int(L) or L < 1:
        raise ValueError(f"L must be an integer >= 1, got {L!r}")
    L = int(L)
    if isinstance(block_sizes, (str, bytes)) or len(block_sizes) < 1 or not all(is_int(b) for b in block_sizes):
        raise ValueError(f"block_sizes must be a non-empty list of integers, got {block_sizes!r:.80}")
    sizes = [int(b) for b in block_sizes]
    for b in sizes:
        if b < 1 or L % b:
            raise ValueError(f"block size {b} must be a positive divisor of L = {L}")
    if any(b1 >= b2 for b1, b2 in zip(sizes, sizes[1:])):
        raise ValueError(f"block_sizes must be strictly increasing, got {sizes}")
    if not isinstance(masks, dict):
        raise ValueError("masks must be a dict: block size -> bool array (2L, 2L)")
    keys = {int(k) if is_int(k) or (isinstance(k, str) and k.isdigit()) else k for k in masks}
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

    sc = font_scale()
    # the mask on the left, what its four parts mean on the right (8.6 x 3.7 in: text of 18 px on a 1280 x 720 screen)
    fig, (ax, key) = new_figure(1, 2, figsize=(8.6 * sc, 3.7 * sc), gridspec_kw={"width_ratios": [1.0, 1.25]})
    edges = np.arange(2 * L + 1) - 0.5
    im = ax.pcolormesh(edges, edges, images[0].reshape(2 * L, 2 * L), cmap=palette, vmin=-0.5, vmax=3.5,
                       edgecolors="white", linewidth=0.4 * sc)            # thin white lines between tokens
    ax.set(xlim=(-0.5, 2 * L - 0.5), ylim=(2 * L - 0.5, -0.5), aspect="equal")      # query 0 on top
    ax.set_xticks([(L - 1) / 2, L + (L - 1) / 2], ["keys: x\u209c", "x\u2080"])
    ax.set_yticks([(L - 1) / 2, L + (L - 1) / 2], ["queries:\nx\u209c", "x\u2080"])
    ax.tick_params(length=0, labelsize=10 * sc)
    ax.grid(False)
    grid_lines = plt.matplotlib.collections.LineCollection(grids[0], colors="#9A9A9A", linewidths=0.7 * sc)
    halves = plt.matplotlib.collections.LineCollection([[(L - 0.5, -0.5), (L - 0.5, 2 * L - 0.5)],
                                                        [(-0.5, L - 0.5), (2 * L - 0.5, L - 0.5)]],
                                                       colors=INK, linewidths=2.2 * sc)
    ax.add_collection(grid_lines)
    ax.add_collection(halves)
    key.set_axis_off()
    key.set(xlim=(0, 1), ylim=(0, 1))
    title = key.text(0.0, 0.97, " ", fontsize=11 * sc, weight="bold", va="top")
    parts = [("bd", "x\u209c \u2192 x\u209c: block-diagonal ($M_{BD}$),\nits own noisy block, both ways"),
             ("obc", "x\u209c \u2192 x\u2080: offset block-causal ($M_{OBC}$, >),\nclean tokens of earlier blocks"),
             ("bc", "x\u2080 \u2192 x\u2080: block-causal ($M_{BC}$, \u2265)"),
             (None, "x\u2080 \u2192 x\u209c: empty (x\u2080 never sees x\u209c)")]
    for k, (q, text) in enumerate(parts):                  # a colour swatch, then what the part means
        ink, y = _QUADRANT_COLORS.get(q, NEUTRAL_INK), 0.72 - 0.21 * k
        key.add_patch(plt.matplotlib.patches.Rectangle((0.0, y - 0.05), 0.06, 0.1, fc=ink if q else "#F2F2F2", ec=ink))
        key.text(0.09, y, text, fontsize=10 * sc, va="center", color=ink)
    fig.tight_layout()
    controls = {"block": _index_slider("block size", len(sizes))}

    def update(block: int) -> str:
        b = sizes[block]
        im.set_array(images[block])
        grid_lines.set_segments(grids[block])
        title.set_text(f"L = {L}, block size $L_B$ = {b}: K = {L // b} block{'s' if L // b != 1 else ''}")
        controls["block"].description = f"block size L<sub>B</sub> = {b}"
        return captions[block]

    return StrictDemo("block_mask", "Block-mask explorer: the block-diffusion training mask", controls, fig, update,
                       [im, grid_lines, halves, title])


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
        if not isinstance(m2t, (list, tuple, np.ndarray)) or not all(is_int(p) for p in m2t):
            raise ValueError(f"{where}: 'm2t' must be a list of integer positions, got {m2t!r:.80}")
        m2t = [int(p) for p in m2t]
        if not isinstance(t2t_in, (list, tuple)):
            raise ValueError(f"{where}: 't2t' must be a list of (position, old_id, new_id), got {t2t_in!r:.80}")
        t2t = []
        for e in t2t_in:
            if isinstance(e, (str, bytes)) or len(e) != 3 or not all(is_int(v) for v in e):
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
                          title: str | None = None, row: int | None = None) -> Demo:
    """(Demo 4d) Editing playback: a LLaDA 2.1 decode step by step, M2T commits and T2T edits.

    LLaDA 2.1 (arXiv 2602.08676, section 2, eq. 1-3) updates, at each step, the masked positions whose top
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
    itos, V, mask_id, P = check_token_args(itos, mask_id, prompt_length)
    if title is None and row is not None:
        title = f"Editing playback of held-out problem {row}: M2T commits and T2T edits, step by step"
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
    sc = font_scale()
    fs, fs_old = 11 * sc, 10 * sc
    # about 8.6 x 3.9 in for a sum of 8 + 8 tokens: text of 18 px on a 1280 x 720 screen
    canvas_h, timeline_h = 0.55 * height + 0.4, 1.1
    fig_h = (canvas_h + timeline_h + 0.8) * sc
    fig = blank_figure(((0.9 * ncols + 1.4) * sc, fig_h))
    gs = fig.add_gridspec(2, 1, height_ratios=[canvas_h, timeline_h], hspace=0.5)
    ax, ax_t = fig.add_subplot(gs[0]), fig.add_subplot(gs[1])
    ax.axis("off")
    ax.set_xlim(-0.05, ncols + 0.05)
    ax.set_ylim(-height - 0.05, 0.05)
    cmap = plt.matplotlib.colormaps[viz.CONFIDENCE_CMAP]
    pale_cmap = plt.matplotlib.colors.ListedColormap([pale(c, 0.45) for c in cmap(np.linspace(0, 1, 256))])
    sm = plt.cm.ScalarMappable(norm=plt.Normalize(0, 1), cmap=pale_cmap)
    colorbar(fig, sm, ax, "confidence", 10 * sc, fraction=0.03, pad=0.02)
    cells = [plt.matplotlib.patches.Rectangle(xy, 0.9, 0.8) for xy in corners]
    coll = plt.matplotlib.collections.PatchCollection(cells, facecolors="white", edgecolors="white", linewidths=sc)
    ax.add_collection(coll)
    cell_texts = [ax.text(x + 0.45, y + 0.4, "", ha="center", va="center", fontsize=fs) for x, y in corners]
    old_texts = [ax.text(x + 0.45, y + 0.8 + strip / 2 + 0.03, "", ha="center", va="center", fontsize=fs_old,
                         color=viz.COLORS["t2t"]) for x, y in corners[P:]]
    head = ax.set_title(" ", loc="left")
    fig.text(0.01, 0.005, "green ring: unmasked now (M2T); orange ring: edited (T2T), old token struck through "
             "above" + ("; red \u2717: wrong" if any(r[4] is not None for r in runs.values()) else ""),
             fontsize=10 * sc, color=NEUTRAL_INK, va="bottom")
    fig.subplots_adjust(left=0.07, right=0.93, top=1 - 0.4 * sc / fig_h, bottom=0.7 * sc / fig_h)
    ring_px = 3.5 * sc * fig.dpi / 72
    rings = ring_verts(ax, corners, 0.9, 0.8, ring_px)
    ring_m2t = plt.matplotlib.collections.PolyCollection([], facecolors="none", edgecolors=viz.COLORS["m2t"],
                                                         linewidths=3.0 * sc)
    ring_t2t = plt.matplotlib.collections.PolyCollection([], facecolors="none", edgecolors=viz.COLORS["t2t"],
                                                         linewidths=3.0 * sc)
    strikes = plt.matplotlib.collections.LineCollection([], colors=viz.COLORS["t2t"], linewidths=1.3 * sc)
    wrong_marks = ax.scatter(np.zeros(0), np.zeros(0), marker="x", s=30 * sc ** 2, color=WRONG, linewidths=2 * sc)
    for a in (ring_m2t, ring_t2t, strikes):
        ax.add_collection(a)
    box = ax.get_window_extent()
    x_per_px = (ncols + 0.1) / box.width

    # the timeline: M2T and T2T events per step, one x-axis for every mode (so their lengths compare)
    ax_t.set_xlim(-0.4, S_max + 0.7)
    ax_t.set_xlabel("step", fontsize=10 * sc)
    ax_t.set_ylabel("events", fontsize=10 * sc)
    ax_t.tick_params(labelsize=10 * sc)
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
    now = ax_t.axvline(0, color=INK, lw=1.5 * sc)
    ax_t.legend(handles=[bars_m2t, bars_t2t], loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, frameon=False,
                borderaxespad=0.1, fontsize=10 * sc)                                  # above the axes: static

    def rect(x0, w, h):
        return np.array([[x0, 0.0], [x0 + w, 0.0], [x0 + w, h], [x0, h]])

    # precomputed per mode and step
    prompt_face = pale(viz.COLORS["prompt"], 0.75)
    mask_face = plt.matplotlib.colors.to_rgba(viz.COLORS["mask"])
    eos_ids = {i for i, s in enumerate(itos) if s == "[EOS]"}
    pad_ids = {i for i, s in enumerate(itos) if s == "[PAD]"}
    width_cache: dict[str, float] = {}
    pre = {}
    for name, (canv, m2ts, t2ts, confs, ref) in runs.items():
        S = len(canv) - 1
        timeline = ([rect(s - 0.38, 0.36, len(m2ts[s])) for s in range(1, S + 1)],
                    [rect(s + 0.02, 0.36, len(t2ts[s])) for s in range(1, S + 1)])
        prompt_txt = " ".join(esc(itos[t]) for t in canv[0, :P] if t not in pad_ids)
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
                    faces.append(pale(cmap(conf[l]), 0.45) if np.isfinite(conf[l]) else (1.0, 1.0, 1.0, 1.0))
                    inks.append(WRONG_INK if wrong[l] else "black")
                texts.append("[MASK]" if masked[l] else short(itos[tok[l]]))
                weights.append("bold" if l in changed else "normal")
            olds = [""] * G
            segs = []
            for p, old, _ in t2ts[s]:
                word = short(itos[old])
                olds[p - P] = word
                if word not in width_cache:
                    width_cache[word] = text_px(fig, word, fs_old) * x_per_px
                x, y = corners[p]
                yc = y + 0.8 + strip / 2 + 0.03
                segs.append([(x + 0.45 - width_cache[word] / 2, yc), (x + 0.45 + width_cache[word] / 2, yc)])
            marks = np.array([(corners[l][0] + 0.82, corners[l][1] + 0.14)
                              for l in np.flatnonzero(wrong)]).reshape(-1, 2)
            # the caption
            if s == 0:
                events = f"before the first step, {int(masked[P:].sum())} of {G} generated positions are [MASK]"
            else:
                m2t_txt = (", ".join(f"&ldquo;{esc(itos[tok[p]])}&rdquo; at {p}" for p in m2ts[s]) or "nothing")
                if m2ts[s]:
                    c = conf[m2ts[s]]
                    c = c[np.isfinite(c)]
                    if len(c):
                        m2t_txt += f" ({'' if len(c) == 1 else 'mean '}confidence {c.mean():.2f})"
                t2t_txt = (", ".join(f"&ldquo;{esc(itos[o])}&rdquo;&rarr;&ldquo;{esc(itos[nw])}&rdquo; at "
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
            caption = (f"<b>{esc(name)}</b>, step {s} of {S}: {events}. So far {n_m2t} M2T commits and {n_t2t} T2T "
                       f"edits. Text: <span style='color:{viz.COLORS['prompt']}'>{prompt_txt}</span> "
                       f"<i>{mask_runs(answer) or '(empty)'}</i>")
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
    controls["step"] = slider("step", 0, pre[names[0]][0], 0)
    animated = ([coll, ring_m2t, ring_t2t, strikes, wrong_marks, head, bars_m2t, bars_t2t, now]
                + cell_texts + old_texts)
    demo = StrictDemo("editing", title or "Editing playback: M2T commits and T2T edits, step by step", controls, fig,
                       update, animated)
    if multi:
        def on_mode(change) -> None:         # a step past the new end is clamped (and re-rendered)
            controls["step"].max = pre[change["new"]][0]

        controls["mode"].observe(on_mode, names="value")
    return demo


def threshold_demo(tau_mask_values, tau_edit_values, tpf, accuracy, references: dict | None = None) -> Demo:
    """(Demo 4e) Threshold explorer: speed against accuracy over a grid of (tau_mask, tau_edit).

    LLaDA 2.1's decoder (arXiv 2602.08676, section 2, eq. 1-3) has two thresholds: tau_mask, how confident a
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
            cmp = "; ".join(f"{esc(nm)}: TPF {t:.2f}, {a:.1f}% (this setting {tpf[i, j] - t:+.2f} TPF, "
                            f"{acc[i, j] - a:+.1f} points)" for nm, (t, a) in refs.items())
            row.append(f"&tau;<sub>mask</sub> = <b>{tm[i]:.2f}</b>, &tau;<sub>edit</sub> = <b>{te[j]:.2f}</b>: "
                       f"<b>{tpf[i, j]:.2f}</b> tokens per forward pass (TPF), accuracy <b>{acc[i, j]:.1f}%</b>. "
                       + (" ".join(n + "." for n in notes) + " " if notes else "")
                       + summary + (f" References: {cmp}." if cmp else ""))
        captions.append(row)

    sc = font_scale()
    fig, ax = new_figure(1, 1, figsize=(8.8 * sc, 3.8 * sc))      # 18 px text on a 1280 x 720 screen
    xs = np.r_[tpf.ravel(), [t for t, _ in refs.values()]]
    ys = np.r_[acc.ravel(), [a for _, a in refs.values()]]
    dx, dy = (xs.max() - xs.min()) or 1.0, (ys.max() - ys.min()) or 1.0
    ax.set(xlim=(xs.min() - 0.08 * dx, xs.max() + 0.22 * dx), ylim=(ys.min() - 0.1 * dy, ys.max() + 0.12 * dy),
           xlabel="tokens per forward pass (TPF)", ylabel="accuracy (%)")
    ax.tick_params(labelsize=10 * sc)
    ax.scatter(tpf.ravel(), acc.ravel(), s=16 * sc ** 2, color="#B8B8B8", alpha=0.7, linewidths=0, label="grid")
    for nm, (t, a) in refs.items():
        ax.scatter([t], [a], marker="*", s=260 * sc ** 2, color="#333333", edgecolors="white", linewidths=0.8, zorder=3)
        ax.annotate(nm, (t, a), xytext=(7 * sc, 5 * sc), textcoords="offset points", fontsize=10 * sc, color="#333333")
    (along_edit,) = ax.plot([], [], "-o", color=viz.COLORS["t2t"], ms=3.5 * sc, lw=1.4 * sc, alpha=0.9,
                            label=r"$\tau_{edit}$ varies (T2T)")
    (along_mask,) = ax.plot([], [], "-o", color=viz.COLORS["m2t"], ms=3.5 * sc, lw=1.4 * sc, alpha=0.9,
                            label=r"$\tau_{mask}$ varies (M2T)")
    (marker,) = ax.plot([], [], "o", ms=17 * sc, markerfacecolor="none", markeredgecolor=viz.COLORS["diffusion"],
                        markeredgewidth=3 * sc, label="current setting")      # a ring: the stars stay visible
    head = ax.set_title(" ", loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=10 * sc, frameon=False)   # outside: static
    fig.tight_layout()
    controls = {"tau_mask": _index_slider("&tau;<sub>mask</sub>", shape[0], value=shape[0] - 1),   # start careful:
                "tau_edit": _index_slider("&tau;<sub>edit</sub>", shape[1])}                 # drag it down

    def update(tau_mask: int, tau_edit: int) -> str:
        i, j = tau_mask, tau_edit
        along_edit.set_data(tpf[i], acc[i])
        along_mask.set_data(tpf[:, j], acc[:, j])
        marker.set_data([tpf[i, j]], [acc[i, j]])
        head.set_text(f"\u03c4_mask = {tm[i]:.2f}, \u03c4_edit = {te[j]:.2f}: TPF {tpf[i, j]:.2f}, "   # no mathtext:
                      f"accuracy {acc[i, j]:.1f}%")                                     # it costs ~20 ms
        controls["tau_mask"].description = f"&tau;<sub>mask</sub> = {tm[i]:.2f}"
        controls["tau_edit"].description = f"&tau;<sub>edit</sub> = {te[j]:.2f}"
        return captions[i][j]

    return StrictDemo("threshold", "Threshold explorer: speed (TPF) against accuracy", controls, fig, update,
                       [along_edit, along_mask, marker, head])


def race_demo(prompt: str, reference: Sequence[str], lanes: dict, frames: int = 60) -> Demo:
    """(Demo 4c) The race: one prompt decoded at batch 1 by two decoders, played back on one wall-clock axis.

    ``prompt``: the prompt as text; ``reference``: the right answer's tokens (strings, [EOS] included);
    ``lanes``: decoder label -> dict with ``tokens`` (the answer's tokens as strings, up to its [EOS]),
    ``commit_call`` (the model call, 1-based, that wrote each token) and ``call_ms`` (wall-clock milliseconds
    from the start to the end of each call, increasing), as measured by ``./course bench decoding``. The slider
    moves through time (``frames`` steps up to the slower decoder's finish); a token appears when the call that
    wrote it has finished; ticks under each lane mark the model calls. Control: ``"time"``."""
    reference = check_words(reference, None, "reference")
    if not isinstance(lanes, dict) or len(lanes) != 2:
        raise ValueError("lanes must be a dict of exactly two decoders: label -> trace")
    traces = {}
    for label, tr in lanes.items():
        toks = check_words(tr.get("tokens", []), None, f"lanes[{label!r}]['tokens']")
        calls, ms = np.asarray(tr.get("commit_call", []), dtype=np.int64), np.asarray(tr.get("call_ms", []), dtype=float)
        if len(calls) != len(toks) or not len(ms) or (np.diff(ms) < 0).any() or not np.isfinite(ms).all() \
                or calls.min(initial=1) < 1 or calls.max(initial=1) > len(ms):
            raise ValueError(f"lanes[{label!r}]: commit_call must give, for each token, a call in 1..{len(ms)}, and "
                             "call_ms one increasing time per call")
        traces[label] = (toks, ms[calls - 1], ms)
    if not is_int(frames) or frames < 2:
        raise ValueError(f"frames must be an integer >= 2, got {frames!r}")
    times = np.linspace(0.0, t_end := max(ms[-1] for _, _, ms in traces.values()), frames + 1)
    n_slots = max(len(reference), *(len(t) for t, _, _ in traces.values()))
    colors = [viz.COLORS["ar"], viz.COLORS["diffusion"]]

    sc, per_line = font_scale(), 16
    n_lines = int(np.ceil(n_slots / per_line))
    fig = blank_figure((9.0 * sc, (1.4 + 1.2 * n_lines) * sc))     # 9.0 x 3.8 in: on a 1280 x 720 screen, text of 18 px
    ax, tl = fig.subplots(2, 1, gridspec_kw={"height_ratios": [2 * n_lines + 2.5, 2.2]})
    ax.set_axis_off()
    for k, (_, _, ms) in enumerate(traces.values()):           # the timeline: a tick per model call
        tl.vlines(ms, 1 - k - 0.35, 1 - k + 0.35, color=colors[k], lw=1.2 * sc)
    tl.set(xlim=(0, t_end * 1.02), ylim=(-0.7, 1.7), yticks=[1, 0])
    tl.set_xlabel("wall-clock time (ms); each tick is one model call", fontsize=10 * sc)
    tl.set_yticklabels([label.split(",")[0].split(" ")[0] for label in traces], fontsize=10 * sc)
    tl.tick_params(axis="x", labelsize=10 * sc)
    tl.grid(False)
    now_line = tl.axvline(0.0, color=INK, lw=2 * sc)
    rows_per_lane = n_lines + 0.9
    ax.set(xlim=(-0.6, per_line), ylim=(-(2 * rows_per_lane) + 0.2, 1.1))
    ax.text(-0.5, 0.75, "prompt: " + prompt, fontsize=10.5 * sc, color=viz.COLORS["prompt"], va="center")
    texts, clocks = [], []
    for k, label in enumerate(traces):
        top = -k * rows_per_lane
        ax.text(-0.5, top, label, fontsize=11 * sc, color=colors[k], weight="bold", va="center")
        clocks.append(ax.text(per_line - 0.4, top, " ", fontsize=10.5 * sc, color=colors[k], ha="right", va="center"))
        texts.append([ax.text(i % per_line, top - 0.85 - i // per_line, "", fontsize=12 * sc, va="center",
                              family="monospace") for i in range(n_slots)])
    fig.tight_layout()
    controls = {"time": _index_slider("time", frames + 1, frames)}
    animated = [t for lane in texts for t in lane] + clocks + [now_line]

    def update(time: int) -> str:
        now = times[time]
        parts = []
        for k, (label, (toks, done_ms, ms)) in enumerate(traces.items()):
            shown = 0
            for i, t in enumerate(texts[k]):
                done = i < len(toks) and done_ms[i] <= now + 1e-9
                right = i < len(reference) and i < len(toks) and toks[i] == reference[i]
                t.set_text(toks[i] if done else ("_" if i < len(toks) else ""))
                t.set_color((colors[k] if right else WRONG) if done else viz.COLORS["mask"])
                shown += done
            calls = int(np.searchsorted(ms, now + 1e-9, side="right"))
            finished = now + 1e-9 >= ms[-1]
            clocks[k].set_text(f"{calls} calls, {shown}/{len(toks)} tokens" + ("  done" if finished else ""))
            parts.append(f"<b>{esc(label)}</b>: {shown} of {len(toks)} tokens after {calls} model calls"
                         + (f" (finished at {ms[-1]:.1f} ms)" if finished else ""))
        now_line.set_xdata([now, now])
        controls["time"].description = f"t = {now:.1f} ms"
        return f"At {now:.1f} ms of wall-clock time: " + "; ".join(parts) + "."

    return StrictDemo("race", "The race: AR with a KV cache against parallel diffusion decoding", controls, fig,
                      update, animated)


# ------------------------------------------------------------------ inputs (from the shipped checkpoints)


def router_inputs() -> dict:
    """Demo 4a: the experts the MoE model (``moe_llada2``) chooses for each word of one test sentence, with their
    gate weights, in every MoE block. The model was trained on packed canvases, so the sentence is read as one:
    test sentence 3 and its [EOS], then the next test sentences, up to the canvas width."""
    import torch
    from course_lib import language, textlm, tokenizer
    tok = tokenizer.Tokenizer.for_language(language.default_grammar())
    moe_model = textlm.load_text_model("moe_llada2")
    test_ids = textlm.language_ids("test")
    canvas = textlm.packed_canvas(test_ids, 3)           # chapter 4: test sentence 3, clean, and what follows it
    n_words = int((test_ids[3] != tok.pad_id).sum())
    with torch.no_grad():
        moe_model(canvas)
    layers = moe_model.moe_layers()
    return {"words": [tok.itos[i] for i in canvas[0, :n_words].tolist()],
            "experts": np.stack([m.last_routing.experts.numpy()[:n_words] for _, m in layers]),
            "weights": np.stack([m.last_routing.weights.numpy()[:n_words] for _, m in layers]),
            "n_experts": int(moe_model.config.n_experts), "layer_names": [f"block {i}" for i, _ in layers]}


def block_mask_inputs() -> dict:
    """Demo 4b: the block-diffusion training mask over ``[x_t ; x_0]`` for L = 16 and block sizes 1 to 16."""
    from course_lib import blockdiff
    L, sizes = 16, [1, 2, 4, 8, 16]                     # chapter 4
    return {"L": L, "block_sizes": sizes,
            "masks": {str(b): blockdiff.block_diffusion_mask(L, b).numpy() for b in sizes}}


def editing_playback_inputs() -> dict:
    """Demo 4d: the step-by-step decode of one held-out addition prompt by ``add_edit`` in S-Mode, Q-Mode and
    S-Mode with T2T off: the first prompt whose S-Mode draft held an error that T2T repaired."""
    from course_lib import arith, decoding
    editor = arith.load_arith_model("add_edit")
    pairs = arith.problems("test")[:1000]
    prompts, full = arith.to_ids(pairs)

    def run(tau_mask, tau_edit, editing, rows):
        return decoding.edit_decode(editor, prompts[rows], arith.GEN_LENGTH, arith.GEN_LENGTH, tau_mask, tau_edit,
                                    arith.MASK_ID, arith.EOS_ID, editing=editing, record=True)

    # chapter 4: the first held-out prompt whose S-Mode draft held an error that T2T repaired
    s_res = run(*decoding.EDIT_MODES["S-Mode"], True, slice(None))
    drafts_wrong = (s_res.drafts != full[:, arith.PROMPT_LENGTH:]) & (s_res.drafts >= 0)
    repaired = [b for b in range(len(pairs)) if bool(drafts_wrong[b].any())
                and bool(arith.grade(s_res.x[b:b + 1], pairs[b:b + 1]).all())]
    row = repaired[0] if repaired else 0
    play = {}
    for name, editing in (("S-Mode", True), ("Q-Mode", True), ("S-Mode, T2T off", False)):
        frames = decoding.playback_frames(run(*decoding.EDIT_MODES[name.split(",")[0]], editing, slice(row, row + 1)), 0,
                                          reference=full[row])
        play[name] = [{**f, "conf": np.asarray(f["conf"], dtype=np.float64)} for f in frames]   # NaN: not JSON
    return {"frames": play, "itos": list(arith.ITOS), "prompt_length": arith.PROMPT_LENGTH, "mask_id": arith.MASK_ID,
            "row": row}


def threshold_inputs() -> dict:
    """Demo 4e: the stored grid of accuracy and tokens per forward over (tau_mask, tau_edit) for ``add_edit``
    (``python -m course_lib.arith grid``), with the S-Mode and Q-Mode points marked."""
    from course_lib import arith, decoding
    if not arith.GRID_PATH.exists():
        raise ValueError(f"{arith.GRID_PATH} is missing; compute it with: python -m course_lib.arith grid")
    grid = json.loads(arith.GRID_PATH.read_text())
    if grid.get("model") != "add_edit":
        raise ValueError(f"{arith.GRID_PATH} was computed from {grid.get('model')!r}, not add_edit; recompute it "
                         f"with: python -m course_lib.arith grid")
    refs = {}
    for name, (tm, te) in decoding.EDIT_MODES.items():       # chapter 4: S and Q read from the stored grid
        i, j = grid["tau_mask"].index(tm), grid["tau_edit"].index(te)
        refs[f"{name} (ours)"] = [grid["tpf"][i][j], grid["accuracy"][i][j]]
    return {"tau_mask_values": grid["tau_mask"], "tau_edit_values": grid["tau_edit"], "tpf": np.array(grid["tpf"]),
            "accuracy": np.array(grid["accuracy"]), "references": refs}


def race_inputs() -> dict:
    """Demo 4c: the stored race of ``./course bench decoding`` (``data/bench/decoding.json``): one copying prompt
    decoded at batch 1 by AR with its KV cache and by the diffusion decoder with the most tokens per second at
    batch 1, with the wall-clock time of every model call."""
    from course_lib import copy_task, speed
    res = speed.load_results()
    rows = speed.table_rows(res, "copy", 1)
    best = max((r for r in rows if r["family"] != "AR"), key=lambda r: r["tokens_per_second"])
    race, (_, answers) = res["race"], copy_task.problems(1, 0)
    n = int((answers[0] == copy_task.EOS_ID).long().argmax()) + 1          # the answer up to its [EOS]
    lanes = {label: dict(race["decoders"][key], tokens=copy_task.to_text(race["decoders"][key]["tokens"]).split())
             for label, key in (("AR + KV cache", "ar_kv"), (best["label"], best["decoder"]))}
    return {"prompt": race["prompt"], "reference": copy_task.to_text(answers[0, :n]).split(),
            "lanes": {k: {f: v[f] for f in ("tokens", "commit_call", "call_ms")} for k, v in lanes.items()}}
