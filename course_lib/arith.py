"""Addition: chapter 4's task with a single right answer, and its small masked-diffusion models.

Parallel decoding, confidence-aware training (CAP), token editing
and RL are all measured on one checkable task: ``a + b`` with two D-digit operands written with
leading zeros, answered by the (D+1)-digit sum, then [EOS]. Example for D = 3::

    prompt   4 0 7 + 0 9 5 =          (P = 2D + 2 = 8 tokens)
    answer   0 5 0 2 [EOS] [EOS] ...  (D + 1 digits, [EOS], [EOS] padding up to GEN_LENGTH = 8)

Every answer digit is a deterministic function of the prompt, so "is the answer right?" has an exact
answer (:func:`grade`), and a model can be confident about several digits at once -- or not, where a
carry chain makes a digit depend on others. That is the regime where LLaDA 2.x decoding is fastest
(code and maths) and where its speed-ups can be measured honestly at small scale.

Vocabulary (14 ids): ``0``-``9`` -> 0-9, ``+`` -> 10, ``=`` -> 11, ``[EOS]`` -> 12, ``[MASK]`` -> 13.

The training loop (:func:`train_arith`) implements three objectives on the same data and model:
``"sft"`` (LLaDA's SFT loss, chapter 3), ``"cap"`` (LLaDA 2.0's confidence-aware parallel training,
:mod:`course_lib.cap`) and ``"edit"`` (LLaDA 2.1's mixed M2T + T2T objective, :mod:`course_lib.editing`).
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .nn import Transformer, TransformerConfig
from .checks import check_int
from .runtime import progress
from .training import PassCounter, lr_factor, training_loop
from .masked import sft_forward_process, sft_loss
from . import cap, checkpoints, decoding, editing, rl

DIGITS = 3                                   # operand width D
ITOS = [str(d) for d in range(10)] + ["+", "=", "[EOS]", "[MASK]"]
STOI = {s: i for i, s in enumerate(ITOS)}
PLUS_ID, EQ_ID, EOS_ID, MASK_ID = 10, 11, 12, 13
VOCAB_SIZE = len(ITOS)
PROMPT_LENGTH = 2 * DIGITS + 2               # a + b =
ANSWER_DIGITS = DIGITS + 1
GEN_LENGTH = 8                               # answer digits, [EOS], [EOS] padding
SEQ_LEN = PROMPT_LENGTH + GEN_LENGTH
HELD_OUT = 2000                              # test pairs, never seen in training (split "test")


def _digits(n: int, width: int) -> list[int]:
    return [int(c) for c in str(n).zfill(width)]


def _check_operands(a, b) -> None:
    for v, name in ((a, "a"), (b, "b")):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 10 ** DIGITS:
            raise ValueError(f"{name} must be an integer in [0, {10 ** DIGITS}), got {v!r}")


def encode_prompt(a: int, b: int) -> list[int]:
    """Token ids of ``a + b =`` with D-digit operands."""
    _check_operands(a, b)
    return _digits(a, DIGITS) + [PLUS_ID] + _digits(b, DIGITS) + [EQ_ID]


def encode_answer(a: int, b: int) -> list[int]:
    """The right generated part for ``a + b``: D+1 digits, then [EOS] up to ``GEN_LENGTH``."""
    _check_operands(a, b)
    return _digits(a + b, ANSWER_DIGITS) + [EOS_ID] * (GEN_LENGTH - ANSWER_DIGITS)


def decode(ids) -> str:
    """Readable text of a row of ids ([EOS] padding after the first [EOS] dropped)."""
    ids = [int(i) for i in ids]
    for i in ids:
        if not 0 <= i < VOCAB_SIZE:
            raise ValueError(f"token id {i} is outside the vocabulary [0, {VOCAB_SIZE})")
    out = []
    for i in ids:
        out.append(ITOS[i])
        if i == EOS_ID:
            break
    return " ".join(out).replace(" [EOS]", "").replace("[MASK]", "_")


def _pairs(split: str) -> torch.Tensor:
    """All (a, b) pairs of a split as a (N, 2) tensor: "test" = ``HELD_OUT`` pairs drawn once (seed 1234),
    "train" = every other pair. Deterministic."""
    n = 10 ** DIGITS
    g = torch.Generator().manual_seed(1234)
    perm = torch.randperm(n * n, generator=g)
    if split == "test":
        idx = perm[:HELD_OUT]
    elif split == "train":
        idx = perm[HELD_OUT:]
    else:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return torch.stack([idx // n, idx % n], 1)


def problems(split: str, n: int | None = None, seed: int = 0) -> torch.Tensor:
    """(n, 2) operand pairs of ``split`` ("train" or "test"); ``n=None`` gives the whole split in a fixed
    order, otherwise n pairs drawn without replacement with ``seed``."""
    pairs = _pairs(split)
    if n is None:
        return pairs
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(pairs):
        raise ValueError(f"n must be an integer in [1, {len(pairs)}], got {n!r}")
    g = torch.Generator().manual_seed(seed)
    return pairs[torch.randperm(len(pairs), generator=g)[:n]]


def to_ids(pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(prompts (n, P), full (n, P + GEN_LENGTH))`` for (n, 2) operand pairs, vectorised."""
    pairs = torch.as_tensor(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or pairs.is_floating_point() or pairs.dtype == torch.bool:
        raise ValueError(f"pairs must be an integer tensor of shape (n, 2), got {tuple(pairs.shape)}")
    if bool((pairs < 0).any()) or bool((pairs >= 10 ** DIGITS).any()):
        raise ValueError(f"operands must lie in [0, {10 ** DIGITS})")
    a, b = pairs[:, 0], pairs[:, 1]

    def digits(v, width):
        powers = 10 ** torch.arange(width - 1, -1, -1)
        return (v[:, None] // powers) % 10

    n = len(pairs)
    prompts = torch.cat([digits(a, DIGITS), torch.full((n, 1), PLUS_ID), digits(b, DIGITS),
                         torch.full((n, 1), EQ_ID)], 1)
    answers = torch.cat([digits(a + b, ANSWER_DIGITS), torch.full((n, GEN_LENGTH - ANSWER_DIGITS), EOS_ID)], 1)
    return prompts.long(), torch.cat([prompts, answers], 1).long()


def grade(x: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """(n,) bool: is the generated part of each row of ``x`` (n, P + GEN_LENGTH) exactly the right answer
    (D+1 digits then [EOS])? Tokens after the first [EOS] are not read."""
    _, full = to_ids(pairs)
    if not isinstance(x, torch.Tensor) or x.shape != full.shape:
        raise ValueError(f"x must have shape {tuple(full.shape)}, got {tuple(getattr(x, 'shape', ()))}")
    if x.is_floating_point() or x.dtype == torch.bool or bool(((x < 0) | (x >= VOCAB_SIZE)).any()):
        raise ValueError(f"x must hold integer token ids in [0, {VOCAB_SIZE})")
    k = PROMPT_LENGTH + ANSWER_DIGITS + 1                  # digits and the first [EOS]
    return (x[:, PROMPT_LENGTH:k] == full[:, PROMPT_LENGTH:k]).all(1)


def sloppy_answers(full: torch.Tensor, rate: float, generator: torch.Generator) -> torch.Tensor:
    """Training rows as a careless annotator writes them: in each row whose sum reaches 1000 (a carry into the
    thousands), with probability ``rate`` the thousands digit is written 0 instead of 1, the carry forgotten.
    ``full`` (n, P + GEN_LENGTH) holds the right rows; returns a changed copy. One uniform number per row is
    drawn from ``generator``."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must lie in [0, 1], got {rate!r}")
    flip = torch.rand(len(full), generator=generator) < rate
    out = full.clone()
    out[flip & (full[:, PROMPT_LENGTH] == 1), PROMPT_LENGTH] = 0
    return out


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------

@dataclass
class ArithRecipe:
    """A training recipe for an addition model.

    ``objective``: "sft" (LLaDA SFT loss), "cap" (+ ``cap_lambda`` * CAP confidence loss), "edit"
    (LLaDA 2.1's mixed M2T + T2T objective with ``edit_rate``: the share of visible answer tokens
    replaced by random digits/[EOS], and ``draft_rate``: the share of masked positions filled with the
    model's own draft). ``init``: name of a shipped checkpoint to start from (None = random). ``sloppy``: the
    share of training answers with a carry into the thousands that are written wrong (:func:`sloppy_answers`);
    0 = the right answers.
    """
    objective: str = "sft"
    model: dict = field(default_factory=lambda: dict(n_layer=4, n_head=4, d_model=128))
    steps: int = 3000
    batch_size: int = 256
    lr: float = 1e-3
    warmup: int = 100
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    cap_lambda: float = 0.0
    edit_rate: float = 0.0
    draft_rate: float = 0.0
    init: str | None = None
    sloppy: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if self.objective not in ("sft", "cap", "edit"):
            raise ValueError(f"objective must be 'sft', 'cap' or 'edit', got {self.objective!r}")
        for name in ("steps", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if not self.cap_lambda >= 0 or (self.objective == "cap") != (self.cap_lambda > 0):
            raise ValueError("cap_lambda must be > 0 exactly for the 'cap' objective")
        if not 0.0 <= self.edit_rate <= 1.0 or (self.objective == "edit") != (self.edit_rate > 0):
            raise ValueError("edit_rate must lie in (0, 1] for the 'edit' objective and be 0 otherwise")
        if not 0.0 <= self.draft_rate <= 1.0 or (self.objective != "edit" and self.draft_rate > 0):
            raise ValueError("draft_rate must lie in [0, 1], and be 0 unless the objective is 'edit'")
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(f"warmup must be an integer >= 0, got {self.warmup!r}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not 0.0 <= self.sloppy <= 1.0:
            raise ValueError(f"sloppy must lie in [0, 1], got {self.sloppy!r}")
        if self.init is not None and not isinstance(self.init, str):
            raise ValueError(f"init must be a checkpoint name or None, got {self.init!r}")

    def transformer_config(self) -> TransformerConfig:
        kw = dict(vocab_size=VOCAB_SIZE, seq_len=SEQ_LEN, attention="bidirectional")
        kw.update(self.model)
        return TransformerConfig(**kw)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["model"] = self.transformer_config().to_dict()
        return d


def arith_loss(model, recipe: ArithRecipe, x0: torch.Tensor, g: torch.Generator):
    """The training loss of one batch for ``recipe.objective``; returns ``(loss, parts)`` with ``parts`` a
    dict of floats for logging."""
    pl = torch.full((x0.shape[0],), PROMPT_LENGTH, dtype=torch.long)
    if recipe.objective == "edit":
        return editing.m2t_t2t_loss(model, x0, pl, MASK_ID, recipe.edit_rate, edit_vocab=list(range(10)) + [EOS_ID],
                                    generator=g, draft_rate=recipe.draft_rate)
    noisy, masked, p_mask = sft_forward_process(x0, pl, MASK_ID, g)
    logits = model(noisy)
    sft = sft_loss(logits, x0, noisy, masked, p_mask, pl, mask_id=MASK_ID)
    if recipe.objective == "sft":
        return sft, {"sft": sft.item()}
    conf = cap.confidence_loss(logits, x0, masked, MASK_ID)
    return sft + recipe.cap_lambda * conf, {"sft": sft.item(), "conf": conf.item()}


def train_arith(recipe, model: Transformer | None = None, show_progress: bool = True, desc: str | None = None,
                num_threads: int | None = 1):
    """Train an addition model; returns ``(model, history)``.

    Each step draws ``batch_size`` training pairs (with replacement, generator seeded by ``recipe.seed``),
    takes one AdamW step on :func:`arith_loss` with linear warmup + cosine decay and clipping at 1."""
    recipe = recipe if isinstance(recipe, ArithRecipe) else ArithRecipe(**recipe)
    old = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        torch.manual_seed(recipe.seed)
        g = torch.Generator().manual_seed(recipe.seed)
        if model is None:
            model = load_arith_model(recipe.init) if recipe.init else Transformer(recipe.transformer_config())
        train_pairs = _pairs("train")
        opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, betas=(0.9, 0.98), weight_decay=recipe.weight_decay)
        hist = {"step": [], "loss": [], "parts": []}

        def loss_fn(step):
            rows = torch.randint(0, len(train_pairs), (recipe.batch_size,), generator=g)
            _, x0 = to_ids(train_pairs[rows])
            if recipe.sloppy > 0:
                x0 = sloppy_answers(x0, recipe.sloppy, g)
            loss, parts = arith_loss(model, recipe, x0, g)
            return loss, (loss.item(), parts)

        bar = progress(range(recipe.steps), desc=desc or recipe.objective) if show_progress else range(recipe.steps)
        t0, window = time.perf_counter(), []
        lr_lambda = lambda s: lr_factor(s, recipe.steps, recipe.warmup, recipe.min_lr_ratio)  # noqa: E731
        with PassCounter(Transformer) as count:
            for step, (loss_value, parts) in training_loop(model, loss_fn, bar, opt, lr_lambda):
                window.append(loss_value)
                if (step + 1) % 50 == 0 or step == recipe.steps - 1:
                    hist["step"].append(step + 1)
                    hist["loss"].append(sum(window) / len(window))
                    hist["parts"].append(parts)
                    window = []
                    if show_progress:
                        bar.set_postfix(loss=f"{hist['loss'][-1]:.4f}")
        hist["seconds"] = time.perf_counter() - t0
        hist["passes"] = count.passes
    finally:
        torch.set_num_threads(old)
    model.eval()
    model.recipe = recipe.to_dict()
    return model, hist


# ----------------------------------------------------------------------------------------------
# Shipped models
# ----------------------------------------------------------------------------------------------

ARITH_RECIPES = {
    # 600 SFT steps from random weights: accurate (about 91% at one token per step) but not yet sure of itself,
    # the common starting point of the four models below
    "add_base": dict(objective="sft", steps=600),
    # + 150 more SFT steps: the SFT model of the decoding experiments
    "add_sft": dict(objective="sft", steps=150, lr=3e-4, warmup=20, init="add_base"),
    # + 150 steps of SFT + lambda * CAP confidence loss (LLaDA 2.0; dFactory's recommended beta = 2.0)
    "add_cap": dict(objective="cap", steps=150, lr=3e-4, warmup=20, cap_lambda=2.0, init="add_base"),
    # + 300 steps of LLaDA 2.1's mixed M2T + T2T objective, with drafts of its own (course_lib.editing)
    "add_edit": dict(objective="edit", steps=300, lr=3e-4, warmup=20, edit_rate=0.2, draft_rate=0.5,
                     init="add_base"),
}
# Two settings share the shipped SFT recipe above. "add_sloppy" is SFT on data from a careless annotator: 60% of
# the answers with a carry into the thousands are written without it (sloppy_answers). The equal-compute controls
# continue SFT for as many position passes (training.PassCounter) as the matching EBPO run took (manifest metric
# "passes"; tests check the match within 10%).
ARITH_RECIPES.update({
    # add_base + the SFT steps whose compute equals add_rl's EBPO run: the control for RL on clean data
    "add_sft_long": dict(objective="sft", steps=2957, lr=3e-4, warmup=20, init="add_base"),
    # add_base + 300 SFT steps on sloppy answers: knows the sums, but writes 0 for most carries into the thousands
    "add_sloppy": dict(objective="sft", steps=300, lr=3e-4, warmup=20, sloppy=0.6, init="add_base"),
    # add_sloppy + more SFT on the same sloppy data, as much compute as add_sloppy_rl's EBPO run
    "add_sloppy_sft": dict(objective="sft", steps=2262, lr=3e-4, warmup=20, sloppy=0.6, init="add_sloppy"),
})
# EBPO (course_lib.rl): rollouts of 64 prompts x 8 answers sampled at temperature 1, four AdamW steps per rollout
# (PPO-style reuse), lr 5e-5 (a larger lr, 3e-4, collapsed the policy within 10 iterations in our trials: Adam
# turns noisy policy gradients into full-size steps), and a 14-minute safety cap for slower machines (on ours the
# 200 iterations finish well before it). The reward is the exact grader: it knows the right sums, also where the
# sloppy SFT data do not.
RL_RECIPE = dict(init="add_base", iterations=200, prompts_per_iter=64, group_size=8, inner_steps=4, lr=5e-5,
                 n_t=2, eps_clip=0.2, temperature=1.0, eval_prompts=1000, eval_every=25, seed=0, threads=2,
                 max_seconds=840)
RL_RECIPES = {"add_rl": RL_RECIPE, "add_sloppy_rl": dict(RL_RECIPE, init="add_sloppy")}
RL_HISTORY = Path(__file__).resolve().parent.parent / "data" / "arith" / "rl_history.json"


def rl_history_path(name: str = "add_rl") -> Path:
    """Where the reward curves of the EBPO recipe ``name`` are written."""
    if name not in RL_RECIPES:
        raise ValueError(f"unknown RL recipe {name!r}; known: {sorted(RL_RECIPES)}")
    return RL_HISTORY if name == "add_rl" else RL_HISTORY.with_name(f"rl_history_{name}.json")


def sample_answers(model, prompts: torch.Tensor, generator=None, temperature: float = 1.0) -> torch.Tensor:
    """The policy's answers: one token per step (the most confident position first), tokens drawn at
    ``temperature`` (0 = greedy)."""
    return decoding.threshold_decode(model, prompts, GEN_LENGTH, GEN_LENGTH, 1.0, MASK_ID, EOS_ID,
                                     temperature=temperature, generator=generator).x


def heldout_reward(model, n: int = 1000, seed: int = 99, samples: int = 1, per_prompt: bool = False) -> dict:
    """Held-out reward: the exact-match rate of the policy's sampled answers (temperature 1, what RL optimises;
    ``samples`` answers per prompt) and of its greedy answers, on the first ``n`` held-out pairs. With
    ``per_prompt`` the dict also holds ``"per_prompt"``: each prompt's success rate over its samples (n,)."""
    check_int(samples, "samples", 1)
    pairs = problems("test")[:n]
    prompts, _ = to_ids(pairs)
    g = torch.Generator().manual_seed(seed)
    ok = torch.stack([grade(sample_answers(model, prompts, g, 1.0), pairs) for _ in range(samples)], 1).float()
    greedy = grade(sample_answers(model, prompts, None, 0.0), pairs)
    out = {"sampled": ok.mean().item(), "greedy": greedy.float().mean().item()}
    if per_prompt:
        out["per_prompt"] = ok.mean(1)
    return out


def run_rl_recipe(name: str = "add_rl", show_progress: bool = True):
    """Train the EBPO model ``name`` with :func:`course_lib.rl.train_ebpo` (recipe ``RL_RECIPES[name]``); writes
    the reward curves to :func:`rl_history_path` and returns ``(model, metrics, seconds)``."""
    path = rl_history_path(name)
    r = RL_RECIPES[name]
    old = torch.get_num_threads()
    torch.set_num_threads(r["threads"])
    try:
        model = load_arith_model(r["init"])
        train_pairs = _pairs("train")

        def prompt_fn(n, g):
            pairs = train_pairs[torch.randint(0, len(train_pairs), (n,), generator=g)]
            return to_ids(pairs)[0], pairs

        t0 = time.perf_counter()
        with PassCounter(Transformer) as count:
            model, hist = rl.train_ebpo(
                model, lambda m, p, g: sample_answers(m, p, g, r["temperature"]), lambda x, pairs: grade(x, pairs),
                prompt_fn, r["iterations"], group_size=r["group_size"], prompts_per_iter=r["prompts_per_iter"],
                inner_steps=r["inner_steps"], lr=r["lr"], n_t=r["n_t"], eps_clip=r["eps_clip"], mask_id=MASK_ID,
                seed=r["seed"], eval_every=r["eval_every"], max_seconds=r["max_seconds"], show_progress=show_progress,
                eval_fn=count.not_counting(lambda m: heldout_reward(m, r["eval_prompts"])))   # evaluation: not training
        seconds = time.perf_counter() - t0
    finally:
        torch.set_num_threads(old)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: hist[k] for k in ("iteration", "train_reward", "eval_iteration", "eval",
                                                           "clip_fraction", "seconds")}, indent=1))
    before, after = hist["eval"][0], hist["eval"][-1]
    metrics = {"iterations": hist["iteration"][-1], "threads": r["threads"], "passes": count.passes,
               "heldout_sampled_before": round(before["sampled"], 4), "heldout_sampled_after": round(after["sampled"], 4),
               "heldout_greedy_before": round(before["greedy"], 4), "heldout_greedy_after": round(after["greedy"], 4)}
    model.recipe = dict(ArithRecipe().to_dict(), rl=r)
    return model, metrics, seconds


