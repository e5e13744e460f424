"""Chapter-4 demos (4a router explorer, 4b block-mask explorer, 4c race, 4d editing playback, 4e threshold explorer):
every control re-renders (image and caption), 20 slider moves each render (latency: ./course bench demos), the static
form is a figure, the figure shows what the data says, and bad input raises ValueError.

Built with synthetic data of the chapter's sizes (no model, no checkpoint): a 12-token sentence routed by 3 MoE
layers to the top 2 of 8 experts; the block-diffusion masks of L = 16 for block sizes 1, 2, 4, 8, 16 (built
here independently of the library); three decodes ("S-Mode", "Q-Mode", "T2T off") of an 8-token prompt and 8
generated tokens over 3 to 6 steps, with T2T edits; an 11 x 11 grid of (tau_mask, tau_edit); a race of a 20-token
answer, one token per call against four blocks of five.
"""
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_lib import viz  # noqa: E402
from course_lib.demos import base, ch4 as demos  # noqa: E402
from demo_checks import assert_demo_classes, assert_demo_in_its_section, assert_each_control_changes_image_and_caption, assert_slider_moves_render, assert_static_form  # noqa: E402

WORDS = ("the old fisherman carefully repaired his wooden boat while three curious children watched "
         "quietly from the harbour wall").split()


# ------------------------------------------------------------------ synthetic data of realistic size
def router_data(n_layers=3, n=12, k=2, E=8, seed=0):
    rng = np.random.RandomState(seed)
    experts = np.stack([np.stack([rng.choice(E, k, replace=False) for _ in range(n)]) for _ in range(n_layers)])
    weights = rng.dirichlet(np.ones(k), size=(n_layers, n))
    return WORDS[:n], experts, weights, E


def bd_mask(L, b):
    """The block-diffusion mask written quadrant by quadrant (BD3-LM / LLaDA 2.0 eq. 3-4)."""
    blk = np.arange(L) // b
    m = np.zeros((2 * L, 2 * L), dtype=bool)
    m[:L, :L] = blk[:, None] == blk[None]
    m[:L, L:] = blk[:, None] > blk[None]
    m[L:, L:] = blk[:, None] >= blk[None]
    return m


SIZES = [1, 2, 4, 8, 16]


def block_data(L=16):
    return L, SIZES, {b: bd_mask(L, b) for b in SIZES}


MASK, P, G = 1, 8, 8
ITOS = ["[PAD]", "[MASK]", "[EOS]"] + sorted(set(WORDS))
STOI = {w: i for i, w in enumerate(ITOS)}
PROMPT = [STOI[w] for w in WORDS[:P]]
REF = [STOI[w] for w in WORDS[P:P + G]]
WRONG = STOI["wall"]


def decode(schedule, seed):
    """Frames of one decode. ``schedule``: per step, (M2T [(answer position, token or None = reference)],
    T2T [(answer position, new token or None = reference)])."""
    rng = np.random.RandomState(seed)
    tok, frames = PROMPT + [MASK] * G, []
    for m2t, t2t in schedule:
        tok, ev_m, ev_t = list(tok), [], []
        for g, t in m2t:
            tok[P + g] = REF[g] if t is None else t
            ev_m.append(P + g)
        for g, t in t2t:
            new = REF[g] if t is None else t
            ev_t.append((P + g, tok[P + g], new))
            tok[P + g] = new
        frames.append({"tokens": list(tok), "m2t": ev_m, "t2t": ev_t,
                       "conf": [float("nan")] * P + list(rng.uniform(0.3, 1.0, G))})
    frames[0]["reference"] = list(REF)
    return frames


def editing_data():
    s_mode = decode([([(0, None), (1, WRONG), (2, None)], []), ([(3, None), (4, STOI["the"])], [(1, None)]),
                     ([(5, None), (6, None)], [(4, None)]), ([(7, WRONG)], []), ([], [(7, None)]), ([], [])], 0)
    q_mode = decode([([(0, None)], []), ([(1, None)], []), ([(2, None), (3, None)], []), ([(4, None)], []),
                     ([(5, None), (6, None)], []), ([(7, None)], [])], 1)
    t2t_off = decode([([(0, None), (1, WRONG), (2, None)], []), ([(3, None), (4, STOI["the"])], []),
                      ([(5, None), (6, None), (7, WRONG)], [])], 2)
    return {"S-Mode": s_mode, "Q-Mode": q_mode, "T2T off": t2t_off}


