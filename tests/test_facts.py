"""The reversal-curse world: deterministic, disjoint roles, the right statements in training and the right
answer key for every query."""
import pytest

from course_lib import facts, language


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
