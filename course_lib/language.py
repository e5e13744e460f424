"""The course's embedded language: a small probabilistic context-free grammar (PCFG) we can check exactly.

It implements:

- the grammar itself, written below as readable data (``RULES`` plus the word lists), with
  subject-verb number agreement, recursion (prepositional phrases, relative clauses, stacked
  adjectives, coordinated clauses) and four sentence types: declarative ``.``, yes/no question
  ``?``, wh-question ``?`` and imperative ``.``;
- :meth:`Grammar.sample_sentence` / :func:`sample_corpus`: deterministic sampling from a seed;
- :meth:`Grammar.log_prob`: the EXACT log probability of a token sequence, summing over all of its
  parses with the inside algorithm (CKY on a binarised copy of the grammar, Baker 1979;
  Manning & Schuetze 1999, ch. 11):

      beta_A(i, j) = sum_{A -> B C} p(A -> B C) * sum_{i<k<j} beta_B(i, k) * beta_C(k, j)

  plus the closure over unary rules A -> B;
- :meth:`Grammar.is_valid` (exactly ``log_prob > -inf``) and :func:`entropy_per_token`.

The distribution, precisely. Sentences longer than ``max_len`` tokens (punctuation counts, the
end-of-sentence marker does not) are rejected and redrawn, so the language is the grammar's
distribution truncated to ``len(x) <= max_len`` and renormalised:

      p(x) = p_G(x) / Z   for len(x) <= max_len,    Z = P_G(len <= max_len),

where ``Z`` is computed exactly from the grammar's length distribution (:meth:`Grammar.length_distribution`).
``log_prob`` returns ``log p(x)``, so it agrees with what ``sample_sentence`` produces.

Each sentence is one document: a model sees its tokens followed by one ``[EOS]`` token.
``python -m course_lib.language --write`` writes the train/valid/test splits to ``data/language/``.
"""
from __future__ import annotations

import argparse
import bisect
import json
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np

MAX_LEN = 40  # longest sentence kept, in tokens (punctuation included, [EOS] excluded)
DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "language"
SPLITS = {"train": (50_000, 1001), "valid": (2_000, 1002), "test": (2_000, 1003)}  # name: (sentences, seed)
ENTROPY_SAMPLES, ENTROPY_SEED = 20_000, 1004

