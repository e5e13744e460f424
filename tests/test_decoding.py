"""Parallel decoders (chapter 4): threshold decoding (Fast-dLLM / LLaDA 2.0), LLaDA 2.1 token editing,
Fast-dLLM Theorem 1. Fake models with hand-built probabilities make every set and count checkable by hand."""
import itertools
import math

import numpy as np
import pytest
import torch

from course_lib import decoding as d
from course_lib import llada

MASK, EOS = 1, 2


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- fake models
def dist(V, token, p):
    """log-probabilities over V ids: p on ``token``, the rest spread evenly over the other non-[MASK] ids;
    the [MASK] logit is +10, a trap that a decoder which forgot to exclude it would fall into."""
    row = torch.full((V,), (1 - p) / (V - 2), dtype=torch.float64)
    row[token] = p
    row[MASK] = 0.0
    out = row.log()
    out[MASK] = 10.0
    return out


class CanvasModel:
    """logits[b] = fn(canvas row b as a list) -> (L, V); counts the rows it was called on."""

    def __init__(self, fn, V):
        self.fn, self.V, self.rows_seen = fn, V, []

    def __call__(self, x):
        self.rows_seen.append(x.shape[0])
        return torch.stack([self.fn(row.tolist()) for row in x])


class TableModel(torch.nn.Module):
    """A fixed random bidirectional 'network' (float64): logits depend on the position and on the tokens."""

    def __init__(self, V, L, d=8, seed=0, scale=1.0):
        super().__init__()
        g = gen(seed)
        self.pos = torch.randn(L, V, generator=g, dtype=torch.float64) * scale
        self.emb = torch.randn(V, d, generator=g, dtype=torch.float64)
        self.mix = torch.randn(L, d, d, generator=g, dtype=torch.float64)
        self.out = torch.randn(d, V, generator=g, dtype=torch.float64) * scale
        self.pos[:, MASK] += 20.0                                # the [MASK] trap

    def forward(self, x):
        L = x.shape[1]
        ctx = self.emb[x].mean(1)
        h = torch.einsum("bd,lde->ble", ctx, self.mix[:L])
        return self.pos[:L][None] + 3 * torch.tanh(h) @ self.out


def no_eos(model):
    def f(x):
        out = model(x).clone()
        out[..., EOS] = float("-inf")
        return out
    return f


# =========================================================================== M2T / T2T sets by hand
def test_m2t_and_t2t_sets_on_a_hand_built_table():
    """V = 8, prompt [6, 7], one block of 4. Probabilities chosen by hand for each call; tau_mask 0.8, tau_edit 0.9.

    call 1: confidences (0.9, 0.5, 0.95, 0.3) on tokens (3, 4, 5, 0) -> M2T {0, 2}; nothing committed yet -> T2T {}
    call 2: pos0 now proposes 4 @ 0.95 (committed 3, 0.95 > 0.9) -> T2T {0}; masked pos1 4 @ 0.6, pos3 3 @ 0.4:
            none > 0.8 -> M2T falls back to the most confident masked position, {1}; pos2 proposes its own 5 -> no edit
    call 3: pos3 0 @ 0.7 -> fallback M2T {3}; pos1 0 @ 0.85 (< 0.9, no edit); pos2 3 @ 0.92 -> T2T {2}
    call 4 (block full: post step 1): every proposal equals the canvas -> no edit -> stop. 4 forwards."""
    V, P = 8, 2
    plan = [[(3, 0.9), (4, 0.5), (5, 0.95), (0, 0.3)],
            [(4, 0.95), (4, 0.6), (5, 0.99), (3, 0.4)],
            [(4, 0.99), (0, 0.85), (3, 0.92), (0, 0.7)],
            [(4, 0.99), (4, 0.99), (3, 0.99), (0, 0.99)]]
    calls = []

    def fn(row):
        k = len(calls)
        calls.append(row)
        return torch.stack([dist(V, 6, 0.9)] * P + [dist(V, t, p) for t, p in plan[k]])

    prompt = torch.tensor([[6, 7]])
    r = d.edit_decode(CanvasModel(fn, V), prompt, 4, 4, 0.8, 0.9, MASK, EOS, record=True)
    def answer_positions(mask):
        return set((torch.nonzero(mask).flatten() - P).tolist())
    got = [(answer_positions(s.m2t[0]), answer_positions(s.t2t[0])) for s in r.steps]
    assert got == [({0, 2}, set()), ({1}, {0}), ({3}, {2}), (set(), set())]
    assert r.x[0].tolist() == [6, 7, 4, 4, 3, 0]
    assert r.forwards.tolist() == [4] and r.tokens.tolist() == [4] and r.tpf == 1.0
    assert r.events == {"m2t": 4, "t2t": 2, "post_steps": 1, "model_calls": 4}
    assert [s.post.tolist() for s in r.steps] == [[False], [False], [False], [True]]
    assert r.steps[1].edits(0) == [(P + 0, 3, 4)] and r.steps[2].edits(0) == [(P + 2, 5, 3)]
    assert r.edits.tolist() == [[2, 0, P + 0, 3, 4], [3, 0, P + 2, 5, 3]]
    assert r.drafts.tolist() == [[3, 4, 5, 0]]
    # the canvas the model saw at each call is the recorded x_before; confidences are the hand probabilities
    for k, s in enumerate(r.steps):
        assert calls[k] == s.x_before[0].tolist()
        assert np.allclose(s.confidence[0, P:].numpy(), [p for _, p in plan[k]])
        assert s.proposal[0, P:].tolist() == [t for t, _ in plan[k]]
        assert torch.equal(s.x_after[0], s.x_before[0].where(~(s.m2t[0] | s.t2t[0]), s.proposal[0]))
    assert torch.isnan(r.steps[0].confidence[0, :P]).all()
    # the same table without editing: only the M2T sets, and the edited tokens stay as drafted
    calls.clear()
    r0 = d.edit_decode(CanvasModel(fn, V), prompt, 4, 4, 0.8, 0.9, MASK, EOS, editing=False, record=True)
    assert r0.x[0].tolist() == [6, 7, 3, 4, 5, 0] and r0.forwards.tolist() == [3]
    assert [answer_positions(s.m2t[0]) for s in r0.steps] == [{0, 2}, {1}, {3}]


