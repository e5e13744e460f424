"""LLaDA (chapter 3): pretraining and SFT losses, the generate.py sampler, likelihood estimators."""
import math

import pytest
import torch

from course_lib import llada, masked
from course_lib import masked as m
from course_lib.masked import llada_pretrain_loss, llada_pretrain_step_loss, sft_forward_process, sft_loss, sft_step_loss

MASK = 1          # the course tokenizer's [MASK] id, llada's default


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


class TableModel(torch.nn.Module):
    """A fixed random bidirectional 'network': logits depend on the position and on the visible tokens.

    ``mask_bonus`` raises the [MASK] logit so that a sampler that forgot to exclude it would produce it."""

    def __init__(self, V, L, d=8, seed=0, mask_bonus=0.0, mask_id=MASK):
        super().__init__()
        g = gen(seed)
        self.pos = torch.randn(L, V, generator=g, dtype=torch.float64)
        self.emb = torch.randn(V, d, generator=g, dtype=torch.float64)
        self.mix = torch.randn(L, d, d, generator=g, dtype=torch.float64)
        self.out = torch.randn(d, V, generator=g, dtype=torch.float64)
        self.pos[:, mask_id] += mask_bonus

    def forward(self, x):
        L = x.shape[1]
        ctx = self.emb[x].mean(1)                                         # (B, d) summary of the canvas
        h = torch.einsum("bd,lde->ble", ctx, self.mix[:L])                # position-specific use of it
        return self.pos[:L][None] + torch.tanh(h) @ self.out


def table_model(table):
    """A context-independent model: the same logits table whatever the input."""
    return lambda x: table[None, :x.shape[1]].expand(x.shape[0], -1, -1).clone()


# =========================================================================== losses
def _hand_ce(logits_row, target, mask_id):
    """-log softmax over the vocabulary *without* the [MASK] entry, at ``target``."""
    keep = [v for v in range(len(logits_row)) if v != mask_id]
    row = logits_row[keep]
    return -(row[keep.index(int(target))] - torch.logsumexp(row, 0))


X0 = torch.tensor([[0, 2, 3, 4, 5, 6], [2, 2, 3, 0, 6, 5], [4, 5, 6, 0, 2, 3]])


def test_pretrain_loss_equals_hand_computation_and_mdlm_loss():
    V, (B, L) = 7, X0.shape
    masked = torch.tensor([[1, 0, 0, 1, 0, 0], [0, 1, 1, 1, 0, 1], [0, 0, 0, 0, 0, 1]], dtype=torch.bool)
    noisy = torch.where(masked, MASK, X0)
    p_mask = torch.tensor([0.3, 0.55, 0.9], dtype=torch.float64)
    logits = TableModel(V, L)(noisy).requires_grad_(True)
    loss = llada_pretrain_loss(logits, X0, noisy, masked, p_mask, mask_id=MASK)
    hand = sum(_hand_ce(logits[b, i].detach(), X0[b, i], MASK) / p_mask[b]
               for b in range(B) for i in range(L) if masked[b, i]) / (B * L)      # / all B*L positions
    torch.testing.assert_close(loss.detach(), hand)
    # the docstring of masked.llada_forward_process: MDLM's loss, linear schedule, at t = p_mask
    mdlm = m.mdlm_loss(logits.detach(), X0, noisy, masked, p_mask, "linear", mask_id=MASK).loss
    torch.testing.assert_close(loss.detach(), mdlm)
    # gradient only through masked positions, never through the [MASK] logit
    loss.backward()
    assert bool((logits.grad[~masked] == 0).all()) and bool((logits.grad[..., MASK] == 0).all())
    assert bool((logits.grad[masked].abs().sum(-1) > 0).all())


def test_pretrain_step_loss_uses_llada_forward_process():
    model = TableModel(7, 6)
    out = llada_pretrain_step_loss(model, X0, MASK, gen(3))
    noisy, masked, p_mask = m.llada_forward_process(X0, MASK, gen(3))
    assert torch.equal(out.noisy, noisy) and torch.equal(out.masked, masked) and torch.equal(out.p_mask, p_mask)
    torch.testing.assert_close(out.loss, llada_pretrain_loss(model, X0, noisy, masked, p_mask, mask_id=MASK))