# ---------------------------------------------------------------------------------------------
# The words. Within each list the words are Zipf-distributed: the k-th word (k = 1, 2, ...) has
# probability proportional to 1/k, as in natural language. Nouns and adjectives start with a
# consonant, so "a" never needs to become "an".
# ---------------------------------------------------------------------------------------------
NOUNS = [  # (singular, plural)
    ("dog", "dogs"), ("cat", "cats"), ("bird", "birds"), ("child", "children"), ("teacher", "teachers"),
    ("farmer", "farmers"), ("horse", "horses"), ("fox", "foxes"), ("robot", "robots"), ("king", "kings"),
    ("queen", "queens"), ("student", "students"), ("doctor", "doctors"), ("baker", "bakers"),
    ("sailor", "sailors"), ("wolf", "wolves"), ("mouse", "mice"), ("person", "people"), ("man", "men"),
    ("woman", "women"), ("book", "books"), ("letter", "letters"), ("house", "houses"), ("tree", "trees"),
    ("garden", "gardens"), ("river", "rivers"), ("city", "cities"), ("table", "tables"), ("box", "boxes"),
    ("song", "songs"), ("story", "stories"), ("picture", "pictures"), ("boat", "boats"), ("car", "cars"),
    ("road", "roads"), ("bridge", "bridges"), ("hill", "hills"), ("forest", "forests"), ("star", "stars"),
    ("cake", "cakes"), ("lamp", "lamps"), ("window", "windows"), ("door", "doors"), ("key", "keys"),
    ("map", "maps"), ("ship", "ships"), ("village", "villages"), ("market", "markets"), ("poem", "poems"),
    ("machine", "machines"), ("tower", "towers"), ("flower", "flowers"),
    ("kitchen", "kitchens"), ("library", "libraries"), ("bottle", "bottles"), ("candle", "candles"),
    ("mountain", "mountains"), ("puzzle", "puzzles"), ("cloud", "clouds"), ("pencil", "pencils"),
]
NAMES = [
    "alice", "bob", "carol", "dave", "frank", "grace", "heidi", "judy", "mallory", "nina", "peggy",
    "rupert", "sybil", "trent", "victor", "walter", "zoe", "leo", "mia", "noah", "paula", "quinn",
    "rosa", "sam", "tara", "hugo", "lena", "max", "kira", "basil",
]
INTRANSITIVE = [  # (third person singular, base = plural)
    ("sleeps", "sleep"), ("runs", "run"), ("sings", "sing"), ("laughs", "laugh"), ("waits", "wait"),
    ("dances", "dance"), ("smiles", "smile"), ("jumps", "jump"), ("works", "work"), ("swims", "swim"),
    ("falls", "fall"), ("cries", "cry"), ("shines", "shine"), ("wanders", "wander"), ("rests", "rest"),
    ("listens", "listen"), ("arrives", "arrive"), ("leaves", "leave"), ("grows", "grow"), ("dreams", "dream"),
]
TRANSITIVE = [  # (third person singular, base = plural)
    ("sees", "see"), ("likes", "like"), ("finds", "find"), ("chases", "chase"), ("helps", "help"),
    ("reads", "read"), ("builds", "build"), ("paints", "paint"), ("follows", "follow"), ("knows", "know"),
    ("loves", "love"), ("carries", "carry"), ("watches", "watch"), ("visits", "visit"), ("draws", "draw"),
    ("opens", "open"), ("remembers", "remember"), ("wants", "want"), ("fixes", "fix"), ("hides", "hide"),
    ("brings", "bring"), ("sells", "sell"), ("buys", "buy"), ("writes", "write"), ("catches", "catch"),
    ("greets", "greet"), ("teaches", "teach"), ("feeds", "feed"), ("pushes", "push"), ("moves", "move"),
]
ADJECTIVES = [
    "big", "small", "red", "happy", "old", "young", "green", "quiet", "brave", "tired", "blue",
    "tall", "clever", "lazy", "bright", "dark", "famous", "gentle", "hungry", "noisy", "proud",
    "silly", "strange", "sweet", "wild", "yellow", "careful", "busy", "calm", "funny", "golden",
    "heavy", "lucky", "narrow", "polite", "rich", "shy", "soft", "wise", "curious",
]
ADVERBS = ["quickly", "slowly", "often", "today", "again", "quietly", "happily", "carefully",
           "rarely", "loudly", "together", "alone"]
PREPOSITIONS = ["in", "on", "near", "with", "under", "behind", "beside", "above", "below", "from",
                "without", "inside"]
DET_SG = ["the", "a", "this", "every", "my", "your", "one", "each"]
DET_PL = ["the", "some", "these", "many", "my", "two", "your", "those", "three", "few", "all"]
WH_ADVERBS = ["where", "when", "why", "how"]
CONJUNCTIONS = ["and", "but", "because"]

