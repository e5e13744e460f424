"""Lecture mode: every chapter's interactive demos in one gallery, from precomputed inputs.

Introduced in the README's "Lecture mode" section (it serves all chapters; each demo is introduced in
its chapter, named in its entry). A lecturer runs ``./course gallery`` (Voila, a preheated kernel, no
network) and projects the demos without scrolling through code.

**The registry.** :data:`DEMOS` lists one :class:`GalleryDemo` per demo: its chapter, its key (the
chapter's "Demo 1a" is key ``"1a"``), title, a one-paragraph explanation, ``compute`` (the chapter's
own recipe for the demo's inputs, from shipped checkpoints, with the chapter's seeds) and ``build``
(inputs -> :class:`course_lib.widgets.Demo`). Adding a demo is one entry; the gallery page, the
browser tests (``tests/test_browser.py``) and the export check iterate over the registry.

**Precomputed inputs.** Some inputs take seconds to compute (sampler trajectories, model answers), and
the gallery must be ready in seconds and never train or sample. So ``compute`` runs once, offline:
``python -m course_lib.gallery`` writes ``data/gallery/<key>_<name>.npz`` (arrays, plus the nested
structure as JSON, no pickle) with the sha256 of every checkpoint the inputs came from. Loading checks
those against ``data/manifest.json``: after a retrain the stale file raises a ``ValueError`` naming the
command that regenerates it. The gallery's kernel imports neither torch nor the models.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "gallery"
MANIFEST = ROOT / "data" / "manifest.json"
NOTEBOOK = ROOT / "gallery" / "gallery.ipynb"
THEMES = ("light", "dark")
_FORMAT = 1
_ARRAY = "__array__"


# ----------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class GalleryDemo:
    """One demo of the gallery. ``compute()`` returns the demo's inputs (a dict of arrays, strings,
    numbers, lists and dicts with string keys), the way its chapter computes them; ``build(inputs)``
    returns the :class:`course_lib.widgets.Demo`. ``checkpoints``: the shipped checkpoints ``compute``
    reads (their hashes are recorded with the inputs). ``name`` is the Demo's own name (DOM class
    ``demo-<name>``). Introduced in the README's "Lecture mode"."""

    chapter: int
    key: str
    name: str
    title: str
    explanation: str
    compute: Callable[[], dict] = field(repr=False)
    build: Callable[[dict], object] = field(repr=False)
    checkpoints: tuple[str, ...] = ()

    @property
    def path(self) -> Path:
        """Where the precomputed inputs live: ``data/gallery/<key>_<name>.npz``."""
        return DATA / f"{self.key}_{self.name}.npz"

    def inputs(self) -> dict:
        """The precomputed inputs (see :func:`load_inputs`)."""
        return load_inputs(self)

    def demo(self):
        """The live demo, built from the precomputed inputs (no torch, no model)."""
        return self.build(self.inputs())


def entry(key: str) -> GalleryDemo:
    """The registry entry with this key (``"1a"``, ``"2b"``, ...); ``ValueError`` if there is none."""
    for d in DEMOS:
        if d.key == key:
            return d
    raise ValueError(f"no gallery demo with key {key!r}; keys: {[d.key for d in DEMOS]}")


def check_registry(demos) -> None:
    """Raise ``ValueError`` unless keys and names are unique, keys start with their chapter number,
    and every entry has a title and an explanation."""
    keys, names = [d.key for d in demos], [d.name for d in demos]
    for what, vals in (("key", keys), ("name", names)):
        dup = sorted({v for v in vals if vals.count(v) > 1})
        if dup:
            raise ValueError(f"gallery demos must have unique {what}s; repeated: {dup}")
    for d in demos:
        if not d.key.startswith(str(d.chapter)) or not d.key[len(str(d.chapter)):].isalpha():
            raise ValueError(f"demo key {d.key!r} must be its chapter number ({d.chapter}) plus letters, e.g. "
                             f"'{d.chapter}a'")
        if not d.name.replace("_", "").isalnum():
            raise ValueError(f"demo name {d.name!r} must be alphanumeric (it becomes the DOM class demo-<name>)")
        if not d.title.strip() or len(d.explanation.split()) < 12:
            raise ValueError(f"demo {d.key}: give a title and a one-paragraph explanation")


