"""Chapter 3's checkable tasks (course_lib.tasks): the instruction set, the few-shot episodes, the Bayes ceiling
of the few-shot task, and the functions that put those tasks to a model (checked with hand-built oracle models)."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from course_lib import language, tasks
from course_lib.tokenizer import Tokenizer


# =========================================================================== instruction set
def test_instruction_tokenizer_extends_the_language_tokenizer():
    base, tok = Tokenizer.for_language(), tasks.instruction_tokenizer()
    assert tok.itos[:base.vocab_size] == base.itos                  # every language id keeps its meaning
    assert tok.itos[base.vocab_size:] == [tasks.COMPLETE, tasks.REVERSE, tasks.SEP]
    assert tok.vocab_size == base.vocab_size + 3


def test_make_instruction_complete_splits_the_sentence():
    sentence = language.read_split("test")[0]
    n = len(sentence)
    seen_k = set()
    for seed in range(60):
        ex = tasks.make_instruction("complete", sentence, np.random.RandomState(seed))
        assert ex.task == "complete"
        assert ex.prompt[0] == tasks.COMPLETE and ex.prompt[-1] == tasks.SEP
        assert ex.prompt[1:-1] + ex.answer == sentence                 # prompt words + answer = the sentence
        k = len(ex.prompt) - 2
        assert 1 <= k <= n - 1                                           # both parts non-empty
        seen_k.add(k)
    assert len(seen_k) > 1                                               # the cut point is random


def test_make_instruction_reverse_and_grading():
    sentence = ["alice", "runs", "."]
    ex = tasks.make_instruction("reverse", sentence, np.random.RandomState(0))
    assert ex.prompt == [tasks.REVERSE, "alice", "runs", ".", tasks.SEP]
    assert ex.answer == [".", "runs", "alice"]
    assert tasks.grade_instruction(ex, [".", "runs", "alice"])
    assert not tasks.grade_instruction(ex, ["alice", "runs", "."])          # the sentence itself is wrong
    assert not tasks.grade_instruction(ex, [".", "runs"])                   # a prefix is wrong
    assert not tasks.grade_instruction(ex, None)                            # no [EOS]: wrong


def test_grade_complete_uses_the_language_validator():
    sentence = language.read_split("test")[0]
    assert language.is_valid(sentence)
    k = 2
    ex = tasks.Instruction("complete", [tasks.COMPLETE, *sentence[:k], tasks.SEP], sentence[k:])
    assert tasks.grade_instruction(ex, sentence[k:])
    assert tasks.grade_instruction(ex, tuple(sentence[k:]))                 # any sequence of words
    # another valid completion is also right (open-ended task), an invalid one is wrong
    prefix = ["the", "dog"]
    ex2 = tasks.Instruction("complete", [tasks.COMPLETE, *prefix, tasks.SEP], ["sleeps", "."])
    alt, bad = ["runs", "."], ["the", "."]
    assert language.is_valid(prefix + alt) and not language.is_valid(prefix + bad)
    assert tasks.grade_instruction(ex2, alt)
    assert not tasks.grade_instruction(ex2, bad)
    assert not tasks.grade_instruction(ex2, [])                              # "the dog" alone is no sentence
    assert not tasks.grade_instruction(ex2, None)


def test_instruction_set_alternates_tasks_is_deterministic_and_self_consistent():
    a = tasks.instruction_set("valid", 41, seed=3)
    assert a == tasks.instruction_set("valid", 41, seed=3)
    assert a != tasks.instruction_set("valid", 41, seed=4)
    assert [e.task for e in a] == ["complete", "reverse"] * 20 + ["complete"]
    split = {tuple(s) for s in language.read_split("valid")}
    for e in a:
        assert tasks.grade_instruction(e, e.answer)                         # its own answer is right
        words = e.prompt[1:-1] + e.answer if e.task == "complete" else e.prompt[1:-1]
        assert tuple(words) in split                                         # built from the split's sentences
        if e.task == "reverse":
            assert len(e.answer) <= tasks.MAX_REVERSE_WORDS
        else:
            assert len(words) <= tasks.MAX_COMPLETE_WORDS


def test_instructions_to_ids_builds_sft_canvases():
    tok = tasks.instruction_tokenizer()
    exs = tasks.instruction_set("test", 30, seed=1)
    x0, pl = tasks.instructions_to_ids(exs)
    assert x0.shape == (30, 41) and x0.dtype == torch.long and pl.shape == (30,)
    for row, p, e in zip(x0.tolist(), pl.tolist(), exs):
        assert p == len(e.prompt) < 41                                       # the prompt fits, with room to answer
        assert row[:p] == tok.encode(e.prompt)
        a = len(e.answer)
        assert row[p:p + a] == tok.encode(e.answer)
        assert p + a < 41 and set(row[p + a:]) == {tok.eos_id}               # at least one EOS, EOS padding
    assert tok.mask_id not in x0.tolist()[0]
    # a custom canvas length; too short a canvas is refused
    x0b, _ = tasks.instructions_to_ids(exs[:2], length=60)
    assert x0b.shape == (2, 60)
    need = max(len(e.prompt) + len(e.answer) for e in exs[:2]) + 1
    with pytest.raises(ValueError, match="too short"):
        tasks.instructions_to_ids(exs[:2], length=need - 1)


@pytest.mark.parametrize("call, match", [
    (lambda: tasks.make_instruction("translate", ["alice", "runs", "."], np.random.RandomState(0)), "task"),
    (lambda: tasks.make_instruction("complete", ["."], np.random.RandomState(0)), "complete"),
    (lambda: tasks.make_instruction("complete", ["the"] * (tasks.MAX_COMPLETE_WORDS + 1), np.random.RandomState(0)),
     "complete"),
    (lambda: tasks.make_instruction("reverse", [], np.random.RandomState(0)), "reverse"),
    (lambda: tasks.make_instruction("reverse", ["the"] * (tasks.MAX_REVERSE_WORDS + 1), np.random.RandomState(0)),
     "reverse"),
    (lambda: tasks.instruction_set("valid", 0), "positive integer"),
    (lambda: tasks.instruction_set("valid", True), "positive integer"),
    (lambda: tasks.instruction_set("valid", 2.0), "positive integer"),
    (lambda: tasks.instruction_set("valid", 10_000), "too few sentences"),
])
def test_instruction_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# =========================================================================== few-shot task
def test_icl_tokenizer_and_classes():
    tok = tasks.icl_tokenizer()
    assert tok.vocab_size == 3 + 24 + 4 + 2
    assert len(set(tasks.ICL_WORDS)) == 24
    for c, letter in enumerate("abcd"):
        for i in range(1, 7):
            assert tasks.icl_class(f"{letter}{i}") == c
    for w in ("e1", "a7", "P", "="):
        with pytest.raises(ValueError, match="not a word"):
            tasks.icl_class(w)


def _rule_labels(r):
    return tuple(tasks.ICL_LABELS[i] for i in tasks.ICL_RULES[r])


def test_make_episode_is_consistent_with_its_label_map():
    rules = {_rule_labels(r) for r in range(tasks.ICL_NUM_RULES)}
    rng = np.random.RandomState(0)
    for k in range(tasks.ICL_MAX_SHOTS + 1):
        for _ in range(20):
            e = tasks.make_episode(k, rng)
            assert sorted(e.labels) == sorted(tasks.ICL_LABELS)              # a bijection classes -> labels
            assert e.labels in rules                                        # one of the fixed rules
            assert e.shots == k and len(e.prompt) == 4 * k + 2
            for i in range(k):
                w, eq, lab, semi = e.prompt[4 * i:4 * i + 4]
                assert (eq, semi) == ("=", ";") and lab == e.labels[tasks.icl_class(w)]
            assert e.prompt[-1] == "=" and e.answer == e.labels[tasks.icl_class(e.prompt[-2])]


def test_rules_are_distinct_bijections_and_episodes_use_each_uniformly():
    assert len(set(tasks.ICL_RULES)) == tasks.ICL_NUM_RULES
    assert all(sorted(r) == list(range(tasks.ICL_CLASSES)) for r in tasks.ICL_RULES)
    eps = tasks.icl_episodes(6000, seed=2, shots=0)
    counts = np.array([sum(e.labels == _rule_labels(r) for e in eps) for r in range(tasks.ICL_NUM_RULES)])
    p = 1 / tasks.ICL_NUM_RULES
    assert np.all(np.abs(counts / len(eps) - p) < 4 * math.sqrt(p * (1 - p) / len(eps)))


def test_icl_episodes_are_deterministic_and_mix_shots():
    a = tasks.icl_episodes(300, seed=5)
    assert a == tasks.icl_episodes(300, seed=5) and a != tasks.icl_episodes(300, seed=6)
    assert {e.shots for e in a} == set(range(tasks.ICL_MAX_SHOTS + 1))
    assert {e.shots for e in tasks.icl_episodes(50, seed=5, shots=3)} == {3}


def test_episodes_to_ids_layout():
    tok = tasks.icl_tokenizer()
    eps = tasks.icl_episodes(40, seed=1) + tasks.icl_episodes(3, seed=1, shots=tasks.ICL_MAX_SHOTS)
    ids = tasks.episodes_to_ids(eps)
    assert ids.shape == (43, tasks.ICL_SEQ_LEN)
    for row, e in zip(ids.tolist(), eps):
        n = len(e.prompt)
        assert row[:n + 1] == tok.encode(e.prompt + [e.answer])
        assert row[n + 1] == tok.eos_id and set(row[n + 2:]) <= {tok.pad_id}
    # the longest episode (8 shots) fills the canvas exactly: prompt, answer, [EOS]
    assert int((ids[-1] != tok.pad_id).sum()) == tasks.ICL_SEQ_LEN


def _oracle_label(prompt):
    """The ideal Bayesian reader, written independently of the library: keep the rules that agree with every
    example, answer the label most of them give the query's class (ties: the first label)."""
    rules = [_rule_labels(r) for r in range(tasks.ICL_NUM_RULES)]
    for i in range(0, len(prompt) - 2, 4):
        c, lab = tasks.icl_class(prompt[i]), prompt[i + 2]
        rules = [r for r in rules if r[c] == lab]
    c = tasks.icl_class(prompt[-2])
    votes = {lab: sum(r[c] == lab for r in rules) for lab in tasks.ICL_LABELS}
    return max(tasks.ICL_LABELS, key=lambda lab: votes[lab])


