"""Chapter-3 demos (3a masking explorer, 3b LLaDA generation viewer, 3c reversal explorer): every control
re-renders (image and caption), 20 slider moves each render (latency: ./course bench demos), the static form is a
figure, and bad input raises ValueError.

Built with synthetic data of the chapter's sizes (no model, no checkpoint): a 12-word sentence masked at 21
levels with top-3 guesses; an 8-token prompt and a 40-token answer decoded by three strategies (40 steps
with one block, 40 steps with blocks of 8, and 20 random steps); 20 held-out people with four queries each.
"""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_lib import viz  # noqa: E402
from course_lib.demos import base, ch3 as demos  # noqa: E402
from demo_checks import assert_demo_classes, assert_demo_in_its_section, assert_each_control_changes_image_and_caption, assert_slider_moves_render, assert_static_form  # noqa: E402

MASK = "[MASK]"
WORDS = ("the old fisherman carefully repaired his wooden boat while three curious children watched "
         "quietly from the harbour wall and the gulls circled overhead").split()


# ------------------------------------------------------------------ synthetic data of realistic size
def masking_data(T=21, seed=0):
    rng = np.random.RandomState(seed)
    sentence = WORDS[:12]
    t = np.linspace(0, 1, T)
    u = rng.rand(len(sentence))
    masks = u[None] < t[:, None]                     # nested: masked at t stays masked at larger t
    top_words, top_probs = [], np.zeros((T, len(sentence), 3))
    for i in range(T):
        row = []
        for j, w in enumerate(sentence):
            if not masks[i, j]:
                row.append("")
                continue
            others = [x for x in WORDS if x != w]
            guesses = list(rng.choice(others, 3, replace=False))
            if rng.rand() < 1 - 0.6 * t[i]:          # more masked -> more often wrong
                guesses[rng.randint(2) if rng.rand() < 0.3 else 0] = w
            row.append(guesses)
            top_probs[i, j] = np.sort(rng.dirichlet(np.ones(5))[:3])[::-1]
        top_words.append(row)
    return t, sentence, masks, top_words, top_probs


def generation_data(P=8, G=40, seed=0):
    rng = np.random.RandomState(seed)
    itos = ["[PAD]", "[MASK]", "[EOS]"] + sorted(set(WORDS)) + ["extraordinarily"]
    stoi = {w: i for i, w in enumerate(itos)}
    prompt = np.array([stoi[w] for w in WORDS[:P]])
    answer_words = WORDS[P:P + 16] + ["extraordinarily"]
    answer = np.array([stoi[w] for w in answer_words] + [stoi["[EOS]"]] * (G - len(answer_words)))
    conf = np.clip(0.35 + 0.5 * rng.rand(G) + 0.4 * (answer == stoi["[EOS]"]), 0, 0.999)

    def record(commit_step):
        S = int(commit_step.max())
        canv = np.full((S + 1, P + G), stoi[MASK], dtype=np.int64)
        canv[:, :P] = prompt
        canv[:, P:] = np.where(np.arange(S + 1)[:, None] >= commit_step[None], answer[None], stoi[MASK])
        return {"canvases": canv, "commit_step": commit_step, "commit_conf": conf.copy()}

    def rank(score):
        r = np.empty(G, dtype=np.int64)
        r[np.argsort(-score)] = np.arange(G)
        return r

    lowconf = rank(conf) + 1                                          # one token a step, most confident first
    block = np.concatenate([np.argsort(np.argsort(-conf[b:b + 8])) + 1 + b for b in range(0, G, 8)])  # blocks of 8
    rand = rng.permutation(G) // 2 + 1                                 # two tokens a step, 20 steps
    records = {"low_confidence, block 40": record(lowconf), "low_confidence, block 8": record(block),
               "random, block 40": record(rand)}
    return records, itos, stoi[MASK], P


