"""Checkable tasks for chapter 3: an instruction set built from the course language, and a few-shot task.

Every task has an exact, automatic grader, so a model's
answers are scored without a human or a bigger model.

**Instruction set (SFT).** Two instructions, each a task token that starts the prompt:

- ``[complete] w_1 .. w_k [sep]`` -> ``w_{k+1} .. w_n``: finish a sentence of the language. Open-ended
  (many right answers); graded by the language's exact validator on ``w_1 .. w_k + answer``.
- ``[reverse] w_1 .. w_n [sep]`` -> ``w_n .. w_1``: say a sentence backwards. One right answer;
  graded by exact match.

The prompt is never masked during SFT and the answer is followed by [EOS] padding up to the canvas
(LLaDA's recipe, :func:`course_lib.masked.pad_sft_batch`). The tokenizer is the language's, plus the three
instruction tokens (:func:`instruction_tokenizer`); a pretrained language model gets three new embedding
rows (:func:`course_lib.nn.grow_vocabulary`).

**Few-shot labelling (in-context learning).** 24 words fall into 4 fixed classes (6 words
each). A *labelling rule* maps the 4 classes one-to-one to the labels ``P Q R S``; there are
:data:`ICL_NUM_RULES` = 6 rules (fixed permutations). Each *episode* picks one rule at random, shows
``k`` examples ``word = label ;`` and asks ``query =``. Which rule holds exists only in the prompt: with
``k = 0`` nothing beats guessing (the best is the most common label of the query's class over the six
rules); every example rules out the rules that disagree with it. :func:`icl_bayes_accuracy` gives the
best achievable accuracy for every ``k`` exactly (the ideal Bayesian reader), the ceiling of the plot.
This is ICL as *task recognition* (Xie et al. 2022; Pan et al. 2023): the rules are learnable from
training, the prompt says which one applies. (A fresh random rule per prompt, ICL as *task learning*,
needs the model to copy labels from matching examples, an induction circuit; in the chapter's budget
that circuit did not form.)

The twins ``icl_ar`` and ``icl_mdm`` train with a loss on the answer only (:func:`train_icl_model`): each
step draws a batch of fresh episodes with one ``k``, and the model predicts the label exactly as it is
asked at test time (:func:`icl_answer_logits`). Trained as language models on whole episodes, where most
tokens are example words drawn at random, neither twin ever used the examples.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import numpy as np
import torch

from . import language, textlm
from .runtime import progress
from .training import lr_factor, training_loop
from .tokenizer import Tokenizer
from . import llada
from .masked import pad_sft_batch
from .tokenizer import batchify

# ------------------------------------------------------------------------------------------ instructions
COMPLETE, REVERSE, SEP = "[complete]", "[reverse]", "[sep]"
INSTRUCTIONS = (COMPLETE, REVERSE)
MAX_COMPLETE_WORDS = 20       # sentences used for [complete]: at most 20 words (prompt + answer <= 41 positions)
MAX_REVERSE_WORDS = 12        # sentences used for [reverse]: at most 12 words (2n + 3 <= 41)


def instruction_tokenizer() -> Tokenizer:
    """The language's word tokenizer plus ``[complete]``, ``[reverse]`` and ``[sep]`` (ids 353-355), so every
    language id keeps its meaning and a pretrained model only needs three new rows."""
    return Tokenizer(list(language.default_grammar().vocabulary) + [COMPLETE, REVERSE, SEP])


@dataclass(frozen=True)
class Instruction:
    """One instruction example: ``prompt`` and ``answer`` as word lists, and its ``task``."""
    task: str
    prompt: list
    answer: list


def make_instruction(task: str, sentence: list, rng: np.random.RandomState) -> Instruction:
    """The instruction of kind ``task`` ("complete" or "reverse") built from one sentence of the language."""
    sentence = list(sentence)
    if task == "complete":
        if not 2 <= len(sentence) <= MAX_COMPLETE_WORDS:
            raise ValueError(f"[complete] needs a sentence of 2..{MAX_COMPLETE_WORDS} words, got {len(sentence)}")
        k = int(rng.randint(1, len(sentence)))                     # keep 1 .. n-1 words
        return Instruction("complete", [COMPLETE, *sentence[:k], SEP], sentence[k:])
    if task == "reverse":
        if not 1 <= len(sentence) <= MAX_REVERSE_WORDS:
            raise ValueError(f"[reverse] needs a sentence of 1..{MAX_REVERSE_WORDS} words, got {len(sentence)}")
        return Instruction("reverse", [REVERSE, *sentence, SEP], sentence[::-1])
    raise ValueError(f"task must be 'complete' or 'reverse', got {task!r}")


def instruction_set(split: str, n: int, seed: int = 0) -> list[Instruction]:
    """``n`` instructions from the language's ``split``, half of each task (alternating), deterministic in ``seed``.
    Sentences too long for a task are skipped."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    sentences = language.read_split(split)
    rng = np.random.RandomState(seed)
    order = rng.permutation(len(sentences))
    pools = {"complete": (s for i in order if 2 <= len(s := sentences[i]) <= MAX_COMPLETE_WORDS),
             "reverse": (s for i in order[::-1] if len(s := sentences[i]) <= MAX_REVERSE_WORDS)}
    out = []
    for j in range(n):
        task = ("complete", "reverse")[j % 2]
        try:
            out.append(make_instruction(task, next(pools[task]), rng))
        except StopIteration:
            raise ValueError(f"split {split!r} has too few sentences for {n} instructions") from None
    return out


