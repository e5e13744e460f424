"""course_lib.nn: the chapter 2-4 Transformer (masks, RoPE, RMSNorm, time conditioning, training, errors)."""
import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.nn import (RMSNorm, Transformer, TransformerConfig, apply_rope, attention_mask,
                           rope_cache)

V, L = 32, 16


def tiny(**kwargs) -> Transformer:
    cfg = dict(vocab_size=V, seq_len=L, n_layer=2, n_head=2, d_model=16)
    cfg.update(kwargs)
    torch.manual_seed(0)
    return Transformer(TransformerConfig(**cfg)).eval()


def perturbed_logits(model, j, **kwargs):
    """Logits for a random input and for the same input with token j changed."""
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, V, (2, L), generator=g)
    y = x.clone()
    y[:, j] = (x[:, j] + 1) % V
    with torch.no_grad():
        return model(x, **kwargs), model(y, **kwargs)


def changed_positions(a, b):
    return (a != b).any(dim=-1).all(dim=0)          # (L,) True where every sequence's logits changed


# --- shapes and masks -------------------------------------------------------------------------

@pytest.mark.parametrize("mode,extra", [("causal", {}), ("bidirectional", {}), ("block_causal", {"block_size": 4})])
def test_output_shape(mode, extra):
    m = tiny(attention=mode, **extra)
    for length in (1, 5, L):
        assert m(torch.zeros(3, length, dtype=torch.long)).shape == (3, length, V)


def test_attention_mask_by_hand():
    T, F_ = True, False
    assert torch.equal(attention_mask("causal", 4), torch.tensor(
        [[T, F_, F_, F_], [T, T, F_, F_], [T, T, T, F_], [T, T, T, T]]))
    assert torch.equal(attention_mask("bidirectional", 3), torch.ones(3, 3, dtype=torch.bool))
    assert torch.equal(attention_mask("block_causal", 6, block_size=2), torch.tensor(
        [[T, T, F_, F_, F_, F_],
         [T, T, F_, F_, F_, F_],
         [T, T, T, T, F_, F_],
         [T, T, T, T, F_, F_],
         [T, T, T, T, T, T],
         [T, T, T, T, T, T]]))
    # limits: block size 1 is causal, block size L is bidirectional
    assert torch.equal(attention_mask("block_causal", 5, block_size=1), attention_mask("causal", 5))
    assert torch.equal(attention_mask("block_causal", 5, block_size=5), attention_mask("bidirectional", 5))
    with pytest.raises(ValueError):
        attention_mask("sideways", 4)
    with pytest.raises(ValueError):
        attention_mask("block_causal", 4)


@pytest.mark.parametrize("j", [0, 5, L - 1])
def test_causal_no_future_leak(j):
    a, b = perturbed_logits(tiny(attention="causal"), j)
    assert torch.equal(a[:, :j], b[:, :j])           # exactly unchanged before j
    assert not torch.equal(a[:, j:], b[:, j:])        # something from j on changes
    assert changed_positions(a, b)[j:].all()


@pytest.mark.parametrize("j", [5, L - 1])
def test_bidirectional_sees_the_future(j):
    a, b = perturbed_logits(tiny(attention="bidirectional"), j)
    assert (a[:, 0] != b[:, 0]).any(dim=-1).all()
    assert changed_positions(a, b).all()


@pytest.mark.parametrize("j", [0, 5, 9, L - 1])
def test_block_causal(j):
    bs = 4
    a, b = perturbed_logits(tiny(attention="block_causal", block_size=bs), j)
    start = (j // bs) * bs                            # first position of j's block
    assert torch.equal(a[:, :start], b[:, :start])    # earlier blocks exactly unchanged
    assert changed_positions(a, b)[start:].all()      # its own block (all of it) and later blocks change


def test_user_mask_replaces_mode_mask():
    m = tiny(attention="bidirectional")
    x = torch.randint(0, V, (2, L), generator=torch.Generator().manual_seed(3))
    causal = tiny(attention="causal")
    causal.load_state_dict(m.state_dict())
    with torch.no_grad():
        assert torch.allclose(m(x, mask=attention_mask("causal", L)[None]), causal(x), atol=1e-6)
        per_seq = attention_mask("causal", L)[None].expand(2, L, L)
        assert torch.allclose(m(x, mask=per_seq), causal(x), atol=1e-6)


# --- components -------------------------------------------------------------------------------

def test_rope_relative_positions():
    hd, n = 8, 40
    cos, sin = rope_cache(hd, n, theta=10000.0)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(hd, generator=g), torch.randn(hd, generator=g)
    rq = apply_rope(q.expand(n, hd), cos, sin)        # q placed at every position 0..n-1
    rk = apply_rope(k.expand(n, hd), cos, sin)
    scores = rq @ rk.T                                # scores[i, j] = <R_i q, R_j k>
    for (i, j) in [(0, 0), (3, 1), (2, 9), (10, 4)]:
        for s in (1, 7, 25):
            assert torch.allclose(scores[i, j], scores[i + s, j + s], atol=1e-5)
    assert torch.allclose(scores[0, 0], q @ k, atol=1e-6)   # position 0: no rotation
    assert torch.allclose(rq.norm(dim=-1), q.norm().expand(n), atol=1e-5)   # rotations keep norms


def test_rmsnorm_unit_rms():
    x = 5 * torch.randn(4, 7, 32) + 2
    y = RMSNorm(32, eps=1e-8)(x)
    assert torch.allclose(y.pow(2).mean(dim=-1).sqrt(), torch.ones(4, 7), atol=1e-4)


def test_time_conditioning():
    m = tiny(time_conditioning=True)
    x = torch.randint(0, V, (2, L), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        a, b = m(x, t=torch.tensor([0.1, 0.1])), m(x, t=torch.tensor([0.9, 0.9]))
        assert not torch.allclose(a, b)
        assert torch.equal(a, m(x, t=torch.tensor([0.1, 0.1])))      # deterministic
        assert torch.equal(a, m(x, t=0.1))                           # scalar t broadcasts


def test_determinism_under_seed():
    x = torch.randint(0, V, (2, L), generator=torch.Generator().manual_seed(5))
    m1, m2 = tiny(), tiny()
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p1, p2)
    with torch.no_grad():
        assert torch.equal(m1(x), m2(x))
        assert torch.equal(m1(x), m1(x))


def test_init_scales():
    m = tiny(n_layer=4, d_model=64, n_head=4)
    assert abs(m.tok_emb.weight.std().item() - 0.02) < 0.002
    assert abs(m.blocks[0].attn.proj.weight.std().item() - 0.02 / math.sqrt(8)) < 0.001
    assert abs(m.blocks[0].ffn.down.weight.std().item() - 0.02 / math.sqrt(8)) < 0.001


# --- training ---------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["causal", "bidirectional"])
def test_overfits_fixed_batch(mode):
    torch.manual_seed(0)
    m = Transformer(TransformerConfig(vocab_size=V, seq_len=L, n_layer=2, n_head=2, d_model=32, attention=mode))
    x = torch.randint(0, V - 1, (4, L))
    if mode == "causal":                              # next-token prediction
        inp, target = x[:, :-1], x[:, 1:]
    else:                                             # fixed masked-token reconstruction, mask id V - 1
        masked = torch.rand(4, L) < 0.5
        inp = torch.where(masked, V - 1, x)
        target = torch.where(masked, x, -100)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(100):
        loss = F.cross_entropy(m(inp).reshape(-1, V), target.reshape(-1), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])