def reversal_data(P=20, seed=0):
    rng = np.random.RandomState(seed)
    syll = ["ka", "lo", "mi", "zu", "tra", "bel", "shio", "dren", "gal", "vex"]
    names = sorted({"".join(rng.choice(syll, 2)) + rng.choice(["", "n", "th"]) for _ in range(4 * P)})
    names = names[:2 * P]
    children, mothers = names[:P], names[P:]
    answers = {
        "forward": {"prompt": [f"{m} is the mother of" for m in mothers], "truth": list(children),
                    "ar": [c if rng.rand() < 0.9 else mothers[0] for c in children],
                    "mdm": [c if rng.rand() < 0.8 else children[0] for c in children]},
        "reverse": {"prompt": [f"{c} is the child of" for c in children], "truth": list(mothers),
                    "ar": [mothers[(i + 3) % P] for i in range(P)],
                    "mdm": [m if rng.rand() < 0.5 else mothers[1] for m in mothers]},
        "left_masked": {"prompt": [f"[MASK] is the mother of {c} ." for c in children], "truth": list(mothers),
                        "ar": [""] * P, "mdm": [m if rng.rand() < 0.6 else mothers[2] for m in mothers]},
        "control": {"prompt": [f"{c} is the mother of" for c in children], "truth": [""] * P,
                    "ar": [children[(i + 1) % P] for i in range(P)], "mdm": list(mothers)},
    }
    return children, answers


def make_demos():
    ma = demos.masking_demo(*masking_data())
    ge = demos.generation_demo(*generation_data())
    re = demos.reversal_demo(*reversal_data())
    return {"masking": (ma, {"t": 12}),
            "generation": (ge, {"strategy": "low_confidence, block 8", "step": 17}),
            "reversal": (re, {"person": 5})}


DEMOS = make_demos()


# ------------------------------------------------------------------ behaviour
@pytest.mark.parametrize("name", list(DEMOS))
def test_every_control_changes_image_and_caption(name):
    demo, moves = DEMOS[name]
    for key in demo.controls:
        demo.set(**{key: moves[key]})
    assert_each_control_changes_image_and_caption(name, demo)


@pytest.mark.parametrize("name", list(DEMOS))
def test_slider_moves_render_and_static_form_is_a_figure(name):
    assert_slider_moves_render(name, DEMOS[name][0])
    assert_static_form(DEMOS[name][0])


def test_demo_classes_and_docstrings():
    assert_demo_classes(DEMOS)
    for fn, tag, sec in ((demos.masking_demo, "3a", 1), (demos.generation_demo, "3b", 4),
                         (demos.reversal_demo, "3c", 6)):
        assert_demo_in_its_section(3, sec, tag, fn)


# ------------------------------------------------------------------ content
def test_generation_slider_follows_the_strategy():
    records, _, _, _ = generation_data()
    demo, _ = DEMOS["generation"]
    demo.set(strategy="low_confidence, block 40", step=35)
    assert demo.controls["step"].max == 40
    assert "step 35 of 40" in demo.caption.value
    demo.set(strategy="random, block 40")            # 20 steps: the slider's max follows, the step is clamped
    assert demo.controls["step"].max == 20 and demo.controls["step"].value == 20
    assert "step 20 of 20: <b>40</b> of 40 answer positions committed" in demo.caption.value
    demo.set(strategy="low_confidence, block 40")
    assert demo.controls["step"].max == 40 and demo.controls["step"].value == 20
    fig = demo.static([{"strategy": "random, block 40", "step": 20}, {"strategy": "low_confidence, block 8",
                                                                       "step": 40}], ncols=1)
    plt.close(fig)
    assert demo.values() == {"strategy": "low_confidence, block 40", "step": 20}
    assert demo.controls["step"].max == 40


