"""Chapter-2 demos (2a transition matrices, 2b NELBO integrand, 2c denoising playback): every control
re-renders, 20 slider moves each render (latency: ./course bench demos), the static form is a figure, and bad
input raises ValueError.

Built with data of the chapter's sizes: K = 12 tokens and 51 times for the transition matrices, a
41-position canvas unmasked over S = 41 steps, and a 40-point t grid for 3 sentences of 10 words.
"""

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_lib import d3pm  # noqa: E402
from course_lib import viz  # noqa: E402
from course_lib.demos import ch2 as demos  # noqa: E402
from demo_checks import assert_demo_classes, assert_demo_in_its_section, assert_slider_moves_render, assert_static_form  # noqa: E402

MASK = "[MASK]"
WORDS = ("the old fisherman carefully repaired his wooden boat while three curious children watched "
         "quietly from the harbour wall and the gulls circled overhead . a cold wind came off the sea and "
         "the lamps along the pier flickered one by one as evening fell over the little town").split()


# ------------------------------------------------------------------ synthetic data of realistic size
def transition_data(K=12, T=1000, n_times=51, seed=0):
    rng = np.random.RandomState(seed)
    times = [int(t) for t in np.linspace(0, T, n_times)]
    scheds = {"uniform": d3pm.uniform_schedule(K, T), "absorbing": d3pm.absorbing_schedule(K, T),
              "gaussian": d3pm.gaussian_schedule(K, T)}
    matrices = {k: s.Qbars[times].numpy() for k, s in scheds.items()}
    sentence = WORDS[:14]
    u = rng.rand(len(sentence))                      # one uniform per word: corruption is monotone in t
    repl = rng.choice(WORDS, size=len(sentence))
    corrupted = {"uniform": [], "absorbing": []}
    for t in times:
        ab_u = float(scheds["uniform"].alpha_bars[t])
        corrupted["uniform"].append([w if ui < ab_u else r for w, ui, r in zip(sentence, u, repl)])
        corrupted["absorbing"].append([w if ui >= t / T else MASK for w, ui in zip(sentence, u)])
    return matrices, times, sentence, corrupted


def playback_data(L=41, seed=0):
    rng = np.random.RandomState(seed)
    itos = ["[PAD]", "[MASK]", "[EOS]"] + sorted(set(WORDS)) + ["extraordinarily"]
    stoi = {w: i for i, w in enumerate(itos)}
    words = WORDS[:30] + ["extraordinarily"]
    final = np.array([stoi[w] for w in words] + [stoi["[EOS]"]] + [stoi["[PAD]"]] * (L - len(words) - 1))
    orders = {"random order": rng.permutation(L),
              "confidence order": np.argsort(np.arange(L) + 6 * rng.randn(L))}
    trajectories = {}
    for name, order in orders.items():          # order[k] is unmasked at step k + 1
        rank = np.empty(L, dtype=int)
        rank[order] = np.arange(L)
        steps = np.arange(L + 1)[:, None]
        trajectories[name] = np.where(rank[None] < steps, final[None], stoi[MASK]).astype(np.int64)
    return trajectories, itos, stoi[MASK]


def nelbo_data(n=40, L=10, seed=0):
    rng = np.random.RandomState(seed)
    t = np.linspace(1 / n, 1, n)
    integrands, examples = {}, {}
    for j, start in enumerate((0, 10, 20)):
        words = WORDS[start:start + L]
        label = " ".join(words[:4]) + " ..."
        mean = L * (0.4 + j * 0.6 + 2.5 * t ** 1.5) + rng.randn(n) * 0.3
        se = 0.4 + 1.2 * t
        integrands[label] = {"mean": mean, "se": se, "nelbo": float(np.trapezoid(mean, t) + t[0] * mean[0])}
        u = rng.rand(L)
        examples[label] = [[w if ui >= ti else MASK for w, ui in zip(words, u)] for ti in t]
    return t, integrands, examples


def make_demos():
    tr = demos.transition_demo(*transition_data())
    pb = demos.playback_demo(*playback_data())
    t, integ, ex = nelbo_data()
    ne = demos.nelbo_integrand_demo(t, integ, ex)
    return {"transition": (tr, {"i": 25, "kind": "absorbing"}),
            "playback": (pb, {"step": 17, "order": "confidence order"}),
            "nelbo": (ne, {"i": 20, "sentence": list(integ)[2]})}


DEMOS = make_demos()