def arith_recipe(name: str) -> ArithRecipe:
    if name not in ARITH_RECIPES:
        raise ValueError(f"unknown addition recipe {name!r}; known: {sorted(ARITH_RECIPES)}")
    return ArithRecipe(**ARITH_RECIPES[name])


def run_arith_recipe(name: str, show_progress: bool = True):
    """Train the shipped addition model ``name``; returns ``(model, metrics, seconds)`` for
    :func:`course_lib.recipes.retrain`. The metrics are greedy one-token-per-step accuracy on the held-out
    pairs."""
    recipe = arith_recipe(name)
    t0 = time.perf_counter()
    model, hist = train_arith(recipe, show_progress=show_progress, desc=name)
    seconds = time.perf_counter() - t0
    pairs = problems("test")[:1000]
    prompts, _ = to_ids(pairs)
    res = decoding.threshold_decode(model, prompts, GEN_LENGTH, GEN_LENGTH, 1.0, MASK_ID, EOS_ID)
    acc = grade(res.x, pairs).float().mean().item()
    metrics = {"steps": recipe.steps, "final_loss": round(hist["loss"][-1], 4),
               "test_accuracy_1000_one_per_step": round(acc, 4), "threads": 1, "passes": hist["passes"]}
    return model, metrics, seconds


