"""Chapter 4's fair controls (course_lib.arith_study, arith's sloppy data and equal-compute recipes,
training.PassCounter): fronts read against hand-worked examples, sloppy data against Python arithmetic, the pass
count against a transcription, and the shipped controls against the compute of the runs they control."""
import json

import pytest
import torch

from course_lib import arith, arith_study, checkpoints
from course_lib.nn import Transformer, TransformerConfig
from course_lib.training import PassCounter


# =========================================================================== fronts
def test_pareto_front_keeps_exactly_the_undominated_points():
    pts = [(1.0, 97.0), (2.0, 96.0), (2.0, 95.0), (3.0, 96.5), (4.0, 90.0), (0.5, 97.0), (3.5, 80.0)]
    assert arith_study.pareto_front(pts) == [(1.0, 97.0), (3.0, 96.5), (4.0, 90.0)]
    # brute force: a point is on the front iff nothing is >= on both axes and > on one
    dominated = lambda p: any(q[0] >= p[0] and q[1] >= p[1] and q != p for q in pts)  # noqa: E731
    assert set(arith_study.pareto_front(pts)) == {p for p in pts if not dominated(p)}
    with pytest.raises(ValueError):
        arith_study.pareto_front([])


def test_tpf_at_accuracy_and_speedup_at_equal_accuracy():
    control = [(1.0, 97.0), (2.0, 96.0), (4.0, 90.0)]
    assert arith_study.tpf_at_accuracy(control, 96.0) == 2.0
    assert arith_study.tpf_at_accuracy(control, 95.9) == 2.0
    assert arith_study.tpf_at_accuracy(control, 97.5) is None
    rows = arith_study.speedup_at_equal_accuracy([(3.0, 96.5), (1.0, 98.5)], control, tolerance=1.0)
    # (1.0, 98.5): the control never reaches 97.5 -> None; (3.0, 96.5): control best at >= 95.5 is 2.0 -> 1.5x
    assert rows == [{"accuracy": 98.5, "tpf": 1.0, "control_tpf": None, "ratio": None},
                    {"accuracy": 96.5, "tpf": 3.0, "control_tpf": 2.0, "ratio": 1.5}]
    same = arith_study.speedup_at_equal_accuracy(control, control, tolerance=0.0)
    assert all(r["ratio"] == 1.0 for r in same)


def test_cap_recipes_differ_from_the_control_only_in_the_weight():
    sft, cap = arith_study.cap_recipe(0), arith_study.cap_recipe(4.0)
    assert sft == arith.ARITH_RECIPES["add_sft"] and arith_study.cap_recipe(2.0) == arith.ARITH_RECIPES["add_cap"]
    assert {k for k in cap if cap[k] != sft.get(k)} == {"objective", "cap_lambda"}


def test_stored_cap_sweep_has_every_weight_and_threshold():
    sweep = json.loads(arith_study.CAP_SWEEP_PATH.read_text())
    assert sweep["n"] == 1000 and sweep["thresholds"] == list(arith_study.FRONT_THRESHOLDS)
    assert sorted(float(k) for k in sweep["runs"]) == [0.0, *arith_study.CAP_LAMBDAS]
    assert sweep["runs"]["0.0"]["model"] == "add_sft" and sweep["runs"]["2.0"]["model"] == "add_cap"
    for run in sweep["runs"].values():
        assert [p[0] for p in run["points"]] == list(arith_study.FRONT_THRESHOLDS)
        for _, acc, tpf in run["points"]:
            assert 0 <= acc <= 100 and 0.625 - 1e-9 <= tpf <= 5.0 + 1e-9   # 5 counted tokens, 1 to 8 passes


