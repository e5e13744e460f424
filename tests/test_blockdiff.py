"""Block diffusion and AR-to-diffusion conversion (course_lib.blockdiff): masks, loss, bound, WSD schedule."""
import math

import pytest
import torch
import torch.nn.functional as F

from course_lib import blockdiff as bd
from course_lib import language, masked, textlm
from course_lib.nn import Transformer, TransformerConfig, attention_mask
from course_lib.tokenizer import Tokenizer, batchify

MASK = Tokenizer.mask_id
EOS = Tokenizer.eos_id
TINY = dict(vocab_size=353, seq_len=48, n_layer=2, n_head=2, d_model=32)


def tiny_model(seed=0, **kw):
    """A small random Transformer whose weights are scaled up from the N(0, 0.02) init, so that its attention is
    sharp and its outputs depend on positions and masks (a fresh init attends almost uniformly)."""
    torch.manual_seed(seed)
    model = Transformer(TransformerConfig(**{**TINY, **kw})).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.mul_(8.0)
    return model


@pytest.fixture(scope="module")
def canvases():
    """Real sentences on the 48-position canvas: words, one [EOS], then [PAD]."""
    sents = language.sample_corpus(16, seed=3)
    return bd.pad_canvas(batchify(sents, Tokenizer.for_language(), textlm.SEQ_LEN))


# ------------------------------------------------------------------ masks
def naive_mask(L, bs):
    """LLaDA 2.0 eq. 3-4 written out entry by entry, with b(k) = floor(k / L_B)."""
    b = lambda k: k // bs  # noqa: E731
    M = torch.zeros(2 * L, 2 * L, dtype=torch.bool)
    parts = {"bd": M.clone(), "obc": M.clone(), "bc": M.clone()}
    for i in range(2 * L):
        for j in range(2 * L):
            if i < L and j < L:
                parts["bd"][i, j] = b(i) == b(j)
            elif i < L and j >= L:
                parts["obc"][i, j] = b(i) > b(j - L)
            elif i >= L and j >= L:
                parts["bc"][i, j] = b(i - L) >= b(j - L)
            # i in x_0, j in x_t: 0
    return parts


@pytest.mark.parametrize("L,bs", [(6, 1), (6, 2), (6, 3), (6, 6), (8, 4), (12, 3), (48, 16)])
def test_mask_matches_the_equations(L, bs):
    ref = naive_mask(L, bs)
    parts = bd.block_diffusion_parts(L, bs)
    for name in ("bd", "obc", "bc"):
        assert torch.equal(getattr(parts, name), ref[name]), name
    full = bd.block_diffusion_mask(L, bs)
    assert full.shape == (2 * L, 2 * L) and full.dtype == torch.bool
    assert torch.equal(full, ref["bd"] | ref["obc"] | ref["bc"])
    assert not (parts.bd & parts.obc).any() and not (parts.bd & parts.bc).any() and not (parts.obc & parts.bc).any()
    assert not full[L:, :L].any()                        # x_0 never attends to x_t


def test_mask_limits():
    L = 7
    m = bd.block_diffusion_mask(L, 1)
    for i in range(L):      # block 1: x_t position i sees itself and exactly x_0 positions < i (AR)
        assert m[i, :L].nonzero().flatten().tolist() == [i]
        assert m[i, L:].nonzero().flatten().tolist() == list(range(i))
    assert torch.equal(m[L:, L:], attention_mask("causal", L))
    m = bd.block_diffusion_mask(L, L)                      # block L: MDLM
    assert m[:L, :L].all() and not m[:L, L:].any() and m[L:, L:].all()


@pytest.mark.parametrize("L,bs", [(41, 4), (48, 5), (6, 4), (6, 0)])
def test_block_size_must_divide(L, bs):
    with pytest.raises(ValueError):
        bd.block_diffusion_mask(L, bs)


def test_block_sizes_of_48():
    assert bd.block_sizes(48) == [1, 2, 3, 4, 6, 8, 12, 16, 24, 48]
    assert bd.block_sizes(41) == [1, 41]