def threshold_data(n=11):
    tm, te = np.linspace(0, 1, n), np.linspace(0, 1, n)
    a, b = np.meshgrid(tm, te, indexing="ij")
    tpf = 1 + 4 * (1 - a) ** 1.5 * (0.8 + 0.2 * b)
    acc = 100 * (0.55 + 0.35 * a - 0.1 * (1 - b) * (1 - a))
    refs = {"S-Mode (ours)": (3.9, 70.0), "Q-Mode (ours)": (2.1, 82.0)}
    return tm, te, tpf, acc, refs


def race_data(n=20):
    ref = [f"s{i % 7}" for i in range(n - 1)] + ["[EOS]"]
    ar = {"tokens": list(ref), "commit_call": list(range(1, n + 1)), "call_ms": [1.0 + 0.9 * i for i in range(n)]}
    wrong = list(ref)
    wrong[3] = "s6"
    dif = {"tokens": wrong, "commit_call": [1 + i // 5 for i in range(n)], "call_ms": [1.5, 2.9, 4.4, 5.8]}
    return "s0 s1 s2 |", ref, {"AR + KV cache": ar, "MDM, dual cache": dif}


def make_demos():
    return {"router": (demos.router_demo(*router_data()), {"layer": 1, "token": 5}),
            "race": (demos.race_demo(*race_data()), {"time": 20}),
            "block_mask": (demos.block_mask_demo(*block_data()), {"block": 2}),
            "editing": (demos.editing_playback_demo(editing_data(), ITOS, P, MASK), {"mode": "S-Mode", "step": 3}),
            "threshold": (demos.threshold_demo(*threshold_data()), {"tau_mask": 4, "tau_edit": 6})}


DEMOS = make_demos()


# ------------------------------------------------------------------ behaviour
@pytest.mark.parametrize("name", list(DEMOS))
def test_every_control_changes_image_and_caption(name):
    demo, moves = DEMOS[name]
    demo.set(**moves)
    assert_each_control_changes_image_and_caption(name, demo)


@pytest.mark.parametrize("name", list(DEMOS))
def test_slider_moves_render_and_static_form_is_a_figure(name):
    assert_slider_moves_render(name, DEMOS[name][0])
    assert_static_form(DEMOS[name][0])


def test_demo_classes_and_docstrings():
    assert_demo_classes(DEMOS)
    for fn, tag, sec in ((demos.router_demo, "4a", 1), (demos.block_mask_demo, "4b", 2),
                         (demos.race_demo, "4c", 3), (demos.editing_playback_demo, "4d", 5), (demos.threshold_demo, "4e", 5)):
        assert_demo_in_its_section(4, sec, tag, fn)


# ------------------------------------------------------------------ content
def test_router_grid_bars_and_caption():
    words, experts, weights, E = router_data()
    demo, _ = DEMOS["router"]
    demo.set(layer=2, token=7)
    mesh = demo.animated[0]
    grid = np.asarray(mesh.get_array()).reshape(12, E)
    for i in range(12):                              # the chosen experts carry their weights, the others 0
        want = np.zeros(E)
        want[experts[2, i]] = weights[2, i]
        assert np.allclose(grid[i], want)
    assert demo.animated[1].get_y() == pytest.approx(6.5), "the frame sits on the selected token's row"
    cap = demo.caption.value
    assert f"token <b>&ldquo;{words[7]}&rdquo;</b> (position 7 of 12)" in cap
    for e, w in zip(experts[2, 7], weights[2, 7]):
        assert f"<b>E{e}</b> (weight {w:.2f})" in cap
    load = np.bincount(experts[2].ravel(), minlength=E)
    assert ", ".join(f"E{x}: {load[x]}" for x in range(E)) in cap
    assert f"busiest E{load.argmax()} with {load.max()}" in cap
    bars_w, bars_l = demo.animated[4], demo.animated[5]
    heights = [p.vertices[:, 1].max() for p in bars_w.get_paths()]
    assert np.allclose(sorted(heights)[-2:], sorted(weights[2, 7]))
    shares = [p.vertices[:, 1].max() for p in bars_l.get_paths()]
    assert np.allclose(shares, load / 24)


def test_block_mask_image_counts_and_limits():
    L, sizes, masks = block_data()
    demo, _ = DEMOS["block_mask"]
    for idx, b in enumerate(sizes):
        demo.set(block=idx)
        codes = np.asarray(demo.animated[0].get_array()).reshape(2 * L, 2 * L)
        assert np.array_equal(codes > 0, masks[b]), "coloured cells are exactly the allowed pairs"
        assert (codes[:L, :L][masks[b][:L, :L]] == 1).all() and (codes[L:, L:][masks[b][L:, L:]] == 3).all()
        cap = demo.caption.value
        assert f"K = L / L<sub>B</sub> = {L} / {b} = <b>{L // b}</b>" in cap
        assert f"Allowed attention pairs: <b>{masks[b].sum()}</b> of (2L)<sup>2</sup> = {4 * L * L}" in cap
        assert len(demo.animated[1].get_segments()) == 4 * (L // b - 1), "gridlines at the block boundaries"
        assert demo.controls["block"].description == f"block size L<sub>B</sub> = {b}"
    demo.set(block=0)
    assert "the AR limit" in demo.caption.value
    demo.set(block=4)
    assert "the MDLM limit" in demo.caption.value
    # hand count, L = 16, block 4: x_t->x_t 4 blocks of 16; x_t->x_0 (0+1+2+3) * 16; x_0->x_0 (1+2+3+4) * 16
    demo.set(block=2)
    assert "<b>320</b>" in demo.caption.value and "x<sub>t</sub>&rarr;x<sub>t</sub> 64" in demo.caption.value


def test_editing_slider_follows_the_mode():
    demo, _ = DEMOS["editing"]
    demo.set(mode="S-Mode", step=5)
    assert demo.controls["step"].max == 6 and "step 5 of 6" in demo.caption.value
    demo.set(mode="T2T off")                         # 3 steps: the slider's max follows, the step is clamped
    assert demo.controls["step"].max == 3 and demo.controls["step"].value == 3
    assert "step 3 of 3" in demo.caption.value
    fig = demo.static([{"mode": "Q-Mode", "step": 6}, {"mode": "T2T off", "step": 1}], ncols=1)
    plt.close(fig)
    assert demo.values() == {"mode": "T2T off", "step": 3}
    with pytest.raises(ValueError, match=r"step must be an integer in \[0, 3\]"):
        demo.set(step=5)
    with pytest.raises(ValueError, match="unknown mode"):
        demo.set(mode="R-Mode")


def test_editing_cells_rings_and_caption():
    frames = editing_data()["S-Mode"]
    demo, _ = DEMOS["editing"]
    demo.set(mode="S-Mode", step=0)
    cells = [t.get_text() for t in demo.animated[9:9 + P + G]]
    assert cells == [base.short(w) for w in WORDS[:P]] + ["[MASK]"] * G, "step 0: the prompt, then all [MASK]"
    assert "before the first step, 8 of 8 generated positions are [MASK]" in demo.caption.value
    demo.set(step=2)                                 # M2T commits 2 (one wrong), T2T repairs position 9
    ring_m2t, ring_t2t, strikes, marks = demo.animated[1:5]
    assert len(ring_m2t.get_paths()) == len(frames[1]["m2t"]) == 2
    assert len(ring_t2t.get_paths()) == len(frames[1]["t2t"]) == 1
    assert len(strikes.get_segments()) == 1, "the old token is struck through"
    olds = [t.get_text() for t in demo.animated[9 + P + G:]]
    assert olds[1] == "wall" and sum(bool(s) for s in olds) == 1, "the old token above the edited cell"
    cap = demo.caption.value
    assert "M2T commits <b>2</b>: &ldquo;children&rdquo; at 11, &ldquo;the&rdquo; at 12" in cap
    assert "T2T edits <b>1</b>: &ldquo;wall&rdquo;&rarr;&ldquo;three&rdquo; at position 9" in cap
    tok = np.array(frames[1]["tokens"][P:])
    wrong = int(((tok != MASK) & (tok != np.array(REF))).sum())
    assert wrong == 1 and f"<b>{wrong}</b> wrong vs the reference (at 12)" in cap
    assert len(marks.get_offsets()) == wrong
    bold = sorted(t.get_text() for t in demo.animated[9:9 + P + G] if t.get_fontweight() == "bold")
    assert bold == ["children", "the", "three"], "the cells changed at this step are bold"
    # committed cells are pale shades of their confidence; [MASK] grey; prompt pale blue
    faces = demo.animated[0].get_facecolor()
    cmap = matplotlib.colormaps[viz.CONFIDENCE_CMAP]
    conf = frames[1]["conf"]
    assert np.allclose(faces[P + 3], base.pale(cmap(conf[P + 3]), 0.45))
    assert np.allclose(faces[P + 5], matplotlib.colors.to_rgba(viz.COLORS["mask"]))
    demo.set(step=6)
    assert "<b>0</b> wrong vs the reference" in demo.caption.value and "So far 8 M2T commits and 3 T2T edits" in \
        demo.caption.value
    tl_m2t, tl_t2t = demo.animated[6], demo.animated[7]
    assert [p.vertices[:, 1].max() for p in tl_m2t.get_paths()] == [3, 2, 2, 1, 0, 0]
    assert [p.vertices[:, 1].max() for p in tl_t2t.get_paths()] == [0, 1, 1, 0, 1, 0]


def test_editing_single_run_has_only_a_step_slider():
    frames = editing_data()["Q-Mode"]
    demo = demos.editing_playback_demo(frames, tuple(ITOS), np.int64(P), np.int64(MASK), title="Q-Mode decode")
    assert list(demo.controls) == ["step"] and demo.title == "Q-Mode decode"
    demo.set(step=6)
    assert demo.caption.value.startswith("<b>Q-Mode decode</b>, step 6 of 6")
    assert "while three curious children watched quietly from the" in demo.caption.value


def test_threshold_marker_lines_and_caption():
    tm, te, tpf, acc, refs = threshold_data()
    demo, _ = DEMOS["threshold"]
    demo.set(tau_mask=3, tau_edit=8)
    along_edit, along_mask, marker = demo.animated[:3]
    assert marker.get_xdata()[0] == pytest.approx(tpf[3, 8]) and marker.get_ydata()[0] == pytest.approx(acc[3, 8])
    assert np.allclose(along_edit.get_xdata(), tpf[3]) and np.allclose(along_mask.get_ydata(), acc[:, 8])
    cap = demo.caption.value
    assert "&tau;<sub>mask</sub> = <b>0.30</b>, &tau;<sub>edit</sub> = <b>0.80</b>" in cap
    assert f"<b>{tpf[3, 8]:.2f}</b> tokens per forward pass" in cap and f"accuracy <b>{acc[3, 8]:.1f}%</b>" in cap
    assert f"S-Mode (ours): TPF 3.90, 70.0% (this setting {tpf[3, 8] - 3.9:+.2f} TPF" in cap
    assert demo.controls["tau_mask"].description == "&tau;<sub>mask</sub> = 0.30"
    assert demo.controls["tau_edit"].description == "&tau;<sub>edit</sub> = 0.80"
    demo.set(tau_edit=10)
    assert "T2T is off" in demo.caption.value
    labels = [t.get_text() for t in demo.fig.axes[0].texts]
    assert "S-Mode (ours)" in labels and "Q-Mode (ours)" in labels


# ------------------------------------------------------------------ bad input
def _bad_router():
    w, e, g, E = router_data()
    dup = e.copy()
    dup[1, 3, 1] = dup[1, 3, 0]
    return [("words", (w[:-1], e, g, E), "shape"),
            ("string words", (" ".join(w), e, g, E), "list of word"),
            ("float experts", (w, e.astype(float), g, E), "integer"),
            ("2-D experts", (w, e[0], g, E), "shape"),
            ("expert id", (w, e + 1, g, E), "outside"),
            ("duplicate", (w, dup, g, E), "same expert twice"),
            ("k > E", (w, e, g, 1), "more than n_experts"),
            ("weights shape", (w, e, g[..., :1], E), "shape of experts"),
            ("negative weight", (w, e, -g, E), ">= 0"),
            ("n_experts", (w, e, g, 0), "n_experts"),
            ("layer names", (w, e, g, E, ["a", "b"]), "3 strings")]


def _bad_block():
    L, sizes, masks = block_data()
    leak = dict(masks)
    leak[4] = masks[4].copy()
    leak[4][20, 3] = True
    return [("divisor", (L, [1, 3], {1: masks[1], 3: masks[1]}), "divisor"),
            ("order", (L, [4, 2], {4: masks[4], 2: masks[2]}), "increasing"),
            ("missing mask", (L, sizes, {b: masks[b] for b in sizes[:-1]}), "one entry per block size"),
            ("shape", (L, [4], {4: masks[4][:-1]}), "shape"),
            ("dtype", (L, [4], {4: masks[4].astype(int)}), "bool"),
            ("x0 sees xt", (L, sizes, leak), "x_0 -> x_t part is empty"),
            ("L", (0, sizes, masks), "L must be"),
            ("sizes", (L, [], masks), "non-empty"),
            ("masks type", (L, sizes, list(masks.values())), "dict")]


def _bad_editing():
    runs = editing_data()
    s = runs["S-Mode"]

    def edit(step, **kw):
        fr = [dict(f) for f in s]
        fr[step] = dict(fr[step], **kw)
        return {"S-Mode": fr}

    silent = [f["tokens"] for f in s]
    t_silent = list(silent[2])
    t_silent[P + 7] = WRONG                          # a change without an event
    lost = list(silent[0])
    return [("empty", ({}, ITOS, P, MASK), "non-empty"),
            ("no frames", ({"S": []}, ITOS, P, MASK), "non-empty list"),
            ("missing key", ({"S-Mode": [{"tokens": s[0]["tokens"]}]}, ITOS, P, MASK), "lacks"),
            ("length", (edit(1, tokens=s[1]["tokens"][:-1]), ITOS, P, MASK), "ids, expected 16"),
            ("ids", (edit(1, tokens=[t + len(ITOS) for t in s[1]["tokens"]]), ITOS, P, MASK), "outside"),
            ("silent change", (edit(2, tokens=t_silent), ITOS, P, MASK), "without an M2T"),
            ("m2t still masked", (edit(0, tokens=lost[:P] + [MASK] * G), ITOS, P, MASK), "still"),
            ("t2t mismatch", (edit(1, t2t=[(P + 1, WRONG, STOI["old"])]), ITOS, P, MASK), "T2T edit"),
            ("t2t same", (edit(1, t2t=[(P + 1, WRONG, WRONG)]), ITOS, P, MASK), "different"),
            ("t2t format", (edit(1, t2t=[(P + 1, WRONG)]), ITOS, P, MASK), "old_id, new_id"),
            ("prompt event", (edit(0, m2t=[0] + s[0]["m2t"]), ITOS, P, MASK), "outside the generated part"),
            ("conf range", (edit(1, conf=[1.5] * (P + G)), ITOS, P, MASK), r"\[0, 1\]"),
            ("conf length", (edit(1, conf=[0.5] * P), ITOS, P, MASK), "one confidence per position"),
            ("reference late", (edit(2, reference=REF), ITOS, P, MASK), "frame 0 only"),
            ("reference length", (edit(0, reference=REF[:-1]), ITOS, P, MASK), "reference"),
            ("prompt_length", (runs, ITOS, P + 1, MASK), "outside the generated part|prompt"),
            ("prompt_length too long", (runs, ITOS, 40, MASK), "smaller than"),
            ("mask_id", (runs, ITOS, P, len(ITOS)), "mask_id"),
            ("frames type", ("frames", ITOS, P, MASK), "non-empty list")]


def _bad_threshold():
    tm, te, tpf, acc, refs = threshold_data()
    return [("decreasing", (tm[::-1], te, tpf, acc), "increasing"),
            ("range", (tm * 2, te, tpf, acc), r"\[0, 1\]"),
            ("tpf shape", (tm, te, tpf[:, :-1], acc), "shape"),
            ("acc shape", (tm, te, tpf, acc.T[:-1]), "shape"),
            ("tpf > 0", (tm, te, tpf * 0, acc), "> 0"),
            ("percent", (tm, te, tpf, acc * 2), "percent"),
            ("nan", (tm, te, tpf, acc * np.nan), "finite"),
            ("reference", (tm, te, tpf, acc, {"S": (3.0,)}), r"references\['S'\]"),
            ("reference accuracy", (tm, te, tpf, acc, {"S": (3.0, 170.0)}), r"references\['S'\]"),
            ("references type", (tm, te, tpf, acc, [(3.0, 70.0)]), "dict")]


BAD_INPUT = ([(demos.router_demo, c) for c in _bad_router()]
             + [(demos.block_mask_demo, c) for c in _bad_block()]
             + [(demos.editing_playback_demo, c) for c in _bad_editing()]
             + [(demos.threshold_demo, c) for c in _bad_threshold()])


@pytest.mark.parametrize("build, case", BAD_INPUT, ids=lambda v: v[0] if isinstance(v, tuple) else v.__name__)
def test_bad_input_raises(build, case):
    _, args, match = case
    with pytest.raises(ValueError, match=match):
        build(*args)


def test_set_rejects_unknown_controls_and_out_of_range_values():
    with pytest.raises(ValueError, match=r"block must be an integer in \[0, 4\]"):
        DEMOS["block_mask"][0].set(block=5)
    with pytest.raises(ValueError, match=r"token must be an integer in \[0, 11\]"):
        DEMOS["router"][0].set(token=12)
    with pytest.raises(ValueError, match="tau_edit"):
        DEMOS["threshold"][0].set(tau_edit=0.5)
    with pytest.raises(ValueError, match="no control"):
        DEMOS["threshold"][0].set(threshold=1)
    assert re.search(r"block_mask", repr(DEMOS["block_mask"][0]))


# ------------------------------------------------------------------ the race (4c)
def test_race_shows_what_each_decoder_wrote_by_then():
    demo, _ = DEMOS["race"]
    ar_texts = demo.animated[:20]
    n_frames = demo.controls["time"].max
    demo.set(time=0)
    assert all(t.get_text() == "_" for t in ar_texts)                 # nothing finished at t = 0
    demo.set(time=n_frames)
    assert [t.get_text() for t in ar_texts] == race_data()[1]           # all written at the end
    dif_texts = demo.animated[20:40]
    assert dif_texts[3].get_color() == base.WRONG                         # the wrong token is marked
    # at 3 ms AR has finished 3 calls (1.0, 1.9, 2.8 ms) and the diffusion decoder 1 call (5 tokens)
    frame = int(np.argmin(np.abs(np.linspace(0, 18.1, n_frames + 1) - 3.0)))
    demo.set(time=frame)
    assert "3 of 20 tokens after 3 model calls" in demo.caption.value
    assert "10 of 20 tokens after 2 model calls" in demo.caption.value


@pytest.mark.parametrize("bad, match", [
    (dict(lanes={}), "exactly two"),
    (dict(lanes={"a": {"tokens": ["x"], "commit_call": [2], "call_ms": [1.0]}, "b": {"tokens": ["x"], "commit_call": [1],
                                                                                    "call_ms": [1.0]}}), "commit_call"),
    (dict(lanes={"a": {"tokens": ["x"], "commit_call": [1], "call_ms": [2.0]}, "b": {"tokens": ["x", "y"],
                                                                                    "commit_call": [1, 2],
                                                                                    "call_ms": [2.0, 1.0]}}),
     "increasing"),
    (dict(frames=1), "frames"),
])
def test_race_rejects_bad_input(bad, match):
    prompt, ref, lanes = race_data()
    args = dict(prompt=prompt, reference=ref, lanes=lanes) | bad
    with pytest.raises(ValueError, match=match):
        demos.race_demo(**args)