def test_icl_bayes_accuracy_hand_values():
    # k = 0: for each class, the most common label over the six rules, counted from the table
    rules = [_rule_labels(r) for r in range(tasks.ICL_NUM_RULES)]
    best0 = np.mean([max(sum(r[c] == lab for r in rules) for lab in tasks.ICL_LABELS) / len(rules)
                     for c in range(tasks.ICL_CLASSES)])
    assert tasks.icl_bayes_accuracy(0) == pytest.approx(best0)
    assert 0.25 < tasks.icl_bayes_accuracy(0) < 0.5
    acc = [tasks.icl_bayes_accuracy(k) for k in range(tasks.ICL_MAX_SHOTS + 1)]
    assert all(x < y for x, y in zip(acc, acc[1:])) and acc[-1] <= 1


@pytest.mark.parametrize("k", [0, 1, 3, 8])
def test_icl_bayes_accuracy_matches_a_simulated_oracle(k):
    rng = np.random.RandomState(100 + k)
    n = 4000
    hits = np.array([_oracle_label(e.prompt) == e.answer for e in (tasks.make_episode(k, rng) for _ in range(n))])
    p = tasks.icl_bayes_accuracy(k)
    se = math.sqrt(max(p * (1 - p), 1e-4) / n)
    assert abs(hits.mean() - p) < 3 * se, (k, hits.mean(), p)