# ------------------------------------------------------------------------- storage (npz, no pickle)
def _pack(obj, arrays: dict):
    """``obj`` with every array replaced by a reference into ``arrays`` (JSON-ready)."""
    if isinstance(obj, np.ndarray):
        ref = f"a{len(arrays)}"
        arrays[ref] = obj
        return {_ARRAY: ref}
    if isinstance(obj, dict):
        bad = [k for k in obj if not isinstance(k, str)]
        if bad:
            raise ValueError(f"input dicts need string keys, got {bad[:3]}")
        return {k: _pack(v, arrays) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_pack(v, arrays) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj)
    if obj is None or isinstance(obj, str):
        return obj
    raise ValueError(f"cannot store a {type(obj).__name__} in gallery inputs (use arrays, numbers, strings, "
                     f"lists and dicts)")


def _unpack(obj, arrays):
    if isinstance(obj, dict):
        if set(obj) == {_ARRAY}:
            return arrays[obj[_ARRAY]]
        return {k: _unpack(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unpack(v, arrays) for v in obj]
    return obj


def _checkpoint_hashes(names) -> dict:
    """sha256 of each named checkpoint, as data/manifest.json records it (read directly: importing
    course_lib.checkpoints would import torch into the gallery's kernel)."""
    if not names:
        return {}
    manifest = json.loads(MANIFEST.read_text())["checkpoints"] if MANIFEST.exists() else {}
    missing = [n for n in names if n not in manifest]
    if missing:
        raise ValueError(f"gallery inputs need checkpoints {missing}, which data/manifest.json does not list")
    return {n: manifest[n]["sha256"] for n in names}


def save_inputs(d: GalleryDemo, inputs: dict, path: Path | None = None) -> Path:
    """Write ``inputs`` of demo ``d`` to ``path`` (default ``d.path``) with the checkpoints' hashes."""
    arrays: dict = {}
    meta = {"format": _FORMAT, "key": d.key, "name": d.name, "checkpoints": _checkpoint_hashes(d.checkpoints),
            "inputs": _pack(inputs, arrays)}
    path = Path(path or d.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez_compressed(f, __meta__=np.array(json.dumps(meta)), **arrays)
    return path


def load_inputs(d: GalleryDemo, path: Path | None = None) -> dict:
    """Read demo ``d``'s precomputed inputs; ``ValueError`` naming the regenerate command if the file is
    missing, belongs to another demo, or was computed from checkpoints that have since changed."""
    path = Path(path or d.path)
    redo = f"python -m course_lib.gallery {d.key}"
    if not path.exists():
        raise ValueError(f"precomputed inputs of gallery demo {d.key} ({d.name}) are missing: {path}; "
                         f"compute them with: {redo}")
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["__meta__"]))
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
    if meta.get("format") != _FORMAT or meta.get("key") != d.key or meta.get("name") != d.name:
        raise ValueError(f"{path} does not hold demo {d.key} ({d.name}) in format {_FORMAT}; recompute with: {redo}")
    now = _checkpoint_hashes(d.checkpoints)
    stale = [n for n in d.checkpoints if meta["checkpoints"].get(n) != now[n]]
    if stale:
        raise ValueError(f"gallery demo {d.key} ({d.name}) was precomputed from older versions of {stale}; "
                         f"recompute it with: {redo}")
    return _unpack(meta["inputs"], arrays)


def precompute(keys=None) -> list[Path]:
    """Compute and save the inputs of the demos with these keys (default: all). Deterministic: each
    ``compute`` seeds its own generators, as its chapter does, on 2 torch threads."""
    import torch
    from .runtime import progress
    chosen = list(DEMOS) if not keys else [entry(k) for k in keys]
    torch.set_num_threads(2)
    paths = []
    for d in progress(chosen, desc="gallery inputs"):
        t0 = time.perf_counter()
        paths.append(save_inputs(d, d.compute()))
        print(f"{d.key} {d.name}: {paths[-1].relative_to(ROOT)} ({paths[-1].stat().st_size / 1e3:.0f} kB, "
              f"{time.perf_counter() - t0:.1f} s)")
    return paths


# ----------------------------------------------------------------------------- chapter 1 (DDPM, score)
class _StoredSchedule:
    """What :func:`course_lib.widgets.noising_demo` reads from a NoiseSchedule (``T``, ``alpha_bars.numpy()``),
    rebuilt from a stored array so the gallery kernel needs no torch."""

    class _Array:
        def __init__(self, a):
            self._a = np.asarray(a, dtype=np.float64)

        def numpy(self):
            return self._a

    def __init__(self, alpha_bars):
        self.alpha_bars = self._Array(alpha_bars)
        self.T = len(alpha_bars) - 1


