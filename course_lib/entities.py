"""Named entities: chapter 4's task where parallel decoding makes joint mistakes, and token editing can repair them.

The canonical failure of committing several tokens at once: asked for a city, a model split between "New York"
and "Los Angeles" writes "New Angeles" -- each word is a likely marginal, the pair is nonsense. Addition (chapter
4's other task) never produces this, because every answer digit is determined by the prompt. This task is built
to produce it, with an exact grader:

- ``CATEGORIES`` = 32 categories, each with ``PER_CATEGORY`` = 2 entities of ``ENTITY_LENGTH`` = 3 name tokens,
  drawn once from a pool of ``NAMES`` = 48 tokens (seeded); the two entities of a category differ at every
  position, so mixing them always gives a non-entity.
- A prompt names ``SLOTS`` = 4 categories, then ``=``; a right answer gives *any* entity of each category, in
  order, then [EOS] (12 name tokens + [EOS] + 3 [EOS] pads = ``GEN_LENGTH`` = 16 positions, one block)::

      prompt   c07 c19 c02 c30 =
      answer   n12 n03 n40  n08 n22 n05  n31 n17 n09  n44 n02 n27  [EOS] [EOS] [EOS] [EOS]

- The training data pick each category's entity with probability 1/2. A perfect model's marginal at every name
  position is therefore 50/50 between two tokens, while the joint of a slot's three positions sits on two coherent
  triples. Decoding a slot's positions from their marginals at once commits a mixture 3 times out of 4;
  committing one position first makes the other two certain.

Vocabulary (83 ids): names 0-47, categories 48-79, ``=`` 80, [EOS] 81, [MASK] 82. 2,000 category tuples are held
out (split "test") and never seen in training.

Models: the course Transformer (bidirectional). Both start from the same base (500 steps of LLaDA's SFT loss),
then ``ent_sft`` continues SFT and ``ent_edit`` trains LLaDA 2.1's mixed M2T + T2T objective
(:mod:`course_lib.editing`) for the same 200 steps. ``python -m course_lib.entities fronts`` measures the decoders'
speed/accuracy fronts on 1,000 held-out prompts (``data/entities/fronts.json``).
"""
from __future__ import annotations

import argparse
import functools
import time

import torch

from . import checkpoints, decoding, editing
from .checks import check_int
from .masked import sft_forward_process, sft_loss
from .nn import Transformer, TransformerConfig
from .runtime import progress
from .training import lr_factor, training_loop

CATEGORIES, PER_CATEGORY, ENTITY_LENGTH, NAMES, SLOTS = 32, 2, 3, 48, 4
CATEGORY0 = NAMES                               # category c has id CATEGORY0 + c
EQ_ID, EOS_ID, MASK_ID = NAMES + CATEGORIES, NAMES + CATEGORIES + 1, NAMES + CATEGORIES + 2
VOCAB_SIZE = MASK_ID + 1
PROMPT_LENGTH = SLOTS + 1
ANSWER_TOKENS = SLOTS * ENTITY_LENGTH           # name tokens; then [EOS]
GEN_LENGTH = 16
SEQ_LEN = PROMPT_LENGTH + GEN_LENGTH
HELD_OUT = 2000
EDIT_VOCAB = list(range(NAMES)) + [EOS_ID]      # what T2T may write
DATA_DIR = checkpoints.DATA_DIR / "entities"
FRONTS_PATH = DATA_DIR / "fronts.json"


def _entities() -> torch.Tensor:
    """(CATEGORIES, PER_CATEGORY, ENTITY_LENGTH) name ids; the entities of a category differ at every position."""
    g = torch.Generator().manual_seed(2026)
    table = torch.empty(CATEGORIES, PER_CATEGORY, ENTITY_LENGTH, dtype=torch.long)
    for c in range(CATEGORIES):
        for j in range(ENTITY_LENGTH):                  # distinct names at position j of the category's entities
            table[c, :, j] = torch.randperm(NAMES, generator=g)[:PER_CATEGORY]
    return table


ENTITIES = _entities()


