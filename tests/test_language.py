"""Tests of the embedded language (course_lib.language) and the tokenizers (course_lib.tokenizer)."""
import collections
import filecmp
import functools
import math

import numpy as np
import pytest
import torch

from course_lib import language as L
from course_lib.tokenizer import Tokenizer, batchify


@pytest.fixture(scope="module")
def grammar():
    return L.default_grammar()


@pytest.fixture(scope="module")
def corpus():
    return L.sample_corpus(20_000, seed=123)


def test_rule_probabilities_sum_to_one(grammar):
    for lhs, options in grammar.rules.items():
        assert math.fsum(p for _, p in options) == pytest.approx(1.0, abs=1e-12), lhs


def test_vocabulary_and_lengths(grammar, corpus):
    assert 200 <= len(grammar.vocabulary) <= 400
    assert {".", "?", "that", "who", "does"} <= set(grammar.vocabulary)
    lengths = np.array([len(s) for s in corpus])
    assert 8 <= lengths.mean() <= 14 and lengths.max() <= grammar.max_len
    # the grammar is proper (all mass on finite sentences) and the truncation removes little
    assert grammar.length_distribution(400).sum() == pytest.approx(1.0, abs=1e-9)
    assert 0.99 < math.exp(grammar.log_z) < 1.0
    assert {s[-1] for s in corpus} == {".", "?"}


def test_sampling_is_deterministic(grammar):
    assert L.sample_corpus(50, seed=5) == L.sample_corpus(50, seed=5)
    assert L.sample_corpus(50, seed=5) != L.sample_corpus(50, seed=6)
    rng = np.random.default_rng(9)
    assert grammar.sample_sentence(rng) == L.sample_corpus(1, seed=9)[0]


def test_samples_are_valid(grammar, corpus):
    for s in corpus[:3000]:
        lp = grammar.log_prob(s)
        assert lp < 0 and lp > -math.inf, s
        assert grammar.is_valid(s)


def test_log_prob_matches_empirical_frequencies(grammar, corpus):
    """The most common sentences appear as often as exp(log_prob) says, within sampling error."""
    n = len(corpus)
    counts = collections.Counter(tuple(s) for s in corpus)
    chi2 = 0.0
    top = counts.most_common(12)
    for sentence, k in top:
        p = math.exp(grammar.log_prob(sentence))
        z = (k - n * p) / math.sqrt(n * p * (1 - p))
        assert abs(z) < 4.5, (sentence, k, n * p)
        chi2 += z * z
    assert chi2 < 40  # chi-square with ~12 degrees of freedom: P(> 40) < 1e-4


def test_log_prob_sums_over_parses(grammar):
    # PP attachment: "with the key" modifies either the verb phrase or "the door"
    ambiguous = "alice opens the door with the key .".split()
    verb_attach = "alice opens the door .".split()
    assert grammar.is_valid(ambiguous) and grammar.is_valid(verb_attach)
    # the full inside probability exceeds each single parse; check it against a brute-force
    # enumeration of the sentence's two derivations
    g = grammar.rules
    p = {(lhs, rhs): q for lhs, opts in g.items() for rhs, q in opts}
    lex = lambda cat, w: p[(cat, (w,))]  # noqa: E731
    np_door = p[("NP", ("NP_SG",))] * p[("NP_SG", ("DET_SG", "NOM_SG"))] * lex("DET_SG", "the") \
        * p[("NOM_SG", ("N_SG",))] * lex("N_SG", "door")
    np_key_sg = p[("NP_SG", ("DET_SG", "NOM_SG"))] * lex("DET_SG", "the") * p[("NOM_SG", ("N_SG",))] * lex("N_SG", "key")
    pp = p[("PP", ("P", "NP"))] * lex("P", "with") * p[("NP", ("NP_SG",))] * np_key_sg
    subj = p[("NP_SG", ("NAME",))] * lex("NAME", "alice")
    top = p[("S", ("DECL", "."))] * p[("DECL", ("CLAUSE",))] * p[("CLAUSE", ("NP_SG", "VP_SG"))] * subj
    vt = lex("VT_SG", "opens")
    verb = p[("VP_SG", ("VT_SG", "NP", "PP"))] * vt * np_door * pp
    noun = p[("VP_SG", ("VT_SG", "NP"))] * vt * p[("NP", ("NP_SG",))] * p[("NP_SG", ("NP_SG", "PP"))] \
        * (np_door / p[("NP", ("NP_SG",))]) * pp
    expected = math.log(top * (verb + noun)) - grammar.log_z
    assert grammar.log_prob(ambiguous) == pytest.approx(expected, rel=1e-12)


