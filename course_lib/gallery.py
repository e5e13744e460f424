"""Lecture mode: every chapter's interactive demos in one gallery, from precomputed inputs.

The README's "Lecture mode" section explains how to use it (it serves all chapters; each demo is introduced in
its chapter, named in its entry). A lecturer runs ``./course gallery`` (Voila, a preheated kernel, no
network) and projects the demos without scrolling through code.

**The registry.** :data:`DEMOS` lists one :class:`GalleryDemo` per demo: its chapter, its key (the
chapter's "Demo 1a" is key ``"1a"``), title, a one-paragraph explanation, ``compute`` (the chapter's
own recipe for the demo's inputs, from shipped checkpoints, with the chapter's seeds) and ``build``
(inputs -> :class:`course_lib.demos.base.Demo`). Adding a demo is one entry; the gallery page, the
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

from .demos import ch1, ch2, ch3, ch4

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "gallery"
MANIFEST = ROOT / "data" / "manifest.json"
NOTEBOOK = ROOT / "gallery" / "gallery.ipynb"
THEMES = ("light", "dark")
#: the room (width, height in px) a demo's figure gets on a 1280 x 720 screen: the card's inner width, and the
#: height left under the heading and the controls (gallery/projector.css caps figures at 100vh - 215 px)
FIGURE_ROOM_720 = (1190, 505)
_FORMAT = 1
_ARRAY = "__array__"


# ----------------------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class GalleryDemo:
    """One demo of the gallery. ``compute()`` returns the demo's inputs (a dict of arrays, strings, numbers, lists and
    dicts with string keys): the chapter's own ``*_inputs`` function; ``build(**inputs)`` returns the
    :class:`course_lib.demos.base.Demo`: the chapter's ``*_demo`` builder. ``checkpoints``: the shipped checkpoints
    ``compute`` reads (their hashes are recorded with the inputs). ``name`` is the Demo's own name (DOM class
    ``demo-<name>``)."""

    chapter: int
    key: str
    name: str
    title: str
    explanation: str
    compute: Callable[[], dict] = field(repr=False)
    build: Callable[..., object] = field(repr=False)
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
        return self.build(**self.inputs())


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
# ------------------------------------------------------------------------------------------ the list
DEMOS: list[GalleryDemo] = [
    GalleryDemo(
        1, "1a", "noising", "The forward process: drag t",
        "A cloud of points from a mixture of nine Gaussians is noised step by step: x<sub>t</sub> keeps a fraction "
        "&radic;&alpha;&#772;<sub>t</sub> of the data and adds Gaussian noise of scale &radic;(1 &minus; &alpha;&#772;<sub>t</sub>). "
        "The same noise is reused at every t, so each point travels along one path. The right panel shows "
        "&alpha;&#772;<sub>t</sub> and the signal-to-noise ratio of the chosen schedule: with the cosine schedule the "
        "structure survives much longer than with the linear one.",
        ch1.noising_inputs, ch1.noising_demo),
    GalleryDemo(
        1, "1b", "score", "The score field over time",
        "Arrows show the direction of the score &nabla; log q<sub>t</sub>(x), exact (left) and learned by the "
        "trained network (right), over the shaded density q<sub>t</sub>. Near the data the field points sharply at "
        "the nine components; as t grows the modes merge and the field becomes the simple pull towards the "
        "origin of a standard Gaussian. The caption gives the network's mean relative error at each t.",
        ch1.score_field_inputs, ch1.score_field_demo, ("ddpm2d_gmm",)),
    GalleryDemo(
        1, "1c", "trajectory", "Reverse trajectories of four samplers",
        "Pick a sampler and scrub from pure noise (frame 0) to samples (frame 50). The black lines follow 25 "
        "particles: the stochastic samplers (DDPM, the reverse SDE) jitter all the way down and spend 1,000 "
        "network calls, the deterministic ones (DDIM, the probability-flow ODE) glide to the same "
        "distribution in 50 to 200 calls.",
        ch1.trajectory_inputs, ch1.trajectory_demo, ("ddpm2d_gmm",)),
    GalleryDemo(
        1, "1d", "digits", "Digits: noising and denoising",
        "Top row: ten real held-out 8&times;8 digits pushed through the forward process to step t. Bottom row: "
        "one reverse run of the trained digits model, shown at the same t. Slide from t = 1000, where both "
        "rows are pure noise, to t = 0: the forward row dissolves into noise the same way the reverse row "
        "condenses out of it.",
        ch1.digits_inputs, ch1.digits_demo, ("ddpm_digits",)),
    GalleryDemo(
        2, "2a", "transition", "Transition matrices: uniform, absorbing, Gaussian",
        "The heatmap is the cumulative transition matrix Q&#772;<sub>t</sub> over 12 categories (row: the clean "
        "token, column: the noisy one). Beside it one sentence is corrupted to the same t by uniform noise "
        "(a word becomes another word, orange) and by absorbing noise (a word becomes [MASK], grey). "
        "Uniform noise is insidious: a replaced word still looks like a word; absorbing noise announces "
        "where the damage is.",
        ch2.transition_inputs, ch2.transition_demo),
    GalleryDemo(
        2, "2b", "nelbo", "The NELBO integrand over t",
        "The bound of one sentence is the area under this curve: at each t, mask the sentence at rate t, "
        "ask the model for the hidden words, and weight the loss by 1/t. Drag t to see the masked sentence "
        "the model faces, the integrand (mean of 32 mask draws, with a band of two standard errors) and the "
        "running area. Early times are cheap but weighted heavily; late ones cost many nats per word.",
        ch2.nelbo_integrand_inputs, ch2.nelbo_integrand_demo, ("lm_mdlm",)),
    GalleryDemo(
        2, "2c", "playback", "Denoising playback: random and confidence order",
        "One MDLM sample written in 41 steps, in random order and in confidence order (same seed). Masked "
        "positions are grey; each word is coloured by the step at which it was unmasked, and the words "
        "unmasked at the current step are ringed in green. Both orders start with [PAD]s, the model's likeliest "
        "token; confidence order commits one at a random position and grows a block of [PAD]s around it, so its "
        "sentence ends early.",
        ch2.playback_inputs, ch2.playback_demo, ("lm_mdlm",)),
    GalleryDemo(
        3, "3a", "masking", "Masking explorer: the model's guesses",
        "Drag t to hide more of a sentence (the same random order at every t, so masks only grow) and "
        "read the masked diffusion model's top-3 guesses at each hidden position; green means the top guess "
        "is the hidden word. At low t the context pins most words down; at high t the model falls back on "
        "what is likely anywhere: frequent words and [EOS].",
        ch3.masking_inputs, ch3.masking_demo, ("lm_mdlm_packed",)),
    GalleryDemo(
        3, "3b", "generation", "LLaDA generation: what is committed at each step",
        "One [complete] instruction decoded three ways by the fine-tuned model. Slide through the 32 steps: "
        "grey chips are still masked, each committed token is coloured by the confidence it had when "
        "committed, and the tokens committed at the current step are outlined. Compare where low-confidence "
        "remasking starts with random remasking and with semi-autoregressive blocks of 8.",
        ch3.generation_inputs, ch3.generation_demo, ("sft_mdm",)),
    GalleryDemo(
        3, "3c", "reversal", "Reversal explorer: who can answer which query?",
        "Pick one of the 100 held-out people, whose fact was only ever stated forward in training, and see "
        "the autoregressive model and the masked diffusion model answer four questions: forward, reverse, "
        "left-masked (a question only a bidirectional model can pose) and a control with no right answer. "
        "Green is right, red wrong.",
        ch3.reversal_inputs, ch3.reversal_demo, ("facts_ar", "facts_mdm")),
    GalleryDemo(
        4, "4a", "router", "Router explorer: which experts does each token use?",
        "One held-out sentence through the mixture-of-experts model (16 experts, top-3 plus a shared one). Drag "
        "the token slider along the sentence and watch its row light up in the grid: each token goes to three "
        "experts, with gate weights from the sigmoid router. Switch layers to compare the two MoE blocks; the "
        "load panel shows how evenly the sentence's assignments spread, against the dashed balanced line.",
        ch4.router_inputs, ch4.router_demo, ("moe_llada2",)),
    GalleryDemo(
        4, "4b", "block_mask", "Block-mask explorer: from AR to MDLM",
        "The block-diffusion training mask over [x<sub>t</sub> ; x<sub>0</sub>] for a sequence of 16 tokens "
        "(coloured: may attend). Drag the block size from 1 to 16: at L<sub>B</sub> = 1 each noisy token sees "
        "only the clean tokens before it, an autoregressive model; at L<sub>B</sub> = 16 the noisy half sees "
        "all of itself and nothing clean, MDLM. In between: bidirectional inside a block, causal across blocks.",
        ch4.block_mask_inputs, ch4.block_mask_demo),
    GalleryDemo(
        4, "4c", "race", "The race: AR with a KV cache against parallel diffusion decoding",
        "One copying prompt decoded at batch 1 by the autoregressive model with its KV cache (purple, one token per "
        "model call) and by the fastest diffusion decoder of the chapter's benchmark (teal), played back on the "
        "wall-clock times measured by <code>./course bench decoding</code>. Drag the time: the AR model writes "
        "token after token, the diffusion decoder whole blocks at once, each call costing a little more.",
        ch4.race_inputs, ch4.race_demo),
    GalleryDemo(
        4, "4d", "editing", "Editing playback: draft fast, fix later",
        "One held-out sum decoded by the editing model, step by step: green rings are masks turned into "
        "tokens (M2T), orange rings are tokens edited into others (T2T), with the replaced token struck "
        "through; red marks a wrong digit. Step through S-Mode and watch a drafted error get repaired, then "
        "switch to Q-Mode (slower, careful) and to S-Mode with T2T off, where the same error stays.",
        ch4.editing_playback_inputs, ch4.editing_playback_demo, ("add_edit",)),
    GalleryDemo(
        4, "4e", "threshold", "Threshold explorer: speed against accuracy",
        "Every (&tau;<sub>mask</sub>, &tau;<sub>edit</sub>) setting of the editing decoder on 1,000 held-out "
        "sums, as tokens per forward pass against exact-sum accuracy; the stars are this chapter's S-Mode and "
        "Q-Mode. Drag &tau;<sub>mask</sub> down to draft more tokens per step, then drag &tau;<sub>edit</sub> "
        "to see how much accuracy editing buys back (&tau;<sub>edit</sub> = 1 switches T2T off).",
        ch4.threshold_inputs, ch4.threshold_demo, ("add_edit",)),
]
check_registry(DEMOS)


def shown_text_px(demo, room=FIGURE_ROOM_720) -> float:
    """The smallest text of ``demo``'s figure as shown in ``room`` (px): the figure is scaled down to fit it, never
    up. Draw the demo in projector style (``viz.projector()``), as the gallery does."""
    w, h = demo.fig.canvas.get_width_height()
    return demo.min_text_px() * min(1.0, room[0] / w, room[1] / h)


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
    toc = "".join(f'<li><a href="#demo-{d.key}">{d.key} &middot; {d.title}</a></li>' for d in chosen)
    display(W.HTML(f'<div class="gallery-header" id="gallery-top"><h1>Diffusion language models: demo gallery</h1>'
                   f'<p>Every interactive demo of the course, ready to project.</p>'
                   f'<p class="gallery-keys"><kbd>S</kbd> slide mode (one demo per screen) &middot; '
                   f'<kbd>PageDown</kbd> or <kbd>N</kbd> next demo &middot; <kbd>PageUp</kbd> or <kbd>P</kbd> '
                   f'previous &middot; <kbd>Home</kbd> back to this list &middot; a clicked slider moves with the '
                   f'arrow keys</p>'
                   f'<ol class="gallery-toc">{toc}</ol></div>'))
    built = {}
    for d in chosen:
        demo = d.demo()
        demo.children[0].layout.display = "none"      # the card's heading replaces the demo's own title
        head = W.HTML(f'<div class="gallery-head" id="demo-{d.key}" data-min-text-px="{demo.min_text_px()}"><span class="gallery-chapter">Chapter {d.chapter}'
                      f' &middot; demo {d.key}</span> <a class="gallery-back" href="#gallery-top">&uarr; all demos'
                      f'</a><h2>{d.title}</h2><p class="gallery-explanation">{d.explanation}</p></div>')
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
    links), ``gallery/jupyter-config/labconfig/page_config.json`` (JupyterLab extensions that do not run
    inside Voila, jupytext and RISE, switched off there) and ``gallery/jupyter-config/voila.json``. That file turns
    off the XSRF check: Voila's page asks for its kernel's shutdown when it is closed or reloaded, with a request
    that carries no XSRF token (voila-dashboards/voila#1458), so with the check on every reload left a kernel
    running (about 200 MB each). The server listens on 127.0.0.1 only, and the one state-changing request it
    accepts is that shutdown, which needs the kernel's random id."""
    env = dict(os.environ)
    here = ROOT / "gallery"
    env.update({"COURSE_GALLERY_THEME": "dark" if dark else "light", "MPLBACKEND": "Agg", "COURSE_NO_PROGRESS": "1",
                "JUPYTER_PATH": os.pathsep.join(filter(None, [str(here), env.get("JUPYTER_PATH")])),
                "JUPYTER_CONFIG_PATH": os.pathsep.join(filter(None, [str(here / "jupyter-config"),
                                                                     env.get("JUPYTER_CONFIG_PATH")]))})
    return env


