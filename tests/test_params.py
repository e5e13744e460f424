"""Tests of course_lib.params, the parameter calculator of chapter 4, section 2."""
import pytest
import torch

from course_lib import params
from course_lib.nn import Transformer, TransformerConfig


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.mark.parametrize("shape", [params.LLADA2_MINI, params.LLADA2_FLASH])
def test_published_llada2_sizes_within_3_percent(shape):
    total, active = params.PUBLISHED[shape.name]
    c = params.count_params(shape)
    assert abs(c.total / total - 1) < 0.03, c.table()
    assert abs(c.active / active - 1) < 0.03, c.table()


def test_llada2_mini_by_hand():
    """LLaDA2.0-mini, component by component, written out from the config table (REFERENCE.md section 4)."""
    c = params.count_params(params.LLADA2_MINI).by_component
    assert c["embedding"] == c["lm_head"] == 157184 * 2048
    assert c["attention"] == 20 * (2048 * 2048 * 2 + 2048 * 512 * 2)          # q, o: 16 x 128; k, v: 4 x 128
    assert c["dense_ffn"] == 3 * 2048 * 5120                                   # layer 0 only
    assert c["routed_experts"] == 19 * 256 * 3 * 2048 * 512
    assert c["shared_experts"] == 19 * 3 * 2048 * 512
    assert c["router"] == 19 * 256 * 2048
    assert c["norms"] == 20 * (2 * 2048 + 2 * 128) + 2048                     # QK-norm assumed
    a = params.count_params(params.LLADA2_MINI).active_by_component
    assert a["routed_experts"] == 19 * 8 * 3 * 2048 * 512


def test_tiny_shape_by_hand():
    shape = dict(n_layers=2, hidden=4, n_heads=2, n_kv_heads=1, head_dim=2, vocab_size=10, dense_ffn=8,
                 n_dense_layers=1, n_experts=4, top_k=2, n_shared_experts=1, expert_ffn=3, router="softmax",
                 tied_embeddings=True, qk_norm=True)
    c = params.count_params(shape)
    emb = 10 * 4
    attn = 2 * (4 * 4 + 4 * 2 + 4 * 2 + 4 * 4)          # q 4x4, k 4x2, v 4x2, o 4x4
    dense = 3 * 4 * 8
    expert = 3 * 4 * 3
    norms = 2 * (4 + 4 + 2 + 2) + 4
    assert c.total == emb + attn + dense + 4 * expert + expert + 4 * 4 + norms    # tied: no LM head
    assert c.active == c.total - 4 * expert + 2 * expert
    assert c.by_component["lm_head"] == 0


COURSE_CONFIGS = [
    dict(vocab_size=353, seq_len=41, n_layer=4, n_head=4, d_model=128),                          # lm_mdlm
    dict(vocab_size=353, seq_len=41, n_layer=2, n_head=4, d_model=64, tie_embeddings=True),
    dict(vocab_size=353, seq_len=41, n_layer=2, n_head=4, d_model=64, time_conditioning=True),
    dict(vocab_size=100, seq_len=16, n_layer=3, n_head=2, d_model=32, n_experts=8, moe_top_k=2, d_expert=24,
         n_dense_layers=1, aux_loss_coef=0.01),
    dict(vocab_size=100, seq_len=16, n_layer=3, n_head=2, d_model=32, n_experts=16, moe_top_k=3,
         n_shared_experts=1, d_expert=12, router="sigmoid", n_group=4, topk_group=2, routed_scaling=2.5,
         bias_update_rate=1e-3),
    dict(vocab_size=50, seq_len=16, n_layer=2, n_head=2, d_model=32, n_experts=4, moe_top_k=1, d_expert=8,
         n_shared_experts=2, tie_embeddings=True, time_conditioning=True),
]


@pytest.mark.parametrize("kw", COURSE_CONFIGS)
def test_calculator_matches_the_course_transformer(kw):
    cfg = TransformerConfig(**kw)
    model = Transformer(cfg)
    c = params.count_params(params.from_transformer_config(cfg))
    assert c.total == model.n_params()
    # active, counted independently from the module's own parameters: routed experts scaled by k / E
    routed = sum(p.numel() for n, p in model.named_parameters() if ".experts." in n)
    rest = model.n_params() - routed
    k_over_e = cfg.moe_top_k / cfg.n_experts if cfg.n_experts else 0
    assert c.active == pytest.approx(rest + routed * k_over_e, abs=1e-6)
    if cfg.n_experts:
        assert c.by_component["routed_experts"] == routed
        assert c.by_component["router"] == sum(p.numel() for n, p in model.named_parameters() if "router" in n)
    else:
        assert c.active == c.total


def test_shape_errors():
    base = dict(n_layers=2, hidden=4, n_heads=2, n_kv_heads=1, head_dim=2, vocab_size=10, dense_ffn=8,
                n_dense_layers=2)
    params.count_params(base)
    for bad, match in [(dict(hidden=0), "hidden"), (dict(n_kv_heads=3), "divisible"),
                       (dict(n_dense_layers=1), "dense model"), (dict(top_k=2), "n_experts > 0"),
                       (dict(n_experts=4, top_k=5, expert_ffn=2, router="sigmoid", n_dense_layers=1), "top_k"),
                       (dict(n_experts=4, top_k=2, expert_ffn=2, router="relu", n_dense_layers=1), "router"),
                       (dict(n_dense_layers=3), "exceeds"), (dict(colour="red"), "unknown")]:
        with pytest.raises(ValueError, match=match):
            params.count_params(dict(base, **bad))
    with pytest.raises(ValueError, match="TransformerConfig"):
        params.from_transformer_config(base)