def grade_instruction(example: Instruction, answer) -> bool:
    """Is ``answer`` (a word list, or None when the model gave no [EOS]) right? ``complete``: the prompt's
    words plus the answer form a valid sentence (exact validator); ``reverse``: exact match."""
    if answer is None:
        return False
    answer = list(answer)
    if example.task == "complete":
        return language.is_valid(example.prompt[1:-1] + answer)
    return answer == example.answer


# ------------------------------------------------------------------------------------------ few-shot task
ICL_CLASSES = 4
ICL_WORDS_PER_CLASS = 6
ICL_LABELS = ("P", "Q", "R", "S")
ICL_MAX_SHOTS = 8
ICL_WORDS = tuple(f"{c}{i}" for c in "abcd" for i in range(1, ICL_WORDS_PER_CLASS + 1))   # a1..a6 = class 0, ...
ICL_SEQ_LEN = 4 * ICL_MAX_SHOTS + 3 + 1       # 8 shots of "w = L ;", the query "w = L", its [EOS]: 36
ICL_NUM_RULES = 6
#: the six labelling rules: rule r gives class c the label ICL_LABELS[ICL_RULES[r][c]] (fixed, seeded permutations)
ICL_RULES = tuple(tuple(int(v) for v in p) for p in
                  (list(itertools.permutations(range(ICL_CLASSES)))[i]
                   for i in np.random.RandomState(2024).permutation(24)[:ICL_NUM_RULES]))


def icl_tokenizer() -> Tokenizer:
    """Tokens of the few-shot task: the 24 words, the 4 labels, ``=`` and ``;``."""
    return Tokenizer(list(ICL_WORDS) + list(ICL_LABELS) + ["=", ";"])


def icl_class(word: str) -> int:
    """The fixed class (0..3) of a task word."""
    if word not in ICL_WORDS:
        raise ValueError(f"{word!r} is not a word of the few-shot task")
    return ICL_WORDS.index(word) // ICL_WORDS_PER_CLASS


@dataclass(frozen=True)
class Episode:
    """One few-shot episode: ``prompt`` (k examples and the query, ending in ``=``), ``answer`` (a label),
    ``shots`` (k) and ``labels`` (the episode's label of each class)."""
    prompt: list
    answer: str
    shots: int
    labels: tuple


def make_episode(shots: int, rng: np.random.RandomState) -> Episode:
    """A random episode with ``shots`` examples (0..8): one of the :data:`ICL_RULES` at random, example words and
    the query word drawn uniformly (with replacement) from the 24 words."""
    if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or not 0 <= shots <= ICL_MAX_SHOTS:
        raise ValueError(f"shots must be an integer in [0, {ICL_MAX_SHOTS}], got {shots!r}")
    labels = tuple(ICL_LABELS[i] for i in ICL_RULES[rng.randint(ICL_NUM_RULES)])
    words = [ICL_WORDS[i] for i in rng.randint(0, len(ICL_WORDS), size=int(shots) + 1)]
    prompt = []
    for w in words[:-1]:
        prompt += [w, "=", labels[icl_class(w)], ";"]
    prompt += [words[-1], "="]
    return Episode(prompt, labels[icl_class(words[-1])], int(shots), labels)