def _tuple_ids(index: torch.Tensor) -> torch.Tensor:
    """Category tuples (n, SLOTS) from their indices in [0, CATEGORIES ** SLOTS)."""
    powers = CATEGORIES ** torch.arange(SLOTS - 1, -1, -1)
    return (index[:, None] // powers) % CATEGORIES


@functools.lru_cache(maxsize=1)
def _held_out() -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out tuple indices (fixed order) and a mask over all indices marking them."""
    g = torch.Generator().manual_seed(1234)
    index = torch.randperm(CATEGORIES ** SLOTS, generator=g)[:HELD_OUT]
    held = torch.zeros(CATEGORIES ** SLOTS, dtype=torch.bool)
    held[index] = True
    return index, held


def problems(split: str, n: int | None = None, seed: int = 0) -> torch.Tensor:
    """(n, SLOTS) category tuples: "test" = the ``HELD_OUT`` held-out tuples in a fixed order (``n`` = the first n);
    "train" = ``n`` tuples drawn with ``seed`` from all the others (with replacement)."""
    if split == "test":
        t = _tuple_ids(_held_out()[0])
        return t if n is None else t[:check_int(n, "n", 1)]
    if split != "train":
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    n = check_int(n, "n", 1)
    g = torch.Generator().manual_seed(seed)
    held = _held_out()[1]
    out = []
    while sum(len(o) for o in out) < n:
        idx = torch.randint(0, CATEGORIES ** SLOTS, (2 * n,), generator=g)
        out.append(idx[~held[idx]])
    return _tuple_ids(torch.cat(out)[:n])


def to_ids(tuples: torch.Tensor, choice: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(prompts (n, P), full (n, P + GEN_LENGTH))``: the prompt of each tuple and an answer with entity
    ``choice[b, s]`` (0 or 1; default all 0) in slot s."""
    tuples = torch.as_tensor(tuples)
    if tuples.ndim != 2 or tuples.shape[1] != SLOTS or tuples.is_floating_point() or tuples.dtype == torch.bool \
            or bool(((tuples < 0) | (tuples >= CATEGORIES)).any()):
        raise ValueError(f"tuples must be an integer tensor of shape (n, {SLOTS}) with categories in [0, {CATEGORIES})")
    n = len(tuples)
    choice = torch.zeros(n, SLOTS, dtype=torch.long) if choice is None else torch.as_tensor(choice).long()
    if choice.shape != tuples.shape or bool(((choice < 0) | (choice >= PER_CATEGORY)).any()):
        raise ValueError(f"choice must have the tuples' shape and values in [0, {PER_CATEGORY})")
    prompts = torch.cat([CATEGORY0 + tuples, torch.full((n, 1), EQ_ID)], 1)
    names = ENTITIES[tuples, choice].reshape(n, ANSWER_TOKENS)
    answers = torch.cat([names, torch.full((n, GEN_LENGTH - ANSWER_TOKENS), EOS_ID)], 1)
    return prompts, torch.cat([prompts, answers], 1)


def slot_status(x: torch.Tensor, tuples: torch.Tensor) -> torch.Tensor:
    """(n, SLOTS) long: for each slot of each row's answer, 1 if its three tokens are an entity of the slot's
    category, 0 if they are a *mixture* of that category's entities (each token right for one entity, not all for
    the same one: the parallel-decoding mistake), -1 otherwise (some token belongs to neither)."""
    tuples = torch.as_tensor(tuples)
    x = torch.as_tensor(x)
    if x.ndim != 2 or x.shape[1] not in (GEN_LENGTH, SEQ_LEN) or len(x) != len(tuples):
        raise ValueError(f"x must have shape (n, {GEN_LENGTH}) (answers) or (n, {SEQ_LEN}) (canvases)")
    names = x[:, -GEN_LENGTH:][:, :ANSWER_TOKENS].reshape(len(x), SLOTS, ENTITY_LENGTH)
    ents = ENTITIES[tuples]                                              # (n, SLOTS, PER_CATEGORY, ENTITY_LENGTH)
    match = names[:, :, None, :] == ents                                 # token j equals entity e's token j
    whole = match.all(-1).any(-1)
    each = match.any(-2).all(-1)                                          # every token right for some entity
    return torch.where(whole, 1, torch.where(each, 0, -1))


def grade(x: torch.Tensor, tuples: torch.Tensor) -> torch.Tensor:
    """(n,) bool: every slot names an entity of its category and the answer then ends ([EOS] after the 12 names);
    later positions are not read."""
    x = torch.as_tensor(x)
    return (slot_status(x, tuples) == 1).all(1) & (x[:, -GEN_LENGTH:][:, ANSWER_TOKENS] == EOS_ID)


def readable(ids) -> str:
    """Text of token ids: ``c07`` categories, ``n12`` names, ``=``, ``[EOS]`` (once), ``_`` for [MASK]."""
    out = []
    for i in (int(v) for v in ids):
        if not 0 <= i < VOCAB_SIZE:
            raise ValueError(f"token id {i} is outside the vocabulary [0, {VOCAB_SIZE})")
        out.append(f"n{i:02d}" if i < NAMES else f"c{i - CATEGORY0:02d}" if i < EQ_ID else
                   "=" if i == EQ_ID else "[EOS]" if i == EOS_ID else "_")
        if i == EOS_ID:
            break
    return " ".join(out)


# ----------------------------------------------------------------------------------------------
# Models and training
# ----------------------------------------------------------------------------------------------

MODEL = dict(n_layer=4, n_head=4, d_model=96)    # 0.45M parameters: plenty for 64 entities, small to ship
# The shared starting point: SFT from random weights, after which the model knows every category's two entities.
# Each recipe below trains it first (seeded, so both start from the same weights), then its own stage.
BASE = dict(objective="sft", steps=500, lr=1e-3, warmup=50)
RECIPES = {
    # + 200 SFT steps: the threshold-decoding baseline
    "ent_sft": dict(objective="sft", steps=200, lr=3e-4, warmup=20),
    # + 200 steps of LLaDA 2.1's M2T + T2T objective (edit_rate, draft_rate as add_edit)
    "ent_edit": dict(objective="edit", steps=200, lr=3e-4, warmup=20, edit_rate=0.2, draft_rate=0.5),
}
BATCH_SIZE, SEED = 256, 0


def new_model() -> Transformer:
    return Transformer(TransformerConfig(vocab_size=VOCAB_SIZE, seq_len=SEQ_LEN, attention="bidirectional", **MODEL))


def load_model(name: str) -> Transformer:
    """A shipped entity model (``ent_sft``, ``ent_edit``), verified against the manifest."""
    return checkpoints.load_model(name, lambda config: Transformer(TransformerConfig(**config["model"])))


def entity_loss(model, objective: str, x0: torch.Tensor, g: torch.Generator, edit_rate: float = 0.0,
                draft_rate: float = 0.0):
    """One batch's loss: LLaDA's SFT loss, or the mixed M2T + T2T loss (:func:`course_lib.editing.m2t_t2t_loss`)."""
    pl = torch.full((len(x0),), PROMPT_LENGTH, dtype=torch.long)
    if objective == "edit":
        return editing.m2t_t2t_loss(model, x0, pl, MASK_ID, edit_rate, EDIT_VOCAB, g, draft_rate=draft_rate)[0]
    noisy, masked, p_mask = sft_forward_process(x0, pl, MASK_ID, g)
    return sft_loss(model(noisy), x0, noisy, masked, p_mask, pl, mask_id=MASK_ID)


def _stage(model: Transformer | None, stage: dict, desc: str, show_progress: bool) -> tuple[Transformer, list[float]]:
    """One training stage, seeded afresh; ``model=None`` starts from new random weights (the base stage, which
    also draws its own batches). Returns the model and the losses."""
    first = model is None
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED)
    model = new_model() if first else model
    opt = torch.optim.AdamW(model.parameters(), lr=stage["lr"], betas=(0.9, 0.98), weight_decay=0.0)

    def loss_fn(step):
        tuples = problems("train", BATCH_SIZE, seed=1000 * SEED + step + (0 if first else 10 ** 6))
        choice = torch.randint(0, PER_CATEGORY, tuples.shape, generator=g)
        return entity_loss(model, stage["objective"], to_ids(tuples, choice)[1], g, stage.get("edit_rate", 0.0),
                           stage.get("draft_rate", 0.0))

    steps = range(stage["steps"])
    bar = progress(steps, desc=desc) if show_progress else steps
    losses = [loss for _, loss in training_loop(model, loss_fn, bar, opt,
                                                lambda s: lr_factor(s, stage["steps"], stage["warmup"], 0.1))]
    model.eval()
    return model, losses


