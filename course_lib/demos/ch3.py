"""Chapter 3's demos (LLaDA): each demo's builder (``*_demo``) and the function that computes its inputs
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
from .base import Chips, Demo, INK, NEUTRAL_INK, RIGHT, RIGHT_INK, StrictDemo, WRONG, WRONG_INK, check_token_args, check_words, colorbar, esc, font_scale, lines_for, mask_runs, new_figure, pale, ring_verts, short, slider, text_px, word_style


_RIGHT_BG, _WRONG_BG, _NEUTRAL_BG, _QUERY_BG = "#D5EFD0", "#F9D4D2", "#ECECEC", "#F6F6F6"


def generation_demo(records: dict, itos: Sequence[str], mask_id: int, prompt_length: int) -> Demo:
    """(Demo 3b) LLaDA generation viewer: which answer tokens get committed at each step, and how sure the
    model was.

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
    itos, V, mask_id, P = check_token_args(itos, mask_id, prompt_length)
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
        words = np.array([short(itos[t]) for t in z[-1]], dtype=object)
        on = np.arange(S + 1)[:, None] >= step_of[None]                      # (S+1, N)
        faces = np.where(on[..., None], face_on[None], mask_rgba)
        inks = np.where(on, ink_on[None], "black")
        texts = np.where(on, words[None], "[MASK]")
        fresh_b = step_of[None] == np.arange(S + 1)[:, None]
        fresh_b[:, :P] = False
        weights = np.where(fresh_b, "bold", "normal")
        fresh = [np.flatnonzero(f) for f in fresh_b]
        prompt_txt = " ".join(esc(itos[t]) for t in z[0, :P] if t not in pad_ids)
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
            so_far = mask_runs(answer)
            titles.append(f"{name}: step {k} of {S}, {n_new} committed at this step"
                          + (" (blue: the prompt)" if P else ""))
            captions.append(f"<b>{esc(name)}</b>: step {k} of {S}: <b>{n_done}</b> of {G} answer positions "
                            f"committed, {n_new} at this step ({conf}). Text so far: "
                            f"<span style='color:{viz.COLORS['prompt']}'>{prompt_txt}</span> "
                            f"<i>{so_far or '(empty)'}</i>")
        pre[name] = (S, faces, inks, texts, weights, fresh, titles, captions)

    # layout: the prompt's lines, a small gap, then the answer's lines, 8 to a line (the blocks of LLaDA's sampler
    # that the chapter shows are 8 long, so each answer line is one block)
    ncols = min(max(P, G), 8)
    rows_p, rows_a = -(-P // ncols), -(-G // ncols)
    gap = 0.3 if P else 0.0
    corners = []
    for l in range(N):
        r, c = divmod(l, ncols) if l < P else divmod(l - P, ncols)
        corners.append((c + 0.05, -(r + (rows_p if l >= P else 0)) - 0.9 - (gap if l >= P else 0.0)))
    n_rows = rows_p + rows_a
    sc = font_scale()
    fig_h = (0.48 * (n_rows + gap) + 0.75) * sc       # about 8.5 x 3.8 in: text of 18 px on a 1280 x 720 screen
    fig, ax = new_figure(1, 1, figsize=((0.9 * ncols + 1.3) * sc, fig_h))
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
    colorbar(fig, sm, ax, "confidence when committed", 10 * sc, fraction=0.03, pad=0.02)
    fig.subplots_adjust(left=0.01, right=0.93, top=1 - 0.45 * sc / fig_h, bottom=0.02)
    rings = ring_verts(ax, corners, 0.9, 0.8, 3.5 * sc * fig.dpi / 72)
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
                "step": slider("step", 0, pre[names[0]][0], 0)}
    demo = StrictDemo("generation", "LLaDA generation: what is committed at each step, and how sure", controls, fig,
                update, [coll, ring_coll, title] + cell_texts)

    def on_strategy(change) -> None:             # a step past the new end is clamped (and re-rendered)
        controls["step"].max = pre[change["new"]][0]

    controls["strategy"].observe(on_strategy, names="value")
    return demo