def test_sft_forward_process_never_masks_the_prompt():
    x0 = torch.randint(2, 9, (256, 10), generator=gen(0))
    pl = torch.randint(0, 10, (256,), generator=gen(1))
    noisy, masked, p_mask = sft_forward_process(x0, pl, MASK, gen(2))
    prompt = torch.arange(10)[None] < pl[:, None]
    assert not bool(masked[prompt].any()) and torch.equal(noisy[prompt], x0[prompt])
    assert bool(masked[~prompt].any())                                 # answers are masked
    assert torch.equal(masked, noisy == MASK) and bool((p_mask >= 1e-3).all() and (p_mask <= 1).all())
    # the answer masking rate follows p_mask (rows with a long answer)
    frac = masked[~prompt].double().mean()
    expect = (p_mask[:, None].expand(-1, 10)[~prompt]).mean()
    assert abs(float(frac - expect)) < 0.05


def test_sft_loss_hand_computation_normalises_by_answer_length_with_eos_padding():
    x0, pl = masked.pad_sft_batch([[3, 4], [5], [6, 7, 8]], [[6], [3, 4, 5], [4]], eos_id=2)
    assert x0.tolist() == [[3, 4, 6, 2, 2], [5, 3, 4, 5, 2], [6, 7, 8, 4, 2]] and pl.tolist() == [2, 1, 3]
    model = TableModel(9, 5, seed=4)
    out = sft_step_loss(model, x0, pl, MASK, gen(11))
    assert out.answer_lengths.tolist() == [3, 4, 2]                   # EOS padding counts
    logits = model(out.noisy)
    B, L = x0.shape
    assert out.masked.any()
    hand = sum(_hand_ce(logits[b, i], x0[b, i], MASK) / out.p_mask[b] / (L - pl[b])
               for b in range(B) for i in range(L) if out.masked[b, i]) / B
    torch.testing.assert_close(out.loss, hand)
    # a prompt position that is masked is an error
    bad = out.masked.clone()
    bad[0, 0] = True
    with pytest.raises(ValueError, match="prompt"):
        sft_loss(logits, x0, torch.where(bad, MASK, x0), bad, out.p_mask, pl, mask_id=MASK)


@pytest.mark.parametrize("call", [
    lambda: llada_pretrain_loss(torch.zeros(3, 6, 7), X0, X0, torch.zeros(3, 6, dtype=torch.bool),
                                torch.tensor([0.5, 0.5, 1.5]), mask_id=MASK),                 # p_mask > 1
    lambda: llada_pretrain_loss(torch.zeros(3, 6, 7), X0, X0, torch.zeros(3, 6, dtype=torch.bool),
                                torch.tensor([0.5, 0.5]), mask_id=MASK),                      # p_mask shape
    lambda: llada_pretrain_loss(torch.zeros(3, 6, 7), X0, X0, torch.ones(3, 6, dtype=torch.bool),
                                torch.full((3,), 0.5), mask_id=MASK),                          # masked != noisy
    lambda: llada_pretrain_loss(torch.zeros(3, 6, 5), X0, X0, torch.zeros(3, 6, dtype=torch.bool),
                                torch.full((3,), 0.5), mask_id=MASK),                          # ids >= V
    lambda: llada_pretrain_loss(torch.zeros(3, 5, 7), X0, X0, torch.zeros(3, 6, dtype=torch.bool),
                                torch.full((3,), 0.5), mask_id=MASK),                          # logits shape
    lambda: llada_pretrain_step_loss(TableModel(7, 6), X0.double(), MASK),                    # float ids
    lambda: llada_pretrain_step_loss(TableModel(7, 6), torch.where(X0 == 2, MASK, X0), MASK), # x0 has [MASK]
    lambda: sft_step_loss(TableModel(7, 6), X0, [2, 6, 1], MASK),                       # no answer token
    lambda: sft_step_loss(TableModel(7, 6), X0, [2, -1, 1], MASK),
    lambda: masked.pad_sft_batch([[3]], [[4, 5]], length=2),
])
def test_loss_bad_inputs_raise(call):
    with pytest.raises(ValueError):
        call()