def load_arith_model(name: str) -> Transformer:
    """A shipped addition model, verified against the manifest, in eval mode (recipe in ``model.recipe``).
    A missing or corrupt file raises :class:`course_lib.checkpoints.CheckpointError` naming the retrain command."""
    return checkpoints.load_model(name, lambda config: Transformer(TransformerConfig(**config["model"])))


# ----------------------------------------------------------------------------------------------
# The precomputed threshold grid of the threshold explorer (Demo 4e)
# ----------------------------------------------------------------------------------------------

GRID_TAU_MASK = [0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0]
GRID_TAU_EDIT = [0.0, 0.3, 0.5, 0.7, 0.9, 0.95, 1.0]
GRID_PATH = Path(__file__).resolve().parent.parent / "data" / "arith" / "editing_grid.json"


def editing_grid(model, tau_mask_values=GRID_TAU_MASK, tau_edit_values=GRID_TAU_EDIT, n: int = 1000,
                 show_progress: bool = True) -> dict:
    """Accuracy (%) and TPF of the editing decoder at every (tau_mask, tau_edit) of a grid, on the first ``n``
    held-out pairs; ``tau_edit = 1.0`` is T2T disabled (no probability exceeds 1). For the threshold
    explorer."""
    pairs = problems("test")[:n]
    prompts, _ = to_ids(pairs)
    acc = [[0.0] * len(tau_edit_values) for _ in tau_mask_values]
    tpf = [[0.0] * len(tau_edit_values) for _ in tau_mask_values]
    cells = [(i, j) for i in range(len(tau_mask_values)) for j in range(len(tau_edit_values))]
    for i, j in (progress(cells, desc="editing grid") if show_progress else cells):
        res = decoding.edit_decode(model, prompts, GEN_LENGTH, GEN_LENGTH, tau_mask_values[i], tau_edit_values[j],
                                   MASK_ID, EOS_ID, editing=tau_edit_values[j] < 1.0)
        acc[i][j] = round(100 * grade(res.x, pairs).float().mean().item(), 2)
        tpf[i][j] = round(res.tpf, 4)
    return {"tau_mask": list(tau_mask_values), "tau_edit": list(tau_edit_values), "accuracy": acc, "tpf": tpf, "n": n}


def main(argv=None) -> int:
    """``python -m course_lib.arith grid``: recompute data/arith/editing_grid.json from the shipped add_edit."""
    p = argparse.ArgumentParser(prog="python -m course_lib.arith", description=main.__doc__)
    p.add_argument("what", choices=["grid"])
    p.parse_args(argv)
    torch.set_num_threads(2)
    grid = editing_grid(load_arith_model("add_edit"))
    grid["model"] = "add_edit"
    checkpoints.write_json(GRID_PATH, grid)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