def _noising_inputs() -> dict:
    from . import schedules, toy2d
    lin, cos = schedules.linear_schedule(1000), schedules.cosine_schedule(1000)
    return {"x0": toy2d.course_gmm().sample(1500, seed=5).numpy(),
            "alpha_bars": {"linear": lin.alpha_bars.numpy(), "cosine": cos.alpha_bars.numpy()}}


def _noising_build(x: dict):
    from . import widgets
    return widgets.noising_demo(x["x0"], {k: _StoredSchedule(v) for k, v in x["alpha_bars"].items()})


def _toy_model():
    from . import checkpoints, mlp
    sd, cfg, _ = checkpoints.load_checkpoint("ddpm2d_gmm")
    model = mlp.build(cfg)
    model.load_state_dict(sd)
    return model.eval()


def _score_inputs() -> dict:
    import torch
    from . import schedules, score, toy2d
    gmm, lin, model = toy2d.course_gmm(), schedules.linear_schedule(1000), _toy_model()
    field_ts = [1, 10, 25, 50, 100, 175, 250, 375, 500, 625, 750, 1000]
    fx, fy = np.meshgrid(np.linspace(-3.5, 3.5, 21), np.linspace(-3.5, 3.5, 21))
    fpts = torch.tensor(np.stack([fx.ravel(), fy.ravel()], 1), dtype=torch.float32)
    dx, dy = np.meshgrid(np.linspace(-3.5, 3.5, 90), np.linspace(-3.5, 3.5, 90))
    dpts = torch.tensor(np.stack([dx.ravel(), dy.ravel()], 1), dtype=torch.float64)
    learned, exact, logd, errs = [], [], [], []
    with torch.no_grad():
        for t in field_ts:
            q_t = gmm.noised(float(lin.alpha_bars[t]))
            exact.append(q_t.score(fpts).numpy().reshape(21, 21, 2))
            learned.append(score.model_score(model, fpts, t, lin).numpy().reshape(21, 21, 2))
            logd.append(q_t.log_prob(dpts).numpy().reshape(90, 90).astype(np.float32))
            xs = q_t.sample(2000, seed=t)
            errs.append(score.relative_error(score.model_score(model, xs, t, lin), q_t.score(xs)))
    return {"grid": np.stack([fx, fy], -1), "times": field_ts, "learned": np.stack(learned),
            "exact": np.stack(exact), "log_density": np.stack(logd), "errors": errs}


def _score_build(x: dict):
    from . import widgets
    return widgets.score_field_demo(x["grid"], x["times"], x["learned"], x["exact"], x["log_density"], x["errors"])


def _trajectory_inputs() -> dict:
    import torch
    from . import ddpm, recipes, schedules, sde
    lin, vp, model, clip = schedules.linear_schedule(1000), sde.VPSDE(), _toy_model(), recipes.TOY_CLIP
    runs = {
        "DDPM": lambda g: ddpm.ddpm_sampler(model, (2000, 2), lin, generator=g, clip_x0=clip),
        "DDIM": lambda g: ddpm.ddim_sampler(model, (2000, 2), lin, steps=50, generator=g, clip_x0=clip),
        "reverse SDE": lambda g: sde.reverse_sde_sampler(model, (2000, 2), vp, n_steps=1000, generator=g),
        "PF-ODE": lambda g: sde.pf_ode_sampler(model, (2000, 2), vp, n_steps=100, generator=g),
    }
    out = {}
    for name, make in runs.items():                  # chapter 1, section 7: seed 31 for the learned model
        ts, st = ddpm.trajectory(make(torch.Generator().manual_seed(31)), keep=51)
        out[name] = {"times": [float(t) for t in ts], "states": st.numpy().astype(np.float16)}
    return out


def _trajectory_build(x: dict):
    from . import widgets
    return widgets.trajectory_demo({k: (v["times"], v["states"].astype(np.float32)) for k, v in x.items()})