# =========================================================================== threshold decoding
V, P, G = 12, 3, 8
PROMPT = torch.tensor([[4, 5, 6], [7, 3, 9], [11, 10, 3], [5, 5, 5]])


@pytest.mark.parametrize("block_length", [8, 4, 2])
def test_threshold_one_commits_one_token_per_step_and_equals_llada_one_token_per_step(block_length):
    model = no_eos(TableModel(V, P + G, seed=1))
    r = d.threshold_decode(model, PROMPT, G, block_length, 1.0, MASK, EOS, record=True)
    assert all(int(s.m2t[b].sum()) == 1 for s in r.steps for b in range(len(PROMPT)))
    assert r.forwards.tolist() == [G] * 4 and r.tokens.tolist() == [G] * 4 and r.tpf == 1.0
    # an independent implementation: LLaDA's low-confidence remasking with steps = gen_length
    want = llada.generate(model, PROMPT, steps=G, gen_length=G, block_length=block_length, mask_id=MASK)
    assert torch.equal(r.x, want)
    # even when the model is certain (confidence exactly 1.0 everywhere): "> 1.0" never holds
    def certain(x):
        out = torch.full((x.shape[0], x.shape[1], V), float("-inf"), dtype=torch.float64)
        out[..., 3] = 0.0
        return out
    c = d.threshold_decode(certain, PROMPT, G, block_length, 1.0, MASK, EOS, record=True)
    assert float(c.steps[0].confidence[0, P]) == 1.0 and c.forwards.tolist() == [G] * 4
    assert all(int(s.m2t[b].sum()) == 1 for s in c.steps for b in range(len(PROMPT)))


def _argmax_blocks(model, prompt, G, block_length):
    """Threshold 0, re-implemented: each block is filled with the argmax of one forward pass."""
    x = torch.cat([prompt, torch.full((len(prompt), G), MASK)], 1)
    Pn = prompt.shape[1]
    for lo in range(Pn, Pn + G, block_length):
        logits = model(x).clone()
        logits[..., MASK] = float("-inf")
        x[:, lo:lo + block_length] = logits.argmax(-1)[:, lo:lo + block_length]
    return x


@pytest.mark.parametrize("block_length", [8, 4])
def test_threshold_zero_commits_the_whole_block_in_one_step(block_length):
    model = no_eos(TableModel(V, P + G, seed=2))
    r = d.threshold_decode(model, PROMPT, G, block_length, 0.0, MASK, EOS, record=True)
    nb = G // block_length
    assert r.forwards.tolist() == [nb] * 4 and r.tpf == block_length
    for k, s in enumerate(r.steps):
        lo = P + k * block_length
        assert bool(s.m2t[:, lo:lo + block_length].all()) and int(s.m2t.sum()) == 4 * block_length
    assert torch.equal(r.x, _argmax_blocks(model, PROMPT, G, block_length))