# ---------------------------------------------------------------------------------------------
# The structure. Nonterminals are UPPER_CASE; anything else is a terminal token. Number agreement
# is carried by the symbol names: _SG (singular), _PL (plural), _BASE (infinitive after "does"/"do"
# and in imperatives; it has the same words as _PL).
# ---------------------------------------------------------------------------------------------
RULES: dict[str, list[tuple[tuple[str, ...], float]]] = {
    "S": [(("DECL", "."), 0.60), (("YNQ", "?"), 0.14), (("WHQ", "?"), 0.16), (("IMP", "."), 0.10)],
    "DECL": [(("CLAUSE",), 0.80), (("PP", ",", "CLAUSE"), 0.10), (("CLAUSE", "CONJ", "CLAUSE"), 0.10)],
    "CLAUSE": [(("NP_SG", "VP_SG"), 0.55), (("NP_PL", "VP_PL"), 0.45)],
    "YNQ": [(("does", "NP_SG", "VP_BASE"), 0.40), (("do", "NP_PL", "VP_BASE"), 0.30),
            (("is", "NP_SG", "ADJ"), 0.17), (("are", "NP_PL", "ADJ"), 0.13)],
    "WHQ": [(("who", "VP_SG"), 0.30), (("what", "VP_SG"), 0.08),
            (("what", "does", "NP_SG", "VT_BASE"), 0.14), (("what", "do", "NP_PL", "VT_BASE"), 0.10),
            (("WH_ADV", "does", "NP_SG", "VP_BASE"), 0.14), (("WH_ADV", "do", "NP_PL", "VP_BASE"), 0.10),
            (("which", "NOM_SG", "VP_SG"), 0.08), (("which", "NOM_PL", "VP_PL"), 0.06)],
    "IMP": [(("VP_BASE",), 0.70), (("please", "VP_BASE"), 0.20), (("be", "ADJ"), 0.10)],
    # verb phrases, one family per number form
    "VP_SG": [(("VI_SG",), 0.22), (("VI_SG", "ADV"), 0.08), (("VI_SG", "PP"), 0.10),
              (("VT_SG", "NP"), 0.40), (("VT_SG", "NP", "PP"), 0.10), (("is", "ADJ"), 0.10)],
    "VP_PL": [(("VI_PL",), 0.22), (("VI_PL", "ADV"), 0.08), (("VI_PL", "PP"), 0.10),
              (("VT_PL", "NP"), 0.40), (("VT_PL", "NP", "PP"), 0.10), (("are", "ADJ"), 0.10)],
    "VP_BASE": [(("VI_BASE",), 0.25), (("VI_BASE", "ADV"), 0.09), (("VI_BASE", "PP"), 0.11),
                (("VT_BASE", "NP"), 0.44), (("VT_BASE", "NP", "PP"), 0.11)],
    # noun phrases: recursion through PP ("the dog near the tree") and relative clauses
    "NP": [(("NP_SG",), 0.55), (("NP_PL",), 0.45)],
    "NP_SG": [(("NAME",), 0.22), (("DET_SG", "NOM_SG"), 0.56), (("NP_SG", "PP"), 0.11), (("NP_SG", "RC_SG"), 0.11)],
    "NP_PL": [(("DET_PL", "NOM_PL"), 0.62), (("NOM_PL",), 0.16), (("NP_PL", "PP"), 0.11), (("NP_PL", "RC_PL"), 0.11)],
    "NOM_SG": [(("N_SG",), 0.70), (("ADJ", "NOM_SG"), 0.30)],
    "NOM_PL": [(("N_PL",), 0.70), (("ADJ", "NOM_PL"), 0.30)],
    "PP": [(("P", "NP"), 1.0)],
    # subject relatives ("that sleeps") and object relatives ("that the dogs chase")
    "RC_SG": [(("REL", "VP_SG"), 0.60), (("REL", "NP_SG", "VT_SG"), 0.22), (("REL", "NP_PL", "VT_PL"), 0.18)],
    "RC_PL": [(("REL", "VP_PL"), 0.60), (("REL", "NP_SG", "VT_SG"), 0.22), (("REL", "NP_PL", "VT_PL"), 0.18)],
    "REL": [(("that",), 0.75), (("which",), 0.25)],
}


def _zipf(words) -> list[tuple[tuple[str, ...], float]]:
    """Lexical rules X -> word with Zipf probabilities p_k proportional to 1/k, k = 1..len(words)."""
    weights = [1.0 / k for k in range(1, len(words) + 1)]
    total = math.fsum(weights)
    return [((w,), wt / total) for w, wt in zip(words, weights)]


RULES.update({
    "N_SG": _zipf([s for s, _ in NOUNS]), "N_PL": _zipf([p for _, p in NOUNS]), "NAME": _zipf(NAMES),
    "VI_SG": _zipf([s for s, _ in INTRANSITIVE]), "VI_PL": _zipf([b for _, b in INTRANSITIVE]),
    "VI_BASE": _zipf([b for _, b in INTRANSITIVE]),
    "VT_SG": _zipf([s for s, _ in TRANSITIVE]), "VT_PL": _zipf([b for _, b in TRANSITIVE]),
    "VT_BASE": _zipf([b for _, b in TRANSITIVE]),
    "ADJ": _zipf(ADJECTIVES), "ADV": _zipf(ADVERBS), "P": _zipf(PREPOSITIONS),
    "DET_SG": _zipf(DET_SG), "DET_PL": _zipf(DET_PL), "WH_ADV": _zipf(WH_ADVERBS), "CONJ": _zipf(CONJUNCTIONS),
})


