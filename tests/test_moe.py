"""Tests of course_lib.moe and the MoE options of course_lib.nn (chapter 4, section 2)."""
import math

import pytest
import torch
import torch.nn.functional as F

from course_lib import moe, moe_study, textlm, training
from course_lib.nn import SwiGLU, Transformer, TransformerConfig



@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread avoids oversubscription on a busy 2-core machine (100x slower otherwise)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


TINY = dict(vocab_size=20, seq_len=8, n_layer=2, n_head=2, d_model=16)
SWITCH = dict(TINY, n_experts=4, moe_top_k=2, d_expert=8, aux_loss_coef=0.01)
LLADA2 = dict(TINY, n_experts=8, moe_top_k=3, n_shared_experts=1, d_expert=6, router="sigmoid", n_group=4,
              topk_group=2, routed_scaling=2.5, bias_update_rate=1e-2, n_dense_layers=1)


# ------------------------------------------------------------------------------ routers by hand
def test_softmax_topk_hand_computed():
    logits = torch.log(torch.tensor([[1.0, 2.0, 3.0, 4.0], [4.0, 1.0, 1.0, 2.0]]))   # probs (1,2,3,4)/10, (4,1,1,2)/8
    r = moe.softmax_topk_routing(logits, 2, routed_scaling=2.0)
    assert r.experts.tolist() == [[3, 2], [0, 3]]
    torch.testing.assert_close(r.weights, torch.tensor([[4 / 7, 3 / 7], [4 / 6, 2 / 6]]) * 2.0)
    torch.testing.assert_close(r.probs[0], torch.tensor([0.1, 0.2, 0.3, 0.4]))
    one = moe.softmax_topk_routing(logits, 1)                    # renormalised over k = 1: weight 1
    assert one.experts[:, 0].tolist() == [3, 0] and torch.all(one.weights == 1)


def test_group_limited_choice_hand_computed():
    # 8 experts in 4 groups of 2; group scores (sum of both) 0.9, 0.95, 0.85, 0.6 -> groups 1 and 0 are kept,
    # so expert 4 (second best overall, 0.8) is excluded and expert 3 (0.45) gets in
    s = torch.tensor([[0.9, 0.0, 0.5, 0.45, 0.8, 0.05, 0.3, 0.3]])
    assert sorted(moe.group_limited_topk(s, 3, n_group=4, topk_group=2)[0].tolist()) == [0, 2, 3]
    assert sorted(moe.group_limited_topk(s, 3)[0].tolist()) == [0, 2, 4]           # plain top-k
    # a group's score is the sum of its TWO best, not its max nor its total (groups of 3):
    # group 0 = (0.9, 0.3, 0.0): max 0.9, top-2 1.2; group 1 = (0.63, 0.62, 0.61): max 0.63, top-2 1.25
    s = torch.tensor([[0.9, 0.3, 0.0, 0.63, 0.62, 0.61]])
    assert sorted(moe.group_limited_topk(s, 2, n_group=2, topk_group=1)[0].tolist()) == [3, 4]
    # group 0 = (0.7, 0.7, 0.0): top-2 1.4, total 1.4; group 1 = (0.6, 0.5, 0.5): top-2 1.1, total 1.6
    s = torch.tensor([[0.7, 0.7, 0.0, 0.6, 0.5, 0.5]])
    assert sorted(moe.group_limited_topk(s, 2, n_group=2, topk_group=1)[0].tolist()) == [0, 1]


def _reference_group_topk(row, k, n_group, topk_group):
    """Plain-Python group-limited top-k of one row (independent of the library)."""
    row = [float(v) for v in row]
    size = len(row) // n_group
    groups = [sorted(row[g * size:(g + 1) * size], reverse=True) for g in range(n_group)]
    score = [sum(g[:2]) for g in groups]
    kept = sorted(range(n_group), key=lambda g: -score[g])[:topk_group]
    candidates = [e for g in kept for e in range(g * size, (g + 1) * size)]
    return sorted(sorted(candidates, key=lambda e: -row[e])[:k])


def test_group_limited_topk_matches_a_reference():
    g = torch.Generator().manual_seed(0)
    for E, n_group, topk_group, k in [(8, 4, 2, 3), (12, 3, 2, 4), (16, 8, 4, 8), (6, 6, 3, 2), (8, 1, 1, 3)]:
        s = torch.rand(50, E, generator=g)
        got = moe.group_limited_topk(s, k, n_group, topk_group)
        for row, choice in zip(s, got):
            assert sorted(choice.tolist()) == _reference_group_topk(row, k, n_group, topk_group)