def test_threshold_decoding_hand_rule_every_step():
    """Each step commits exactly {masked in block: conf > tau} or, if empty, the single most confident one;
    committed tokens and the prompt never change; the [MASK] trap is never taken."""
    model = TableModel(V, P + G, seed=5, scale=2.0)
    tau = 0.45
    r = d.threshold_decode(model, PROMPT, G, 4, tau, MASK, EOS, record=True)
    for s in r.steps:
        for b in torch.nonzero(s.active).flatten().tolist():
            lo = P + 4 * int(s.block[b])
            pos = torch.arange(P + G)
            masked = (s.x_before[b] == MASK) & (pos >= lo) & (pos < lo + 4)
            want = masked & (s.confidence[b] > tau)
            if not bool(want.any()):
                c = torch.where(masked, s.confidence[b], torch.tensor(-1.0, dtype=torch.float64))
                want = pos == int(c.argmax())
            assert torch.equal(s.m2t[b], want)
            assert not bool(s.t2t.any())
            committed = s.x_before[b] != MASK
            assert torch.equal(s.x_after[b][committed], s.x_before[b][committed])
    assert torch.equal(r.x[:, :P], PROMPT) and not bool((r.x == MASK).any())


def test_editing_false_equals_threshold_decode_and_tau_edit_one_adds_only_post_calls():
    model = TableModel(V, P + G, seed=7, scale=2.0)
    for tau in (0.0, 0.3, 0.6, 0.9, 1.0):
        a = d.threshold_decode(model, PROMPT, G, 4, tau, MASK, EOS, record=True)
        b = d.edit_decode(model, PROMPT, G, 4, tau, 0.2, MASK, EOS, editing=False, record=True)
        assert torch.equal(a.x, b.x) and torch.equal(a.forwards, b.forwards) and torch.equal(a.tokens, b.tokens)
        assert a.events == b.events and len(a.steps) == len(b.steps)
        assert all(torch.equal(s.m2t, t.m2t) for s, t in zip(a.steps, b.steps))
        # through the editing path: tau_edit = 1 never edits (p > 1 is impossible)
        c = d.edit_decode(model, PROMPT, G, 4, tau, 1.0, MASK, EOS, max_post_steps=0)
        assert torch.equal(a.x, c.x) and torch.equal(a.forwards, c.forwards)
        e = d.edit_decode(model, PROMPT, G, 4, tau, 1.0, MASK, EOS, max_post_steps=5)
        assert torch.equal(a.x, e.x) and torch.equal(e.forwards, a.forwards + a.blocks)   # one idle post call per block
        assert e.events["t2t"] == 0


# =========================================================================== editing
REF = [3, 4]


def _drafter(V=8):
    """Prompt [5]; answer of 2 positions (one block). Position 0 is drafted wrong (7 @ 0.9) while position 1 is
    masked; once position 1 is filled, the model is confident (0.95) in the right token 3 at position 0.
    Position 1 is only confident (4 @ 0.9) after position 0 is committed."""
    def fn(row):
        a0, a1 = row[1], row[2]
        p0 = dist(V, 7, 0.9) if a1 == MASK else dist(V, 3, 0.95)
        p1 = dist(V, 4, 0.3) if a0 == MASK else dist(V, 4, 0.9)
        return torch.stack([dist(V, 5, 0.9), p0, p1])
    return CanvasModel(fn, V)