@pytest.mark.parametrize("bad", [-1, tasks.ICL_MAX_SHOTS + 1, True, 2.0, "3", None])
def test_icl_shot_counts_are_checked(bad):
    with pytest.raises(ValueError, match="shots"):
        tasks.icl_bayes_accuracy(bad)
    if bad is not None:                                                       # None means "random k" in icl_episodes
        with pytest.raises(ValueError, match="shots"):
            tasks.make_episode(bad, np.random.RandomState(0))


@pytest.mark.parametrize("bad", [0, -3, 1.5, True])
def test_icl_episodes_bad_n(bad):
    with pytest.raises(ValueError, match="positive integer"):
        tasks.icl_episodes(bad, seed=0)


# =========================================================================== asking models (oracles)
class ICLOracle:
    """A hand-built 'model' that reads the prompt like :func:`_oracle_label`. It puts a large logit on ';'
    (not a label) at every position and a decoy label 'S' everywhere except the answer position, so a caller
    that reads the wrong position or does not restrict to the labels gets it wrong."""

    def __init__(self, causal: bool):
        self.config = SimpleNamespace(attention="causal" if causal else "bidirectional")
        self.tok = tasks.icl_tokenizer()
        self.inputs = []

    def __call__(self, ids):
        tok = self.tok
        self.inputs.append(ids.clone())
        B, L = ids.shape
        logits = torch.zeros(B, L, tok.vocab_size)
        logits[..., tok.stoi[";"]] = 100.0
        logits[..., tok.stoi["S"]] = 5.0
        for b in range(B):
            row = ids[b].tolist()
            if self.config.attention == "causal":
                assert row[0] == tok.eos_id and tok.mask_id not in row       # [EOS] + prompt, nothing else
                prompt, pos = [tok.itos[i] for i in row[1:]], L - 1
            else:
                pos = row.index(tok.mask_id)                                 # the answer position
                assert L == tasks.ICL_SEQ_LEN and set(row[pos:]) == {tok.mask_id}
                prompt = [tok.itos[i] for i in row[:pos]]
            logits[b, pos, tok.stoi[_oracle_label(prompt)]] = 10.0
        return logits