def _reference_inside(grammar, tokens):
    """An independent, slow inside algorithm on the original (unbinarised) rules, by memoised recursion."""
    toks, n = tuple(tokens), len(tokens)

    @functools.lru_cache(maxsize=None)
    def inside(symbol, i, j):  # P(symbol =>* toks[i:j])
        if not symbol[:1].isupper():
            return 1.0 if j == i + 1 and toks[i] == symbol else 0.0
        return sum(p * rest(rhs, 0, i, j) for rhs, p in grammar.rules[symbol])

    @functools.lru_cache(maxsize=None)
    def rest(rhs, k, i, j):  # P(rhs[k:] =>* toks[i:j])
        if k == len(rhs) - 1:
            return inside(rhs[k], i, j)
        return sum(inside(rhs[k], i, m) * rest(rhs, k + 1, m, j) for m in range(i + 1, j - (len(rhs) - k - 1) + 1))

    return inside(grammar.start, 0, n)


def test_log_prob_matches_reference_inside(grammar, corpus):
    """The fast CKY chart agrees with the slow recursion, on short and long sentences alike."""
    picked = corpus[:60] + [s for s in corpus if 18 <= len(s) <= 24][:6]
    for s in picked:
        expected = math.log(_reference_inside(grammar, s)) - grammar.log_z
        assert grammar.log_prob(s) == pytest.approx(expected, rel=1e-10), s


def test_invalid_sentences(grammar, corpus):
    bad = [
        "the dog sleep .", "the dogs sleeps .", "does the dogs sleep ?", "do the dog sleep ?",
        "alice are happy .", "who sleep ?", "dog the sleeps .", "the dog sleeps", "sleeps the dog .",
        "the dog that sleep runs .", "", "the unicorn sleeps .",
    ]
    for s in bad:
        assert not grammar.is_valid(s), s
        assert grammar.log_prob(s) == -math.inf
    assert not grammar.is_valid(["the"] * (grammar.max_len + 1))
    # swap the number of the main verb of simple declaratives: agreement breaks
    swap = {s: b for s, b in L.INTRANSITIVE + L.TRANSITIVE}
    swap.update({b: s for s, b in L.INTRANSITIVE + L.TRANSITIVE})
    checked = 0
    for s in corpus[:2000]:
        if len(s) == 3 and s[-1] == "." and s[0] in L.NAMES and s[1] in swap:
            assert not grammar.is_valid([s[0], swap[s[1]], "."]), s
            checked += 1
    assert checked > 10
    # reversed sentences are never valid (punctuation ends every sentence)
    for s in corpus[:500]:
        assert not grammar.is_valid(s[::-1]), s


def test_entropy_per_token():
    h = L.entropy_per_token(2_000, seed=3)
    assert math.isfinite(h.nats) and h.nats > 0 and 0 < h.se < 0.1 * h.nats
    assert h.bits == pytest.approx(h.nats / math.log(2))
    assert L.entropy_per_token(200, seed=3) == L.entropy_per_token(200, seed=3)