def test_t2t_repairs_a_wrong_draft_and_edit_repairs_counts_it():
    prompt, ref = torch.tensor([[5]]), torch.tensor([REF])
    r = d.edit_decode(_drafter(), prompt, 2, 2, 0.8, 0.9, MASK, EOS)
    # call 1: M2T {0} (7 @ 0.9, wrong; position 1 at 0.3 stays masked); call 2: M2T {1} (4 @ 0.9), the model
    # still saw position 1 masked so it still backs 7; call 3 (post step 1): T2T {0}: 7 -> 3 @ 0.95;
    # call 4 (post step 2): no edit -> stop
    assert r.x[0, 1:].tolist() == REF and r.forwards.tolist() == [4]
    assert r.drafts.tolist() == [[7, 4]] and r.edits.tolist() == [[3, 0, 1, 7, 3]]
    assert d.edit_repairs(r, ref) == (1, 1, 0)
    assert d.edit_repairs(r, torch.tensor([[5] + REF])) == (1, 1, 0)          # the whole canvas works too
    # the playback frames of the demo: one per call, canvas after the step, M2T positions, T2T (pos, old, new)
    rec = d.edit_decode(_drafter(), prompt, 2, 2, 0.8, 0.9, MASK, EOS, record=True)
    frames = d.playback_frames(rec, 0, reference=ref)
    assert [f["tokens"] for f in frames] == [[5, 7, MASK], [5, 7, 4], [5, 3, 4], [5, 3, 4]]
    assert [f["m2t"] for f in frames] == [[1], [2], [], []]
    assert [f["t2t"] for f in frames] == [[], [], [(1, 7, 3)], []]
    assert [f["post"] for f in frames] == [False, False, True, True] and frames[0]["reference"] == REF
    assert math.isnan(frames[0]["conf"][0]) and frames[0]["conf"][1:] == pytest.approx([0.9, 0.3])
    with pytest.raises(ValueError, match="record=True"):
        d.playback_frames(r)
    # a reference under which the edit was harmful: token 7 was right, 3 is wrong
    assert d.edit_repairs(r, torch.tensor([[7, 4]])) == (0, 0, 1)
    # without editing the draft error stays
    r0 = d.edit_decode(_drafter(), prompt, 2, 2, 0.8, 0.9, MASK, EOS, editing=False)
    assert r0.x[0, 1:].tolist() == [7, 4] and r0.forwards.tolist() == [2]
    assert d.edit_repairs(r0, ref) == (1, 0, 0)
    # tau_edit above the model's confidence: no repair either
    r1 = d.edit_decode(_drafter(), prompt, 2, 2, 0.8, 0.96, MASK, EOS)
    assert r1.x[0, 1:].tolist() == [7, 4] and r1.forwards.tolist() == [3] and d.edit_repairs(r1, ref) == (1, 0, 0)


def _oscillator(V=8):
    """One generated position: masked -> 3 @ 0.99; then 3 -> proposes 4 @ 0.99, 4 -> proposes 3 @ 0.99: an edit
    at every post-completion step, forever."""
    def fn(row):
        a = row[1]
        tok = 3 if a in (MASK, 4) else 4
        return torch.stack([dist(V, 5, 0.9), dist(V, tok, 0.99)])
    return CanvasModel(fn, V)


@pytest.mark.parametrize("cap", [0, 1, 2, 5, 16])
def test_post_step_cap_stops_an_oscillating_model(cap):
    r = d.edit_decode(_oscillator(), torch.tensor([[5]]), 1, 1, 0.5, 0.5, MASK, EOS, max_post_steps=cap, record=True)
    assert r.forwards.tolist() == [1 + cap]                      # 1 M2T call + `cap` edit-only calls
    assert r.events["t2t"] == cap and r.events["post_steps"] == cap
    assert int(r.x[0, 1]) == (3 if cap % 2 == 0 else 4)
    assert [bool(s.post[0]) for s in r.steps] == [False] + [True] * cap


def test_multi_block_edits_earlier_blocks_only_when_enabled():
    """Blocks of 2, prompt [5]. Position 0 is predicted 3 (0.99) while block 1 is masked, 6 (0.99) once it is not.

    block 0: call 1 commits positions 0, 1; call 2 is its post step (no edit) -> done.
    block 1: call 3 commits positions 2, 3 (the model still saw them masked); call 4 (post step 1) sees block 1
    filled: with multi_block it edits position 0 from 3 to 6 (an earlier block); call 5 (post step 2) edits
    nothing -> done. Without multi_block position 0 is out of reach: call 4 edits nothing -> done."""
    Vm = 8

    def fn(row):
        a = row[1:]
        p0 = dist(Vm, 3, 0.99) if a[2] == MASK and a[3] == MASK else dist(Vm, 6, 0.99)
        return torch.stack([dist(Vm, 5, 0.9), p0, dist(Vm, 4, 0.99), dist(Vm, 5, 0.99), dist(Vm, 7, 0.99)])

    prompt = torch.tensor([[5]])
    single = d.edit_decode(CanvasModel(fn, Vm), prompt, 4, 2, 0.9, 0.9, MASK, EOS, record=True)
    assert single.x[0, 1:].tolist() == [3, 4, 5, 7] and single.events["t2t"] == 0
    assert single.forwards.tolist() == [4] and [int(s.block[0]) for s in single.steps] == [0, 0, 1, 1]
    multi = d.edit_decode(CanvasModel(fn, Vm), prompt, 4, 2, 0.9, 0.9, MASK, EOS, multi_block=True, record=True)
    assert multi.x[0, 1:].tolist() == [6, 4, 5, 7] and multi.forwards.tolist() == [5]
    assert multi.edits.tolist() == [[4, 0, 1, 3, 6]]             # call 4, row 0, canvas position 1, 3 -> 6
    assert [int(s.block[0]) for s in multi.steps] == [0, 0, 1, 1, 1]
    assert [bool(s.post[0]) for s in multi.steps] == [False, True, False, True, True]
    assert multi.steps[3].edits(0) == [(1, 3, 6)]
    assert d.edit_repairs(multi, torch.tensor([[6, 4, 5, 7]])) == (1, 1, 0)