def _digits_inputs() -> dict:
    import torch
    from . import ddpm, digits
    model = digits.load_ddpm()
    g = torch.Generator().manual_seed(12)
    sch = digits.ddpm_schedule()
    times, rev = ddpm.trajectory(ddpm.ddpm_sampler(model, (10, 64), sch, generator=g, clip_x0=1.0), keep=26)
    x_real = digits.load_digits_data("test")[0][:10]
    eps = torch.randn(x_real.shape, generator=g)
    fwd = torch.stack([ddpm.q_sample(x_real, t, sch, noise=eps) for t in times])

    def to_img(arr):
        return np.stack([digits.to_images(a.clamp(-1, 1)) for a in arr]).astype(np.float32)

    return {"times": [int(t) for t in times], "forward": to_img(fwd), "reverse": to_img(rev)}


def _digits_build(x: dict):
    from . import widgets
    return widgets.digits_demo(x["times"], x["forward"], x["reverse"])


# ------------------------------------------------------------------------ chapter 2 (D3PM, MDLM)
def _transition_inputs() -> dict:
    from . import d3pm, language, textlm, tokenizer
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


def _transition_build(x: dict):
    from . import widgets
    return widgets.transition_demo(x["matrices"], x["times"], x["sentence"], x["corrupted"])


def _playback_inputs() -> dict:
    import torch
    from . import language, masked, textlm, tokenizer
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


def _playback_build(x: dict):
    from . import widgets
    return widgets.playback_demo(x["trajectories"], x["itos"], x["mask_id"])


def _nelbo_inputs() -> dict:
    import math

    import torch
    from . import language, masked, textlm, tokenizer
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
            key = f"{label}: {' '.join(sent[:6])}{' ...' if len(sent) > 6 else ''} ({len(sent)} words)"
            integrands[key] = {"mean": mean, "se": se, "nelbo": float(np.mean(mean))}
            examples[key] = [[tok.itos[int(i)] for i in zt[32 * k, :len(sent) + 1]] for k in range(40)]
    return {"t_grid": t_grid, "integrands": integrands, "examples": examples}


def _nelbo_build(x: dict):
    from . import widgets
    return widgets.nelbo_integrand_demo(x["t_grid"], x["integrands"], x["examples"])


# ----------------------------------------------------------------------------------- chapter 3 (LLaDA)
def _masking_inputs() -> dict:
    import torch
    from . import language, masked, textlm, tokenizer
    tok = tokenizer.Tokenizer.for_language(language.default_grammar())
    mdlm = textlm.load_text_model("lm_mdlm")
    sentence = language.read_split("test")[3]
    n_words = len(sentence) + 1                       # the words and the [EOS]
    ts = np.round(np.linspace(0.0, 1.0, 21), 2)
    order = torch.randperm(41, generator=torch.Generator().manual_seed(5))
    ids0 = tokenizer.batchify([sentence], tok, 41)
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
    return {"t": ts, "sentence": list(sentence) + ["[EOS]"], "masks": np.array(masks), "guesses": words,
            "probs": np.array(probs)}


def _masking_build(x: dict):
    from . import widgets
    return widgets.masking_demo(x["t"], x["sentence"], x["masks"], x["guesses"], x["probs"])


def _generation_inputs() -> dict:
    import torch
    from . import language, llada, tasks, textlm
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


def _generation_build(x: dict):
    from . import widgets
    return widgets.generation_demo(x["records"], x["itos"], x["mask_id"], x["prompt_length"])


def _reversal_inputs() -> dict:
    from . import facts, textlm
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


def _reversal_build(x: dict):
    from . import widgets
    return widgets.reversal_demo(x["people"], x["answers"])


# ------------------------------------------------------------- chapter 4 (MoE, block diffusion, token editing)
_EDIT_MODES = {"S-Mode": (0.5, 0.0), "Q-Mode": (0.95, 0.9)}     # chapter 4, section 5: (tau_mask, tau_edit)


def _router_inputs() -> dict:
    import torch
    from . import language, textlm, tokenizer
    tok = tokenizer.Tokenizer.for_language(language.default_grammar())
    moe_model = textlm.load_text_model("moe_llada2")
    sentence = textlm.language_ids("test")[3:4]        # chapter 4, section 1: test sentence 3, clean
    n_words = int((sentence[0] != tok.pad_id).sum())
    with torch.no_grad():
        moe_model(sentence)
    layers = moe_model.moe_layers()
    return {"words": [tok.itos[i] for i in sentence[0, :n_words].tolist()],
            "experts": np.stack([m.last_routing.experts.numpy()[:n_words] for _, m in layers]),
            "weights": np.stack([m.last_routing.weights.numpy()[:n_words] for _, m in layers]),
            "n_experts": int(moe_model.config.n_experts), "layer_names": [f"block {i}" for i, _ in layers]}


