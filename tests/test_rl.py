"""EBPO-style RL for a diffusion LM (course_lib.rl): advantages, answer noising, block ELBO terms, the ELBO
log-ratio and its gradient, the clipped surrogate, and a small behavioural check of train_ebpo."""
import copy
import math
import statistics

import pytest
import torch

from course_lib import arith, rl
from course_lib.nn import Transformer, TransformerConfig

V, MASK, P, L = 14, 13, 8, 16


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return Transformer(TransformerConfig(vocab_size=V, seq_len=L, n_layer=1, n_head=2, d_model=16))


def rows(n, seed=0):
    pairs = arith.problems("train", n, seed=seed)
    return arith.to_ids(pairs)[1]


def logp_no_mask(logits):
    logits = logits.clone()
    logits[..., MASK] = float("-inf")
    return torch.log_softmax(logits.float(), -1)


# =========================================================================== advantages
def test_group_advantages_by_hand():
    r = [1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0.2, 0.5, 0.9, 0.4]
    got = rl.group_advantages(torch.tensor(r), 4)
    want = []
    for k in range(0, len(r), 4):
        grp = r[k:k + 4]
        mu, sd = statistics.fmean(grp), statistics.pstdev(grp)
        want += [(v - mu) / (sd + 1e-6) for v in grp]
    assert got.tolist() == pytest.approx(want, rel=1e-5, abs=1e-6)
    assert got[:4].tolist() == pytest.approx([1, -1, -1, 1], rel=1e-5)
    assert torch.equal(got[4:8], torch.zeros(4))                        # a constant group: exactly zero
    assert got[8:12].tolist() == pytest.approx([-1 / math.sqrt(3)] * 3 + [math.sqrt(3)], rel=1e-5)
    assert float(got[12:].sum()) == pytest.approx(0.0, abs=1e-6)
    assert torch.equal(rl.group_advantages([0.0, 0.0, 5.0, 5.0], 2), torch.zeros(4))
    assert torch.equal(rl.group_advantages([3.0, 1.0], 1), torch.zeros(2))


@pytest.mark.parametrize("rewards,group", [(torch.ones(5), 2), (torch.ones(2, 4), 4), (torch.ones(4), 0),
                                           (torch.ones(4), 2.0), (torch.ones(0), 2), (torch.ones(4), True)])
def test_group_advantages_bad_input(rewards, group):
    with pytest.raises(ValueError):
        rl.group_advantages(rewards, group)


# =========================================================================== noising
def test_noise_answers_keeps_the_prompt_and_masks_at_rate_t():
    x = rows(600)
    t = torch.cat([torch.full((200,), 0.3), torch.full((200,), 0.8), torch.zeros(100), torch.ones(100)])
    z, masked = rl.noise_answers(x, P, t, MASK, torch.Generator().manual_seed(0))
    assert not bool(masked[:, :P].any()) and torch.equal(z[:, :P], x[:, :P])
    assert torch.equal(z == MASK, masked) and torch.equal(z[~masked], x[~masked])
    for lo, hi, rate in ((0, 200, 0.3), (200, 400, 0.8)):
        n = (hi - lo) * (L - P)
        assert abs(int(masked[lo:hi].sum()) - n * rate) < 4 * math.sqrt(n * rate * (1 - rate))
    assert not bool(masked[400:500].any()) and bool(masked[500:, P:].all())
    z2, _ = rl.noise_answers(x, P, t, MASK, torch.Generator().manual_seed(0))
    assert torch.equal(z, z2)


def test_noise_answers_bad_input():
    x = rows(4)
    with pytest.raises(ValueError, match="t must"):
        rl.noise_answers(x, P, torch.full((3,), 0.5), MASK)
    with pytest.raises(ValueError, match="t must"):
        rl.noise_answers(x, P, torch.full((4,), 1.5), MASK)
    with pytest.raises(ValueError, match="prompt_length"):
        rl.noise_answers(x, L, torch.full((4,), 0.5), MASK)