# =========================================================================== stopping, accounting, batching
def _two_block_model(V=12):
    """Prompt token 10: answer 3 4 EOS 5 | 6 7 8 9 (EOS in block 0). Prompt token 11: 3 4 5 6 | 7 EOS 8 9.
    Each position is predicted at 0.7 whatever the canvas."""
    answers = {10: [3, 4, EOS, 5, 6, 7, 8, 9], 11: [3, 4, 5, 6, 7, EOS, 8, 9]}

    def fn(row):
        return torch.stack([dist(V, 5, 0.9)] + [dist(V, t, 0.7) for t in answers[row[0]]])[:len(row)]
    return CanvasModel(fn, V)


def test_eos_stopping_and_tpf_accounting_by_hand():
    prompt = torch.tensor([[10], [11]])
    model = _two_block_model()
    r = d.threshold_decode(model, prompt, 8, 4, 1.0, MASK, EOS)
    # row 0 stops after block 0 (4 one-token steps), row 1 decodes both blocks (8 steps)
    assert r.forwards.tolist() == [4, 8] and r.tokens.tolist() == [3, 6] and r.blocks.tolist() == [1, 2]
    assert r.x[0, 1:].tolist() == [3, 4, EOS, 5, EOS, EOS, EOS, EOS]       # block 1 never decoded: EOS
    assert r.x[1, 1:].tolist() == [3, 4, 5, 6, 7, EOS, 8, 9]
    assert r.tpf == pytest.approx((3 + 6) / (4 + 8))
    assert r.row_tpf.tolist() == pytest.approx([3 / 4, 6 / 8])
    assert model.rows_seen == [2, 2, 2, 2, 1, 1, 1, 1]                     # finished rows are not decoded
    rec = d.threshold_decode(_two_block_model(), prompt, 8, 4, 1.0, MASK, EOS, record=True)
    assert [bool(s.active[0]) for s in rec.steps] == [True] * 4 + [False] * 4
    assert len(d.playback_frames(rec, 0)) == 4 and len(d.playback_frames(rec, 1)) == 8
    assert [int(s.block[0]) for s in rec.steps] == [0] * 4 + [-1] * 4
    # threshold 0: one call per block
    r0 = d.threshold_decode(_two_block_model(), prompt, 8, 4, 0.0, MASK, EOS)
    assert r0.forwards.tolist() == [1, 2] and r0.tokens.tolist() == [3, 6] and r0.tpf == pytest.approx(9 / 3)
    # with editing (nothing to edit): one idle post call per decoded block
    r1 = d.edit_decode(_two_block_model(), prompt, 8, 4, 0.0, 0.5, MASK, EOS)
    assert r1.forwards.tolist() == [2, 4] and r1.tpf == pytest.approx(9 / 6)
    # no EOS at all: tokens = gen_length
    r2 = d.threshold_decode(_two_block_model(), torch.tensor([[11]]), 4, 4, 0.0, MASK, EOS)
    assert r2.tokens.tolist() == [4] and r2.blocks.tolist() == [1]


@pytest.mark.parametrize("kind", ["threshold", "edit", "edit_multi"])
def test_rows_decode_independently_of_the_batch(kind):
    model = TableModel(7, P + G, seed=11, scale=1.5)               # small vocabulary: EOS appears, rows stop early
    prompt = torch.tensor([[4, 5, 6], [3, 3, 3], [6, 5, 4], [0, 4, 3], [5, 0, 6], [6, 6, 3]])
    run = {"threshold": lambda p: d.threshold_decode(model, p, G, 2, 0.35, MASK, EOS),
           "edit": lambda p: d.edit_decode(model, p, G, 2, 0.35, 0.3, MASK, EOS, max_post_steps=3),
           "edit_multi": lambda p: d.edit_decode(model, p, G, 2, 0.35, 0.3, MASK, EOS, max_post_steps=3,
                                                 multi_block=True)}[kind]
    batch = run(prompt)
    assert len(set(batch.forwards.tolist())) > 1 and bool((batch.tokens < G).any())   # rows really differ
    for b in range(len(prompt)):
        alone = run(prompt[b:b + 1])
        assert torch.equal(alone.x[0], batch.x[b])
        assert int(alone.forwards[0]) == int(batch.forwards[b]) and int(alone.tokens[0]) == int(batch.tokens[b])
    assert batch.tpf == pytest.approx(float(batch.tokens.sum()) / float(batch.forwards.sum()))