def _router_build(x: dict):
    from . import widgets
    return widgets.router_demo(x["words"], x["experts"], x["weights"], x["n_experts"], layer_names=x["layer_names"])


def _block_mask_inputs() -> dict:
    from . import blockdiff
    L, sizes = 16, [1, 2, 4, 8, 16]                     # chapter 4, section 2
    return {"L": L, "block_sizes": sizes,
            "masks": {str(b): blockdiff.block_diffusion_mask(L, b).numpy() for b in sizes}}


def _block_mask_build(x: dict):
    from . import widgets
    return widgets.block_mask_demo(x["L"], x["block_sizes"], {int(b): m for b, m in x["masks"].items()})


def _editing_inputs() -> dict:
    from . import arith, decoding
    editor = arith.load_arith_model("add_edit")
    pairs = arith.problems("test")[:1000]
    prompts, full = arith.to_ids(pairs)

    def run(tau_mask, tau_edit, editing, rows):
        return decoding.edit_decode(editor, prompts[rows], arith.GEN_LENGTH, arith.GEN_LENGTH, tau_mask, tau_edit,
                                    arith.MASK_ID, arith.EOS_ID, editing=editing, record=True)

    # chapter 4, section 5: the first held-out prompt whose S-Mode draft held an error that T2T repaired
    s_res = run(*_EDIT_MODES["S-Mode"], True, slice(None))
    drafts_wrong = (s_res.drafts != full[:, arith.PROMPT_LENGTH:]) & (s_res.drafts >= 0)
    repaired = [b for b in range(len(pairs)) if bool(drafts_wrong[b].any())
                and bool(arith.grade(s_res.x[b:b + 1], pairs[b:b + 1]).all())]
    row = repaired[0] if repaired else 0
    play = {}
    for name, editing in (("S-Mode", True), ("Q-Mode", True), ("S-Mode, T2T off", False)):
        frames = decoding.playback_frames(run(*_EDIT_MODES[name.split(",")[0]], editing, slice(row, row + 1)), 0,
                                          reference=full[row])
        play[name] = [{**f, "conf": np.asarray(f["conf"], dtype=np.float64)} for f in frames]   # NaN: not JSON
    return {"frames": play, "itos": list(arith.ITOS), "prompt_length": arith.PROMPT_LENGTH, "mask_id": arith.MASK_ID,
            "row": row}


def _editing_build(x: dict):
    from . import widgets
    return widgets.editing_playback_demo(x["frames"], x["itos"], x["prompt_length"], x["mask_id"])


def _threshold_inputs() -> dict:
    from . import arith
    if not arith.GRID_PATH.exists():
        raise ValueError(f"{arith.GRID_PATH} is missing; compute it with: python -m course_lib.arith grid")
    grid = json.loads(arith.GRID_PATH.read_text())
    if grid.get("model") != "add_edit":
        raise ValueError(f"{arith.GRID_PATH} was computed from {grid.get('model')!r}, not add_edit; recompute it "
                         f"with: python -m course_lib.arith grid")
    refs = {}
    for name, (tm, te) in _EDIT_MODES.items():       # chapter 4, section 5: S and Q read from the stored grid
        i, j = grid["tau_mask"].index(tm), grid["tau_edit"].index(te)
        refs[f"{name} (ours)"] = [grid["tpf"][i][j], grid["accuracy"][i][j]]
    return {"tau_mask": grid["tau_mask"], "tau_edit": grid["tau_edit"], "tpf": np.array(grid["tpf"]),
            "accuracy": np.array(grid["accuracy"]), "references": refs}


def _threshold_build(x: dict):
    from . import widgets
    return widgets.threshold_demo(x["tau_mask"], x["tau_edit"], x["tpf"], x["accuracy"],
                                  references={k: tuple(v) for k, v in x["references"].items()})