def test_sigmoid_bias_chooses_but_does_not_weigh():
    logits = torch.tensor([[0.0, 1.0, 2.0, -1.0]])
    s = torch.sigmoid(logits[0])
    r = moe.sigmoid_routing(logits, 2, routed_scaling=2.5)
    assert sorted(r.experts[0].tolist()) == [1, 2]
    biased = moe.sigmoid_routing(logits, 2, expert_bias=torch.tensor([1.0, 0.0, 0.0, 0.0]), routed_scaling=2.5)
    assert biased.experts[0].tolist() == [0, 2]                     # 0.5 + 1 beats 0.88 beats 0.73
    expected = torch.stack([s[0], s[2]]) / (s[0] + s[2]) * 2.5      # unbiased scores, renormalised, scaled
    torch.testing.assert_close(biased.weights[0], expected)
    torch.testing.assert_close(biased.probs[0], s)
    torch.testing.assert_close(biased.weights.sum(-1), torch.tensor([2.5]))


# ------------------------------------------------------------------------------ balancing
def test_switch_aux_loss_values():
    E, T = 4, 8
    uniform = torch.full((T, E), 1 / E)
    even = torch.stack([torch.arange(T) % E, (torch.arange(T) + 1) % E], 1)       # every expert 4 of 16 times
    assert moe.switch_aux_loss(uniform, even).item() == pytest.approx(1.0)
    collapsed = F.one_hot(torch.zeros(T, dtype=torch.long), E).float()
    assert moe.switch_aux_loss(collapsed, torch.zeros(T, 1, dtype=torch.long)).item() == pytest.approx(E)
    probs = torch.tensor([[0.7, 0.3], [0.6, 0.4]])                  # f = (1, 0), P = (0.65, 0.35): aux = 2 * 0.65
    assert moe.switch_aux_loss(probs, torch.zeros(2, 1, dtype=torch.long)).item() == pytest.approx(1.3)


def test_bias_update_direction():
    bias = torch.zeros(4)
    new = moe.bias_update(bias, torch.tensor([10, 2, 6, 6]), 0.01)
    torch.testing.assert_close(new, torch.tensor([-0.01, 0.01, 0.0, 0.0]))    # overloaded down, underloaded up
    assert torch.all(bias == 0)                                                  # not in place


def test_bias_balancing_evens_a_skewed_router():
    torch.manual_seed(0)
    layer = moe.MoEFeedForward(TransformerConfig(**dict(LLADA2, n_group=1, topk_group=1, bias_update_rate=0.02)), SwiGLU)
    x = torch.randn(256, 16, generator=torch.Generator().manual_seed(1))
    x[:, 0] = 1.0
    with torch.no_grad():
        layer.router.weight[:, 0] = torch.linspace(2.0, -2.0, 8)    # expert 0 scores highest for most tokens
    layer.train()

    def ratio():
        load = moe.expert_load(layer.route(x).experts, 8).double()
        return float(load.max() / load.clamp_min(1).min())

    before = ratio()
    for _ in range(100):
        layer(x)
        layer.update_bias()
    assert before > 4 and ratio() < 1.6
    assert layer.expert_bias[0] < 0 and layer.expert_bias[0] == layer.expert_bias.min()


def test_update_bias_uses_training_loads_only():
    torch.manual_seed(0)
    layer = moe.MoEFeedForward(TransformerConfig(**LLADA2), SwiGLU)
    x = torch.randn(64, 16)
    layer.eval()
    layer(x)
    layer.update_bias()                                             # eval forward: nothing counted
    assert torch.all(layer.expert_bias == 0)
    layer.train()
    layer(x)
    load = layer.last_routing.load.float()
    layer.update_bias()
    torch.testing.assert_close(layer.expert_bias, 1e-2 * torch.sign(load.mean() - load))
    assert torch.all(layer.load_since_update == 0)


# ------------------------------------------------------------------------------ the layer
def test_one_expert_top1_equals_dense_swiglu():
    torch.manual_seed(0)
    dense = SwiGLU(TransformerConfig(**dict(TINY, d_ff=12)))
    x = torch.randn(3, 5, 16)
    for router in ("softmax", "sigmoid"):
        cfg = TransformerConfig(**dict(TINY, n_experts=1, moe_top_k=1, d_expert=12, router=router))
        layer = moe.MoEFeedForward(cfg, SwiGLU)
        layer.experts[0].load_state_dict(dense.state_dict())
        torch.testing.assert_close(layer(x), dense(x))
    # with a shared expert: expert(x) + shared(x)
    cfg = TransformerConfig(**dict(TINY, n_experts=1, moe_top_k=1, d_expert=12, n_shared_experts=1))
    layer = moe.MoEFeedForward(cfg, SwiGLU)
    torch.testing.assert_close(layer(x), layer.experts[0](x) + layer.shared(x))