def test_prompt_tokens_never_change_even_when_the_model_wants_to_edit_them():
    """A model that is certain every position (prompt included) should be token 3: the prompt stays."""
    def fn(row):
        return torch.stack([dist(8, 3, 0.999)] * len(row))
    prompt = torch.tensor([[5, 6, 7], [4, 4, 4]])
    for multi in (False, True):
        r = d.edit_decode(CanvasModel(fn, 8), prompt, 4, 2, 0.5, 0.0, MASK, EOS, multi_block=multi, record=True)
        assert torch.equal(r.x[:, :3], prompt) and bool((r.x[:, 3:] == 3).all())
        assert not any(bool(s.t2t[:, :3].any()) for s in r.steps)


# =========================================================================== temperature
def test_temperature_samples_from_tempered_softmax_and_confidence_is_untempered():
    """One position, logits fixed: the empirical frequency of the committed token follows softmax(l / T)."""
    Vt, T, n = 6, 2.0, 4000
    logit = torch.tensor([0.0, 0.0, 0.0, 2.0, 1.0, -1.0], dtype=torch.float64)
    logit[MASK] = 50.0                                            # the trap

    def model(x):
        out = torch.zeros(x.shape[0], x.shape[1], Vt, dtype=torch.float64)
        out[:, 1] = logit
        return out
    prompt = torch.full((n, 1), 4)
    r = d.threshold_decode(model, prompt, 1, 1, 0.0, MASK, EOS, temperature=T, generator=gen(0), record=True)
    keep = torch.tensor([v != MASK for v in range(Vt)])
    want = torch.softmax(logit[keep] / T, 0)
    freq = torch.bincount(r.x[:, 1], minlength=Vt)[keep].double() / n
    assert float((freq - want).abs().max()) < 0.03
    p = torch.softmax(logit[keep], 0)                             # un-tempered
    conf = r.steps[0].confidence[:, 1]
    tok = r.x[:, 1]
    ids = torch.arange(Vt)[keep]
    for v, pv in zip(ids.tolist(), p.tolist()):
        if bool((tok == v).any()):
            assert torch.allclose(conf[tok == v], torch.tensor(pv, dtype=torch.float64))
    # seeded: same generator seed, same decode
    again = d.threshold_decode(model, prompt, 1, 1, 0.0, MASK, EOS, temperature=T, generator=gen(0))
    assert torch.equal(again.x, r.x)


def test_a_course_transformer_decodes():
    from course_lib.nn import Transformer, TransformerConfig
    torch.manual_seed(0)
    net = Transformer(TransformerConfig(vocab_size=V, seq_len=16, n_layer=1, n_head=2, d_model=16)).eval()
    r = d.edit_decode(net, PROMPT, G, 4, 0.9, 0.5, MASK, EOS, max_post_steps=2)
    assert r.x.shape == (4, P + G) and not bool((r.x == MASK).any()) and torch.equal(r.x[:, :P], PROMPT)
    with pytest.raises(ValueError, match="context"):
        d.threshold_decode(net, PROMPT, 16, 4, 0.9, MASK, EOS)
    for kw in (dict(prompt=torch.tensor([[4, V]])), dict(mask_id=V), dict(eos_id=V)):  # checked before the embedding
        args = dict(prompt=PROMPT, mask_id=MASK, eos_id=EOS)
        args.update(kw)
        with pytest.raises(ValueError, match="vocabulary"):
            d.threshold_decode(net, args["prompt"], G, 4, 0.9, args["mask_id"], args["eos_id"])
    drop = Transformer(TransformerConfig(vocab_size=V, seq_len=16, n_layer=1, n_head=2, d_model=16, dropout=0.1))
    with pytest.raises(ValueError, match="eval"):
        d.threshold_decode(drop, PROMPT, G, 4, 0.9, MASK, EOS)


# =========================================================================== validation
M = TableModel(V, P + G)


def WIDTH(x):
    """Fixed logits of width V: only the logits' width tells the decoder the vocabulary size."""
    return torch.zeros(x.shape[0], x.shape[1], V, dtype=torch.float64)