# ------------------------------------------------------------------------------------------ the list
DEMOS: list[GalleryDemo] = [
    GalleryDemo(
        1, "1a", "noising", "The forward process: drag t",
        "A cloud of points from a mixture of nine Gaussians is noised step by step: x<sub>t</sub> keeps a fraction "
        "&radic;&alpha;&#772;<sub>t</sub> of the data and adds Gaussian noise of scale &radic;(1 &minus; &alpha;&#772;<sub>t</sub>). "
        "The same noise is reused at every t, so each point travels along one path. The right panel shows "
        "&alpha;&#772;<sub>t</sub> and the signal-to-noise ratio of the chosen schedule: with the cosine schedule the "
        "structure survives much longer than with the linear one.",
        _noising_inputs, _noising_build),
    GalleryDemo(
        1, "1b", "score", "The score field over time",
        "Arrows show the direction of the score &nabla; log q<sub>t</sub>(x), exact (left) and learned by the "
        "trained network (right), over the shaded density q<sub>t</sub>. Near the data the field points sharply at "
        "the nine components; as t grows the modes merge and the field becomes the simple pull towards the "
        "origin of a standard Gaussian. The caption gives the network's mean relative error at each t.",
        _score_inputs, _score_build, ("ddpm2d_gmm",)),
    GalleryDemo(
        1, "1c", "trajectory", "Reverse trajectories of four samplers",
        "Pick a sampler and scrub from pure noise (frame 0) to samples (frame 50). The black lines follow 25 "
        "particles: the stochastic samplers (DDPM, the reverse SDE) jitter all the way down and spend 1,000 "
        "network calls, the deterministic ones (DDIM, the probability-flow ODE) glide to the same "
        "distribution in 50 to 200 calls.",
        _trajectory_inputs, _trajectory_build, ("ddpm2d_gmm",)),
    GalleryDemo(
        1, "1d", "digits", "Digits: noising and denoising",
        "Top row: ten real held-out 8&times;8 digits pushed through the forward process to step t. Bottom row: "
        "one reverse run of the trained digits model, shown at the same t. Slide from t = 1000, where both "
        "rows are pure noise, to t = 0: the forward row dissolves into noise the same way the reverse row "
        "condenses out of it.",
        _digits_inputs, _digits_build, ("ddpm_digits",)),
    GalleryDemo(
        2, "2a", "transition", "Transition matrices: uniform, absorbing, Gaussian",
        "The heatmap is the cumulative transition matrix Q&#772;<sub>t</sub> over 12 categories (row: the clean "
        "token, column: the noisy one). Beside it one sentence is corrupted to the same t by uniform noise "
        "(a word becomes another word, orange) and by absorbing noise (a word becomes [MASK], grey). "
        "Uniform noise is insidious: a replaced word still looks like a word; absorbing noise announces "
        "where the damage is.",
        _transition_inputs, _transition_build),
    GalleryDemo(
        2, "2b", "playback", "Denoising playback: random and confidence order",
        "One MDLM sample written in 41 steps, in random order and in confidence order (same seed). Masked "
        "positions are grey; each word is coloured by the step at which it was unmasked, and the words "
        "unmasked at the current step are ringed in green. Both orders start with [PAD]s, the model's likeliest "
        "token; confidence order commits one at a random position and grows a block of [PAD]s around it, so its "
        "sentence ends early.",
        _playback_inputs, _playback_build, ("lm_mdlm",)),
    GalleryDemo(
        2, "2c", "nelbo", "The NELBO integrand over t",
        "The bound of one sentence is the area under this curve: at each t, mask the sentence at rate t, "
        "ask the model for the hidden words, and weight the loss by 1/t. Drag t to see the masked sentence "
        "the model faces, the integrand (mean of 32 mask draws, with a band of two standard errors) and the "
        "running area. Early times are cheap but weighted heavily; late ones cost many nats per word.",
        _nelbo_inputs, _nelbo_build, ("lm_mdlm",)),
    GalleryDemo(
        3, "3a", "masking", "Masking explorer: the model's guesses",
        "Drag t to hide more of a sentence (the same random order at every t, so masks only grow) and "
        "read the masked diffusion model's top-3 guesses at each hidden position; green means the top guess "
        "is the hidden word. At low t the context pins most words down; at high t the model falls back on "
        "what is likely anywhere: frequent words, [EOS] and padding at the end.",
        _masking_inputs, _masking_build, ("lm_mdlm",)),
    GalleryDemo(
        3, "3b", "generation", "LLaDA generation: what is committed at each step",
        "One [complete] instruction decoded three ways by the fine-tuned model. Slide through the 32 steps: "
        "grey chips are still masked, each committed token is coloured by the confidence it had when "
        "committed, and the tokens committed at the current step are outlined. Compare where low-confidence "
        "remasking starts with random remasking and with semi-autoregressive blocks of 8.",
        _generation_inputs, _generation_build, ("sft_mdm",)),
    GalleryDemo(
        3, "3c", "reversal", "Reversal explorer: who can answer which query?",
        "Pick one of the 100 held-out people, whose fact was only ever stated forward in training, and see "
        "the autoregressive model and the masked diffusion model answer four questions: forward, reverse, "
        "left-masked (a question only a bidirectional model can pose) and a control with no right answer. "
        "Green is right, red wrong.",
        _reversal_inputs, _reversal_build, ("facts_ar", "facts_mdm")),
    GalleryDemo(
        4, "4a", "router", "Router explorer: which experts does each token use?",
        "One held-out sentence through the mixture-of-experts model (16 experts, top-3 plus a shared one). Drag "
        "the token slider along the sentence and watch its row light up in the grid: each token goes to three "
        "experts, with gate weights from the sigmoid router. Switch layers to compare the two MoE blocks; the "
        "load panel shows how evenly the sentence's assignments spread, against the dashed balanced line.",
        _router_inputs, _router_build, ("moe_llada2",)),
    GalleryDemo(
        4, "4b", "block_mask", "Block-mask explorer: from AR to MDLM",
        "The block-diffusion training mask over [x<sub>t</sub> ; x<sub>0</sub>] for a sequence of 16 tokens "
        "(coloured: may attend). Drag the block size from 1 to 16: at L<sub>B</sub> = 1 each noisy token sees "
        "only the clean tokens before it, an autoregressive model; at L<sub>B</sub> = 16 the noisy half sees "
        "all of itself and nothing clean, MDLM. In between: bidirectional inside a block, causal across blocks.",
        _block_mask_inputs, _block_mask_build),
    GalleryDemo(
        4, "4c", "editing", "Editing playback: draft fast, fix later",
        "One held-out sum decoded by the editing model, step by step: green rings are masks turned into "
        "tokens (M2T), orange rings are tokens edited into others (T2T), with the replaced token struck "
        "through; red marks a wrong digit. Step through S-Mode and watch a drafted error get repaired, then "
        "switch to Q-Mode (slower, careful) and to S-Mode with T2T off, where the same error stays.",
        _editing_inputs, _editing_build, ("add_edit",)),
    GalleryDemo(
        4, "4d", "threshold", "Threshold explorer: speed against accuracy",
        "Every (&tau;<sub>mask</sub>, &tau;<sub>edit</sub>) setting of the editing decoder on 1,000 held-out "
        "sums, as tokens per forward pass against exact-sum accuracy; the stars are this chapter's S-Mode and "
        "Q-Mode. Drag &tau;<sub>mask</sub> down to draft more tokens per step, then drag &tau;<sub>edit</sub> "
        "to see how much accuracy editing buys back (&tau;<sub>edit</sub> = 1 switches T2T off).",
        _threshold_inputs, _threshold_build, ("add_edit",)),
]
check_registry(DEMOS)