# =========================================================================== num_transfer_tokens
def test_num_transfer_tokens_base_remainder_rule():
    n = torch.arange(0, 40)
    for steps in range(1, 11):
        k = llada.num_transfer_tokens(n, steps)
        assert k.shape == (40, steps) and k.dtype == torch.long
        assert torch.equal(k.sum(1), n)
        for row, count in zip(k.tolist(), n.tolist()):
            base, rem = divmod(count, steps)
            assert row == [base + 1] * rem + [base] * (steps - rem)
    mask = torch.tensor([[True, False, True, True, True], [False] * 5])
    assert llada.num_transfer_tokens(mask, 3).tolist() == [[2, 1, 1], [0, 0, 0]]
    assert llada.num_transfer_tokens(7, 2).tolist() == [[4, 3]]
    for bad in [(torch.tensor([3.0]), 2), (torch.tensor([-1]), 2), (torch.tensor([3]), 0)]:
        with pytest.raises(ValueError):
            llada.num_transfer_tokens(*bad)


# =========================================================================== generate
V, P, G = 9, 3, 12
PROMPT = torch.tensor([[0, 2, 3], [4, 5, 6], [7, 8, 0]])


@pytest.mark.parametrize("remasking", ["low_confidence", "random"])
@pytest.mark.parametrize("temperature,cfg", [(0.0, 0.0), (1.0, 0.0), (0.7, 1.0)])
@pytest.mark.parametrize("block_length,steps", [(12, 12), (4, 6), (3, 8)])
def test_generate_commits_by_schedule_block_by_block_and_never_changes_a_token(remasking, temperature, cfg,
                                                                               block_length, steps):
    model = TableModel(V, P + G, mask_bonus=30.0)                   # [MASK] would win every argmax
    kw = dict(steps=steps, gen_length=G, block_length=block_length, temperature=temperature, cfg_scale=cfg,
              remasking=remasking, mask_id=MASK)
    states = list(llada.generate_steps(model, PROMPT, **kw, generator=gen(0)))
    assert len(states) == steps + 1 and bool((states[0].x[:, P:] == MASK).all())
    per_block = steps // (G // block_length)
    expected = llada.num_transfer_tokens(torch.full((3,), block_length), per_block)
    for prev, s in zip(states, states[1:]):
        done = prev.x != MASK
        assert torch.equal(s.x[done], prev.x[done])                   # committed tokens (and the prompt) stay
        new = (s.x != MASK) & ~done
        assert torch.equal(new, s.committed) and torch.equal(s.x[new], s.proposal[new])
        assert torch.equal(new.sum(1), expected[:, (s.step - 1) % per_block])   # num_transfer_tokens per step
        block = (s.step - 1) // per_block
        lo, hi = P + block * block_length, P + (block + 1) * block_length
        assert s.block == block and not bool(new[:, :lo].any()) and not bool(new[:, hi:].any())
        assert bool((prev.x[:, :lo] != MASK).all())                   # earlier blocks are already complete
        pos = torch.arange(P + G)
        eligible = (prev.x == MASK) & (pos >= lo) & (pos < hi)
        assert bool(torch.isinf(s.score[~eligible]).all()) and bool(torch.isfinite(s.score[eligible]).all())
    final = states[-1].x
    assert torch.equal(final[:, :P], PROMPT) and bool((final != MASK).all()) and int(final.max()) < V
    # generate() with a record gives the same canvas and a consistent trajectory
    x, rec = llada.generate(model, PROMPT, **kw, generator=gen(0), record=True)
    assert torch.equal(x, final) and torch.equal(rec.canvases, torch.stack([s.x for s in states]))
    assert torch.equal(rec.num_transfer, expected.repeat(1, G // block_length))
    assert rec.block_of_step.tolist() == [s.block for s in states[1:]]
    cs = rec.commit_step
    assert int(cs.min()) >= 1 and int(cs.max()) <= steps
    for b in range(3):
        for j in range(G):
            assert int(rec.canvases[cs[b, j] - 1, b, P + j]) == MASK
            assert int(rec.canvases[cs[b, j], b, P + j]) == int(x[b, P + j])
    assert bool(((rec.commit_conf > 0) & (rec.commit_conf <= 1)).all())
    if remasking == "low_confidence":
        torch.testing.assert_close(rec.commit_score, rec.commit_conf)


def test_one_token_per_step_when_steps_equal_gen_length():
    _, rec = llada.generate(TableModel(V, P + G), PROMPT, steps=G, gen_length=G, block_length=G, mask_id=MASK,
                            record=True)
    assert bool((rec.num_transfer == 1).all())
    assert sorted(rec.commit_step[0].tolist()) == list(range(1, G + 1))


def _table(seed=0):
    table = torch.randn(P + G, V, generator=gen(seed), dtype=torch.float64) * 2
    table[:, MASK] += 50.0                                             # must still never be proposed
    return table


def test_greedy_equals_argmax_for_a_context_independent_model_and_is_deterministic():
    table = _table()
    model = table_model(table)
    expected = table.clone()
    expected[:, MASK] = -math.inf
    expected = expected.argmax(-1)[P:]
    outs = [llada.generate(model, PROMPT, steps=6, gen_length=G, block_length=4, mask_id=MASK, generator=g)
            for g in (None, gen(1), gen(2))]
    for out in outs:
        assert torch.equal(out, outs[0])
        assert bool((out[:, P:] == expected).all())


def test_low_confidence_commits_in_order_of_confidence_random_does_not():
    table = _table(1)
    model = table_model(table)
    kw = dict(steps=G, gen_length=G, block_length=G, mask_id=MASK, record=True)
    _, lc = llada.generate(model, PROMPT, remasking="low_confidence", **kw)
    probs = torch.softmax(torch.cat([table[:, :MASK], table[:, MASK + 1:]], -1), -1)[P:]
    conf = probs.max(-1).values
    rank = torch.argsort(torch.argsort(-conf))
    assert lc.commit_step[0].tolist() == (rank + 1).tolist()          # most confident first
    torch.testing.assert_close(lc.commit_conf[0], conf)
    x_r, rnd = llada.generate(model, PROMPT, remasking="random", generator=gen(3), **kw)
    assert not torch.equal(rnd.commit_step, lc.commit_step)
    assert torch.equal(rnd.canvases[-1], lc.canvases[-1])             # same greedy tokens, other order
    # with a model that reads its context, the order changes the text too
    model = TableModel(V, P + G, seed=5)
    a = llada.generate(model, PROMPT, steps=G, gen_length=G, block_length=G, mask_id=MASK)
    b = llada.generate(model, PROMPT, steps=G, gen_length=G, block_length=G, mask_id=MASK, remasking="random",
                       generator=gen(4))
    assert not torch.equal(a, b)


def test_sampling_is_deterministic_for_a_seed():
    model = TableModel(V, P + G, seed=2)
    kw = dict(steps=6, gen_length=G, block_length=6, temperature=1.0, remasking="random", mask_id=MASK)
    a, b = (llada.generate(model, PROMPT, **kw, generator=gen(7)) for _ in range(2))
    c = llada.generate(model, PROMPT, **kw, generator=gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_gumbel_max_samples_softmax_at_temperature():
    logits = torch.tensor([1.0, 0.0, -1.0, 2.0, 0.5], dtype=torch.float64)
    N, tau = 40000, 0.7
    draws = llada.gumbel_max(logits.expand(N, -1), tau, gen(0))
    freq = torch.bincount(draws, minlength=5).double() / N
    p = torch.softmax(logits / tau, 0)
    assert bool(((freq - p).abs() < 4 * torch.sqrt(p * (1 - p) / N)).all())
    assert torch.equal(llada.gumbel_max(logits.expand(3, -1), 0.0), torch.full((3,), 3))


def test_confidence_ignores_the_temperature():
    table = _table(2)
    first = list(llada.generate_steps(table_model(table), PROMPT, steps=G, gen_length=G, block_length=G,
                                      temperature=0.5, mask_id=MASK, generator=gen(0)))[1]
    t = table.clone()
    t[:, MASK] = -math.inf
    probs = torch.softmax(t, -1)[None].expand(3, -1, -1)             # softmax(logits), no temperature
    torch.testing.assert_close(first.confidence, probs.gather(-1, first.proposal.unsqueeze(-1)).squeeze(-1))
    assert bool((first.proposal[:, P:] != t.argmax(-1)[P:]).any())    # it did sample, not argmax


def test_cfg_formula_and_unconditional_input():
    g = gen(9)
    cond, un = (torch.randn(P + G, V, generator=g, dtype=torch.float64) for _ in range(2))
    calls = []

    def model(x):
        calls.append(x.clone())
        sees_prompt = (x[:, :P] != MASK).all(1)
        return torch.where(sees_prompt[:, None, None], cond[None], un[None]).expand(x.shape[0], -1, -1).clone()

    kw = dict(steps=G, gen_length=G, block_length=G, mask_id=MASK)
    w = 1.5
    first = list(llada.generate_steps(model, PROMPT, cfg_scale=w, **kw))[1]
    x0 = calls[0]
    assert x0.shape == (2 * 3, P + G)                                  # conditional and unconditional in one batch
    assert torch.equal(x0[:3, :P], PROMPT) and bool((x0[3:, :P] == MASK).all())
    assert torch.equal(x0[3:, P:], x0[:3, P:])
    guided = un + (w + 1) * (cond - un)
    guided[:, MASK] = -math.inf
    assert bool((first.proposal[:, P:] == guided.argmax(-1)[P:]).all())
    torch.testing.assert_close(first.confidence[0, P:], torch.softmax(guided, -1).max(-1).values[P:])
    # cfg_scale = 0 is no guidance, and the formula tends to it as w -> 0
    plain = llada.generate(model, PROMPT, **kw)
    assert torch.equal(plain, llada.generate(model, PROMPT, cfg_scale=1e-9, **kw))
    c = cond.clone()
    c[:, MASK] = -math.inf
    assert bool((plain[:, P:] == c.argmax(-1)[P:]).all())
    assert not torch.equal(plain, llada.generate(model, PROMPT, cfg_scale=3.0, **kw))


@pytest.mark.parametrize("kw,match", [
    (dict(gen_length=10, block_length=4), "multiple of block_length"),
    (dict(steps=5, gen_length=8, block_length=4), "number of blocks"),
    (dict(remasking="lowest"), "remasking"),
    (dict(temperature=-0.5), "temperature"),
    (dict(cfg_scale=-1.0), "cfg_scale"),
    (dict(steps=0), "steps"),
    (dict(prompt=torch.tensor([[0, 2, 99]])), "vocabulary"),
    (dict(prompt=torch.tensor([[0, MASK, 3]])), "mask id"),
    (dict(prompt=torch.tensor([0, 2, 3])), "prompt"),
    (dict(prompt=torch.tensor([[0.0, 2.0]])), "prompt"),
    (dict(mask_id=V), "mask_id"),
    (dict(model=lambda x: torch.zeros(x.shape[0], x.shape[1] + 1, V)), "shape"),
])
def test_generate_bad_inputs_raise(kw, match):
    args = dict(model=table_model(_table()), prompt=PROMPT, steps=8, gen_length=8, block_length=8, mask_id=MASK)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        llada.generate(**args)


# =========================================================================== likelihood
def _toy(P, A, K, seed=0):
    toy = m.ToyDistribution.random(L=P + A, K=K, seed=seed)
    return toy, m.exact_denoiser(toy)


def _log_p_answer(toy, prompt, answer):
    seqs, p = toy.sequences, toy.probs
    P = len(prompt)
    pref = (seqs[:, :P] == torch.tensor(prompt)).all(1)
    full = pref & (seqs[:, P:] == torch.tensor(answer)).all(1)
    return float(torch.log(p[full].sum() / p[pref].sum()))


def _answers(A, K):
    return [[(i // K ** (A - 1 - j)) % K for j in range(A)] for i in range(K ** A)]


@pytest.mark.parametrize("P,A,K", [(2, 4, 2), (2, 3, 3), (0, 3, 3)])
def test_exact_elbos_agree_and_are_tight_for_the_exact_denoiser(P, A, K):
    toy, model = _toy(P, A, K, seed=P + A + K)
    prompt = [1, 0][:P]
    for answer in _answers(A, K):
        t_based = llada.exact_elbo_t_based(model, prompt, answer, mask_id=toy.mask_id)
        ll = llada.exact_elbo_llada(model, prompt, answer, mask_id=toy.mask_id)
        assert abs(t_based - ll) < 1e-10
        assert abs(ll - _log_p_answer(toy, prompt, answer)) < 1e-10


def test_exact_elbo_is_a_bound_for_an_imperfect_model_and_matches_chapter_2():
    toy, _ = _toy(2, 3, 2, seed=3)
    model = m.smoothed_denoiser(toy, 0.4)
    answers = _answers(3, 2)
    t_based = [llada.exact_elbo_t_based(model, [0, 1], a, mask_id=toy.mask_id) for a in answers]
    ll = [llada.exact_elbo_llada(model, [0, 1], a, mask_id=toy.mask_id) for a in answers]
    t_based, ll = torch.tensor(t_based, dtype=torch.float64), torch.tensor(ll, dtype=torch.float64)
    torch.testing.assert_close(t_based, ll, rtol=0, atol=1e-10)
    total = float(ll.exp().sum())
    assert 0.5 < total < 1 - 1e-6                                     # exp(ELBO) sums to less than 1
    # with an empty prompt it is minus chapter 2's exact continuous NELBO
    nelbo = m.exact_continuous_nelbo(toy, model, analytic=True)
    elbo = torch.tensor([llada.exact_elbo_llada(model, [], s.tolist(), mask_id=toy.mask_id) for s in toy.sequences],
                        dtype=torch.float64)
    torch.testing.assert_close(elbo, -nelbo, rtol=0, atol=1e-10)


def test_t_based_weights_are_beta_functions_and_eps_shifts_them():
    for A in range(1, 8):
        torch.testing.assert_close(llada.t_based_mask_weights(A), m.beta_time_weights(A), rtol=1e-12, atol=0)
    w0, w = llada.t_based_mask_weights(5), llada.t_based_mask_weights(5, 0.1)
    assert float(w[1]) < float(w0[1])                                 # the smallest t are never drawn


def test_stratified_mask_counts():
    for seed in range(20):
        n = llada.stratified_mask_counts(4, 16, gen(seed))                # spread evenly over 1..4 (up to
        counts = torch.bincount(n, minlength=5)[1:]                       # torch.round's half-to-even ties)
        assert int(counts.sum()) == 16 and bool(((counts - 4).abs() <= 1).all())
        assert sorted(llada.stratified_mask_counts(7, 7, gen(seed)).tolist()) == list(range(1, 8))
    probs = llada.stratified_count_probs(4, 16)
    torch.testing.assert_close(probs, torch.tensor([0, 3, 5, 3, 5], dtype=torch.float64) / 16)   # ties: even n
    for L, b in [(4, 15), (4, 4), (5, 7), (7, 9)]:                      # no ties
        torch.testing.assert_close(llada.stratified_count_probs(L, b)[1:], torch.full((L,), 1 / L, dtype=torch.float64))
    first = torch.tensor([int(llada.stratified_mask_counts(5, 3, gen(s))[0]) for s in range(2000)])
    freq = torch.bincount(first, minlength=6)[1:].double() / 2000
    assert bool(((freq - 0.2).abs() < 0.04).all())                    # k ~ U{1..L}


def test_elbo_llada_masks_exactly_the_stratified_counts_and_never_the_prompt():
    toy, exact = _toy(2, 4, 2)
    seen = []

    def model(x):
        seen.append(x.clone())
        return exact(x)

    llada.elbo_llada(model, [1, 0], [0, 1, 1, 0], mc=8, batch_size=4, mask_id=toy.mask_id, generator=gen(0))
    g = gen(0)
    for x in seen:
        n = llada.stratified_mask_counts(4, 4, g)
        torch.rand((4, 4), generator=g, dtype=torch.float64)         # the subset draw
        assert bool((x[:, :2] != toy.mask_id).all())
        assert torch.equal((x[:, 2:] == toy.mask_id).sum(1), n)


def test_monte_carlo_estimators_are_unbiased_and_llada_has_lower_variance():
    toy, _ = _toy(2, 4, 2, seed=5)
    model = m.smoothed_denoiser(toy, 0.3)
    prompt, answer, mid = [1, 0], [0, 1, 1, 0], toy.mask_id
    kw = dict(mc=1024, batch_size=16, mask_id=mid)
    ll = llada.elbo_llada(model, prompt, answer, generator=gen(0), **kw)
    tb = llada.elbo_t_based(model, prompt, answer, generator=gen(0), eps=1e-3, **kw)
    assert ll.samples.shape == (1024,) and ll.batch_means.shape == (64,)
    exact_eq6 = llada.exact_elbo_llada(model, prompt, answer, mask_id=mid)
    exact_ll = llada.exact_elbo_llada(model, prompt, answer, mask_id=mid, mc_batch_size=16)   # the code's counts
    exact_tb = llada.exact_elbo_t_based(model, prompt, answer, mask_id=mid, eps=1e-3)
    assert abs(ll.elbo - exact_ll) < 4 * ll.stderr
    assert abs(tb.elbo - exact_tb) < 4 * tb.stderr
    assert abs(exact_tb - exact_eq6) < 0.01 * abs(exact_eq6)          # eps = 1e-3 barely biases
    assert 1e-3 < abs(exact_ll - exact_eq6) < 0.05                     # rounding ties (A = 4, b = 16): a small bias
    # an odd mini-batch has no ties: then the code's estimator is unbiased for eq. 6 itself
    odd = llada.elbo_llada(model, prompt, answer, mc=1005, batch_size=15, mask_id=mid, generator=gen(1))
    exact_odd = llada.exact_elbo_llada(model, prompt, answer, mask_id=mid, mc_batch_size=15)
    assert exact_odd == pytest.approx(exact_eq6, abs=1e-12)
    assert abs(odd.elbo - exact_eq6) < 4 * odd.stderr
    assert float(ll.batch_means.var()) < 0.2 * float(tb.batch_means.var())
    assert float(ll.samples.var()) < float(tb.samples.var())


def test_score_choices_picks_the_most_likely_answer():
    toy, model = _toy(2, 3, 2, seed=8)
    prompt = [0, 1]
    answers = _answers(3, 2)
    truth = torch.tensor([_log_p_answer(toy, prompt, a) for a in answers], dtype=torch.float64)
    order = torch.argsort(truth, descending=True)
    choices = [answers[int(i)] for i in (order[3], order[0], order[-1])]
    exact = llada.score_choices(model, prompt, choices, estimator="exact", mask_id=toy.mask_id)
    assert exact.best == 1
    torch.testing.assert_close(exact.log_likelihoods, truth[[int(order[3]), int(order[0]), int(order[-1])]],
                               rtol=0, atol=1e-10)
    mc = llada.score_choices(model, prompt, choices, mc=64, batch_size=16, mask_id=toy.mask_id, generator=gen(1))
    assert mc.best == 1 and bool((mc.stderr > 0).all())


@pytest.mark.parametrize("call", [
    lambda mdl: llada.elbo_llada(mdl, [1, 0], [0, 1, 1, 0], mc=10, batch_size=4, mask_id=2),      # mc % batch
    lambda mdl: llada.elbo_llada(mdl, [1, 0], [], mask_id=2),                                      # no answer
    lambda mdl: llada.elbo_llada(mdl, [1, 0], [0, 2, 1, 0], mask_id=2),                            # [MASK] in answer
    lambda mdl: llada.elbo_t_based(mdl, [1, 0], [0, 1, 1, 0], eps=1.0, mask_id=2),
    lambda mdl: llada.elbo_t_based(mdl, [1, 0], [0, 1, 1, 7], mc=16, batch_size=16, mask_id=2),    # id >= V
    lambda mdl: llada.elbo_llada(mdl, [1, 0], [[0, 1], [1, 0]], mask_id=2),                        # 2 rows
    lambda mdl: llada.exact_elbo_llada(mdl, [], list(range(2)) * 7, mask_id=99),                   # too long
    lambda mdl: llada.score_choices(mdl, [1, 0], [[0, 1, 1, 0]], estimator="best", mask_id=2),
    lambda mdl: llada.score_choices(mdl, [1, 0], [], mask_id=2),
])
def test_likelihood_bad_inputs_raise(call):
    _, model = _toy(2, 4, 2)
    with pytest.raises(ValueError):
        call(model)


def test_works_with_the_course_transformer():
    from course_lib.nn import Transformer, TransformerConfig
    torch.manual_seed(0)
    net = Transformer(TransformerConfig(vocab_size=V, seq_len=P + G, n_layer=1, n_head=2, d_model=16))
    x0, pl = masked.pad_sft_batch(PROMPT.tolist(), [[3, 4, 5], [6], [7, 8, 0, 4]], length=P + G)
    out = sft_step_loss(net, x0, pl, MASK, gen(0))
    out.loss.backward()
    assert math.isfinite(float(out.loss.detach())) and net.tok_emb.weight.grad is not None
    x, rec = llada.generate(net, PROMPT, steps=6, gen_length=G, block_length=4, temperature=1.0, cfg_scale=0.5,
                            mask_id=MASK, generator=gen(1), record=True)
    assert x.shape == (3, P + G) and bool((x != MASK).all()) and rec.canvases.shape == (7, 3, P + G)
    est = llada.elbo_llada(net, PROMPT[0], x[0, P:], mc=8, batch_size=4, mask_id=MASK, generator=gen(2))
    assert est.elbo < 0


# =========================================================================== against the paper's pseudocode
def reference_generate(model, prompt, steps, gen_length, block_length, mask_id):
    """LLaDA's low-confidence remasking at temperature 0, written directly from the paper's description and
    generate.py's structure (REFERENCE.md 1.5), independently of course_lib.llada: one row at a time, plain
    Python loops. As in the course's sampler, the [MASK] logit is excluded before the argmax/softmax."""
    P = prompt.shape[1]
    x = torch.cat([prompt, torch.full((1, gen_length), mask_id, dtype=torch.long)], 1)
    num_blocks = gen_length // block_length
    per_block = steps // num_blocks
    for b in range(num_blocks):
        lo, hi = P + b * block_length, P + (b + 1) * block_length
        n_masked = int((x[0, lo:hi] == mask_id).sum())
        schedule = [n_masked // per_block + (1 if i < n_masked % per_block else 0) for i in range(per_block)]
        for k in schedule:
            logits = model(x)[0].double()
            logits[:, mask_id] = float("-inf")
            probs = torch.softmax(logits, -1)
            candidates = []
            for pos in range(lo, hi):
                if int(x[0, pos]) == mask_id:
                    tok = int(probs[pos].argmax())
                    candidates.append((float(probs[pos, tok]), pos, tok))
            candidates.sort(key=lambda c: -c[0])
            for _, pos, tok in candidates[:k]:
                x[0, pos] = tok
    return x


@pytest.mark.parametrize("gen_length,block_length,steps", [(12, 12, 12), (12, 4, 6), (12, 3, 8), (12, 6, 4)])
def test_generate_matches_an_independent_reimplementation(gen_length, block_length, steps):
    """Token for token at temperature 0, with a context-dependent model (a random bidirectional Transformer)."""
    from course_lib.nn import Transformer, TransformerConfig
    torch.manual_seed(3)
    net = Transformer(TransformerConfig(vocab_size=V, seq_len=20, n_layer=2, n_head=2, d_model=32)).eval()
    prompt = torch.tensor([[0, 3, 4, 5]])
    with torch.no_grad():
        want = reference_generate(net, prompt, steps, gen_length, block_length, MASK)
        got = llada.generate(net, prompt, steps=steps, gen_length=gen_length, block_length=block_length, mask_id=MASK)
    assert torch.equal(got, want)


def test_prompt_longer_than_the_context_raises():
    from course_lib.nn import Transformer, TransformerConfig
    net = Transformer(TransformerConfig(vocab_size=V, seq_len=10, n_layer=1, n_head=2, d_model=16)).eval()
    with pytest.raises(ValueError, match="context"):
        llada.generate(net, torch.tensor([[0, 3, 4, 5]]), steps=8, gen_length=8, block_length=8, mask_id=MASK)
