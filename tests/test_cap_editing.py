"""LLaDA 2.0's CAP confidence loss (course_lib.cap) and LLaDA 2.1's editing objective (course_lib.editing),
checked against loop transcriptions, fake models with known outputs and sampling statistics."""
import math

import pytest
import torch

from course_lib import cap, editing
from course_lib.nn import Transformer, TransformerConfig
from course_lib.masked import sft_forward_process, sft_loss

V, MASK, EOS, P, L = 14, 13, 12, 8, 16
EDIT_VOCAB = list(range(10)) + [EOS]


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return Transformer(TransformerConfig(vocab_size=V, seq_len=L, n_layer=1, n_head=2, d_model=16))


def addition_rows(n, seed=0):
    """Rows shaped like chapter 4's data: prompt of digits/+/=, answer of digits then [EOS]s."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 10, (n, L), generator=g)
    x[:, 3], x[:, 7] = 10, 11
    x[:, P + 4:] = EOS
    return x


# =========================================================================== CAP
def cap_loop(logits, x0, masked, mask_id):
    """Mean entropy (MASK column dropped) over masked positions whose argmax (MASK dropped) is x0."""
    total, n = 0.0, 0
    B, Lx, Vx = logits.shape
    for b in range(B):
        for i in range(Lx):
            row = [float(logits[b, i, v]) for v in range(Vx) if v != mask_id]
            ids = [v for v in range(Vx) if v != mask_id]
            best = ids[max(range(len(row)), key=lambda k: row[k])]
            if not masked[b, i] or best != int(x0[b, i]):
                continue
            m = max(row)
            z = sum(math.exp(r - m) for r in row)
            probs = [math.exp(r - m) / z for r in row]
            total += -sum(p * math.log(p) for p in probs if p > 0)
            n += 1
    return total / n if n else 0.0, n


def cap_case(seed=0, B=3, Lx=7):
    g = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(B, Lx, V, generator=g)
    # a huge [MASK] logit at some positions: only the [MASK]-excluded argmax may count as "correct"
    logits[:, ::2, MASK] = 30.0
    no_mask = logits.clone()
    no_mask[..., MASK] = float("-inf")
    wrong = torch.randint(0, 12, (B, Lx), generator=g)
    x0 = torch.where(torch.rand(B, Lx, generator=g) < 0.6, no_mask.argmax(-1), wrong)
    masked = torch.rand(B, Lx, generator=g) < 0.7
    return logits, x0, masked


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_confidence_loss_equals_loop(seed):
    logits, x0, masked = cap_case(seed)
    want, n = cap_loop(logits, x0, masked, MASK)
    assert n >= 3                                           # enough qualifying positions to mean something
    got = cap.confidence_loss(logits, x0, masked, MASK)
    assert got.item() == pytest.approx(want, rel=1e-5)


def test_confidence_loss_entropy_of_known_distributions():
    # uniform over the 13 non-[MASK] tokens, argmax (leftmost) = 0 = x0: entropy log 13
    logits = torch.zeros(1, 2, V)
    logits[0, 1, 4] = 100.0                                 # a point mass on 4: entropy 0
    x0 = torch.tensor([[0, 4]])
    masked = torch.tensor([[True, True]])
    assert cap.confidence_loss(logits, x0, masked, MASK).item() == pytest.approx(math.log(13) / 2, rel=1e-5)
    masked = torch.tensor([[True, False]])
    assert cap.confidence_loss(logits, x0, masked, MASK).item() == pytest.approx(math.log(13), rel=1e-5)


def test_confidence_loss_zero_with_a_gradient_path_when_nothing_qualifies():
    logits, x0, masked = cap_case(0)
    for m, x in ((torch.zeros_like(masked), x0),                                  # nothing masked
                 (torch.ones_like(masked), (logits[..., :MASK].argmax(-1) + 1) % 12)):   # all wrong
        leaf = logits.clone().requires_grad_(True)
        loss = cap.confidence_loss(leaf, x, m, MASK)
        assert loss.item() == 0.0 and loss.requires_grad
        loss.backward()
        assert torch.equal(leaf.grad, torch.zeros_like(leaf))


def test_confidence_loss_gradient_lowers_entropy_only_at_correct_positions():
    logits, x0, masked = cap_case(1)
    leaf = logits.clone().requires_grad_(True)
    loss = cap.confidence_loss(leaf, x0, masked, MASK)
    loss.backward()
    assert torch.isfinite(leaf.grad).all()
    no_mask = logits.clone()
    no_mask[..., MASK] = float("-inf")
    correct = masked & (no_mask.argmax(-1) == x0)
    assert torch.equal(leaf.grad[~correct], torch.zeros_like(leaf.grad[~correct]))   # wrong/visible: untouched
    assert bool((leaf.grad[correct].abs().sum(-1) > 0).all())
    assert torch.equal(leaf.grad[..., MASK], torch.zeros_like(leaf.grad[..., MASK]))  # the [MASK] logit: no gradient
    # one small SGD step: the same positions stay correct and their mean entropy goes down
    stepped = (leaf - 0.5 * leaf.grad).detach()
    assert cap.confidence_loss(stepped, x0, masked, MASK).item() < loss.item()
    stepped[..., MASK] = float("-inf")
    assert torch.equal(masked & (stepped.argmax(-1) == x0), correct)


def test_confidence_loss_bad_inputs():
    logits, x0, masked = cap_case(0)
    with pytest.raises(ValueError, match="logits"):
        cap.confidence_loss(logits[0], x0, masked, MASK)
    with pytest.raises(ValueError, match="shape"):
        cap.confidence_loss(logits, x0[:, :-1], masked, MASK)
    with pytest.raises(ValueError, match="shape"):
        cap.confidence_loss(logits, x0, masked.long(), MASK)
    with pytest.raises(ValueError, match="shape"):
        cap.confidence_loss(logits, x0, masked[:1], MASK)
    for bad in (V, -1):
        with pytest.raises(ValueError, match="mask_id"):
            cap.confidence_loss(logits, x0, masked, bad)


# =========================================================================== perturb
def perturb_case(B=200, Lx=100, seed=0):
    g = torch.Generator().manual_seed(seed)
    vocab = torch.tensor(EDIT_VOCAB)
    x0 = vocab[torch.randint(0, len(vocab), (B, Lx), generator=g)]
    masked = torch.rand(B, Lx, generator=g) < 0.3
    noisy = torch.where(masked, torch.full_like(x0, MASK), x0)
    editable = ~masked & (torch.rand(B, Lx, generator=g) < 0.8)
    return x0, noisy, editable


def test_perturb_replaces_only_editable_positions_with_other_vocab_tokens():
    x0, noisy, editable = perturb_case()
    out, replaced = editing.perturb(x0, noisy, editable, 0.4, EDIT_VOCAB, torch.Generator().manual_seed(1))
    assert replaced.dtype == torch.bool and not bool((replaced & ~editable).any())
    assert bool((out[replaced] != x0[replaced]).all())
    assert bool(torch.isin(out[replaced], torch.tensor(EDIT_VOCAB)).all())
    assert torch.equal(out[~replaced], noisy[~replaced])                    # masks and the rest untouched
    assert torch.equal(out == MASK, noisy == MASK)
    again, _ = editing.perturb(x0, noisy, editable, 0.4, EDIT_VOCAB, torch.Generator().manual_seed(1))
    assert torch.equal(again, out)


def test_perturb_rate_matches_edit_rate():
    x0 = torch.tensor(EDIT_VOCAB)[torch.randint(0, 11, (200, 100), generator=torch.Generator().manual_seed(0))]
    editable = torch.ones_like(x0, dtype=torch.bool)
    editable[:, :50] = False                                # 10,000 editable of 20,000
    for rate in (0.3, 0.05, 0.9):
        _, replaced = editing.perturb(x0, x0, editable, rate, EDIT_VOCAB, torch.Generator().manual_seed(2))
        n = 10_000
        sigma = math.sqrt(n * rate * (1 - rate))
        assert abs(int(replaced.sum()) - n * rate) < 4 * sigma
    _, replaced = editing.perturb(x0, x0, torch.ones_like(editable), 0.3, EDIT_VOCAB, torch.Generator().manual_seed(3))
    assert abs(int(replaced.sum()) - 6000) < 4 * math.sqrt(20_000 * 0.3 * 0.7)


@pytest.mark.parametrize("vocab", [EDIT_VOCAB, [12, 3, 0, 7, 5], [2, 9]])
def test_perturb_replacement_is_uniform_over_the_other_tokens(vocab):
    n = 20_000
    for tok in (min(vocab), max(vocab), vocab[len(vocab) // 2]):   # both ends of the sorted vocab (wrap-around)
        x0 = torch.full((n, 1), tok)
        out, replaced = editing.perturb(x0, x0, torch.ones_like(x0, dtype=torch.bool), 1.0, vocab,
                                        torch.Generator().manual_seed(tok))
        assert bool(replaced.all())
        others = [v for v in vocab if v != tok]
        counts = torch.tensor([int((out == v).sum()) for v in others], dtype=torch.float64)
        assert int(counts.sum()) == n
        expected = n / len(others)
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        dof = len(others) - 1
        assert chi2 < dof + 6 * math.sqrt(2 * dof) + 10, (tok, counts.tolist())


def test_perturb_rate_zero_changes_nothing():
    x0, noisy, editable = perturb_case(seed=4)
    out, replaced = editing.perturb(x0, noisy, editable, 0.0, EDIT_VOCAB, torch.Generator().manual_seed(0))
    assert torch.equal(out, noisy) and not bool(replaced.any())


def test_perturb_bad_inputs():
    x0, noisy, editable = perturb_case(B=4, Lx=6)
    for vocab in ([3], [3, 3, 4], [[1, 2], [3, 4]]):
        with pytest.raises(ValueError, match="edit_vocab"):
            editing.perturb(x0, noisy, editable, 0.2, vocab)
    for rate in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="edit_rate"):
            editing.perturb(x0, noisy, editable, rate, EDIT_VOCAB)
    with pytest.raises(ValueError, match="shape"):
        editing.perturb(x0, noisy, editable.long(), 0.2, EDIT_VOCAB)
    with pytest.raises(ValueError, match="shape"):
        editing.perturb(x0, noisy[:, :-1], editable, 0.2, EDIT_VOCAB)
    with pytest.raises(ValueError, match="edit_vocab"):                # an editable token outside the vocabulary
        editing.perturb(x0, noisy, editable, 0.2, [0, 1])


# =========================================================================== M2T + T2T loss
def t2t_transcription(logits, x0, visible_answer):
    """(1/B) sum_b sum_{visible answer i} CE(logits[b, i] without [MASK], x0[b, i]) / answer length."""
    total = 0.0
    for b in range(x0.shape[0]):
        for i in range(P, L):
            if visible_answer[b, i]:
                row = torch.cat([logits[b, i, :MASK], logits[b, i, MASK + 1:]]).double()
                total += -(torch.log_softmax(row, 0)[int(x0[b, i])]).item() / (L - P)
    return total / x0.shape[0]


def test_m2t_t2t_without_edits_or_drafts_is_sft_plus_a_visible_ce():
    model, x0 = tiny_model(), addition_rows(6)
    pl = torch.full((6,), P)
    loss, parts = editing.m2t_t2t_loss(model, x0, pl, MASK, 0.0, EDIT_VOCAB, torch.Generator().manual_seed(7))
    noisy, masked, p_mask = sft_forward_process(x0, pl, MASK, torch.Generator().manual_seed(7))
    logits = model(noisy)
    sft = sft_loss(logits, x0, noisy, masked, p_mask, pl, mask_id=MASK).item()
    assert parts["m2t"] == pytest.approx(sft, rel=1e-5)
    visible = ~masked
    visible[:, :P] = False
    assert bool(visible.any()) and bool(masked.any())
    assert parts["t2t"] == pytest.approx(t2t_transcription(logits.detach(), x0, visible), rel=1e-5)
    assert loss.item() == pytest.approx(parts["m2t"] + parts["t2t"], rel=1e-6)


class Recorder(torch.nn.Module):
    """A fake model: logits = w * table[position] (the same for every row), recording every input. The [MASK]
    column is the largest logit everywhere, so the argmax with [MASK] excluded is ``known``."""

    def __init__(self, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.table = torch.randn(L, V, generator=g)
        self.known = torch.randint(0, 12, (L,), generator=g)
        self.table[torch.arange(L), self.known] = 5.0
        self.table[:, MASK] = 9.0
        self.w = torch.nn.Parameter(torch.ones(()))
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x.clone())
        return self.w * self.table.expand(x.shape[0], L, V)


def test_m2t_t2t_with_edits_scores_the_input_the_model_saw():
    model, x0 = Recorder(), addition_rows(64, seed=1)
    pl = torch.full((64,), P)
    loss, parts = editing.m2t_t2t_loss(model, x0, pl, MASK, 0.5, EDIT_VOCAB, torch.Generator().manual_seed(3))
    assert len(model.inputs) == 1
    seen = model.inputs[0]
    _, masked, p_mask = sft_forward_process(x0, pl, MASK, torch.Generator().manual_seed(3))
    assert torch.equal(seen == MASK, masked)                           # the same masks as LLaDA's SFT corruption
    assert torch.equal(seen[:, :P], x0[:, :P])                         # the prompt is never touched
    changed = (seen != x0) & ~masked
    visible = ~masked & (torch.arange(L) >= P)
    assert not bool((changed & ~visible).any())
    rate = changed.sum() / visible.sum()                                # about edit_rate of the visible answer
    assert abs(rate.item() - 0.5) < 4 * math.sqrt(0.25 / visible.sum().item())
    logits = model.table.expand(64, L, V)
    want_t2t = t2t_transcription(logits, x0, visible)
    lp = torch.log_softmax(torch.cat([model.table[:, :MASK], model.table[:, MASK + 1:]], 1).double(), 1)
    want_m2t = sum(-lp[i, int(x0[b, i])].item() / float(p_mask[b]) / (L - P)
                   for b in range(64) for i in range(L) if masked[b, i]) / 64
    assert parts["t2t"] == pytest.approx(want_t2t, rel=1e-5) and parts["m2t"] == pytest.approx(want_m2t, rel=1e-5)


def test_m2t_t2t_draft_rate_one_fills_every_mask_with_the_argmax():
    model, x0 = Recorder(seed=2), addition_rows(16, seed=2)
    pl = torch.full((16,), P)
    loss, parts = editing.m2t_t2t_loss(model, x0, pl, MASK, 0.0, EDIT_VOCAB, torch.Generator().manual_seed(4),
                                       draft_rate=1.0)
    assert len(model.inputs) == 2                                        # the draft pass, then the scored pass
    first, second = model.inputs
    was_masked = first == MASK
    assert bool(was_masked.any()) and not bool((second == MASK).any())
    assert torch.equal(second[was_masked], model.known.expand(16, L)[was_masked])   # [MASK] excluded from the draft
    assert torch.equal(second[~was_masked], x0[~was_masked])
    assert parts["m2t"] == 0.0
    visible = torch.zeros_like(was_masked)
    visible[:, P:] = True                                                # everything in the answer is now visible
    assert parts["t2t"] == pytest.approx(t2t_transcription(model.table.expand(16, L, V), x0, visible), rel=1e-5)
    loss.backward()                                                      # differentiable through the scored pass
    assert model.w.grad is not None and model.w.grad.item() != 0.0


def test_m2t_t2t_is_differentiable():
    model, x0 = tiny_model(seed=1), addition_rows(8, seed=3)
    loss, _ = editing.m2t_t2t_loss(model, x0, torch.full((8,), P), MASK, 0.3, EDIT_VOCAB,
                                   torch.Generator().manual_seed(0), draft_rate=0.5)
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_m2t_t2t_bad_inputs():
    model, x0 = tiny_model(), addition_rows(4)
    pl = torch.full((4,), P)
    with pytest.raises(ValueError, match="draft_rate"):
        editing.m2t_t2t_loss(model, x0, pl, MASK, 0.2, EDIT_VOCAB, draft_rate=1.5)
    with pytest.raises(ValueError, match="edit_rate"):
        editing.m2t_t2t_loss(model, x0, pl, MASK, 2.0, EDIT_VOCAB)
    with pytest.raises(ValueError, match="mask id"):
        editing.m2t_t2t_loss(model, x0, pl, MASK, 0.2, EDIT_VOCAB + [MASK])
    with pytest.raises(ValueError, match="prompt length"):
        editing.m2t_t2t_loss(model, x0, torch.full((4,), L), MASK, 0.2, EDIT_VOCAB)


# =========================================================================== the language editor (lm_edit)
def test_train_editor_is_deterministic_and_lowers_the_loss():
    x = addition_rows(64, seed=3)
    pl = torch.full((64,), P)
    runs = []
    for _ in range(2):
        m, hist = editing.train_editor(tiny_model(seed=4), x, steps=30, batch_size=32, lr=3e-3, warmup=2,
                                       min_lr_ratio=0.1, edit_rate=0.2, draft_rate=0.5, edit_vocab=EDIT_VOCAB,
                                       mask_id=MASK, prompt_lengths=pl, seed=0, show_progress=False)
        runs.append((m, hist))
    (m1, h1), (m2, h2) = runs
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert h1["loss"] == h2["loss"] and not m1.training
    assert sum(h1["loss"][-5:]) / 5 < sum(h1["loss"][:5]) / 5          # it learns something in 30 steps


def test_shipped_language_editor_loads():
    from course_lib import checkpoints
    if "lm_edit" not in checkpoints.read_manifest():
        pytest.skip("no lm_edit in data/manifest.json")
    m = editing.load_editor("lm_edit")
    assert not m.training and m.config.vocab_size == 353 and m.config.attention == "bidirectional"
    assert m.recipe["editing"] == editing.LM_EDIT_RECIPE