def test_generation_caption_and_cells():
    records, itos, mask_id, P = generation_data()
    demo, _ = DEMOS["generation"]
    name = "random, block 40"
    rec = records[name]
    demo.set(strategy=name, step=0)
    cap = demo.caption.value
    assert "step 0 of 20: <b>0</b> of 40 answer positions committed, 0 at this step (none committed" in cap
    assert " ".join(WORDS[:P]) in cap, "the prompt is part of the text so far"
    demo.set(step=7)
    new = rec["commit_step"] == 7
    assert f"<b>{int((rec['commit_step'] <= 7).sum())}</b> of 40" in demo.caption.value
    assert f"mean confidence <b>{rec['commit_conf'][new].mean():.2f}</b>" in demo.caption.value
    rings = demo.animated[1]
    assert len(rings.get_paths()) == int(new.sum()) == 2, "one ring per token committed at this step"
    texts = demo.animated[3:]
    bold = [t.get_text() for t in texts if t.get_fontweight() == "bold"]
    assert sorted(bold) == sorted(base.short(itos[t]) for t in rec["canvases"][-1, P:][new])
    assert sum(t.get_text() == MASK for t in texts) == int((rec["commit_step"] > 7).sum())
    # committed cells are coloured by their confidence on the course's colour map
    faces = demo.animated[0].get_facecolor()
    j = int(np.flatnonzero(new)[0])
    cmap = matplotlib.colormaps[viz.CONFIDENCE_CMAP]
    assert np.allclose(faces[P + j], cmap(rec["commit_conf"][j]))
    demo.set(step=20)
    assert "answer positions committed" in demo.caption.value and "\u2581" not in demo.caption.value
    assert "extraordinarily [EOS]" in demo.caption.value, "the text is cut after the first [EOS]"


def test_masking_caption_counts_right_guesses():
    t, sentence, masks, top_words, _ = masking_data()
    demo, _ = DEMOS["masking"]
    for i in (0, 10, 20):
        demo.set(t=i)
        n_m = int(masks[i].sum())
        n_right = sum(top_words[i][j][0] == w for j, w in enumerate(sentence) if masks[i, j])
        cap = demo.caption.value
        assert f"t = <b>{t[i]:.3f}</b>" in cap and f"<b>{n_m}</b> of 12 words masked" in cap
        if n_m:
            assert f"right at <b>{n_right} of {n_m}</b> masked positions" in cap
        assert sum(x.get_text() == MASK for x in demo.animated if hasattr(x, "get_text")) == n_m
    bars = demo.animated[1]
    assert len(bars.get_paths()) == 2 * 3 * int(masks[20].sum()), "a track and a bar per guess"
    fc = [tuple(np.round(c, 3)) for c in bars.get_facecolor()]
    green = tuple(np.round(base.pale(base.RIGHT, 0.5), 3))
    red = tuple(np.round(base.pale(base.WRONG, 0.5), 3))
    n_right = sum(top_words[20][j][0] == w for j, w in enumerate(sentence))
    assert fc[1::2][0::3].count(green) == n_right and fc[1::2][0::3].count(red) == 12 - n_right


def test_reversal_cells_are_coloured_by_verdict():
    people, answers = reversal_data()
    demo, _ = DEMOS["reversal"]
    demo.set(person=3)
    faces = [matplotlib.colors.to_hex(c) for c in demo.animated[0].get_facecolor()]
    texts = [t.get_text() for t in demo.animated[2:]]
    assert len(faces) == len(texts) == 16          # 4 kinds x (query, truth, AR, MDM)
    f = dict(zip([(k, c) for k in ("forward", "reverse", "left_masked", "control")
                  for c in ("query", "truth", "ar", "mdm")], zip(faces, texts)))
    ok = answers["forward"]["ar"][3] == answers["forward"]["truth"][3]
    assert f[("forward", "ar")][0] == (demos._RIGHT_BG if ok else demos._WRONG_BG).lower()
    assert f[("reverse", "ar")] == (demos._WRONG_BG.lower(), f"{answers['reverse']['ar'][3]} \u2717")
    assert f[("left_masked", "ar")] == (demos._NEUTRAL_BG.lower(), "cannot pose")
    assert f[("control", "mdm")] == (demos._NEUTRAL_BG.lower(), answers["control"]["mdm"][3])
    assert f[("control", "truth")][1] == "none"
    cap = demo.caption.value
    assert cap.startswith(f"<b>{people[3]}</b> (held-out person 4 of 20)")
    assert "left-masked: AR cannot pose" in cap and "reverse AR 0%" in cap