def train(name: str, show_progress: bool = True):
    """Train the shipped model ``name`` (one thread, seeded): the :data:`BASE` stage, then ``RECIPES[name]``;
    returns ``(model, metrics, seconds)``."""
    if name not in RECIPES:
        raise ValueError(f"unknown entity recipe {name!r}; known: {sorted(RECIPES)}")
    r = RECIPES[name]
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0 = time.perf_counter()
        base, _ = _stage(None, BASE, f"{name}: base", show_progress)
        model, losses = _stage(base, r, name, show_progress)
        seconds = time.perf_counter() - t0
    finally:
        torch.set_num_threads(old)
    model.recipe = dict(r, base=BASE, model=model.config.to_dict(), batch_size=BATCH_SIZE, seed=SEED)
    tuples = problems("test", 1000)
    prompts, _ = to_ids(tuples)
    res = decoding.threshold_decode(model, prompts, GEN_LENGTH, GEN_LENGTH, 1.0, MASK_ID, EOS_ID)
    metrics = {"steps": BASE["steps"] + r["steps"], "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4),
               "threads": 1, "test_accuracy_1000_one_per_step": round(grade(res.x, tuples).float().mean().item(), 4)}
    return model, metrics, seconds


# ----------------------------------------------------------------------------------------------
# Decoders compared: speed/accuracy fronts
# ----------------------------------------------------------------------------------------------