# ------------------------------------------------------------------------------------- the gallery page
def _theme() -> str:
    theme = os.environ.get("COURSE_GALLERY_THEME", "light")
    if theme not in THEMES:
        raise ValueError(f"COURSE_GALLERY_THEME must be one of {THEMES}, got {theme!r}")
    return theme


def page_css(theme: str = "light") -> str:
    """The projector style sheet: large type, thick slider handles, high contrast; ``theme`` is ``"light"`` or
    ``"dark"`` (dark page, figures on white cards, so every course colour keeps its contrast)."""
    if theme not in THEMES:
        raise ValueError(f"theme must be one of {THEMES}, got {theme!r}")
    return (ROOT / "gallery" / "projector.css").read_text() + "\n" + (ROOT / "gallery" / f"{theme}.css").read_text()


def show(keys=None, theme: str | None = None) -> dict:
    """Display the gallery (used by ``gallery/gallery.ipynb``): a header, then one card per demo with its
    chapter, title, explanation and live demo. Returns ``{key: Demo}``. ``theme`` defaults to the
    ``COURSE_GALLERY_THEME`` environment variable (set by ``./course gallery --dark``)."""
    import ipywidgets as W
    from IPython.display import display

    from . import viz
    theme = theme or _theme()
    viz.projector()                                    # large fonts and thick lines in every figure
    chosen = list(DEMOS) if keys is None else [entry(k) for k in keys]
    display(W.HTML(f"<style>{page_css(theme)}</style>"))
    toc = " ".join(f'<a href="#demo-{d.key}">{d.key}</a>' for d in chosen)
    display(W.HTML(f'<div class="gallery-header"><h1>Diffusion language models: demo gallery</h1>'
                   f'<p>Every interactive demo of the course, ready to project. Jump to: {toc}</p></div>'))
    built = {}
    for d in chosen:
        demo = d.demo()
        demo.children[0].layout.display = "none"      # the card's heading replaces the demo's own title
        head = W.HTML(f'<div class="gallery-head" id="demo-{d.key}"><span class="gallery-chapter">Chapter {d.chapter}'
                      f' &middot; demo {d.key}</span><h2>{d.title}</h2><p class="gallery-explanation">'
                      f'{d.explanation}</p></div>')
        card = W.VBox([head, demo])
        card.add_class("gallery-card")
        card.add_class(f"gallery-{d.key}")
        display(card)
        built[d.key] = demo
    return built