def masking_demo(t_values: Sequence[float], sentence: Sequence[str], masks: np.ndarray, top_words: list,
                 top_probs: np.ndarray) -> Demo:
    """(Demo 3a) Masking explorer: mask a sentence at level t and read the model's guesses.

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
    sentence = check_words(sentence, None, "sentence")
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
    sc = font_scale()
    fig_w, fs, fl = 9.0 * sc, 12.0 * sc, 10.0 * sc        # 9 in wide, text of 18 px on a 1280 x 720 screen
    fig, ax = new_figure(1, 1, figsize=(fig_w, 4 * sc))
    shown_words = {short(w) for w in sentence} | {mask_token}
    shown_labels = {f"{short(w)} 100%" for row in guesses for g in row if g for w in g} or {"x 100%"}
    col_px = max(max(text_px(fig, w, fs) for w in shown_words) + 1.2 * fs * fig.dpi / 72,
                 max(text_px(fig, w, fl) for w in shown_labels) + 1.2 * fl * fig.dpi / 72)
    n_lines, per_line = lines_for(N, max(2, min(8, int(0.97 * fig_w * fig.dpi / col_px))))
    bar_h, bar_dy = 0.46, 0.56
    bar_top = 1.3                                    # from a word's centre down to its first bar's centre
    block = bar_top + (K - 1) * bar_dy + 0.5 + 0.55
    line_in = 0.37 * sc
    fig_h = (block * n_lines + 0.3) * line_in + 0.95 * sc
    fig.set_size_inches(fig_w, fig_h)
    ax.axis("off")
    ax.set_xlim(0, per_line)
    ax.set_ylim(-block * n_lines + 0.55, 0.6)
    fig.subplots_adjust(left=0.015, right=0.985, top=1 - 0.55 * sc / fig_h, bottom=0.5 * sc / fig_h)
    title = ax.set_title(" ", loc="left")
    fig.text(0.015, 0.012, f"Under each [MASK]: the hidden word (grey), the top-{K} guesses (bar: probability; "
             "green: right, red: a wrong top guess)", fontsize=10 * sc, color=NEUTRAL_INK, va="bottom")
    centres = [((j % per_line) + 0.5, -(j // per_line) * block) for j in range(N)]
    word_texts = [ax.text(x, y, "", ha="center", va="center", fontsize=fs, color=INK) for x, y in centres]
    truth_texts = [ax.text(x, y - 0.66, "", ha="center", va="center", fontsize=fl, color=NEUTRAL_INK,
                           fontstyle="italic") for x, y in centres]
    label_texts = [[ax.text(x - 0.44, y - bar_top - k * bar_dy, "", ha="left", va="center", fontsize=fl)
                    for k in range(K)] for x, y in centres]
    bars = plt.matplotlib.collections.PolyCollection([], edgecolors="none", zorder=0.8)
    ax.add_collection(bars)
    chips = Chips(ax, fs)

    def rect(x0, yc, w):
        return np.array([[x0, yc - bar_h / 2], [x0 + w, yc - bar_h / 2], [x0 + w, yc + bar_h / 2],
                         [x0, yc + bar_h / 2]])

    track, right_bar, wrong_bar, other_bar = "#F0F0F0", pale(RIGHT, 0.5), pale(WRONG, 0.5), "#D2D2D2"
    pre = []
    for i in range(T):
        styles = [word_style(mask_token if m[i, j] else w, None, mask_token) for j, w in enumerate(sentence)]
        chip = chips.frame(word_texts, [s for s, _, _ in styles], [c for _, _, c in styles])
        verts, fcs, labels = [], [], []
        n_right, misses = 0, []
        for j in range(N):
            g = guesses[i][j]
            if g is None:
                labels.append([("", INK, "normal")] * K)
                continue
            x, y = centres[j]
            lab = []
            for k in range(K):
                yc = y - bar_top - k * bar_dy
                ok = g[k] == sentence[j]
                verts += [rect(x - 0.46, yc, 0.92), rect(x - 0.46, yc, 0.92 * p[i, j, k])]
                fcs += [track, right_bar if ok else (wrong_bar if k == 0 else other_bar)]
                ink = RIGHT_INK if ok else (WRONG_INK if k == 0 else INK)
                lab.append((f"{short(g[k])} {100 * p[i, j, k]:.0f}%", ink, "bold" if k == 0 or ok else "normal"))
            labels.append(lab)
            if g[0] == sentence[j]:
                n_right += 1
            else:
                misses.append(f"{esc(sentence[j])}&rarr;{esc(g[0])}")
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
        truths = [short(w) if m[i, j] else "" for j, w in enumerate(sentence)]
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

    controls = {"t": slider("t index", 0, T - 1, 0)}
    animated = [chips.coll, bars, title] + word_texts + truth_texts + [x for texts in label_texts for x in texts]
    return StrictDemo("masking", "Masking explorer: mask at level t, read the model's guesses", controls, fig, update,
                       animated)


_REVERSAL_KINDS = {"forward": "forward", "reverse": "reverse", "left_masked": "left-masked", "control": "control"}


def reversal_demo(people: Sequence[str], answers: dict) -> Demo:
    """(Demo 3c) Reversal explorer: one held-out person's four queries, answered by the AR model and the
    masked diffusion model (MDM).

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
            return "cannot pose", NEUTRAL_INK, _NEUTRAL_BG, "italic", None
        shown = short(answer, 16) if answer else "\u2014"
        if not truth:
            return shown, NEUTRAL_INK, _NEUTRAL_BG, "normal", None
        if answer == truth:
            return f"{shown} {CHECK}", RIGHT_INK, _RIGHT_BG, "normal", "right"
        return f"{shown} {CROSS}", WRONG_INK, _WRONG_BG, "normal", "wrong"

    # precomputed: every cell of every person's table, and the accuracies over all people
    cells, verdicts = [], []
    for i in range(P):
        rows, v = [], {}
        for kind in kinds:
            d = table[kind]
            truth = d["truth"][i]
            q = (short(d["prompt"][i], 40), INK, _QUERY_BG, "normal", None)
            tr = ((short(truth, 16), INK, "#FFFFFF", "normal", None) if truth
                  else ("none", NEUTRAL_INK, "#FFFFFF", "italic", None))
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
                parts.append(f"{lab} (no right answer): AR &ldquo;{esc(ar_t)}&rdquo;, MDM &ldquo;{esc(md_t)}&rdquo;")
                continue
            mark = {"right": CHECK, "wrong": CROSS, None: "cannot pose"}
            parts.append(f"{lab}: AR {mark[ar_v]}, MDM {mark[md_v]}")
        return " &middot; ".join(parts)

    # layout in inches: a header row, then one row per kind; columns sized to their widest text
    sc = font_scale()
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
    heads = [("query", INK), ("truth", INK), ("AR", viz.COLORS["ar"]), ("MDM", viz.COLORS["diffusion"])]
    for c, (h, col) in enumerate(heads, 1):
        x = x_edges[c] + 0.12 * sc if c == 1 else 0.5 * (x_edges[c] + x_edges[c + 1])
        ax.text(x, -0.5 * row_h, h, ha="left" if c == 1 else "center", va="center", fontsize=fs, fontweight="bold",
                color=col)
    ax.plot([0, x_edges[-1]], [-row_h + 0.03 * sc] * 2, color=INK, lw=1.2 * sc)
    boxes, texts = [], []
    for r, kind in enumerate(kinds, 1):
        y = -(r + 0.5) * row_h
        ax.text(0.08 * sc, y, _REVERSAL_KINDS[kind], ha="left", va="center", fontsize=fs, fontweight="bold",
                color=INK)
        for c in range(1, 5):
            boxes.append(plt.matplotlib.patches.Rectangle((x_edges[c] + 0.03 * sc, y - 0.5 * row_h + 0.05 * sc),
                                                          col_w[c] - 0.06 * sc, row_h - 0.1 * sc))
            x = x_edges[c] + 0.12 * sc if c == 1 else 0.5 * (x_edges[c] + x_edges[c + 1])
            texts.append(ax.text(x, y, "", ha="left" if c == 1 else "center", va="center", fontsize=fs))
    coll = plt.matplotlib.collections.PatchCollection(boxes, facecolors=_NEUTRAL_BG, edgecolors="none")
    ax.add_collection(coll)
    title = ax.text(0, top - 0.28 * sc, " ", ha="left", va="center", fontsize=fs * 1.1, color=INK, fontweight="bold")
    frames = []
    for i in range(P):
        flat = [cell for row in cells[i] for cell in row]
        frames.append(([cl[1] for cl in flat], [cl[2] for cl in flat], [cl[0] for cl in flat],
                       [cl[3] for cl in flat]))
    captions = [f"<b>{esc(people[i])}</b> (held-out person {i + 1} of {P}): {summary(i)}.<br>"
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

    controls = {"person": slider("person", 0, P - 1, 0)}
    return StrictDemo("reversal", "Reversal explorer: who can answer which query?", controls, fig, update,
                [coll, title] + texts)


# ------------------------------------------------------------------ inputs (from the shipped checkpoints)
def masking_inputs() -> dict:
    """Demo 3a: one test sentence masked at 21 levels t (nested masks from one random order) and, at every masked
    position, the pretrained MDM's (``lm_mdlm_packed``) three most likely words with their probabilities. The
    sentence is read as the model was trained, at the start of a packed canvas (the next test sentences follow;
    they are masked with it but not shown)."""
    import torch
    from course_lib import language, masked, textlm, tokenizer
    tok = tokenizer.Tokenizer.for_language(language.default_grammar())
    mdlm = textlm.load_text_model("lm_mdlm_packed")
    sentence = language.read_split("test")[3]
    n_words = len(sentence) + 1                       # the words and the [EOS]
    ts = np.round(np.linspace(0.0, 1.0, 21), 2)
    order = torch.randperm(41, generator=torch.Generator().manual_seed(5))
    ids0 = textlm.packed_canvas(textlm.language_ids("test", tok), 3)
    rank = torch.empty(41, dtype=torch.long)
    rank[order] = torch.arange(41)
    masks, words, probs = [], [], []
    with torch.no_grad():
        for t in ts:
            mm = rank < int(round(t * 41))
            xt = torch.where(mm[None], torch.full_like(ids0, tok.mask_id), ids0)
            pr = torch.softmax(masked.exclude_mask(mdlm(xt), tok.mask_id).double(), -1)[0]
            p3, i3 = pr.topk(3, -1)
            masks.append(mm[:n_words].numpy())
            words.append([[tok.itos[j] for j in i3[k].tolist()] if mm[k] else [""] * 3 for k in range(n_words)])
            probs.append(p3[:n_words].numpy())
    return {"t_values": ts, "sentence": list(sentence) + ["[EOS]"], "masks": np.array(masks), "top_words": words,
            "top_probs": np.array(probs)}


def generation_inputs() -> dict:
    """Demo 3b: the SFT model's greedy answer to one [complete] prompt under three samplers (low-confidence and
    random remasking, pure diffusion; low confidence in blocks of 8), with the step and confidence of every
    commit."""
    import torch
    from course_lib import language, llada, tasks, textlm
    itok = tasks.instruction_tokenizer()
    sft = textlm.load_text_model("sft_mdm")
    s0 = next(s for s in language.read_split("test") if 8 <= len(s) <= tasks.MAX_COMPLETE_WORDS)
    prompt = torch.tensor([itok.encode([tasks.COMPLETE, *s0[:7], tasks.SEP])])
    records = {}
    for label, rm, bl in (("low confidence, pure diffusion", "low_confidence", 32),
                          ("random, pure diffusion", "random", 32), ("low confidence, blocks of 8", "low_confidence", 8)):
        _, rec = llada.generate(sft, prompt, steps=32, gen_length=32, block_length=bl, remasking=rm,
                                mask_id=itok.mask_id, generator=torch.Generator().manual_seed(0), record=True)
        records[label] = {"canvases": rec.canvases[:, 0].numpy(), "commit_step": rec.commit_step[0].numpy(),
                          "commit_conf": rec.commit_conf[0].numpy()}
    return {"records": records, "itos": list(itok.itos), "mask_id": itok.mask_id, "prompt_length": prompt.shape[1]}


def reversal_inputs() -> dict:
    """Demo 3c: the AR and MDM answers to the four queries (forward, reverse, left-masked, control) about each
    held-out person of the reversal-curse world."""
    from course_lib import facts, textlm
    world = facts.reversal_world()
    models = {"ar": textlm.load_text_model("facts_ar"), "mdm": textlm.load_text_model("facts_mdm")}
    people = [c for _, c in world.held_out]
    answers = {}
    for kind in ("forward", "reverse", "left_masked", "control"):
        row = {"prompt": [" ".join(p) for p, _ in world.queries[kind]],
               "truth": [a[0] if a else "" for _, a in world.queries[kind]]}
        for name, model in models.items():
            try:
                row[name] = facts.ask(model, world, kind)
            except ValueError:                          # AR cannot pose a left-masked query
                row[name] = [""] * len(people)
        answers[kind] = row
    return {"people": people, "answers": answers}
