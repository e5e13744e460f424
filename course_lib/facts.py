"""Fictitious people and one relation: the data of chapter 3's reversal-curse experiment.

The reversal curse (Berglund et al. 2023; LLaDA, Nie et al. 2025,
section 3.3 and Table 4): a model trained on "A is the mother of B" does not learn "B is the child of
A". This module builds a small, deterministic world of invented names and mother/child facts, the
training statements and every query the chapter asks, with the answer key:

- **both**: pairs whose facts appear in training in *both* directions ("P is the mother of C ." and
  "C is the child of P ."), so the templates themselves are learnable;
- **held out**: pairs whose facts appear *only forward* ("P is the mother of C ."); the test asks
  forward ("P is the mother of" -> C) and reverse ("C is the child of" -> P);
- **left-masked**: the training template with the *left* entity hidden ("[MASK] is the mother of C .")
  -> P, a query only a bidirectional model can even pose;
- **control**: "C is the mother of" for a held-out child C, who has no child in the world. There is
  no right name; a model that answers P recalls "the other name seen with C" and ignores the relation;
- **chains**: people who hold both roles (x1 is the mother of x0 and the child of x2, all facts
  forward only): "x1 is the child of" -> x2, where symmetric recall ("the other name seen with x1")
  can give x0 instead.

Every query is a ``(prompt, answer)`` pair of word lists (``answer`` is None for the control, which has
no right answer; a left-masked prompt holds "[MASK]" where the name goes); names are single tokens, invented from
syllables so that no model knows them beforehand and none collides with the course language's words.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from . import language
from . import llada
from .tokenizer import Tokenizer

MOTHER = ["is", "the", "mother", "of"]
CHILD = ["is", "the", "child", "of"]
END = "."
MASK_WORD = "[MASK]"          # the tokenizer's name of the mask token: the position a left-masked query fills
TEMPLATE_WORDS = ("is", "the", "mother", "child", "of", ".")
_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gl", "kr", "tr", "sh")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "io")
_CODAS = ("", "", "n", "r", "l", "s", "th", "x")


def make_names(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct invented names (two or three syllables), deterministic in ``seed``, none of them a word
    of the course language."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if n > 5000:
        raise ValueError(f"at most 5000 names, got {n}")
    rng = np.random.RandomState(seed)
    taken = set(language.default_grammar().vocabulary) | set(TEMPLATE_WORDS)
    names: list[str] = []
    while len(names) < n:
        syllables = [_ONSETS[rng.randint(len(_ONSETS))] + _VOWELS[rng.randint(len(_VOWELS))]
                     for _ in range(2 + (rng.rand() < 0.3))]
        name = "".join(syllables) + _CODAS[rng.randint(len(_CODAS))]
        if name not in taken:
            taken.add(name)
            names.append(name)
    return names


def statement(parent: str, child: str, direction: str) -> list[str]:
    """"P is the mother of C ." (``direction="forward"``) or "C is the child of P ." (``"reverse"``)."""
    if direction == "forward":
        return [parent, *MOTHER, child, END]
    if direction == "reverse":
        return [child, *CHILD, parent, END]
    raise ValueError(f"direction must be 'forward' or 'reverse', got {direction!r}")


@dataclass
class FactWorld:
    """The people, the facts and the queries of the reversal experiment (see the module docstring).

    ``both``, ``held_out``: lists of (parent, child); ``chains``: lists of (x2, x1, x0) with x2 the mother of
    x1 and x1 the mother of x0. Every name appears in exactly one pair or chain."""
    names: list[str]
    both: list[tuple[str, str]]
    held_out: list[tuple[str, str]]
    chains: list[tuple[str, str, str]]
    seed: int = 0
    queries: dict = field(init=False)

    def __post_init__(self):
        people = [p for pair in self.both + self.held_out for p in pair] + [p for c in self.chains for p in c]
        if len(people) != len(set(people)):
            raise ValueError("every person must appear in exactly one pair or chain")
        if not set(people) <= set(self.names):
            raise ValueError("every person must be one of the world's names")
        self.queries = self._queries()

    # ----------------------------------------------------------------- training data
    def training_statements(self) -> list[list[str]]:
        """Every training sentence: both directions for ``both``, forward only for ``held_out`` and the chains'
        two facts each (x2 mother of x1, x1 mother of x0). Deterministically shuffled."""
        out = [statement(p, c, d) for p, c in self.both for d in ("forward", "reverse")]
        out += [statement(p, c, "forward") for p, c in self.held_out]
        for x2, x1, x0 in self.chains:
            out += [statement(x2, x1, "forward"), statement(x1, x0, "forward")]
        order = np.random.RandomState(self.seed + 1).permutation(len(out))
        return [out[i] for i in order]

    @property
    def vocabulary(self) -> list[str]:
        """The template words, then the names (the order a tokenizer should use)."""
        return list(TEMPLATE_WORDS) + list(self.names)

    # ----------------------------------------------------------------- queries
    def _queries(self) -> dict:
        q = {
            "both_forward": [([p, *MOTHER], [c, END]) for p, c in self.both],
            "both_reverse": [([c, *CHILD], [p, END]) for p, c in self.both],
            "forward": [([p, *MOTHER], [c, END]) for p, c in self.held_out],
            "reverse": [([c, *CHILD], [p, END]) for p, c in self.held_out],
            # the training template with its left entity hidden: fill position 0 given the rest
            "left_masked": [([MASK_WORD, *MOTHER, c, END], [p]) for p, c in self.held_out],
            # no right answer (None): C has no child in the world; the "symmetric recall" answer would be P
            "control": [([c, *MOTHER], None) for p, c in self.held_out],
            "chain_reverse": [([x1, *CHILD], [x2, END]) for x2, x1, x0 in self.chains],
            "chain_forward": [([x1, *MOTHER], [x0, END]) for x2, x1, x0 in self.chains],
        }
        return q

    def symmetric_recall_answer(self, kind: str) -> list[str]:
        """For ``control`` and ``chain_reverse`` queries: the name a model that only recalls "the other name seen
        with the query's person" would give (P for the control, x0 for the chain), one per query."""
        if kind == "control":
            return [p for p, c in self.held_out]
        if kind == "chain_reverse":
            return [x0 for x2, x1, x0 in self.chains]
        raise ValueError(f"symmetric recall is defined for 'control' and 'chain_reverse', not {kind!r}")