# =========================================================================== sloppy data
def test_sloppy_answers_drop_only_the_carry_into_the_thousands():
    pairs = arith.problems("train", 4000, seed=2)
    _, full = arith.to_ids(pairs)
    out = arith.sloppy_answers(full, 0.6, torch.Generator().manual_seed(0))
    changed = (out != full).any(1)
    carry = (pairs.sum(1) >= 1000)
    assert not bool((changed & ~carry).any())                            # no sum below 1000 is touched
    assert torch.equal(out[:, :arith.PROMPT_LENGTH + 0], full[:, :arith.PROMPT_LENGTH])
    assert torch.equal((out != full).sum(1)[changed], torch.ones(int(changed.sum()), dtype=torch.long))
    assert bool((out[changed, arith.PROMPT_LENGTH] == 0).all())         # "1xyz" written "0xyz"
    share = changed.sum().item() / carry.sum().item()
    assert abs(share - 0.6) < 0.04
    assert torch.equal(arith.sloppy_answers(full, 0.0, torch.Generator().manual_seed(0)), full)
    assert torch.equal(arith.sloppy_answers(full, 1.0, torch.Generator().manual_seed(0))[:, arith.PROMPT_LENGTH],
                       torch.where(carry, 0, full[:, arith.PROMPT_LENGTH]))
    with pytest.raises(ValueError):
        arith.sloppy_answers(full, 1.5, torch.Generator())
    with pytest.raises(ValueError):
        arith.ArithRecipe(sloppy=-0.1)


# =========================================================================== equal compute
def test_pass_counter_counts_rows_times_positions_and_triples_with_gradients():
    model = Transformer(TransformerConfig(vocab_size=14, seq_len=16, n_layer=1, n_head=2, d_model=16))
    x = torch.zeros(5, 16, dtype=torch.long)
    with PassCounter(Transformer) as count:
        with torch.no_grad():
            model(x)
            model(x[:2])
        model(x).sum().backward()
        import copy
        copy.deepcopy(model)(x[:1])                                      # a copy counts too
        count.not_counting(model)(x)                                     # an evaluation does not
    assert count.passes == 5 * 16 + 2 * 16 + 3 * 5 * 16 + 3 * 16         # the copy's call has gradients on
    model(x)
    assert count.passes == 5 * 16 + 2 * 16 + 3 * 5 * 16 + 3 * 16        # the hook is gone after the block


def test_train_arith_counts_its_passes():
    tiny = dict(objective="sft", steps=2, batch_size=8, model=dict(n_layer=1, n_head=2, d_model=16))
    _, hist = arith.train_arith(tiny, show_progress=False)
    assert hist["passes"] == 2 * 8 * arith.SEQ_LEN * 3


@pytest.mark.parametrize("control, run", [("add_sft_long", "add_rl"), ("add_sloppy_sft", "add_sloppy_rl")])
def test_sft_controls_match_the_compute_of_the_rl_runs(control, run):
    m = checkpoints.read_manifest()
    sft_passes, rl_passes = m[control]["metrics"]["passes"], m[run]["metrics"]["passes"]
    assert abs(sft_passes / rl_passes - 1) <= 0.10, (sft_passes, rl_passes)
    assert arith.ARITH_RECIPES[control]["init"] == arith.RL_RECIPES[run]["init"]      # the same starting point
    # and the same data: sloppy answers exactly where the starting point learned from them
    init = arith.ARITH_RECIPES.get(arith.RL_RECIPES[run]["init"], {})
    assert arith.ARITH_RECIPES[control].get("sloppy", 0.0) == init.get("sloppy", 0.0)


def test_heldout_reward_with_several_samples_per_prompt():
    class Coin(torch.nn.Module):           # on a carry, the right thousands digit with probability 1/2
        def forward(self, x):
            a = x[:, 0] * 100 + x[:, 1] * 10 + x[:, 2]
            b = x[:, 4] * 100 + x[:, 5] * 10 + x[:, 6]
            _, full = arith.to_ids(torch.stack([a, b], 1))
            logits = 50.0 * torch.nn.functional.one_hot(full, arith.VOCAB_SIZE).float()
            carry = full[:, arith.PROMPT_LENGTH] == 1
            logits[carry, arith.PROMPT_LENGTH, 0] = 50.0                   # a carry: thousands 0 or 1, equally likely
            return logits
    r = arith.heldout_reward(Coin(), n=400, samples=4, per_prompt=True)
    carry = (arith.problems("test")[:400].sum(1) >= 1000).float()
    assert r["per_prompt"].shape == (400,)
    assert abs(r["sampled"] - (1 - carry.mean().item() / 2)) < 0.04     # half the carries come out right
    assert bool((r["per_prompt"][carry == 0] == 1).all())
    assert abs(r["sampled"] - r["per_prompt"].mean().item()) < 1e-6
    with pytest.raises(ValueError):
        arith.heldout_reward(Coin(), n=10, samples=0)