# ------------------------------------------------------------------ bad input
def _bad_masking():
    t, s, m, w, p = masking_data()
    m_hole = m.copy()
    j = int(np.argmax(m[-1]))
    m_hole[-1, j] = False                            # masked at some t, unmasked again later
    w_short = [list(r) for r in w]
    i, j = map(int, np.argwhere(m)[0])
    w_short[i][j] = w_short[i][j][:2]
    p_up = p.copy()
    p_up[i, j] = p_up[i, j][::-1]
    return [("not increasing", (t[::-1], s, m, w, p), "increasing"),
            ("repeated t", (np.r_[t[:1], t[:-1]], s, m, w, p), "increasing"),
            ("above 1", (t * 1.5, s, m, w, p), r"\[0, 1\]"),
            ("below 0", (t - 0.1, s, m, w, p), r"\[0, 1\]"),
            ("masks shape", (t, s, m[:, :-1], w, p), "shape"),
            ("sentence length", (t, s[:-1], m, w, p), "shape"),
            ("not nested", (t, s, m_hole, w, p), "nested"),
            ("masks dtype", (t, s, m * 0.5, w, p), "boolean"),
            ("probs shape", (t, s, m, w, p[:, :, :2][:-1]), "shape"),
            ("probs order", (t, s, m, w, p_up), "non-increasing"),
            ("probs range", (t, s, m, w, p * 3), r"\[0, 1\]"),
            ("words per t", (t, s, m, w[:-1], p), "one per t"),
            ("guesses", (t, s, m, w_short, p), "list of 3 words"),
            ("string sentence", (t, " ".join(s), m, w, p), "list of word")]


def _bad_generation():
    records, itos, mask_id, P = generation_data()
    name = "random, block 40"
    r = records[name]

    def edit(**kw):
        return dict(records, **{name: dict(r, **kw)})

    late = r["canvases"].copy()
    late[-1, P] = (late[-1, P] + 1) % len(itos) or 3         # a committed token that changes
    early = r["commit_step"].copy()
    early[0] = max(1, early[0] - 1)                           # a commit step that disagrees with the canvases
    pmask = r["canvases"].copy()
    pmask[:, 0] = mask_id
    return [("empty", ({}, itos, mask_id, P), "non-empty"),
            ("missing key", (dict(records, **{name: {"canvases": r["canvases"]}}), itos, mask_id, P), "lacks"),
            ("N differs", (edit(canvases=r["canvases"][:, :-1], commit_step=r["commit_step"][:-1],
                                commit_conf=r["commit_conf"][:-1]), itos, mask_id, P), "share the canvas length"),
            ("commit_step shape", (edit(commit_step=r["commit_step"][:-1]), itos, mask_id, P), "commit_step"),
            ("commit_conf shape", (edit(commit_conf=r["commit_conf"][:-1]), itos, mask_id, P), "commit_conf"),
            ("commit_conf range", (edit(commit_conf=r["commit_conf"] + 1), itos, mask_id, P), r"\[0, 1\]"),
            ("commit_step range", (edit(commit_step=r["commit_step"] * 0), itos, mask_id, P), "1..S"),
            ("float canvases", (edit(canvases=r["canvases"].astype(float)), itos, mask_id, P), "integer"),
            ("1-D canvases", (edit(canvases=r["canvases"][0]), itos, mask_id, P), "shape"),
            ("ids", (edit(canvases=r["canvases"] + len(itos)), itos, mask_id, P), "outside"),
            ("changes", (edit(canvases=late), itos, mask_id, P), "never change"),
            ("inconsistent", (edit(commit_step=early), itos, mask_id, P), "commit_step says"),
            ("prompt masked", (edit(canvases=pmask), itos, mask_id, P), "prompt"),
            ("prompt_length", (records, itos, mask_id, P + 1), "is prompt_length right"),
            ("short prompt_length", (records, itos, mask_id, P - 1), r"canvases\[0\]"),
            ("prompt_length too long", (records, itos, mask_id, 48), "smaller than"),
            ("negative prompt_length", (records, itos, mask_id, -1), "prompt_length"),
            ("mask_id", (records, itos, len(itos), P), "mask_id"),
            ("records type", ([r], itos, mask_id, P), "non-empty dict")]