def serve(argv=()) -> int:
    """``./course gallery [--dark] [--slides] [--port N]``: serve the gallery until Ctrl-C; ``--slides`` prints the
    address that opens it in slide mode (one demo per screen; the S key switches it on and off in any case)."""
    args = list(argv)
    dark, slides = "--dark" in args, "--slides" in args
    port = 8866
    if "--port" in args:
        i = args.index("--port")
        try:
            port = int(args[i + 1])
        except (IndexError, ValueError):
            raise ValueError("--port needs a number, e.g. --port 8866") from None
    unknown = [a for a in args if a not in ("--dark", "--slides", "--port") and not a.isdigit()]
    if unknown:
        raise ValueError(f"unknown option(s) {unknown}; usage: ./course gallery [--dark] [--slides] [--port N]")
    stale = []
    for d in DEMOS:
        try:
            load_inputs(d)
        except ValueError as e:
            stale.append(str(e))
    if stale:
        raise SystemExit("error: " + "\n".join(stale))
    print(f"== demo gallery: open http://127.0.0.1:{port}/{'#slides' if slides else ''} in a browser once Voila says "
          f"'Kernel pool of gallery.ipynb is filled' (a few seconds); PageDown / PageUp move demo by demo, S switches "
          f"the slide mode; Ctrl-C stops it", flush=True)
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