@pytest.mark.parametrize("cfg", [SWITCH, LLADA2])
def test_moe_layer_matches_a_token_by_token_loop(cfg):
    torch.manual_seed(0)
    layer = moe.MoEFeedForward(TransformerConfig(**cfg), SwiGLU)
    with torch.no_grad():
        if layer.expert_bias is not None:
            layer.expert_bias.copy_(torch.linspace(-0.1, 0.1, 8))
    x = torch.randn(2, 7, 16)
    y = layer(x)
    flat = x.reshape(-1, 16)
    r = layer.route(flat)
    for t in range(flat.shape[0]):
        ref = sum(w * layer.experts[int(e)](flat[t]) for e, w in zip(r.experts[t], r.weights[t]))
        if layer.shared is not None:
            ref = ref + layer.shared(flat[t])
        torch.testing.assert_close(y.reshape(-1, 16)[t], ref, atol=1e-6, rtol=1e-5)
    rec = layer.last_routing
    assert rec.experts.shape == (14, cfg["moe_top_k"]) and rec.weights.shape == (14, cfg["moe_top_k"])
    assert rec.load.sum() == 14 * cfg["moe_top_k"]


def test_router_gets_gradient_from_aux_loss_and_output():
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(**SWITCH))
    x = torch.randint(3, 20, (4, 8))
    model(x)
    aux = model.moe_aux_loss()
    expected = 0.01 * sum(m.aux_loss for _, m in model.moe_layers())
    torch.testing.assert_close(aux, expected)
    aux.backward()
    assert all(m.router.weight.grad.abs().sum() > 0 for _, m in model.moe_layers())


# ------------------------------------------------------------------------------ configs and errors
@pytest.mark.parametrize("bad, match", [
    (dict(SWITCH, moe_top_k=5), "cannot exceed n_experts"),
    (dict(LLADA2, topk_group=5), "topk_group"),
    (dict(LLADA2, n_group=3), "divisible by n_group"),
    (dict(LLADA2, n_group=4, topk_group=1, moe_top_k=3), "exceeds"),
    (dict(SWITCH, d_expert=0), "d_expert"),
    (dict(SWITCH, n_experts=-1), "n_experts"),
    (dict(SWITCH, moe_top_k=0), "moe_top_k"),
    (dict(SWITCH, router="relu"), "router"),
    (dict(SWITCH, bias_update_rate=0.1), "sigmoid"),
    (dict(SWITCH, routed_scaling=0.0), "routed_scaling"),
    (dict(SWITCH, aux_loss_coef=-1.0), "aux_loss_coef"),
    (dict(SWITCH, n_dense_layers=2), "n_dense_layers"),
    (dict(TINY, moe_top_k=1), "n_experts > 0"),
    (dict(TINY, router="sigmoid"), "n_experts > 0"),
])
def test_config_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        TransformerConfig(**bad)


def test_function_errors():
    with pytest.raises(ValueError, match="cannot exceed"):
        moe.softmax_topk_routing(torch.zeros(2, 4), 5)
    with pytest.raises(ValueError, match="topk_group"):
        moe.group_limited_topk(torch.zeros(2, 8), 2, n_group=2, topk_group=3)
    with pytest.raises(ValueError, match="divisible"):
        moe.group_limited_topk(torch.zeros(2, 8), 2, n_group=3, topk_group=1)
    with pytest.raises(ValueError, match="expert_bias"):
        moe.sigmoid_routing(torch.zeros(2, 4), 2, expert_bias=torch.zeros(3))
    with pytest.raises(ValueError, match="rate"):
        moe.bias_update(torch.zeros(3), torch.ones(3), -1.0)
    with pytest.raises(ValueError, match="no mixture-of-experts"):
        moe_study.collect_routing(Transformer(TransformerConfig(**TINY)), torch.zeros(1, 4, dtype=torch.long))


def test_d_expert_default_keeps_active_ffn_size():
    c = TransformerConfig(**dict(TINY, d_ff=48, n_experts=8, moe_top_k=2, n_shared_experts=1))
    assert c.d_expert == 16                                         # (2 + 1) * 16 = d_ff


# ------------------------------------------------------------------------------ dense models unchanged
def test_dense_state_dict_keys_unchanged():
    keys = list(Transformer(TransformerConfig(**TINY)).state_dict())
    expected = ["tok_emb.weight"]
    for i in range(2):
        expected += [f"blocks.{i}.{k}" for k in ("attn_norm.weight", "attn.qkv.weight", "attn.proj.weight",
                                                  "ffn_norm.weight", "ffn.gate.weight", "ffn.up.weight",
                                                  "ffn.down.weight")]
    assert keys == expected + ["norm.weight", "lm_head.weight"]
    model = textlm.load_text_model("lm_mdlm")                       # a shipped checkpoint still loads
    assert model.moe_layers() == [] and model.moe_aux_loss().item() == 0


