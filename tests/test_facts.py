"""The reversal-curse world: deterministic, disjoint roles, the right statements in training and the right
answer key for every query."""
import pytest

from course_lib import facts, language, recipes


def test_names_are_distinct_deterministic_and_not_language_words():
    a, b = facts.make_names(500, seed=3), facts.make_names(500, seed=3)
    assert a == b and len(set(a)) == 500
    assert facts.make_names(500, seed=4) != a
    vocab = set(language.default_grammar().vocabulary)
    assert not set(a) & vocab and not set(a) & set(facts.TEMPLATE_WORDS)


def test_training_statements_hold_exactly_the_intended_facts():
    w = facts.make_world(n_both=20, n_held_out=10, n_chains=5, seed=1)
    train = {" ".join(s) for s in w.training_statements()}
    assert len(train) == 2 * 20 + 10 + 2 * 5
    for p, c in w.both:
        assert f"{p} is the mother of {c} ." in train and f"{c} is the child of {p} ." in train
    for p, c in w.held_out:
        assert f"{p} is the mother of {c} ." in train and f"{c} is the child of {p} ." not in train
    for x2, x1, x0 in w.chains:
        assert f"{x2} is the mother of {x1} ." in train and f"{x1} is the mother of {x0} ." in train
        assert f"{x1} is the child of {x2} ." not in train


def test_queries_and_answer_key():
    w = facts.make_world(n_both=5, n_held_out=4, n_chains=3, seed=2)
    q = w.queries
    assert len(q["forward"]) == len(q["reverse"]) == len(q["left_masked"]) == len(q["control"]) == 4
    (p, c) = w.held_out[0]
    assert q["forward"][0] == ([p, "is", "the", "mother", "of"], [c, "."])
    assert q["reverse"][0] == ([c, "is", "the", "child", "of"], [p, "."])
    assert q["left_masked"][0] == (["[MASK]", "is", "the", "mother", "of", c, "."], [p])
    assert q["control"][0] == ([c, "is", "the", "mother", "of"], None)
    assert w.symmetric_recall_answer("control")[0] == p
    x2, x1, x0 = w.chains[0]
    assert q["chain_reverse"][0] == ([x1, "is", "the", "child", "of"], [x2, "."])
    assert w.symmetric_recall_answer("chain_reverse")[0] == x0
    assert w.vocabulary[:6] == list(facts.TEMPLATE_WORDS)


def test_every_person_has_one_role_set():
    w = facts.make_world(n_both=30, n_held_out=30, n_chains=10)
    people = [x for pair in w.both + w.held_out for x in pair] + [x for ch in w.chains for x in ch]
    assert len(people) == len(set(people)) == 2 * 30 + 2 * 30 + 3 * 10