def test_inference_mask():
    assert torch.equal(bd.inference_mask(12, 4)[0], attention_mask("block_causal", 12, 4))
    assert bd.inference_mask(12, 4).shape == (1, 12, 12)
    # prompt of 3 with blocks of 2: prompt blocks {0,1}, {2}; generated blocks {3,4}, {5,6}
    m = bd.inference_mask(7, 2, prompt_length=3)[0]
    block = [0, 0, 1, 2, 2, 3, 3]
    ref = torch.tensor([[block[j] <= block[i] for j in range(7)] for i in range(7)])
    assert torch.equal(m, ref)
    with pytest.raises(ValueError):
        bd.inference_mask(8, 3, prompt_length=1)          # 7 generated positions, blocks of 3
    with pytest.raises(ValueError):
        bd.inference_mask(8, 2, prompt_length=8)


def test_inference_mask_reproduces_training_view(canvases):
    """Decoding block k on one L-canvas with the inference mask gives the same logits as training on
    [x_t ; x_0] when the earlier blocks are clean: the inference mask is exact."""
    model = tiny_model()
    x0 = canvases[:4]
    L, bs, k = 48, 8, 2
    g = torch.Generator().manual_seed(0)
    x_t, _ = bd.bd_forward_process(x0, bs, torch.full((4, L // bs), 0.5, dtype=torch.float64), MASK, g)
    lo, hi = k * bs, (k + 1) * bs
    canvas = torch.cat([x0[:, :lo], x_t[:, lo:hi], torch.full_like(x0[:, hi:], MASK)], 1)
    with torch.no_grad():
        train_view = bd.bd_logits(model, x_t, x0, bs)[:, lo:hi]
        infer_view = model(canvas, mask=bd.inference_mask(L, bs))[:, lo:hi]
        fn_view = bd.block_logits_fn(model, bs)(canvas)[:, lo:hi]
    torch.testing.assert_close(infer_view, train_view, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fn_view, infer_view)


# ------------------------------------------------------------------ loss
def test_bd_loss_at_block_L_is_the_mdlm_loss(canvases):
    model = tiny_model()
    x0 = canvases
    B, L = x0.shape
    t = torch.linspace(0.05, 1.0, B, dtype=torch.float64)[:, None]
    out = bd.bd_loss(model, x0, L, MASK, torch.Generator().manual_seed(7), t=t)
    # the same corruption through masked.forward_mask (same generator, same uniform draws)
    x_t, m = masked.forward_mask(x0, t[:, 0], "linear", MASK, torch.Generator().manual_seed(7))
    assert torch.equal(x_t, out.x_t) and torch.equal(m, out.masked)
    with torch.no_grad():
        logits = model(x_t)                                       # bidirectional: plain MDLM
    ref = masked.mdlm_loss(logits, x0, x_t, m, t[:, 0], "linear", mask_id=MASK)
    torch.testing.assert_close(out.nelbo.detach(), ref.nelbo, atol=1e-4, rtol=1e-5)
    counted = textlm.counted_tokens(x0).sum()
    torch.testing.assert_close(out.loss.detach(), ref.nelbo.sum() / counted, atol=1e-5, rtol=1e-5)
    # LLaDA's pretraining loss divides the same sum by all B * L positions
    lla = masked.llada_pretrain_loss(logits, x0, x_t, m, t[:, 0], mask_id=MASK)
    torch.testing.assert_close(out.loss.detach() * counted / (B * L), lla, atol=1e-5, rtol=1e-5)


def test_block_L_shortcut_equals_the_2L_input(canvases):
    """With block = L the clean half is invisible to x_t: running x_t alone gives the same logits."""
    model = tiny_model()
    x0 = canvases[:4]
    L = x0.shape[1]
    x_t, _ = bd.bd_forward_process(x0, L, torch.full((4, 1), 0.6, dtype=torch.float64), MASK,
                                   torch.Generator().manual_seed(1))
    pos = torch.arange(L)
    with torch.no_grad():
        full = model(torch.cat([x_t, x0], 1), mask=bd.block_diffusion_mask(L, L)[None],
                     positions=torch.cat([pos, pos]))[:, :L]
        short = bd.bd_logits(model, x_t, x0, L)
    torch.testing.assert_close(short, full, atol=1e-5, rtol=1e-5)


def test_bd_loss_at_block_1_fully_masked_is_the_ar_loss():
    """Block 1, t = 1: every x_t position is [MASK] and sees x_0^{<i}. The same network run causally on
    [x_0^1 .. x_0^{i-1}, MASK] predicts x_0^i from exactly the same inputs at the same positions."""
    model = tiny_model(seed=3)
    g = torch.Generator().manual_seed(0)
    L, B = 8, 3
    x0 = torch.randint(3, 353, (B, L), generator=g)
    out = bd.bd_loss(model, x0, 1, MASK, g, t=torch.ones(B, L, dtype=torch.float64))
    assert out.masked.all()
    ref = torch.zeros(B)
    with torch.no_grad():
        for i in range(L):
            inp = torch.cat([x0[:, :i], torch.full((B, 1), MASK)], 1)
            logits = model(inp, mask=attention_mask("causal", i + 1)[None])[:, -1]
            logits[:, MASK] = -math.inf
            ref += F.cross_entropy(logits, x0[:, i], reduction="none")
    torch.testing.assert_close(out.nelbo.detach(), ref, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(out.loss.detach(), ref.sum() / (B * L), atol=1e-5, rtol=1e-5)


def test_per_block_times_and_weights(canvases):
    """Each block is masked at its own rate; the weight is 1/t_b of the token's block (hand-checked)."""
    x0 = canvases[:2]
    t = torch.tensor([[1.0, 1e-9, 1.0, 1e-9], [1e-9, 1.0, 1e-9, 1.0]], dtype=torch.float64)
    x_t, m = bd.bd_forward_process(x0, 12, t, MASK, torch.Generator().manual_seed(0))
    assert m[0, :12].all() and not m[0, 12:24].any() and m[0, 24:36].all() and not m[1, :12].any()
    V = 353
    out = bd.bd_loss_from_logits(torch.zeros(2, 48, V), x0, x_t, m, t, 12, MASK)
    # uniform logits over the V - 1 non-[MASK] ids: 24 masked positions per row, weight 1, CE log(V - 1)
    torch.testing.assert_close(out.nelbo, torch.full((2,), 24 * math.log(V - 1)))
    t2 = t.clone()
    t2[0, 0] = 0.5                                         # weight 2 on row 0's first block (if masked)
    out2 = bd.bd_loss_from_logits(torch.zeros(2, 48, V), x0, x_t, m, t2, 12, MASK)
    torch.testing.assert_close(out2.nelbo[0], torch.tensor(36 * math.log(V - 1)))


def test_block_times_are_stratified():
    t = bd.sample_block_times(4, 6, torch.Generator().manual_seed(0), eps=0.0)
    assert t.shape == (4, 6)
    strata = (t.flatten() * 24).floor().long().sort().values
    assert torch.equal(strata, torch.arange(24))
    assert bd.sample_block_times(64, 3, eps=1e-3).min() >= 1e-3


def test_bd_nelbo_of_a_uniform_model(canvases):
    """Uniform logits: every masked token costs log(V - 1) and E[1[masked] / t] = 1, so the bound is
    L log(V - 1) nats per canvas at any block size."""
    model = tiny_model()
    with torch.no_grad():
        model.lm_head.weight.zero_()
    ids = canvases
    expected = ids.shape[1] * len(ids) * math.log(352) / textlm.counted_tokens(ids).sum().item()
    for bs in (4, 48):
        res = bd.bd_nelbo(model, ids, bs, samples=8, seed=0)
        assert abs(res.nll - expected) < 4 * res.se + 1e-6, (bs, res, expected)
        assert res.tokens == int(textlm.counted_tokens(ids).sum())


def test_bad_inputs(canvases):
    model = tiny_model()
    with pytest.raises(ValueError):
        bd.bd_loss(model, canvases, 5)                      # 5 does not divide 48
    with pytest.raises(ValueError):
        bd.bd_loss(model, canvases.masked_fill(canvases == 2, MASK), 4)     # [MASK] in the data
    with pytest.raises(ValueError):
        bd.bd_forward_process(canvases, 4, torch.zeros(len(canvases), 12, dtype=torch.float64))   # t = 0
    with pytest.raises(ValueError):
        bd.bd_nelbo(model, canvases, 4, samples=1)
    with pytest.raises(ValueError):
        bd.pad_canvas(canvases, 40)


def test_pad_canvas_keeps_counted_tokens():
    ids = textlm.language_ids("valid")[:50]
    wide = bd.pad_canvas(ids)
    assert wide.shape == (50, 48) and torch.equal(wide[:, :41], ids) and (wide[:, 41:] == Tokenizer.pad_id).all()
    assert torch.equal(textlm.counted_tokens(wide), textlm.counted_tokens(ids))


# ------------------------------------------------------------------ WSD schedule
def test_wsd_schedule():
    s = bd.wsd_schedule(100, 48, warmup_sizes=(1, 2, 4), stable_fraction=0.4, decay_sizes=(16, 8, 4))
    starts, sizes = [a for a, _ in s], [b for _, b in s]
    assert sizes == [1, 2, 4, 48, 16, 8, 4]
    assert starts[0] == 0 and all(a < b for a, b in zip(starts, starts[1:])) and starts[-1] < 100
    lengths = [b - a for a, b in zip(starts, starts[1:] + [100])]
    assert lengths[3] == 40 and sum(lengths) == 100 and min(lengths) == 10
    assert all(48 % b == 0 for b in sizes)
    assert bd.block_size_at(s, 0) == 1 and bd.block_size_at(s, 29) == 4 and bd.block_size_at(s, 30) == 48
    assert bd.block_size_at(s, 99) == 4
    assert bd.wsd_schedule(10, 48, (), 1.0, ()) == [(0, 48)]


@pytest.mark.parametrize("kw", [dict(warmup_sizes=(1, 5)), dict(warmup_sizes=(4, 2)), dict(decay_sizes=(4, 8)),
                                dict(decay_sizes=(48,)), dict(stable_fraction=1.5), dict(total_steps=3)])
def test_wsd_schedule_rejects(kw):
    args = dict(total_steps=100, seq_len=48, warmup_sizes=(1, 4), stable_fraction=0.5, decay_sizes=(8,))
    with pytest.raises(ValueError):
        bd.wsd_schedule(**{**args, **kw})


# ------------------------------------------------------------------ conversion and training
def test_converted_model_loads_lm_ar_exactly():
    ar = textlm.load_text_model("lm_ar")
    model = bd.convert_ar_model(ar, 48, block_size=4)
    assert model.config.seq_len == 48 and model.config.attention == "block_causal"
    ref = ar.state_dict()
    state = model.state_dict()
    assert state.keys() == ref.keys()
    assert all(torch.equal(state[k], ref[k]) for k in ref)
    ids = textlm.language_ids("valid")[:4]
    inp = torch.cat([torch.full((4, 1), Tokenizer.eos_id), ids[:, :-1]], 1)
    with torch.no_grad():      # the same network: run causally it is lm_ar
        torch.testing.assert_close(model(inp, mask=attention_mask("causal", 41)[None]), ar(inp))


def test_aligned_conversion_at_block_1_is_the_ar_model():
    """Keeping the next-token alignment, the converted model at block size 1 computes lm_ar's next-token logits,
    whatever is masked: every position is a block start and reads the clean previous token."""
    ar = textlm.load_text_model("lm_ar")
    model = bd.convert_ar_model(ar, 48, block_size=4, keep_alignment=True)
    assert bd.next_token_aligned(model) and not bd.next_token_aligned(bd.convert_ar_model(ar, 48, 4))
    x0 = bd.pad_canvas(textlm.language_ids("valid")[:4])
    x_t = torch.full_like(x0, MASK)
    inp = torch.cat([torch.full((4, 1), Tokenizer.eos_id), x0[:, :-1]], 1)
    with torch.no_grad():
        ref = ar(inp[:, :41])
        got = bd.bd_logits(model, x_t, x0, 1)[:, :41]
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)


def test_shift_inputs_reads_the_clean_previous_block():
    x_t = torch.tensor([[10, MASK, 12, MASK, MASK, 15]])
    x0 = torch.tensor([[10, 11, 12, 13, 14, 15]])
    assert bd.shift_inputs(x_t, x0, 2).tolist() == [[EOS, 10, 11, 12, 13, MASK]]
    assert bd.shift_inputs(x_t, None, 2).tolist() == [[EOS, 10, MASK, 12, MASK, MASK]]
    assert bd.shift_inputs(x_t, x0, 6).tolist() == [[EOS, 10, MASK, 12, MASK, MASK]]


def test_aligned_decoding_equals_the_training_view():
    """Decoding a block with earlier blocks clean gives the logits the training input gives that block."""
    torch.manual_seed(0)
    model = tiny_model(attention="block_causal", block_size=4)
    model.next_token = True
    x0 = torch.randint(3, 40, (2, 12))
    x = x0.clone()
    x[:, 4:8] = torch.where(torch.rand(2, 4) < 0.5, MASK, x0[:, 4:8])       # block 1 being decoded
    x[:, 8:] = MASK                                                          # block 2 not started
    with torch.no_grad():
        train_view = bd.bd_logits(model, x, x0, 4)[:, 4:8]
        decode_view = bd.block_logits_fn(model, 4)(x)[:, 4:8]
    torch.testing.assert_close(decode_view, train_view, rtol=1e-4, atol=1e-4)


def test_mask_embedding_noise_touches_only_mask_tokens():
    model = tiny_model()
    x = torch.tensor([[5, MASK, 7, MASK]])
    clean = model.tok_emb(x)
    with bd.mask_embedding_noise(model, 0.5, torch.Generator().manual_seed(0)):
        noisy = model.tok_emb(x)
    diff = (noisy - clean).abs().sum(-1)[0]
    assert diff[0] == 0 and diff[2] == 0 and diff[1] > 0 and diff[3] > 0
    assert torch.equal(model.tok_emb(x), clean)           # the hook is gone


def test_training_runs_and_records(canvases):
    model = tiny_model()
    sched = [(0, 1), (4, 4), (8, 48), (12, 8)]
    model, h = bd.train_block_diffusion(model, canvases, canvases[:8], sched, steps=16, batch_size=8, lr=3e-3,
                                        warmup=2, eval_every=8, eval_samples=2, embed_noise_std=0.1,
                                        embed_noise_steps=4, show_progress=False)
    assert h["block_size"] == [1] * 4 + [4] * 4 + [48] * 4 + [8] * 4
    assert h["eval_step"] == [0, 8, 16] and sorted(h["valid_nll"]) == [8, 48]
    assert all(math.isfinite(v) for v in h["train_loss"])
    assert h["valid_nll"][48][-1] < h["valid_nll"][48][0]
    with pytest.raises(ValueError):
        bd.train_block_diffusion(model, canvases, None, [(0, 5)], steps=2, show_progress=False)


def test_sampling_returns_sentences():
    model = tiny_model()
    out = bd.sample_block_diffusion(model, 3, Tokenizer.for_language(), block_size=16, steps=6, seed=0)
    assert len(out) == 3 and all(s is None or isinstance(s, list) for s in out)


def test_shipped_models_and_curves():
    conv, scratch = bd.load_bd_model("a2d_convert"), bd.load_bd_model("a2d_scratch")
    assert conv.config.attention == "block_causal" and conv.config.block_size == 4 and conv.config.seq_len == 48
    assert scratch.config.attention == "block_causal" and scratch.config.block_size == 4
    assert conv.recipe["init"] == "lm_ar" and scratch.recipe["init"] is None
    assert bd.next_token_aligned(conv) and bd.next_token_aligned(scratch)
    res = bd.load_results()
    a, b = res["a2d_convert"], res["a2d_scratch"]
    assert a["curve"]["eval_step"] == b["curve"]["eval_step"]               # equal steps: comparable curves
    assert a["train"]["block_size"] == b["train"]["block_size"]             # the same block-size schedule
    assert a["train"]["block_size"][0] == 1
    ra = {k: v for k, v in bd.A2D_RECIPES["a2d_convert"].items() if k != "init"}
    assert ra == {k: v for k, v in bd.A2D_RECIPES["a2d_scratch"].items() if k != "init"}   # only the start differs
    assert [list(s) for s in bd.a2d_schedule("a2d_convert")] == a["recipe"]["schedule_steps"]