# ------------------------------------------------------------------ behaviour
@pytest.mark.parametrize("name", list(DEMOS))
def test_every_control_changes_the_image(name):
    demo, moves = DEMOS[name]
    for key in demo.controls:
        before = demo.image.value
        demo.set(**{key: moves[key]})
        assert demo.image.value != before, f"moving {key} did not change the {name} demo's image"
        assert demo.image.value[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", list(DEMOS))
def test_slider_moves_render_and_static_form_is_a_figure(name):
    assert_slider_moves_render(name, DEMOS[name][0])
    assert_static_form(DEMOS[name][0])


def test_demo_classes_and_docstrings():
    assert_demo_classes(DEMOS)
    for fn, tag, sec in ((demos.transition_demo, "2a", 1), (demos.playback_demo, "2c", 7),
                         (demos.nelbo_integrand_demo, "2b", 5)):
        assert_demo_in_its_section(2, sec, tag, fn)


# ------------------------------------------------------------------ content
def test_transition_caption_shows_t_and_keep_probability():
    matrices, times, _, _ = transition_data()
    demo, _ = DEMOS["transition"]
    demo.set(i=10, kind="uniform")
    cap = demo.caption.value
    assert f"t = {times[10]}" in cap
    assert f"{np.trace(matrices['uniform'][10]) / 12:.3f}" in cap
    demo.set(i=50, kind="absorbing")
    assert "absorbing: 0% changed, 100% masked" in demo.caption.value
    # the mean diagonal counts the [MASK] row too ([MASK] stays [MASK]): 1/K at t = T
    assert "keep probability (mean diagonal of Q&#772;<sub>t</sub>) = <b>0.083</b>" in demo.caption.value


def test_transition_words_are_coloured_by_role():
    _, _, sentence, corrupted = transition_data()
    demo, _ = DEMOS["transition"]
    demo.set(i=50, kind="absorbing")
    texts = [t for t in demo.animated if hasattr(t, "get_text") and t.get_text() == MASK]
    assert len(texts) == 14, "at t = T every absorbing word is [MASK]"
    chips = next(a for a in demo.animated if isinstance(a, matplotlib.collections.PolyCollection))
    fc = [tuple(c) for c in chips.get_facecolor()]
    grey = matplotlib.colors.to_rgba(viz.COLORS["mask"])
    orange = matplotlib.colors.to_rgba(viz.COLORS["t2t"])
    n_changed = sum(w != c for w, c in zip(corrupted["uniform"][50], sentence))
    assert n_changed > 0 and fc.count(orange) == n_changed and fc.count(grey) == 14
    assert len(chips.get_paths()) == 14 + n_changed, "unchanged words get no chip"


def test_playback_caption_and_cells():
    trajs, itos, mask_id = playback_data()
    demo, _ = DEMOS["playback"]
    demo.set(order="random order", step=0)
    assert demo.caption.value.startswith("<b>random order</b>: step 0 of 41: 41 masked")
    demo.set(step=41)
    cap = demo.caption.value
    assert "step 41 of 41: 0 masked" in cap and "[EOS]" not in cap and "[PAD]" not in cap
    assert " ".join(WORDS[:30]) in cap
    demo.set(step=5)
    assert "36 masked" in demo.caption.value
    rings = demo.animated[1]
    assert len(rings.get_paths()) == 1, "exactly one cell is unmasked at step 5 of a one-token-per-step order"
    fresh = int(np.argwhere((trajs["random order"][5] != mask_id) & (trajs["random order"][4] == mask_id))[0, 0])
    cx, cy = rings.get_paths()[0].vertices[:4].mean(0)
    assert (int(cx), int(np.floor(-cy))) == (fresh % 10, fresh // 10), "the ring must surround the fresh cell"
    demo.set(step=0)
    assert len(demo.animated[1].get_paths()) == 0


def test_nelbo_running_integral_and_rescaling():
    t, integ, _ = nelbo_data()
    demo, _ = DEMOS["nelbo"]
    labels = list(integ)
    demo.set(sentence=labels[0], i=len(t) - 1)
    assert f"NELBO: <b>{integ[labels[0]]['nelbo']:.2f}</b> nats" in demo.caption.value
    assert f"running integral from 0 to t = <b>{integ[labels[0]]['nelbo']:.2f}</b>" in demo.caption.value
    ax = demo.fig.axes[0]
    y0 = ax.get_ylim()
    demo.set(sentence=labels[2])
    assert ax.get_ylim()[1] > y0[1], "y-limits must adapt to the chosen sentence"
    demo.timings_ms.clear()
    for i in range(20):                          # slider moves after a rescale still render
        demo.set(i=i)
    assert len(demo.timings_ms) == 20


def test_nelbo_without_nelbo_key():
    t, integ, ex = nelbo_data()
    for d in integ.values():
        d.pop("nelbo")
    demo = demos.nelbo_integrand_demo(t, integ, ex)
    assert "nats by the trapezoid over the whole grid" in demo.caption.value


# ------------------------------------------------------------------ bad input
def _bad_transition():
    cases = []
    m, times, s, c = transition_data()
    cases.append(("shape", ({k: v[:-1] for k, v in m.items()}, times, s, c), "shape"))
    m2 = dict(m, uniform=m["uniform"] * 1.1)
    cases.append(("rows", (m2, times, s, c), "sum to 1"))
    m3 = dict(m, gaussian=m["gaussian"][:, :10, :10])
    cases.append(("K", (m3, times, s, c), "share K"))
    cases.append(("unknown kind", (m, times, s, dict(c, bert=c["uniform"])), "not a key"))
    cases.append(("short row", (m, times, s, dict(c, uniform=[w[:-1] for w in c["uniform"]])), "words"))
    cases.append(("times", (m, times, s, dict(c, uniform=c["uniform"][:-1])), "one sentence per time"))
    cases.append(("string sentence", (m, times, "the dog", c), "list of word"))
    return cases


def _bad_playback():
    trajs, itos, mask_id = playback_data()
    z = trajs["random order"].copy()
    k, l = 20, int(np.argwhere(z[20] != mask_id)[0, 0])
    z[k + 1:, l] = (z[k, l] + 1) % len(itos) or 3      # a token that changes after it was unmasked
    z_back = trajs["random order"].copy()
    z_back[30:, l] = mask_id                             # and one that is masked again
    return [("changes", ({"a": z}, itos, mask_id), "never change"),
            ("remasked", ({"a": z_back}, itos, mask_id), "never change"),
            ("shapes", (dict(trajs, b=trajs["random order"][:-1]), itos, mask_id), "share"),
            ("float", ({"a": z.astype(float)}, itos, mask_id), "integer"),
            ("1-D", ({"a": z[0]}, itos, mask_id), "shape"),
            ("ids", ({"a": trajs["random order"] + len(itos)}, itos, mask_id), "outside"),
            ("mask_id", (trajs, itos, len(itos)), "mask_id"),
            ("empty", ({}, itos, mask_id), "non-empty")]


def _bad_nelbo():
    t, integ, ex = nelbo_data()
    lab = list(integ)[0]
    return [("not increasing", (t[::-1], integ, ex), "increasing"),
            ("zero", (np.r_[0.0, t[1:]], integ, ex), r"\(0, 1\]"),
            ("above 1", (t * 1.5, integ, ex), r"\(0, 1\]"),
            ("mean shape", (t, dict(integ, **{lab: dict(integ[lab], mean=integ[lab]["mean"][:-1])}), ex), "shape"),
            ("negative se", (t, dict(integ, **{lab: dict(integ[lab], se=-integ[lab]["se"])}), ex), "se"),
            ("missing se", (t, dict(integ, **{lab: {"mean": integ[lab]["mean"]}}), ex), "'se'"),
            ("labels", (t, integ, {k: v for k, v in list(ex.items())[:2]}), "same labels"),
            ("examples length", (t, integ, dict(ex, **{lab: ex[lab][:-1]})), "one masked sentence per t"),
            ("ragged example", (t, integ, dict(ex, **{lab: ex[lab][:-1] + [ex[lab][-1][:-1]]})), "words")]


def test_float32_matrices_and_prompt_trajectories_are_accepted():
    m, times, s, c = transition_data()
    demos.transition_demo({k: v.astype(np.float32) for k, v in m.items()}, times, s, c)
    trajs, itos, mask_id = playback_data()
    z = trajs["random order"].copy()
    z[:, :3] = z[-1, :3]                           # a prompt: given from row 0 on, never changes
    demo = demos.playback_demo({"with prompt": z}, itos, mask_id)
    assert "(blue: the prompt)" in demo.animated[2].get_text()
    assert demo.caption.value.startswith("<b>with prompt</b>: step 0 of 41: ")


BAD_INPUT = ([(demos.transition_demo, c) for c in _bad_transition()]
             + [(demos.playback_demo, c) for c in _bad_playback()]
             + [(demos.nelbo_integrand_demo, c) for c in _bad_nelbo()])


@pytest.mark.parametrize("build, case", BAD_INPUT, ids=lambda v: v[0] if isinstance(v, tuple) else v.__name__)
def test_bad_input_raises(build, case):
    _, args, match = case
    with pytest.raises(ValueError, match=match):
        build(*args)