@pytest.mark.parametrize("kw,match", [
    (dict(threshold=-0.1), "threshold"), (dict(threshold=1.5), "threshold"), (dict(threshold=math.nan), "threshold"),
    (dict(threshold=True), "threshold"), (dict(threshold="0.5"), "threshold"),
    (dict(block_length=3), "divide"), (dict(gen_length=0), "gen_length"), (dict(block_length=0), "block_length"),
    (dict(gen_length=-8), "gen_length"),
    (dict(prompt=PROMPT.float()), "long"), (dict(prompt=PROMPT[0]), "2-D"), (dict(prompt=PROMPT.tolist()), "2-D"),
    (dict(prompt=torch.tensor([[4, V]]), model=WIDTH), "vocabulary"),
    (dict(prompt=torch.tensor([[4, MASK]])), "mask id"),
    (dict(prompt=torch.tensor([[4, -1]])), "negative"),
    (dict(mask_id=V, model=WIDTH), "vocabulary"), (dict(eos_id=V + 3, model=WIDTH), "vocabulary"),
    (dict(eos_id=MASK), "differ"),
    (dict(temperature=-1.0), "temperature"), (dict(model=lambda x: torch.zeros(x.shape[0], x.shape[1])), "logits"),
    (dict(model="not a model"), "callable"), (dict(model=lambda x: WIDTH(x) * math.nan), "NaN"),
    (dict(model=lambda x: WIDTH(x) - math.inf), "finite"),
])
def test_threshold_decode_bad_inputs_raise(kw, match):
    args = dict(model=M, prompt=PROMPT, gen_length=G, block_length=4, threshold=0.5, mask_id=MASK, eos_id=EOS)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        d.threshold_decode(**args)


@pytest.mark.parametrize("kw,match", [
    (dict(tau_mask=1.01), "threshold"), (dict(tau_edit=-0.5), "tau_edit"), (dict(tau_edit=math.nan), "tau_edit"),
    (dict(tau_edit=math.nan, editing=False), "tau_edit"), (dict(max_post_steps=-1), "max_post_steps"),
    (dict(max_post_steps=1.5), "max_post_steps"), (dict(editing=1), "boolean"), (dict(block_length=5), "divide"),
])
def test_edit_decode_bad_inputs_raise(kw, match):
    args = dict(model=M, prompt=PROMPT, gen_length=G, block_length=4, tau_mask=0.5, tau_edit=0.5, mask_id=MASK,
                eos_id=EOS)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        d.edit_decode(**args)


def test_edit_repairs_bad_reference_raises():
    r = d.threshold_decode(M, PROMPT, G, 4, 0.5, MASK, EOS)
    for bad in (torch.zeros(4, 5, dtype=torch.long), torch.zeros(3, G, dtype=torch.long), torch.zeros(4, G)):
        with pytest.raises(ValueError, match="reference"):
            d.edit_repairs(r, bad)


# =========================================================================== Fast-dLLM Theorem 1
def _independent(p):
    """Marginals, eps, argmaxes, TV and KL by brute force over every sequence (numpy, itertools)."""
    p = np.asarray(p, dtype=np.float64)
    n, V = p.ndim, p.shape[0]
    seqs = list(itertools.product(range(V), repeat=n))
    marg = np.zeros((n, V))
    for s in seqs:
        for j, v in enumerate(s):
            marg[j, v] += p[s]
    q = {s: np.prod([marg[j, v] for j, v in enumerate(s)]) for s in seqs}
    tv = 0.5 * sum(abs(p[s] - q[s]) for s in seqs)
    kl = sum(p[s] * math.log(p[s] / q[s]) for s in seqs if p[s] > 0)
    eps = max(1 - marg.max(1))
    joint_arg = max(seqs, key=lambda s: p[s])
    return marg, eps, joint_arg, tuple(marg.argmax(1)), tv, kl


def _hb(e):
    return 0.0 if e in (0.0, 1.0) else -e * math.log(e) - (1 - e) * math.log(1 - e)


def _random_peaked_joint(n, V, rng):
    """A random joint: a point mass on a random sequence mixed with a random full distribution."""
    p = rng.dirichlet(np.full(V ** n, 0.3)).reshape((V,) * n)
    star = tuple(rng.integers(V, size=n))
    lam = rng.uniform(0.0, 0.6)
    p = lam * p
    p[star] += 1 - lam
    return p