def _is_nonterminal(symbol: str) -> bool:
    return symbol[:1].isupper()


class Entropy(NamedTuple):
    """A Monte Carlo estimate of the entropy per token, in nats, with its standard error."""
    nats: float
    se: float
    n: int

    @property
    def bits(self) -> float:
        return self.nats / math.log(2)

    @property
    def se_bits(self) -> float:
        return self.se / math.log(2)


class Grammar:
    """A PCFG with a sampler, an exact inside-algorithm scorer, and length truncation at ``max_len``.

    ``rules`` maps each nonterminal (UPPER_CASE) to a list of
    ``(rhs, probability)``; symbols that are not nonterminals are terminal tokens. The grammar must
    have no empty right-hand sides and no cycle of unary rules A -> B -> ... -> A.
    """

    def __init__(self, rules: dict, start: str = "S", max_len: int = MAX_LEN):
        if start not in rules:
            raise ValueError(f"start symbol {start!r} has no rules")
        if int(max_len) < 1:
            raise ValueError(f"max_len must be a positive integer, got {max_len!r}")
        for lhs, options in rules.items():
            if not _is_nonterminal(lhs) or not options:
                raise ValueError(f"{lhs!r}: a nonterminal must be UPPER_CASE and have at least one rule")
            for rhs, p in options:
                if not rhs or not 0 < p <= 1:
                    raise ValueError(f"bad rule {lhs} -> {rhs} with probability {p}")
                for s in rhs:
                    if _is_nonterminal(s) and s not in rules:
                        raise ValueError(f"rule {lhs} -> {' '.join(rhs)} uses {s!r}, which has no rules")
            total = math.fsum(p for _, p in options)
            if abs(total - 1.0) > 1e-9:
                raise ValueError(f"the probabilities of {lhs!r} sum to {total}, not 1")
        self.rules = {lhs: [(tuple(rhs), float(p)) for rhs, p in opts] for lhs, opts in rules.items()}
        self.start, self.max_len = start, int(max_len)
        seen: dict[str, None] = {}
        for options in self.rules.values():
            for rhs, _ in options:
                seen.update((s, None) for s in rhs if not _is_nonterminal(s))
        self.vocabulary: tuple[str, ...] = tuple(seen)  # every terminal, in order of first appearance
        self._cumulative = {lhs: list(np.cumsum([p for _, p in opts])) for lhs, opts in self.rules.items()}
        self._compile_for_parsing()
        self.log_z = math.log(float(self.length_distribution(self.max_len).sum()))
        self._cache: dict[tuple[str, ...], float] = {}

    # ---------------------------------------------------------------- sampling
    def sample_sentence(self, rng) -> list[str]:
        """One sentence (a list of tokens, without [EOS]) drawn from the truncated grammar.

        ``rng`` is a ``numpy.random.Generator`` (or an int seed). Derivations that grow longer than
        ``max_len`` tokens are abandoned and redrawn: rejection sampling of the truncated grammar.
        """
        rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
        while True:
            out: list[str] = []
            stack = [self.start]
            while stack:
                symbol = stack.pop()
                if not _is_nonterminal(symbol):
                    out.append(symbol)
                    if len(out) > self.max_len:
                        break
                    continue
                options = self.rules[symbol]
                k = bisect.bisect_right(self._cumulative[symbol], rng.random()) if len(options) > 1 else 0
                stack.extend(reversed(options[min(k, len(options) - 1)][0]))
            else:
                return out

    # ---------------------------------------------------------------- exact scoring
    def _compile_for_parsing(self) -> None:
        """Binarise the grammar for CKY: lexical, unary and binary rules, plus the unary closure."""
        lexical: dict[str, dict[str, float]] = {}   # word -> {A: p(A -> word)}
        unary: dict[str, dict[str, float]] = {}     # B -> {A: p(A -> B)}
        binary: dict[str, dict[str, dict[str, float]]] = {}  # B -> C -> {A: p(A -> B C)}

        def add(table, key, lhs, p):
            table.setdefault(key, {})
            table[key][lhs] = table[key].get(lhs, 0.0) + p

        def as_symbol(s):  # a terminal inside a longer rule gets its own preterminal "'tok'"
            if _is_nonterminal(s):
                return s
            lexical.setdefault(s, {})[f"'{s}'"] = 1.0
            return f"'{s}'"

        def add_binary(lhs, b, c, p):
            parents = binary.setdefault(b, {}).setdefault(c, {})
            # an intermediate <X2 X3 ...> is shared by every rule ending in X2 X3 ...: probability 1, once
            parents[lhs] = 1.0 if lhs.startswith("<") else parents.get(lhs, 0.0) + p

        for lhs, options in self.rules.items():
            for rhs, p in options:
                if len(rhs) == 1:
                    add(lexical if not _is_nonterminal(rhs[0]) else unary, rhs[0], lhs, p)
                    continue
                syms = [as_symbol(s) for s in rhs]
                parent, q = lhs, p
                while len(syms) > 2:  # A -> X1 X2 X3 ... becomes A -> X1 <X2 X3 ...>, <X2 X3 ...> -> X2 X3 ...
                    rest = "<" + " ".join(syms[1:]) + ">"
                    add_binary(parent, syms[0], rest, q)
                    parent, q, syms = rest, 1.0, syms[1:]
                add_binary(parent, syms[0], syms[1], q)
        # unary closure: closure[B][A] = total probability of all unary chains A -> ... -> B (length >= 1)
        order, state = [], {}

        def visit(b):  # depth-first, so that parents come after children; detects unary cycles
            if state.get(b) == 1:
                raise ValueError(f"the grammar has a cycle of unary rules through {b!r}")
            if state.get(b) == 2:
                return
            state[b] = 1
            for a in unary.get(b, {}):
                visit(a)
            state[b] = 2
            order.append(b)

        for b in list(unary):
            visit(b)
        closure: dict[str, dict[str, float]] = {}
        for b in order:  # a parent is appended to `order` before its children, so closure[a] is ready
            acc: dict[str, float] = {}
            for a, p in unary.get(b, {}).items():
                acc[a] = acc.get(a, 0.0) + p
                for a2, q in closure.get(a, {}).items():
                    acc[a2] = acc.get(a2, 0.0) + p * q
            if acc:
                closure[b] = acc
        self._lexical, self._binary, self._closure = lexical, binary, closure

    def _with_unary(self, cell: dict[str, float]) -> dict[str, float]:
        out = dict(cell)
        for b, pb in cell.items():
            for a, q in self._closure.get(b, {}).items():
                out[a] = out.get(a, 0.0) + pb * q
        return out

    def _inside(self, tokens: tuple[str, ...]) -> float:
        """Inside probability p_G(tokens) of the start symbol over the whole sequence (untruncated)."""
        n = len(tokens)
        chart: list[list[dict[str, float]]] = [[{} for _ in range(n + 1)] for _ in range(n + 1)]
        for i, tok in enumerate(tokens):
            chart[i][i + 1] = self._with_unary(self._lexical[tok])
        binary = self._binary
        for width in range(2, n + 1):
            for i in range(0, n - width + 1):
                j = i + width
                cell: dict[str, float] = {}
                for k in range(i + 1, j):
                    left, right = chart[i][k], chart[k][j]
                    if not left or not right:
                        continue
                    for b, pb in left.items():
                        by_c = binary.get(b)
                        if by_c is None:
                            continue
                        for c, parents in by_c.items():
                            pc = right.get(c)
                            if pc is None:
                                continue
                            w = pb * pc
                            for a, p in parents.items():
                                cell[a] = cell.get(a, 0.0) + p * w
                if cell:
                    chart[i][j] = self._with_unary(cell)
        return chart[0][n].get(self.start, 0.0)

    def log_prob(self, tokens) -> float:
        """Exact ``log p(x)`` (nats) under the truncated, renormalised grammar; ``-inf`` if invalid.

        ``tokens`` is a list of tokens or a space-separated string, without [EOS]. The probability
        sums over every parse (inside algorithm); ``p(x) = p_G(x) / Z`` for ``len(x) <= max_len``.
        """
        tokens = tuple(tokens.split()) if isinstance(tokens, str) else tuple(tokens)
        if not all(isinstance(t, str) for t in tokens):
            raise ValueError("tokens must be strings (decode token ids with the tokenizer first)")
        if not tokens or len(tokens) > self.max_len or any(t not in self._lexical for t in tokens):
            return -math.inf
        if tokens not in self._cache:
            p = self._inside(tokens)
            if len(self._cache) > 200_000:
                self._cache.clear()
            self._cache[tokens] = math.log(p) - self.log_z if p > 0 else -math.inf
        return self._cache[tokens]

    def is_valid(self, tokens) -> bool:
        """True exactly when the sentence has positive probability (``log_prob(tokens) > -inf``)."""
        return self.log_prob(tokens) > -math.inf

    # ---------------------------------------------------------------- lengths
    def length_distribution(self, max_len: int | None = None) -> np.ndarray:
        """``P_G(len(x) = n)`` for ``n = 0..max_len`` under the untruncated grammar, computed exactly.

        Fixed-point iteration of L_A = sum_{A -> X1..Xk} p * (L_X1 * ... * L_Xk) (convolutions,
        cut at ``max_len``); a terminal has length exactly 1. Every derivation of a sentence of at
        most ``max_len`` tokens has bounded depth, so the iteration reaches the exact values.
        """
        m = self.max_len if max_len is None else int(max_len)
        if m < 0:
            raise ValueError(f"max_len must be >= 0, got {max_len!r}")
        one = np.zeros(m + 1)
        if m >= 1:
            one[1] = 1.0
        dist = {a: np.zeros(m + 1) for a in self.rules}
        for _ in range(100 * (m + 2)):
            changed = False
            for a, options in self.rules.items():
                acc = np.zeros(m + 1)
                for rhs, p in options:
                    term = None
                    for s in rhs:
                        ls = dist[s] if _is_nonterminal(s) else one
                        term = ls if term is None else np.convolve(term, ls)[: m + 1]
                    acc += p * term
                if not np.array_equal(acc, dist[a]):
                    changed = True
                dist[a] = acc
            if not changed:
                break
        return dist[self.start]

    def __repr__(self) -> str:
        return (f"Grammar({len(self.rules)} nonterminals, {len(self.vocabulary)} words, "
                f"max_len={self.max_len}, Z={math.exp(self.log_z):.6f})")