@pytest.mark.parametrize("causal", [True, False])
def test_icl_predictions_read_the_answer_position(causal):
    eps = tasks.icl_episodes(120, seed=11)                                   # mixed prompt lengths
    model = ICLOracle(causal)
    preds = tasks.icl_predictions(model, eps)
    assert preds == [_oracle_label(e.prompt) for e in eps]                   # order kept across length groups
    assert len(model.inputs) == len({len(e.prompt) for e in eps})           # one batch per prompt length


@pytest.mark.parametrize("causal", [True, False])
def test_icl_accuracy_of_the_oracle_is_the_bayes_ceiling(causal):
    model = ICLOracle(causal)
    n = 1500
    for k in (0, 2, 8):
        acc = tasks.icl_accuracy(model, k, n=n, seed=7)
        eps = tasks.icl_episodes(n, 7, shots=k)
        assert acc == pytest.approx(np.mean([_oracle_label(e.prompt) == e.answer for e in eps]))
        p = tasks.icl_bayes_accuracy(k)
        assert abs(acc - p) < 3 * math.sqrt(max(p * (1 - p), 1e-4) / n)


def test_a_model_that_ignores_the_prompt_is_at_chance():
    tok = tasks.icl_tokenizer()

    def blind(ids):
        logits = torch.zeros(*ids.shape, tok.vocab_size)
        logits[..., tok.stoi["Q"]] = 1.0
        return logits

    n = 1500
    se = math.sqrt(0.25 * 0.75 / n)
    for k in (0, 8):
        assert abs(tasks.icl_accuracy(blind, k, n=n) - 0.25) < 3 * se


class InstructionOracle:
    """A bidirectional 'model' that has memorised the answers of some instructions: at every answer position
    it puts its mass on the memorised answer, then [EOS]. ``eos=False``: it never says [EOS]."""

    def __init__(self, examples, eos=True):
        self.tok = tasks.instruction_tokenizer()
        self.answers = {tuple(self.tok.encode(e.prompt)): self.tok.encode(e.answer) for e in examples}
        self.eos, self.calls = eos, 0

    def __call__(self, ids):
        tok = self.tok
        self.calls += 1
        B, L = ids.shape
        logits = torch.zeros(B, L, tok.vocab_size)
        for b in range(B):
            row = ids[b].tolist()
            P = row.index(tok.stoi[tasks.SEP]) + 1
            target = self.answers[tuple(row[:P])] + [tok.eos_id] * L
            for j in range(P, L):
                if self.eos:
                    logits[b, j, target[j - P]] = 10.0
                else:
                    logits[b, j, tok.stoi["the"]] = 10.0
                    logits[b, j, tok.eos_id] = -10.0
        return logits


def test_answer_instructions_with_a_memorising_model():
    exs = tasks.instruction_set("test", 8, seed=2)
    model = InstructionOracle(exs)
    answers = tasks.answer_instructions(model, exs)
    assert answers == [e.answer for e in exs]                                 # order kept across length groups
    assert all(tasks.grade_instruction(e, a) for e, a in zip(exs, answers))
    # default steps: one token per step over the whole answer region of each length group
    assert model.calls == sum(41 - P for P in {len(e.prompt) for e in exs})