THRESHOLDS = (1.0, 0.99, 0.95, 0.9, 0.8, 0.7, 0.6, 0.55, 0.5, 0.45, 0.4, 0.3, 0.0)
TAU_MASK = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)
TAU_EDIT = (0.0, 0.3, 0.5, 0.7, 0.9, 0.95)


def decode_report(result: decoding.DecodeResult, tuples: torch.Tensor) -> dict:
    """Accuracy (%), TPF and the joint mistakes of one decode: ``mixtures_drafted`` = slots whose three tokens, as
    M2T first committed them, mix the category's two entities; ``mixtures_final`` = such slots in the final
    answers; ``repaired`` = drafted mixtures that T2T turned into an entity."""
    drafts = torch.where(result.drafts >= 0, result.drafts, MASK_ID)
    drafted, final = slot_status(drafts, tuples), slot_status(result.x, tuples)
    return {"accuracy": round(100 * grade(result.x, tuples).float().mean().item(), 2), "tpf": round(result.tpf, 4),
            "mixtures_drafted": int((drafted == 0).sum()), "mixtures_final": int((final == 0).sum()),
            "repaired": int(((drafted == 0) & (final == 1)).sum()), "slots": int(final.numel())}


def fronts(n: int = 1000, show_progress: bool = True) -> dict:
    """Every decoder setting on the first ``n`` held-out prompts, the same prompts for all: threshold decoding of
    ``ent_sft`` and of ``ent_edit`` at :data:`THRESHOLDS`, and editing (``ent_edit``, T2T on) at every
    (tau_mask, tau_edit) of :data:`TAU_MASK` x :data:`TAU_EDIT`. Each entry: :func:`decode_report`."""
    tuples = problems("test", n)
    prompts, _ = to_ids(tuples)
    sft, editor = load_model("ent_sft"), load_model("ent_edit")
    runs = [("threshold", "ent_sft", tau, None) for tau in THRESHOLDS]
    runs += [("threshold", "ent_edit", tau, None) for tau in THRESHOLDS]
    runs += [("editing", "ent_edit", tm, te) for tm in TAU_MASK for te in TAU_EDIT]
    out = []
    for kind, name, tm, te in progress(runs, desc="entity fronts") if show_progress else runs:
        model = sft if name == "ent_sft" else editor
        res = decoding.edit_decode(model, prompts, GEN_LENGTH, GEN_LENGTH, tm, 1.0 if te is None else te, MASK_ID,
                                   EOS_ID, editing=te is not None)
        out.append({"decoder": kind, "model": name, "tau_mask": tm, "tau_edit": te, **decode_report(res, tuples)})
    return {"n": n, "runs": out}


def main(argv=None) -> int:
    """``python -m course_lib.entities fronts``: write data/entities/fronts.json from the shipped models."""
    p = argparse.ArgumentParser(prog="python -m course_lib.entities", description=main.__doc__)
    p.add_argument("what", choices=["fronts"])
    p.parse_args(argv)
    torch.set_num_threads(2)
    checkpoints.write_json(FRONTS_PATH, fronts())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