_DEFAULT: Grammar | None = None


def default_grammar() -> Grammar:
    """The course's grammar (``RULES`` above, start symbol ``S``, ``max_len = 40``); built once."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Grammar(RULES)
    return _DEFAULT


def sample_sentence(rng, grammar: Grammar | None = None) -> list[str]:
    """One sentence from the (default) grammar; see :meth:`Grammar.sample_sentence`."""
    return (grammar or default_grammar()).sample_sentence(rng)


def sample_corpus(n: int, seed: int, grammar: Grammar | None = None) -> list[list[str]]:
    """``n`` independent sentences, deterministic given ``seed`` (numpy ``default_rng(seed)``, PCG64).
    """
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    g = grammar or default_grammar()
    rng = np.random.default_rng(seed)
    return [g.sample_sentence(rng) for _ in range(int(n))]


def log_prob(tokens, grammar: Grammar | None = None) -> float:
    """Exact log probability (nats) of a sentence; see :meth:`Grammar.log_prob`."""
    return (grammar or default_grammar()).log_prob(tokens)


def is_valid(tokens, grammar: Grammar | None = None) -> bool:
    """Whether a sentence belongs to the language; see :meth:`Grammar.is_valid`."""
    return (grammar or default_grammar()).is_valid(tokens)


def entropy_per_token(n: int = ENTROPY_SAMPLES, seed: int = ENTROPY_SEED,
                      grammar: Grammar | None = None) -> Entropy:
    """Monte Carlo estimate of the language's entropy per token, in nats, with its standard error.

    Convention: every sentence
    ends with one [EOS] token, which counts as a token, so

        H = E[-log p(x)] / E[len(x) + 1]

    estimated by the ratio of sample means over ``n`` sentences; the standard error is the delta-
    method one, se = std(a_i - H b_i) / (sqrt(n) mean(b)), with a_i = -log p(x_i), b_i = len(x_i) + 1.
    No model trained on these sentences (one per document, [EOS] included) can reach a lower
    expected loss per token.
    """
    if int(n) != n or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    g = grammar or default_grammar()
    sentences = sample_corpus(n, seed, g)
    a = np.array([-g.log_prob(s) for s in sentences])
    b = np.array([len(s) + 1.0 for s in sentences])
    h = a.mean() / b.mean()
    se = (a - h * b).std(ddof=1) / (math.sqrt(n) * b.mean())
    return Entropy(float(h), float(se), int(n))


# ------------------------------------------------------------------ the shipped corpus
def read_split(name: str, directory: str | Path = DATA_DIR) -> list[list[str]]:
    """Sentences of one written split (``"train"``, ``"valid"`` or ``"test"``) as token lists."""
    if name not in SPLITS:
        raise ValueError(f"unknown split {name!r}; choose one of {sorted(SPLITS)}")
    path = Path(directory) / f"{name}.txt"
    if not path.exists():
        raise ValueError(f"{path} does not exist; write it with: python -m course_lib.language --write")
    return [line.split() for line in path.read_text(encoding="utf-8").splitlines()]


def write_splits(directory: str | Path = DATA_DIR, entropy_samples: int = ENTROPY_SAMPLES) -> dict:
    """Write ``{train,valid,test}.txt`` (one sentence a line, tokens separated by spaces) and ``stats.json``.

    Deterministic: rewriting reproduces every file byte for byte. Returns the stats.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    g = default_grammar()
    lengths = []
    for name, (n, seed) in SPLITS.items():
        sentences = sample_corpus(n, seed, g)
        if name == "train":
            lengths = [len(s) for s in sentences]
        text = "".join(" ".join(s) + "\n" for s in sentences)
        (directory / f"{name}.txt").write_bytes(text.encode("utf-8"))
    h = entropy_per_token(entropy_samples, ENTROPY_SEED, g)
    stats = {
        "description": "course_lib.language: sentences of the course's PCFG, truncated to max_len tokens",
        "command": "python -m course_lib.language --write",
        "vocabulary_size": len(g.vocabulary),
        "vocabulary_size_with_specials": len(g.vocabulary) + 3,
        "max_len": g.max_len,
        "truncation_mass_Z": round(math.exp(g.log_z), 12),
        "splits": {name: {"sentences": n, "seed": seed} for name, (n, seed) in SPLITS.items()},
        "train_mean_length": round(float(np.mean(lengths)), 4),
        "train_max_length": int(max(lengths)),
        "entropy_convention": "H = E[-log p(x)] / E[len(x) + 1]: one [EOS] per sentence counts as a token",
        "entropy_samples": h.n,
        "entropy_seed": ENTROPY_SEED,
        "entropy_nats_per_token": round(h.nats, 6),
        "entropy_nats_per_token_se": round(h.se, 6),
        "entropy_bits_per_token": round(h.bits, 6),
        "entropy_bits_per_token_se": round(h.se_bits, 6),
    }
    (directory / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return stats


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m course_lib.language", description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="write the splits and stats.json")
    parser.add_argument("--out", default=str(DATA_DIR), help="output folder (default: data/language/)")
    parser.add_argument("--samples", type=int, default=5, help="without --write: print this many sentences")
    args = parser.parse_args(argv)
    if args.write:
        stats = write_splits(args.out)
        print(json.dumps(stats, indent=2))
    else:
        g = default_grammar()
        print(g)
        for s in sample_corpus(args.samples, 0, g):
            print(f"{g.log_prob(s):9.3f}  {' '.join(s)}")


if __name__ == "__main__":
    main()