def test_dense_training_is_the_plain_loop():
    """train_text_model on a dense recipe = the loop without any MoE step (same weights, bit for bit)."""
    recipe = dict(objective="mdlm", model=dict(n_layer=1, n_head=2, d_model=16), steps=3, batch_size=4,
                  warmup=1, eval_every=100)
    ids = textlm.language_ids("valid")[:40]
    trained, _ = textlm.train_text_model(recipe, ids, show_progress=False)
    cfg = textlm.TextLMConfig.from_dict(recipe)
    torch.manual_seed(0)
    model = Transformer(cfg.transformer_config())
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: training.lr_factor(s, 3, 1, cfg.min_lr_ratio))
    for _ in range(3):
        x0 = ids[torch.randint(0, len(ids), (4,), generator=g)]
        loss = textlm._training_loss(model, cfg, x0, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        sched.step()
    for (k, a), b in zip(trained.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), k


def test_moe_training_updates_bias_and_ema_copy():
    recipe = dict(objective="mdlm", model=dict(LLADA2, vocab_size=353, seq_len=41), steps=4, batch_size=8,
                  warmup=1, eval_every=100, ema_decay=0.9)
    ids = textlm.language_ids("valid")[:40]
    ema_model, _ = textlm.train_text_model(recipe, ids, show_progress=False)
    bias = ema_model.moe_layers()[0][1].expert_bias
    assert bias.abs().max() > 0                                     # the live bias moved, and the EMA copy has it
    assert torch.allclose(bias.abs(), torch.full_like(bias, 1e-2) * bias.abs().div(1e-2).round())


# ------------------------------------------------------------------------------ routing statistics
def test_word_classes_cover_the_vocabulary():
    from course_lib.tokenizer import Tokenizer
    tok = Tokenizer.for_language()
    classes, class_of = moe_study.word_class_map(tok)
    assert class_of.shape == (len(tok),)
    assert classes[class_of[tok.stoi["dogs"]]] == "noun" and classes[class_of[tok.stoi["alice"]]] == "name"
    assert classes[class_of[tok.stoi["chase"]]] == "verb" and classes[class_of[tok.stoi["?"]]] == "punctuation"
    assert classes[class_of[tok.mask_id]] == "[MASK]" and classes[class_of[tok.stoi["the"]]] == "determiner"
    assert set(class_of.tolist()) == set(range(len(classes)))       # every class occurs
    with pytest.raises(ValueError, match="without a word class"):
        moe_study.word_class_map(Tokenizer(["zebra"]))


def test_routing_statistics_agree_with_last_routing():
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(**dict(LLADA2, vocab_size=353, seq_len=41)))
    ids = textlm.language_ids("valid")[:10]
    classes, class_of = moe_study.word_class_map()
    counts = moe_study.class_expert_counts(model, ids, class_of, len(classes), batch_size=4)
    frac = moe_study.load_fractions(model, ids, batch_size=3)
    assert counts.shape == (1, len(classes), 8) and frac.shape == (1, 8)
    model(ids)                                                      # one batch: the same routing (eval mode)
    rec = model.moe_layers()[0][1].last_routing
    ref = torch.zeros(len(classes), 8, dtype=torch.long)
    for pos, tok in enumerate(ids.reshape(-1).tolist()):
        for e in rec.experts[pos].tolist():
            ref[class_of[tok], e] += 1
    assert torch.equal(counts[0], ref)
    torch.testing.assert_close(frac[0], rec.load.double() / rec.load.sum())
    keep = ids != 0                                                 # words and [EOS] only
    words = moe.expert_load(rec.experts[keep.reshape(-1)], 8).double()
    torch.testing.assert_close(moe_study.load_fractions(model, ids, keep)[0], words / words.sum())
    assert moe_study.max_min_ratio(torch.tensor([[0.25, 0.25, 0.5, 0.0], [0.2, 0.2, 0.3, 0.3]])) == [math.inf, 1.5]


def test_per_sentence_nelbo_is_mdlm_nelbo_and_paired_difference():
    torch.manual_seed(0)
    model = Transformer(TransformerConfig(**dict(SWITCH, vocab_size=353, seq_len=41)))
    ids = textlm.language_ids("valid")[:12]
    per = moe_study.nelbo_per_sentence(model, ids, samples=3, seed=5)
    ref = textlm.mdlm_nelbo(model, ids, samples=3, seed=5)
    tokens = textlm.counted_tokens(ids)
    assert float(per.sum() / 3 / tokens.sum()) == pytest.approx(ref.nll, rel=1e-9)
    a, b = per.mean(1), per.mean(1) + 0.5 * tokens                  # b is worse by exactly 0.5 nats per token
    d, se = moe_study.paired_difference(b, a, tokens)
    assert d == pytest.approx(0.5) and se == pytest.approx(0.0, abs=1e-9)