# ---------------------------------------------------------------------------------------- serving
def voila_command(port: int = 8866, dark: bool = False, python: str | None = None, extra=()) -> list[str]:
    """The command that serves the gallery: Voila on 127.0.0.1:``port`` with one preheated kernel (the
    notebook is executed before the first visit), no browser, no code shown, the JupyterLab dark theme
    with ``dark``. The kernel reads the theme from ``COURSE_GALLERY_THEME`` (see :func:`voila_env`)."""
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"port must be an integer in 1..65535, got {port!r}")
    return [python or sys.executable, "-m", "voila", str(NOTEBOOK), "--no-browser", f"--port={port}",
            "--Voila.ip=127.0.0.1", "--preheat_kernel=True", "--pool_size=1", "--strip_sources=True", "--template=course",
            f"--theme={'dark' if dark else 'light'}", "--show_tracebacks=True", *extra]


def voila_env(dark: bool = False) -> dict:
    """The environment for :func:`voila_command`: the theme for the kernel, Agg figures, no progress bars, and
    the gallery's own Jupyter files: ``gallery/voila/templates/course`` (Voila's lab template without its CDN
    links) and ``gallery/jupyter-config/labconfig/page_config.json`` (JupyterLab extensions that do not run
    inside Voila, jupytext and RISE, switched off there)."""
    env = dict(os.environ)
    here = ROOT / "gallery"
    env.update({"COURSE_GALLERY_THEME": "dark" if dark else "light", "MPLBACKEND": "Agg", "COURSE_NO_PROGRESS": "1",
                "JUPYTER_PATH": os.pathsep.join(filter(None, [str(here), env.get("JUPYTER_PATH")])),
                "JUPYTER_CONFIG_PATH": os.pathsep.join(filter(None, [str(here / "jupyter-config"),
                                                                     env.get("JUPYTER_CONFIG_PATH")]))})
    return env


def serve(argv=()) -> int:
    """``./course gallery [--dark] [--port N]``: serve the gallery until Ctrl-C."""
    args = list(argv)
    dark = "--dark" in args
    port = 8866
    if "--port" in args:
        i = args.index("--port")
        try:
            port = int(args[i + 1])
        except (IndexError, ValueError):
            raise ValueError("--port needs a number, e.g. --port 8866") from None
    unknown = [a for a in args if a not in ("--dark", "--port") and not a.isdigit()]
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}; usage: ./course gallery [--dark] [--port N]")
    stale = []
    for d in DEMOS:
        try:
            load_inputs(d)
        except ValueError as e:
            stale.append(str(e))
    if stale:
        raise SystemExit("error: " + "\n".join(stale))
    print(f"== demo gallery: open http://127.0.0.1:{port}/ in a browser once Voila says 'Kernel pool of "
          f"gallery.ipynb is filled' (a few seconds); Ctrl-C stops it", flush=True)
    return subprocess.call(voila_command(port, dark), env=voila_env(dark))


def main(argv=None) -> int:
    """``python -m course_lib.gallery [KEY ...]``: recompute the precomputed inputs (all, or these keys);
    ``--check``: only load every demo's inputs (fails on missing or stale ones); ``serve [--dark]``: the gallery."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        return serve(argv[1:])
    if argv[:1] == ["--check"]:
        for d in DEMOS:
            load_inputs(d)
        print(f"all {len(DEMOS)} gallery demos have current inputs in {DATA.relative_to(ROOT)}/")
        return 0
    precompute(argv or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
