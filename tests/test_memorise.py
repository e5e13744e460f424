"""The memorisation task of chapter 4 (course_lib.memorise): the fact table, the recall grader, the routing shares,
and the two models' equal active width."""
import pytest
import torch

from course_lib import memorise as M
from course_lib.nn import Transformer, TransformerConfig


def test_fact_table():
    facts = M.fact_table()
    assert facts.shape == (M.FACTS, M.SEQ_LEN) and torch.equal(M.fact_table(), facts)
    keys = facts[:, 0] * M.RELATIONS + (facts[:, 1] - M.SUBJECTS)
    assert torch.equal(keys, torch.arange(M.FACTS))                       # every (subject, relation) exactly once
    assert bool((facts[:, 2] == M.EQ_ID).all())
    values = facts[:, 3:] - M.SUBJECTS - M.RELATIONS
    assert bool((values >= 0).all()) and bool((values < M.VALUES).all())
    for j in (0, 1):                                                     # random values: every value used
        assert len(set(values[:, j].tolist())) == M.VALUES


class Lookup(torch.nn.Module):
    """Knows the first ``known`` facts, predicts value 0 for the rest."""

    def __init__(self, known):
        super().__init__()
        self.facts, self.known = M.fact_table(), known

    def forward(self, x):
        logits = torch.zeros(len(x), M.SEQ_LEN, M.VOCAB_SIZE)
        logits[..., M.SUBJECTS + M.RELATIONS] = 1.0
        key = x[:, 0] * M.RELATIONS + (x[:, 1] - M.SUBJECTS)
        for j in (3, 4):
            known = key < self.known
            logits[known, j, self.facts[key[known], j]] = 5.0
        logits[..., M.MASK_ID] = 100.0                                    # [MASK] is never proposed
        return logits


def test_recall_grades_exactly_the_known_facts():
    r = M.recall(Lookup(1000))
    assert r.shape == (M.FACTS,)
    zero = M.SUBJECTS + M.RELATIONS
    lucky = (M.fact_table()[1000:, 3:] == zero).all(1)                  # facts whose value is (0, 0) anyway
    assert r[:1000].all() and torch.equal(r[1000:], lucky)


def test_models_have_equal_active_width_and_more_total_parameters():
    dense, moe = (TransformerConfig(**M.MODELS[n]) for n in ("mem_dense", "mem_moe"))
    assert moe.moe_top_k * moe.d_expert == dense.d_ff
    assert {k for k in M.MODELS["mem_moe"] if M.MODELS["mem_moe"][k] != M.MODELS["mem_dense"].get(k)} == \
        {"n_dense_layers", "n_experts", "moe_top_k", "d_expert", "router", "aux_loss_coef"}
    torch.manual_seed(0)
    assert Transformer(moe).n_params() > 2 * Transformer(dense).n_params()


def test_routing_loads_are_shares_over_the_experts():
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(**M.MODELS["mem_moe"])).eval()
    loads = M.routing_loads(model, M.fact_table()[:200])
    for part in ("prompt", "answer"):
        assert loads[part].shape == (16,) and abs(loads[part].sum().item() - 1) < 1e-9
    with pytest.raises(ValueError):
        M.routing_loads(Transformer(TransformerConfig(**M.MODELS["mem_dense"])))
    with pytest.raises(ValueError):
        M.train("mem_nope")


def test_shipped_models_recall_what_their_recipes_measured():
    from course_lib import checkpoints
    m = checkpoints.read_manifest()
    for name in ("mem_dense", "mem_moe"):
        got = M.recall(M.load_model(name)).float().mean().item()
        assert abs(got - m[name]["metrics"]["recall"]) < 1e-3        # a near-tie may flip on another CPU