def _bad_reversal():
    people, answers = reversal_data()
    return [("missing kind", (people, {k: v for k, v in answers.items() if k != "control"}), r"missing \['control'\]"),
            ("unknown kind", (people, dict(answers, chain=answers["forward"])), r"unknown \['chain'\]"),
            ("missing column", (people, dict(answers, reverse={k: v for k, v in answers["reverse"].items()
                                                               if k != "mdm"})), "lacks"),
            ("wrong length", (people[:-1], answers), "list of 19 strings"),
            ("not strings", (people, dict(answers, forward=dict(answers["forward"], ar=[1] * len(people)))),
             "strings"),
            ("string people", ("kalo", answers), "list of name"),
            ("no people", ([], {k: {c: [] for c in v} for k, v in answers.items()}), "at least one"),
            ("not a dict", (people, list(answers.values())), "dict")]


def test_generation_accepts_torch_style_records_and_no_prompt():
    records, itos, mask_id, P = generation_data()
    rec = records["low_confidence, block 40"]
    no_prompt = {"canvases": rec["canvases"][:, P:].astype(np.int32), "commit_step": rec["commit_step"],
                 "commit_conf": rec["commit_conf"].astype(np.float32)}
    demo = demos.generation_demo({"no prompt": no_prompt}, tuple(itos), np.int64(mask_id), 0)
    assert demo.caption.value.startswith("<b>no prompt</b>: step 0 of 40")
    assert "(blue: the prompt)" not in demo.animated[2].get_text()


BAD_INPUT = ([(demos.masking_demo, c) for c in _bad_masking()]
             + [(demos.generation_demo, c) for c in _bad_generation()]
             + [(demos.reversal_demo, c) for c in _bad_reversal()])


@pytest.mark.parametrize("build, case", BAD_INPUT, ids=lambda v: v[0] if isinstance(v, tuple) else v.__name__)
def test_bad_input_raises(build, case):
    _, args, match = case
    with pytest.raises(ValueError, match=match):
        build(*args)


def test_set_rejects_unknown_choices_and_out_of_range_values():
    demo, _ = DEMOS["generation"]
    saved = demo.values()
    with pytest.raises(ValueError, match="unknown strategy 'greedy'"):
        demo.set(strategy="greedy")
    with pytest.raises(ValueError, match=r"step must be an integer in \[0, 20\]"):
        demo.set(strategy="random, block 40", step=33)
    assert demo.values() == saved, "a rejected set() leaves the controls as they were"
    demo.set(step=40, strategy="low_confidence, block 8")          # the strategy is set first, whatever the order
    assert demo.values() == {"strategy": "low_confidence, block 8", "step": 40}
    demo.set(**saved)
    with pytest.raises(ValueError, match="no control"):
        demo.set(speed=2)
    with pytest.raises(ValueError, match=r"t must be an integer in \[0, 20\]"):
        DEMOS["masking"][0].set(t=21)
    with pytest.raises(ValueError, match="person"):
        DEMOS["reversal"][0].set(person=-1)