@pytest.mark.parametrize("call, match", [
    (lambda: facts.make_names(0), "positive integer"),
    (lambda: facts.make_world(n_both=-1), "non-negative"),
    (lambda: facts.statement("a", "b", "sideways"), "direction"),
    (lambda: facts.FactWorld(names=["a", "b"], both=[("a", "b")], held_out=[("a", "b")], chains=[]), "exactly one"),
    (lambda: facts.FactWorld(names=["a"], both=[("a", "z")], held_out=[], chains=[]), "names"),
    (lambda: facts.make_world(n_both=1, n_held_out=1, n_chains=1).symmetric_recall_answer("forward"), "symmetric"),
])
def test_bad_input_raises(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# =========================================================================== chapter 3: asking models
import math  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import torch  # noqa: E402

from course_lib.nn import Transformer, TransformerConfig  # noqa: E402


def small_world():
    return facts.make_world(n_both=3, n_held_out=4, n_chains=2, seed=5)


def test_world_tokenizer_layout():
    w = small_world()
    tok = facts.world_tokenizer(w)
    assert tok.itos[:3] == ["[PAD]", "[MASK]", "[EOS]"] and tok.itos[3:] == w.vocabulary
    s = facts.statement(*w.held_out[0], "forward")
    assert tok.decode(tok.encode(s)) == " ".join(s)
    assert tok.encode([facts.MASK_WORD]) == [tok.mask_id]                 # a left-masked prompt encodes


def test_reversal_world_is_the_world_of_the_shipped_recipes():
    w = facts.reversal_world()
    assert w.names == facts.reversal_world().names                          # deterministic
    assert w.training_statements() == facts.make_world(**facts.REVERSAL_WORLD).training_statements()
    for name in ("facts_ar", "facts_mdm"):
        r = recipes.text_recipe(name)
        assert r["model"]["vocab_size"] == facts.world_tokenizer(w).vocab_size
        # every statement plus its [EOS] fits the recipe's canvas
        assert max(len(s) for s in w.training_statements()) + 1 <= r["model"]["seq_len"]


def _truth(world):
    """The relation as the oracle knows it: (name, relation word) -> the other name."""
    out = {}
    for p, c in world.both + world.held_out + [(x2, x1) for x2, x1, _ in world.chains] \
            + [(x1, x0) for _, x1, x0 in world.chains]:
        out[(p, "mother")], out[(c, "child")] = c, p
    return out


class FactOracle:
    """A hand-built 'model' that knows every fact of the world. At every position it puts its largest logit on
    [MASK] (and, for the AR path, the next on [PAD]): ``ask`` must never return those."""

    def __init__(self, world, causal: bool):
        self.config = SimpleNamespace(attention="causal" if causal else "bidirectional")
        self.tok, self.truth, self.inputs = facts.world_tokenizer(world), _truth(world), []

    def __call__(self, ids):
        tok = self.tok
        self.inputs.append(ids.clone())
        B, L = ids.shape
        logits = torch.zeros(B, L, tok.vocab_size)
        logits[..., tok.mask_id] = 100.0
        if self.config.attention == "causal":
            logits[..., tok.pad_id] = 50.0
        for b in range(B):
            words = [tok.itos[i] for i in ids[b].tolist()]
            if self.config.attention == "causal":
                assert words[0] == "[EOS]"
                logits[b, -1, tok.stoi[self.truth[(words[1], words[4])]]] = 10.0
            elif words[0] == facts.MASK_WORD:                               # left-masked: fill position 0
                logits[b, 0, tok.stoi[self.truth[(words[5], "child")]]] = 10.0
            else:                                                           # name, ".", [EOS] after the prompt
                for j, t in zip((5, 6, 7), (self.truth[(words[0], words[3])], ".", "[EOS]")):
                    logits[b, j, tok.stoi[t]] = 10.0
        return logits


KINDS_WITH_ANSWERS = ("both_forward", "both_reverse", "forward", "reverse", "chain_reverse", "chain_forward")


def test_ask_ar_reads_the_next_token_after_eos_and_prompt():
    w = small_world()
    model = FactOracle(w, causal=True)
    for kind in KINDS_WITH_ANSWERS:
        answers = facts.ask(model, w, kind)
        assert answers == [a[0] for _, a in w.queries[kind]]
        assert facts.accuracy(answers, w, kind) == 1.0
    tok = facts.world_tokenizer(w)
    x = model.inputs[0]
    assert x.shape == (len(w.queries["both_forward"]), 6)                  # [EOS] + 5 prompt words
    assert x[:, 1:].tolist() == [tok.encode(p) for p, _ in w.queries["both_forward"]]
    with pytest.raises(ValueError, match="AR model"):
        facts.ask(model, w, "left_masked")


def test_ask_mdm_generates_the_answer_and_fills_left_masks():
    w = small_world()
    model = FactOracle(w, causal=False)
    for kind in KINDS_WITH_ANSWERS + ("left_masked",):
        answers = facts.ask(model, w, kind)
        assert facts.accuracy(answers, w, kind) == 1.0, kind
    # the left-masked canvas is the training canvas (statement + [EOS]) with the first word masked
    tok = facts.world_tokenizer(w)
    x = model.inputs[-1]
    for row, (p, c) in zip(x.tolist(), w.held_out):
        assert row == [tok.mask_id] + tok.encode(facts.statement(p, c, "forward")[1:]) + [tok.eos_id]


def test_ask_real_ar_transformer_matches_one_query_at_a_time():
    w = small_world()
    tok = facts.world_tokenizer(w)
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=tok.vocab_size, seq_len=8, n_layer=1, n_head=2, d_model=32,
                                          attention="causal")).eval()
    answers = facts.ask(model, w, "forward")
    with torch.no_grad():
        for (prompt, _), a in zip(w.queries["forward"], answers):
            logits = model(torch.tensor([[tok.eos_id] + tok.encode(prompt)]))[0, -1].double()
            logits[[tok.pad_id, tok.mask_id]] = -math.inf
            assert a == tok.itos[int(logits.argmax())]


def test_ask_real_mdm_transformer_answers_words():
    w = small_world()
    tok = facts.world_tokenizer(w)
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(vocab_size=tok.vocab_size, seq_len=8, n_layer=1, n_head=2,
                                          d_model=32)).eval()
    for kind in ("reverse", "left_masked", "control"):
        answers = facts.ask(model, w, kind)
        assert len(answers) == len(w.queries[kind])
        assert all(a in tok.stoi and a != "[MASK]" for a in answers)


def test_accuracy_counts_right_names():
    w = small_world()
    truth = [a[0] for _, a in w.queries["reverse"]]
    wrong = [truth[1], truth[0]] + truth[2:]                                 # two of four swapped
    assert facts.accuracy(truth, w, "reverse") == 1.0
    assert facts.accuracy(wrong, w, "reverse") == pytest.approx(0.5)
    assert facts.accuracy([None] * len(truth), w, "reverse") == 0.0


@pytest.mark.parametrize("call, match", [
    (lambda: facts.ask(lambda x: x, small_world(), "sideways"), "unknown query kind"),
    (lambda: facts.accuracy(["x"] * 4, small_world(), "control"), "no right answer"),
    (lambda: facts.accuracy(["x"] * 3, small_world(), "reverse"), "3 answers for 4"),
])
def test_ask_and_accuracy_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()