# --- parameter count --------------------------------------------------------------------------

@pytest.mark.parametrize("tie,time_cond", [(False, False), (True, False), (False, True)])
def test_n_params_by_hand(tie, time_cond):
    v, d, f, n_layer = 10, 8, 24, 2
    m = Transformer(TransformerConfig(vocab_size=v, seq_len=8, n_layer=n_layer, n_head=2, d_model=d,
                                      tie_embeddings=tie, time_conditioning=time_cond))
    assert m.config.d_ff == f                         # 8/3 * 8 = 21.3 -> 24
    per_layer = 2 * d + 4 * d * d + 3 * d * f         # two RMSNorm weights, qkv + proj, gate + up + down
    body = n_layer * per_layer + d + (2 * (d * d + d) if time_cond else 0)   # final norm, time MLP
    emb = v * d * (1 if tie else 2)
    assert m.n_params() == body + emb
    assert m.n_params(non_embedding=True) == body
    assert m.n_params() == sum(p.numel() for p in m.state_dict().values()) - (v * d if tie else 0)


def test_config_roundtrip_and_default_dff():
    cfg = TransformerConfig(vocab_size=300, seq_len=64, n_layer=4, n_head=4, d_model=128)
    assert cfg.d_ff == 344
    assert TransformerConfig(**cfg.to_dict()) == cfg
    assert Transformer(cfg).n_params() == 868_480


# --- errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs", [
    dict(d_model=30, n_head=4),                       # d_model % n_head
    dict(d_model=12, n_head=4),                       # odd head dim (3): RoPE needs pairs
    dict(attention="sideways"),                       # unknown attention mode
    dict(attention="block_causal"),                   # block_size missing
    dict(attention="block_causal", block_size=5),     # does not divide seq_len = 16
    dict(attention="causal", block_size=4),           # block_size without block_causal
    dict(vocab_size=0),
    dict(n_layer=0),
    dict(rope_theta=0.0),
    dict(dropout=1.0),
])
def test_bad_config(kwargs):
    cfg = dict(vocab_size=V, seq_len=L, n_layer=2, n_head=2, d_model=16)
    cfg.update(kwargs)
    with pytest.raises(ValueError):
        TransformerConfig(**cfg)


def test_bad_inputs():
    m, mt = tiny(), tiny(time_conditioning=True)
    ok = torch.zeros(2, 4, dtype=torch.long)
    bad = {
        "float ids": lambda: m(ok.float()),
        "int32 ids": lambda: m(ok.int()),
        "1-D ids": lambda: m(ok[0]),
        "3-D ids": lambda: m(ok[None]),
        "negative id": lambda: m(ok - 1),
        "id == vocab": lambda: m(ok + V),
        "too long": lambda: m(torch.zeros(1, L + 1, dtype=torch.long)),
        "t given, no time conditioning": lambda: m(ok, t=0.5),
        "t missing": lambda: mt(ok),
        "t > 1": lambda: mt(ok, t=1.5),
        "t < 0": lambda: mt(ok, t=torch.tensor([-0.1, 0.5])),
        "t NaN": lambda: mt(ok, t=float("nan")),
        "t wrong shape": lambda: mt(ok, t=torch.tensor([0.1, 0.2, 0.3])),
        "mask not bool": lambda: m(ok, mask=torch.ones(1, 4, 4)),
        "mask wrong shape": lambda: m(ok, mask=torch.ones(4, 4, dtype=torch.bool)),
        "mask wrong batch": lambda: m(ok, mask=torch.ones(3, 4, 4, dtype=torch.bool)),
        "mask empty row": lambda: m(ok, mask=torch.zeros(1, 4, 4, dtype=torch.bool)),
    }
    for name, call in bad.items():
        with pytest.raises(ValueError):
            call()
            pytest.fail(f"no ValueError for {name}")
    mt(ok, t=0.0), mt(ok, t=1.0)                      # the closed interval is allowed