def test_answer_without_eos_is_none_and_wrong():
    exs = tasks.instruction_set("test", 4, seed=2)
    answers = tasks.answer_instructions(InstructionOracle(exs, eos=False), exs, steps=None)
    assert answers == [None] * 4
    assert not any(tasks.grade_instruction(e, a) for e, a in zip(exs, answers))


@pytest.mark.parametrize("attention", ["causal", "bidirectional"])
def test_icl_predictions_of_a_real_transformer_match_one_by_one_computation(attention):
    from course_lib.nn import Transformer, TransformerConfig
    tok = tasks.icl_tokenizer()
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=tok.vocab_size, seq_len=tasks.ICL_SEQ_LEN, n_layer=1,
                                          n_head=2, d_model=32, attention=attention)).eval()
    eps = tasks.icl_episodes(12, seed=4)
    labels = tok.encode(list(tasks.ICL_LABELS))
    expected = []
    with torch.no_grad():
        for e in eps:
            ids = tok.encode(e.prompt)
            if attention == "causal":
                logits = model(torch.tensor([[tok.eos_id] + ids]))[0, -1]
            else:
                canvas = ids + [tok.mask_id] * (tasks.ICL_SEQ_LEN - len(ids))
                logits = model(torch.tensor([canvas]))[0, len(ids)]
            expected.append(tasks.ICL_LABELS[int(logits[labels].argmax())])
    assert tasks.icl_predictions(model, eps) == expected


# ------------------------------------------------------------------------------------------ training the twins
def _tiny_icl_recipes(monkeypatch, steps=3):
    from course_lib import textlm
    small = dict(textlm.TEXT_RECIPES["icl_ar"]["model"], n_layer=1, d_model=32, n_head=2)
    monkeypatch.setattr(textlm, "TEXT_RECIPES", {**textlm.TEXT_RECIPES, **{
        n: dict(textlm.TEXT_RECIPES[n], model=small, steps=steps, warmup=1) for n in ("icl_ar", "icl_mdm")}})
    monkeypatch.setattr(tasks, "icl_accuracy", lambda model, k, n=1000, seed=7: 0.5)     # keep the test fast


def test_icl_answer_logits_ask_as_the_chapter_does():
    from course_lib.nn import Transformer, TransformerConfig
    tok = tasks.icl_tokenizer()
    eps = tasks.icl_episodes(5, seed=3, shots=2)
    ids = torch.tensor([tok.encode(e.prompt) for e in eps])
    for attention in ("causal", "bidirectional"):
        torch.manual_seed(0)
        model = Transformer(TransformerConfig(vocab_size=len(tok.itos), seq_len=tasks.ICL_SEQ_LEN, n_layer=1,
                                              n_head=2, d_model=16, attention=attention)).eval()
        with torch.no_grad():
            got = tasks.icl_answer_logits(model, ids)
            if attention == "causal":
                want = model(torch.cat([torch.full((5, 1), tok.eos_id), ids], 1))[:, -1]
            else:
                canvas = torch.full((5, tasks.ICL_SEQ_LEN), tok.mask_id)
                canvas[:, :ids.shape[1]] = ids
                want = model(canvas)[:, ids.shape[1]]
        torch.testing.assert_close(got, want)


def test_train_icl_model_trains_on_the_answer_and_records_accuracy(monkeypatch):
    _tiny_icl_recipes(monkeypatch)
    model, metrics, seconds = tasks.train_icl_model("icl_ar", show_progress=False)
    assert not model.training and model.config.attention == "causal" and seconds > 0
    assert metrics["curve"]["step"] == [3] and len(metrics["curve"]["accuracy"][0]) == tasks.ICL_MAX_SHOTS + 1
    again, _, _ = tasks.train_icl_model("icl_ar", show_progress=False)                 # seeded: the same weights
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    mdm, _, _ = tasks.train_icl_model("icl_mdm", show_progress=False)
    assert mdm.config.attention != "causal"
    with pytest.raises(ValueError, match="icl_ar"):
        tasks.train_icl_model("lm_ar")