def icl_episodes(n: int, seed: int, shots: int | None = None) -> list[Episode]:
    """``n`` episodes, deterministic in ``seed``; ``shots=None`` draws k uniformly from 0..8 per episode."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    rng = np.random.RandomState(seed)
    return [make_episode(int(rng.randint(0, ICL_MAX_SHOTS + 1)) if shots is None else shots, rng) for _ in range(n)]


def icl_bayes_accuracy(shots: int) -> float:
    """The best accuracy any reader of the prompt can reach with ``shots`` examples, computed exactly.

    The ideal reader keeps the rules that agree with every example (all equally likely a priori) and answers
    the label most of them give the query's class; it is right with probability (votes for that label) /
    (rules kept). Expectation over the true rule (uniform), the example classes (uniform, independent: only
    the *set* of classes shown matters) and the query's class, by enumerating all 4^k class sequences."""
    if isinstance(shots, bool) or not isinstance(shots, int) or not 0 <= shots <= ICL_MAX_SHOTS:
        raise ValueError(f"shots must be an integer in [0, {ICL_MAX_SHOTS}], got {shots!r}")
    rules = np.array(ICL_RULES)                                          # (R, 4): label index per class
    set_counts: dict[frozenset, int] = {}
    for seen in itertools.product(range(ICL_CLASSES), repeat=shots):
        key = frozenset(seen)
        set_counts[key] = set_counts.get(key, 0) + 1
    total = 0.0
    for seen, count in set_counts.items():
        cols = sorted(seen)
        for r in range(len(rules)):
            kept = rules[(rules[:, cols] == rules[r, cols]).all(1)] if cols else rules
            for c in range(ICL_CLASSES):
                votes = np.bincount(kept[:, c], minlength=ICL_CLASSES)
                total += count * votes.max() / len(kept)
    return float(total / (ICL_CLASSES ** shots * len(rules) * ICL_CLASSES))


def episodes_to_ids(episodes, tokenizer: Tokenizer | None = None, length: int = ICL_SEQ_LEN) -> torch.Tensor:
    """Training canvases ``[prompt, answer, EOS, PAD ...]`` (N, length) for the few-shot task."""
    tok = tokenizer or icl_tokenizer()
    return batchify([e.prompt + [e.answer] for e in episodes], tok, length)


def instructions_to_ids(examples, tokenizer: Tokenizer | None = None, length: int = 41):
    """SFT canvases ``[prompt | answer | EOS ... EOS]`` and prompt lengths, via :func:`masked.pad_sft_batch`."""
    tok = tokenizer or instruction_tokenizer()
    return pad_sft_batch([tok.encode(e.prompt) for e in examples], [tok.encode(e.answer) for e in examples],
                         eos_id=tok.eos_id, length=length)



# ------------------------------------------------------------------------------------------ asking models
def icl_answer_logits(model, ids: torch.Tensor) -> torch.Tensor:
    """(B, V) logits of the answer to prompts ``ids`` (B, P) of equal length: AR, the next token after
    ``[EOS] + prompt``; MDM, the first position of the canvas ``prompt + [MASK] ...`` (up to
    :data:`ICL_SEQ_LEN`), one forward pass. How the twins are asked, and what they are trained on."""
    tok = icl_tokenizer()
    if getattr(getattr(model, "config", None), "attention", None) == "causal":
        return model(torch.cat([torch.full((len(ids), 1), tok.eos_id), ids], 1))[:, -1]
    P = ids.shape[1]
    return model(torch.cat([ids, torch.full((len(ids), ICL_SEQ_LEN - P), tok.mask_id)], 1))[:, P]