def test_splits_regenerate_byte_for_byte(tmp_path):
    stats = L.write_splits(tmp_path)
    for name in ("train.txt", "valid.txt", "test.txt", "stats.json"):
        assert filecmp.cmp(tmp_path / name, L.DATA_DIR / name, shallow=False), name
    assert stats["vocabulary_size"] == len(L.default_grammar().vocabulary)
    assert len(L.read_split("valid")) == L.SPLITS["valid"][0]


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        L.sample_corpus(-1, seed=0)
    with pytest.raises(ValueError):
        L.entropy_per_token(1)
    with pytest.raises(ValueError, match="sum to"):
        L.Grammar({"S": [(("a",), 0.5)]})
    with pytest.raises(ValueError, match="no rules"):
        L.Grammar({"S": [(("A",), 1.0)]})
    with pytest.raises(ValueError, match="unary"):
        L.Grammar({"S": [(("A",), 0.5), (("x",), 0.5)], "A": [(("S",), 1.0)]})
    with pytest.raises(ValueError):
        L.log_prob([1, 2, 3])
    with pytest.raises(ValueError):
        L.read_split("training")


# ---------------------------------------------------------------- tokenizers
def test_word_tokenizer_round_trip(corpus):
    tok = Tokenizer.for_language()
    assert (tok.pad_id, tok.mask_id, tok.eos_id) == (0, 1, 2)
    assert tok.decode([0, 1, 2]) == "[PAD] [MASK] [EOS]"
    assert tok.vocab_size == len(L.default_grammar().vocabulary) + 3
    for s in corpus[:200]:
        ids = tok.encode(s)
        assert min(ids) >= 3 and tok.encode(" ".join(s)) == ids
        assert tok.decode(ids) == " ".join(s)
    assert tok.decode(tok.encode("the [MASK] sleeps .") + [2, 0], skip_special=True) == "the sleeps ."
    with pytest.raises(ValueError, match="unicorn"):
        tok.encode("the unicorn sleeps .")
    with pytest.raises(ValueError, match="out of range"):
        tok.decode([tok.vocab_size])
    with pytest.raises(ValueError, match="out of range"):
        tok.decode([-1])


def test_char_tokenizer_from_text_file(tmp_path):
    path = tmp_path / "my_corpus.txt"
    path.write_text("hello world\nhow are you?\n", encoding="utf-8")
    tok = Tokenizer.from_text_file(path)
    assert tok.level == "char" and tok.vocab_size == 3 + len(set("hello worldhow are you?"))
    ids = tok.encode("how are you?")
    assert tok.decode(ids) == "how are you?"
    with pytest.raises(ValueError, match="'z'"):
        tok.encode("zebra")
    with pytest.raises(ValueError):
        Tokenizer.from_text_file(tmp_path / "missing.txt")
    batch = batchify(path.read_text().splitlines(), tok, length=16)
    assert batch.shape == (2, 16) and batch[0, 11] == tok.eos_id and batch[0, 12:].eq(tok.pad_id).all()


def test_batchify():
    tok = Tokenizer.for_language()
    sents = [["alice", "sleeps", "."], "do the dogs run ?"]
    x = batchify(sents, tok, length=8)
    assert x.dtype == torch.long and x.shape == (2, 8)
    assert x[0].tolist() == tok.encode(sents[0]) + [2, 0, 0, 0, 0]
    assert x[1].tolist() == tok.encode(sents[1]) + [2, 0, 0]
    with pytest.raises(ValueError, match="more than length"):
        batchify(sents, tok, length=5)
    assert batchify(sents, tok, length=5, too_long="truncate")[1].tolist() == tok.encode(sents[1])
    assert batchify(sents, tok, length=5, too_long="drop").shape == (1, 5)
    with pytest.raises(ValueError):
        batchify(sents, tok, length=0)
    with pytest.raises(ValueError):
        batchify("alice sleeps .", tok, length=8)
    with pytest.raises(ValueError):
        Tokenizer(["a", "a"])
    with pytest.raises(ValueError):
        Tokenizer(["[MASK]"])