# =========================================================================== block ELBO terms
def test_block_elbo_terms_one_block_is_a_direct_computation():
    model, x = tiny_model(), rows(5)
    z, masked = rl.noise_answers(x, P, torch.full((5,), 0.6), MASK, torch.Generator().manual_seed(1))
    got = rl.block_elbo_terms(model, x, z, masked, P, L - P, MASK)
    assert got.shape == (5, 1)
    lp = logp_no_mask(model(z))
    for b in range(5):
        want = sum(lp[b, i, int(x[b, i])].item() for i in range(P, L) if masked[b, i])
        assert got[b, 0].item() == pytest.approx(want, rel=1e-5, abs=1e-6)
    assert bool((got <= 0).all())


class Recorder(torch.nn.Module):
    """A fake model whose logits depend on its input (so a wrong layout changes the terms) and that records it."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Parameter(torch.randn(V, V, generator=torch.Generator().manual_seed(0)))
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x.clone())
        return self.emb[x] + self.emb[x].mean(1, keepdim=True)


def test_block_elbo_terms_two_blocks_see_clean_earlier_and_masked_later_blocks():
    model, x = Recorder(), rows(3, seed=2)
    z, masked = rl.noise_answers(x, P, torch.full((3,), 0.5), MASK, torch.Generator().manual_seed(2))
    got = rl.block_elbo_terms(model, x, z, masked, P, 4, MASK)
    assert got.shape == (3, 2) and len(model.inputs) == 2
    first = torch.cat([x[:, :P], z[:, P:P + 4], torch.full((3, 4), MASK)], 1)
    second = torch.cat([x[:, :P + 4], z[:, P + 4:]], 1)
    assert torch.equal(model.inputs[0], first) and torch.equal(model.inputs[1], second)
    for k, (inp, lo, hi) in enumerate(((first, P, P + 4), (second, P + 4, L))):
        lp = logp_no_mask(model(inp))
        for b in range(3):
            want = sum(lp[b, i, int(x[b, i])].item() for i in range(lo, hi) if masked[b, i])
            assert got[b, k].item() == pytest.approx(want, rel=1e-5, abs=1e-6)
    # one block of 8 sums the same masked tokens, but every one of them seen with all of z
    one = rl.block_elbo_terms(model, x, z, masked, P, 8, MASK)
    lp = logp_no_mask(model(z))
    assert one[:, 0].tolist() == pytest.approx([sum(lp[b, i, int(x[b, i])].item() for i in range(P, L)
                                                    if masked[b, i]) for b in range(3)], rel=1e-5)


def test_block_elbo_terms_bad_block_length():
    model, x = tiny_model(), rows(2)
    z, masked = rl.noise_answers(x, P, torch.full((2,), 0.5), MASK)
    for bad in (3, 0, -4, 2.0):
        with pytest.raises(ValueError, match="block_length"):
            rl.block_elbo_terms(model, x, z, masked, P, bad, MASK)
    with pytest.raises(ValueError, match="share the shape"):
        rl.block_elbo_terms(model, x, z, masked.long(), P, 8, MASK)


# =========================================================================== the log-ratio
def test_ebpo_log_ratio_of_a_model_with_itself_is_exactly_zero():
    model, x = tiny_model(), rows(6)
    for block_length in (None, 4):
        out = rl.ebpo_log_ratio(model, model, x, P, [0.3, 0.9], MASK, block_length, torch.Generator().manual_seed(0))
        assert out.shape == (6,) and torch.equal(out, torch.zeros(6)) and out.requires_grad


def test_ebpo_log_ratio_value_and_gradient_match_a_manual_elbo():
    model, old, x = tiny_model(seed=1), tiny_model(seed=2), rows(4, seed=1)
    ts, c = [0.3, 0.8], torch.tensor([1.0, -2.0, 0.5, 3.0])
    out = rl.ebpo_log_ratio(model, old, x, P, ts, MASK, generator=torch.Generator().manual_seed(9))
    (out * c).sum().backward()
    got_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    # manual: the same uniform draws, w_n = 1 / (N t_n), sum of log p(x_i | z) over masked answer tokens
    g = torch.Generator().manual_seed(9)
    new_total, old_total = torch.zeros(4), torch.zeros(4)
    for t in ts:
        u = torch.rand(x.shape, generator=g)
        masked = (u < t) & (torch.arange(L) >= P)
        z = torch.where(masked, torch.full_like(x, MASK), x)
        for m, acc in ((model, "new"), (old, "old")):
            lp = logp_no_mask(m(z)).gather(-1, x.unsqueeze(-1)).squeeze(-1)
            term = (lp * masked).sum(1) / (len(ts) * t)
            if acc == "new":
                new_total = new_total + term
            else:
                old_total = old_total + term.detach()
    torch.testing.assert_close(out.detach(), (new_total - old_total).detach(), rtol=1e-5, atol=1e-5)
    (new_total * c).sum().backward()
    for a, p in zip(got_grads, model.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-4, atol=1e-6)
    assert sum(float(a.abs().sum()) for a in got_grads) > 0
    assert all(p.grad is None for p in old.parameters())               # no gradient into the old policy


def test_ebpo_log_ratio_bad_t_values():
    model, x = tiny_model(), rows(2)
    for bad in ([], [0.0], [1.5], [-0.2, 0.5]):
        with pytest.raises(ValueError, match="t_values"):
            rl.ebpo_log_ratio(model, model, x, P, bad, MASK)
    with pytest.raises(ValueError, match="block_length"):
        rl.ebpo_log_ratio(model, model, x, P, [0.5], MASK, block_length=0)


# =========================================================================== clipped surrogate
def test_clipped_objective_by_hand():
    rho = torch.tensor([1.5, 0.5, 1.1, 0.5, 1.5, 0.9])
    adv = torch.tensor([2.0, 2.0, 2.0, -1.0, -1.0, -1.0])
    lr_ = rho.log().requires_grad_(True)
    j = rl.clipped_objective(lr_, adv, 0.2, 0.2)
    # A > 0: min(rho A, clip A) = 2.4 (clipped above), 1.0, 2.2; A < 0: -0.8 (clipped below), -1.5, -0.9
    values = [1.2 * 2, 0.5 * 2, 1.1 * 2, 0.8 * -1, 1.5 * -1, 0.9 * -1]
    assert j.item() == pytest.approx(sum(values) / 6, rel=1e-6)
    j.backward()
    # d(rho A)/d log rho = rho A where the unclipped term is the min; 0 where the clipped side wins
    want = [0.0, 1.0, 2.2, 0.0, -1.5, -0.9]
    assert (lr_.grad * 6).tolist() == pytest.approx(want, rel=1e-5, abs=1e-7)


def test_clipped_objective_asymmetric_range():
    rho = torch.tensor([1.25, 1.35, 0.85, 0.95])
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0])
    lr_ = rho.log().requires_grad_(True)
    j = rl.clipped_objective(lr_, adv, eps_low=0.1, eps_high=0.3)
    assert j.item() == pytest.approx((1.25 + 1.3 - 0.9 - 0.95) / 4, rel=1e-6)
    j.backward()
    assert (lr_.grad * 4).tolist() == pytest.approx([1.25, 0.0, 0.0, -0.95], rel=1e-5, abs=1e-7)


def test_clipped_objective_bad_input():
    a = torch.zeros(3)
    with pytest.raises(ValueError, match="same shape"):
        rl.clipped_objective(a, torch.zeros(4))
    with pytest.raises(ValueError, match="eps_low"):
        rl.clipped_objective(a, a, eps_low=1.5)
    with pytest.raises(ValueError, match="eps_high"):
        rl.clipped_objective(a, a, eps_high=-0.1)


# =========================================================================== training
TRAIN = arith.problems("train", 20_000, seed=0)


def prompt_fn(n, g):
    pairs = TRAIN[torch.randint(0, len(TRAIN), (n,), generator=g)]
    return arith.to_ids(pairs)[0], pairs


def sample_fn(model, prompts, g):
    return arith.sample_answers(model, prompts, g, 1.0)


def sevens(x, pairs):
    """A fake verifiable reward: the share of answer tokens that are the digit 7."""
    return (x[:, P:] == 7).float().mean(1)


def p_seven(model, n=64):
    prompts, _ = arith.to_ids(arith.problems("test")[:n])
    x = torch.cat([prompts, torch.full((n, L - P), MASK)], 1)
    with torch.no_grad():
        return logp_no_mask(model.eval()(x))[:, P:, 7].exp().mean().item()


def test_train_ebpo_runs_and_records_history():
    model = tiny_model()
    before = copy.deepcopy(model.state_dict())
    evals = []
    model, hist = rl.train_ebpo(model, sample_fn, sevens, prompt_fn, 2, group_size=4, prompts_per_iter=4,
                                inner_steps=2, lr=1e-3, eval_fn=lambda m: evals.append(m.training) or 0.5,
                                show_progress=False)
    assert hist["iteration"] == [1, 2] and len(hist["train_reward"]) == 2 and len(hist["clip_fraction"]) == 2
    assert hist["eval_iteration"] == [0, 2] and hist["eval"] == [0.5, 0.5] and evals == [False, False]
    assert all(0 <= r <= 1 for r in hist["train_reward"]) and all(0 <= c <= 1 for c in hist["clip_fraction"])
    assert hist["seconds"] > 0 and not model.training
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    # max_seconds = 0 stops after the first iteration (and still evaluates)
    _, h = rl.train_ebpo(tiny_model(), sample_fn, sevens, prompt_fn, 5, group_size=4, prompts_per_iter=2,
                         eval_fn=lambda m: 0.0, max_seconds=0.0, show_progress=False)
    assert h["iteration"] == [1] and h["eval_iteration"] == [0, 1]


def test_train_ebpo_is_seeded():
    a, _ = rl.train_ebpo(tiny_model(), sample_fn, sevens, prompt_fn, 2, group_size=4, prompts_per_iter=4,
                         lr=1e-3, seed=5, show_progress=False)
    b, _ = rl.train_ebpo(tiny_model(), sample_fn, sevens, prompt_fn, 2, group_size=4, prompts_per_iter=4,
                         lr=1e-3, seed=5, show_progress=False)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())


def sampled_sevens(model, seed=1):
    prompts, _ = arith.to_ids(arith.problems("test")[:64])
    x = arith.sample_answers(model.eval(), prompts, torch.Generator().manual_seed(seed), 1.0)
    return sevens(x, None).mean().item()


def test_train_ebpo_raises_the_probability_of_a_rewarded_token():
    """A behavioural check: rewarding the digit 7 makes the policy write more 7s on held-out prompts."""
    model = tiny_model(seed=3)
    p0, r0 = p_seven(model), sampled_sevens(model)
    model, hist = rl.train_ebpo(model, sample_fn, sevens, prompt_fn, 8, group_size=8, prompts_per_iter=8,
                                inner_steps=2, lr=1e-2, seed=0, show_progress=False)
    p1, r1 = p_seven(model), sampled_sevens(model)
    assert p0 < 0.12 and p1 > 1.5 * p0, (p0, p1)          # p(7) at a fully masked answer (about 1/13 at init)
    assert r1 > r0 + 0.2, (r0, r1)                          # the share of 7s in sampled answers
    assert hist["train_reward"][-1] > hist["train_reward"][0] + 0.1


@pytest.mark.parametrize("kw", [dict(iterations=0), dict(group_size=0), dict(inner_steps=1.5), dict(n_t=0),
                                dict(lr=0.0), dict(eps_clip=1.5), dict(prompts_per_iter=True)])
def test_train_ebpo_bad_arguments(kw):
    args = dict(iterations=1) | kw
    with pytest.raises(ValueError):
        rl.train_ebpo(tiny_model(), sample_fn, sevens, prompt_fn, show_progress=False, **args)