def train_icl_model(name: str, show_progress: bool = True):
    """Train ``icl_ar`` or ``icl_mdm`` (recipe ``textlm.TEXT_RECIPES[name]``: the model, steps, batch size, lr,
    warmup, seed) with a loss on the answer only: every step draws ``k`` uniformly from 0 to 8 and a batch of
    fresh episodes with ``k`` examples (one ``numpy`` generator seeded with the recipe's seed), and takes the
    cross-entropy of :func:`icl_answer_logits` against the label (AdamW, warmup + cosine lr, clipping at the
    recipe's ``grad_clip``). Both twins see the same episodes. Returns ``(model, metrics, seconds)`` for
    ``./course retrain``; the metrics hold the accuracy at every ``k`` (500 test episodes) every ``eval_every`` steps."""
    if name not in ("icl_ar", "icl_mdm"):
        raise ValueError(f"name must be 'icl_ar' or 'icl_mdm', got {name!r}")
    recipe = dict(textlm.TEXT_RECIPES[name], seed=0)
    cfg = textlm.TextLMConfig.from_dict(recipe)
    model = textlm.build_model(recipe)
    tok = icl_tokenizer()
    rng = np.random.RandomState(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)

    def loss_fn(step):
        k = int(rng.randint(0, ICL_MAX_SHOTS + 1))
        eps = [make_episode(k, rng) for _ in range(cfg.batch_size)]
        ids = torch.tensor([tok.encode(e.prompt) for e in eps])
        return torch.nn.functional.cross_entropy(icl_answer_logits(model, ids),
                                                 torch.tensor(tok.encode([e.answer for e in eps])))

    curve = {"step": [], "accuracy": []}
    steps = progress(range(cfg.steps), desc=name) if show_progress else range(cfg.steps)
    t0, eval_s = time.perf_counter(), 0.0
    for step, _ in training_loop(model, loss_fn, steps, opt,
                                 lambda s: lr_factor(s, cfg.steps, cfg.warmup, cfg.min_lr_ratio), cfg.grad_clip):
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            t1 = time.perf_counter()
            model.eval()
            curve["step"].append(step + 1)
            curve["accuracy"].append([round(icl_accuracy(model, k, n=500), 4) for k in range(ICL_MAX_SHOTS + 1)])
            model.train()
            eval_s += time.perf_counter() - t1
    model.eval()
    model.recipe = cfg.to_dict()
    seconds = time.perf_counter() - t0 - eval_s
    return model, {"steps": cfg.steps, "loss": "answer only", "threads": 1, "curve": curve}, seconds


def icl_predictions(model, episodes) -> list[str]:
    """The model's label for each episode's query (greedy, among the four labels), from
    :func:`icl_answer_logits`. Both twins choose among P, Q, R, S only, so neither can lose points by answering
    something that is not a label."""
    tok = icl_tokenizer()
    labels = torch.tensor(tok.encode(list(ICL_LABELS)))
    out = [None] * len(episodes)
    by_len: dict[int, list[int]] = {}
    for i, e in enumerate(episodes):
        by_len.setdefault(len(e.prompt), []).append(i)
    with torch.no_grad():
        for P, rows in by_len.items():
            ids = torch.tensor([tok.encode(episodes[i].prompt) for i in rows])
            logits = icl_answer_logits(model, ids)
            best = labels[logits[:, labels].argmax(-1)]
            for i, b in zip(rows, best.tolist()):
                out[i] = tok.itos[b]
    return out


def icl_accuracy(model, shots: int, n: int = 1000, seed: int = 7) -> float:
    """Accuracy on ``n`` fresh episodes (seed ``seed``, not the training seed) with ``shots`` examples each."""
    eps = icl_episodes(n, seed, shots=shots)
    return float(np.mean([p == e.answer for p, e in zip(icl_predictions(model, eps), eps)]))


def answer_instructions(model, examples, steps: int | None = None, block_length: int | None = None,
                        remasking: str = "low_confidence", temperature: float = 0.0, seed: int = 0,
                        length: int = 41, cfg_scale: float = 0.0) -> list:
    """An SFT model's answers (word lists; None without [EOS]) to instruction ``examples``, by LLaDA's sampler.
    The answer region fills the canvas: ``gen_length = length - len(prompt)``;
    ``steps`` defaults to ``gen_length`` (one token per step), ``block_length`` to ``gen_length`` (pure
    diffusion); ``cfg_scale`` is LLaDA's unsupervised classifier-free guidance. Examples are batched by prompt length."""
    tok = instruction_tokenizer()
    g = torch.Generator().manual_seed(seed)
    out = [None] * len(examples)
    by_len: dict[int, list[int]] = {}
    for i, e in enumerate(examples):
        by_len.setdefault(len(e.prompt), []).append(i)
    for P in sorted(by_len):
        rows = by_len[P]
        G = length - P
        ids = torch.tensor([tok.encode(examples[i].prompt) for i in rows])
        x = llada.generate(model, ids, steps=steps or G, gen_length=G, block_length=block_length or G,
                           temperature=temperature, cfg_scale=cfg_scale, remasking=remasking, mask_id=tok.mask_id,
                           generator=g)
        for i, row in zip(rows, x[:, P:].tolist()):
            out[i] = [tok.itos[t] for t in row[:row.index(tok.eos_id)]] if tok.eos_id in row else None
    return out