def make_world(n_both: int = 300, n_held_out: int = 100, n_chains: int = 50, seed: int = 0) -> FactWorld:
    """A deterministic :class:`FactWorld`: ``n_both`` pairs in both directions, ``n_held_out`` forward-only
    pairs and ``n_chains`` forward-only chains of three people."""
    for name, v in (("n_both", n_both), ("n_held_out", n_held_out), ("n_chains", n_chains)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    names = make_names(2 * n_both + 2 * n_held_out + 3 * n_chains, seed)
    order = list(np.random.RandomState(seed).permutation(len(names)))
    people = [names[i] for i in order]
    k = 0

    def take(m):
        nonlocal k
        out = people[k:k + m]
        k += m
        return out

    both = [tuple(take(2)) for _ in range(n_both)]
    held = [tuple(take(2)) for _ in range(n_held_out)]
    chains = [tuple(take(3)) for _ in range(n_chains)]
    return FactWorld(names=names, both=both, held_out=held, chains=chains, seed=seed)


REVERSAL_WORLD = dict(n_both=600, n_held_out=100, n_chains=50, seed=0)   # the world of the shipped facts_* models


def reversal_world() -> FactWorld:
    """The world the shipped ``facts_ar`` / ``facts_mdm`` models were trained on (:data:`REVERSAL_WORLD`)."""
    return make_world(**REVERSAL_WORLD)


def world_tokenizer(world: FactWorld):
    """The word tokenizer of a world: [PAD], [MASK], [EOS], the template words, then the names."""
    return Tokenizer(world.vocabulary)


def ask(model, world: FactWorld, kind: str, seq_len: int = 8) -> list[str]:
    """The model's answer (a single word, normally a name) to every query of ``kind``, greedy (temperature 0).

    - AR model (causal attention): the most likely next token after ``[EOS] + prompt`` ([EOS] doubles as the
      start symbol, as in training). A left-masked query cannot be posed to it: ``ValueError``.
    - MDM (bidirectional): LLaDA's sampler (:func:`course_lib.llada.generate`, low-confidence remasking, one
      token per step) fills the canvas ``prompt + [MASK] * (seq_len - len(prompt))``; the answer is the first
      generated token. A left-masked query is the training canvas with its first word masked: one forward
      pass, the most likely word at that position ([MASK] excluded)."""
    if kind not in world.queries:
        raise ValueError(f"unknown query kind {kind!r}; known: {sorted(world.queries)}")
    tok = world_tokenizer(world)
    prompts = [p for p, _ in world.queries[kind]]
    if not prompts:
        return []
    causal = getattr(getattr(model, "config", None), "attention", None) == "causal"
    with torch.no_grad():
        if kind == "left_masked":
            if causal:
                raise ValueError("an AR model cannot fill the left end of a sentence from its right context")
            ids = torch.tensor([tok.encode(p) + [tok.eos_id] for p in prompts])
            ids = torch.cat([ids, torch.full((len(ids), seq_len - ids.shape[1]), tok.pad_id)], 1)
            logits = model(ids)[:, 0].double()
            logits[:, tok.mask_id] = -math.inf
            return [tok.itos[i] for i in logits.argmax(-1).tolist()]
        ids = torch.tensor([tok.encode(p) for p in prompts])
        if causal:
            inp = torch.cat([torch.full((len(ids), 1), tok.eos_id), ids], 1)
            logits = model(inp)[:, -1].double()
            logits[:, [tok.mask_id, tok.pad_id]] = -math.inf
            return [tok.itos[i] for i in logits.argmax(-1).tolist()]
        G = seq_len - ids.shape[1]
        out = llada.generate(model, ids, steps=G, gen_length=G, block_length=G, temperature=0.0,
                             mask_id=tok.mask_id)
        return [tok.itos[i] for i in out[:, ids.shape[1]].tolist()]


def accuracy(answers: list[str], world: FactWorld, kind: str) -> float:
    """Fraction of ``answers`` equal to the right name of each query (``kind`` must have a right answer)."""
    truth = [a[0] if a is not None else None for _, a in world.queries[kind]]
    if any(t is None for t in truth):
        raise ValueError(f"queries of kind {kind!r} have no right answer; compare with symmetric_recall_answer")
    if len(answers) != len(truth):
        raise ValueError(f"{len(answers)} answers for {len(truth)} queries")
    return sum(a == t for a, t in zip(answers, truth)) / len(truth)