def test_theorem_holds_on_random_joints_that_satisfy_its_condition():
    rng = np.random.default_rng(0)
    checked = 0
    for trial in range(150):
        n, V = int(rng.integers(2, 5)), int(rng.integers(2, 5))
        p = _random_peaked_joint(n, V, rng)
        c = d.parallel_decoding_check(torch.tensor(p))
        marg, eps, joint_arg, prod_arg, tv, kl = _independent(p)
        np.testing.assert_allclose(c.marginals.numpy(), marg, atol=1e-12)
        assert c.epsilon == pytest.approx(eps, abs=1e-12) and c.tv == pytest.approx(tv, abs=1e-12)
        assert c.kl == pytest.approx(kl, abs=1e-10) and c.product_argmax == prod_arg
        assert c.tv_bound == pytest.approx((3 * n - 1) / 2 * eps)
        assert c.kl_bound == pytest.approx((n - 1) * (_hb(eps) + eps * math.log(V - 1)))
        if (n + 1) * eps < 1:
            checked += 1
            assert c.condition and c.same_argmax and c.joint_argmax == joint_arg
            assert tv < (3 * n - 1) / 2 * eps + 1e-12 and c.tv_within_bound
            assert kl < (n - 1) * (_hb(eps) + eps * math.log(V - 1)) + 1e-12 and c.kl_within_bound
        else:
            assert not c.condition
    assert checked > 25


def test_theorem_fails_on_counterexamples_when_the_condition_is_violated():
    # 2 positions, 2 values: marginals (0.6, 0.4) and (0.3, 0.7) -> parallel decoding says (0, 1), the joint (1, 1)
    p = torch.tensor([[0.3, 0.3], [0.0, 0.4]], dtype=torch.float64)
    c = d.parallel_decoding_check(p)
    assert c.epsilon == pytest.approx(0.4) and not c.condition
    assert c.product_argmax == (0, 1) and c.joint_argmax == (1, 1) and not c.same_argmax
    # the one-off family is tight: agreement just below eps = 1/(n+1), disagreement above it
    for n, V in [(2, 2), (3, 3), (4, 2)]:
        lo = d.parallel_decoding_check(d.example_joint(n, V, 1 / (n + 1) - 0.01, seed=n, kind="one_off"))
        hi = d.parallel_decoding_check(d.example_joint(n, V, 1 / (n + 1) + 0.01, seed=n, kind="one_off"))
        assert lo.condition and lo.same_argmax
        assert not hi.condition and not hi.same_argmax
        assert hi.epsilon == pytest.approx(1 / (n + 1) + 0.01)


@pytest.mark.parametrize("n,V", [(2, 2), (3, 2), (3, 3), (5, 2)])
def test_example_joint_has_the_asked_epsilon_and_respects_the_bounds(n, V):
    for eps in (0.0, 0.05, 0.15, 0.3, 0.45):
        p = d.example_joint(n, V, eps, seed=3)
        assert p.shape == (V,) * n and float(p.sum()) == pytest.approx(1.0) and bool((p >= 0).all())
        c = d.parallel_decoding_check(p)
        marg = _independent(p.numpy())[0]
        assert np.allclose(marg.max(1), 1 - eps)                   # every marginal's max is exactly 1 - eps
        assert c.same_argmax and c.tv_within_bound and c.kl_within_bound
        if V == 2:                                                 # perfectly correlated errors reach the KL bound
            assert c.kl == pytest.approx((n - 1) * _hb(eps), abs=1e-12)


@pytest.mark.parametrize("call,match", [
    (lambda: d.parallel_decoding_check(torch.tensor([[0.5, 0.5], [0.5, 0.5]])), "sum"),
    (lambda: d.parallel_decoding_check(torch.tensor([[1.2, -0.2], [0.0, 0.0]])), ">= 0"),
    (lambda: d.parallel_decoding_check(torch.full((2, 3), 1 / 6)), "shape"),
    (lambda: d.parallel_decoding_check(torch.tensor([1.0])), "shape"),
    (lambda: d.parallel_decoding_check(torch.tensor([[1, 0], [0, 0]])), "float"),
    (lambda: d.example_joint(3, 2, 0.5), "eps"),
    (lambda: d.example_joint(3, 2, -0.1), "eps"),
    (lambda: d.example_joint(3, 1, 0.1), "V"),
    (lambda: d.example_joint(3, 2, 0.4, kind="one_off"), "n \\* eps"),
    (lambda: d.example_joint(3, 2, 0.1, kind="bad"), "kind"),
    (lambda: d.example_joint(30, 2, 0.1), "too large"),
])
def test_theorem_helpers_bad_inputs_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()
