"""The text-model training loop (course_lib.textlm): recipes, losses, NLL conventions, D3PM closed forms, samplers."""
import math

import pytest
import torch

from course_lib import d3pm, language, recipes, textlm, training
from course_lib.tokenizer import Tokenizer, batchify

TINY = dict(n_layer=1, d_model=32, n_head=2)
SENTENCES = [["the", "dog", "sleeps", "."], ["alice", "runs", "."], ["the", "cats", "see", "bob", "."]]


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.for_language()


@pytest.fixture(scope="module")
def data(tok):
    sents = language.sample_corpus(128, seed=5)
    return batchify(sents, tok, textlm.SEQ_LEN)


def tiny_model(objective, **model):
    return textlm.build_model(dict(objective=objective, model={**TINY, **model}))


def zero_head(model):
    """Every logit 0: the model predicts the uniform distribution everywhere."""
    with torch.no_grad():
        model.lm_head.weight.zero_()
    return model


# ------------------------------------------------------------------ training
@pytest.mark.parametrize("objective", textlm.OBJECTIVES)
def test_tiny_model_loss_falls(objective, data):
    recipe = dict(objective=objective, model=TINY, steps=40, batch_size=16, lr=3e-3, warmup=5,
                  eval_every=20, eval_sentences=16, eval_samples=2, T=100)
    model, h = textlm.train_text_model(recipe, data, data, show_progress=False)
    assert h["step"][-1] == 40 and h["tokens"][-1] > 0 and h["tokens"] == sorted(h["tokens"])
    first, last = sum(h["train_loss"][:3]) / 3, sum(h["train_loss"][-3:]) / 3
    assert last < first, (objective, h["train_loss"])
    assert h["eval_step"] == [20, 40] and all(math.isfinite(v) for v in h["valid_nll"])
    assert h["valid_nll"][-1] < h["valid_nll"][0]
    assert not model.training and h["tokens_per_second"] > 0


def test_ema_model_is_returned(data):
    recipe = dict(objective="ar", model=TINY, steps=3, batch_size=4, ema_decay=0.5, eval_every=3)
    model, h = textlm.train_text_model(recipe, data, show_progress=False)
    assert h["valid_nll"] == [] and all(not p.requires_grad for p in model.parameters())


def test_lr_schedule():
    f = [training.lr_factor(s, 100, 10, 0.1) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0) and f[-1] == pytest.approx(0.1, abs=1e-3)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))


# ------------------------------------------------------------------ evaluation conventions
def test_counted_tokens_are_words_plus_eos(tok):
    ids = batchify(SENTENCES, tok, textlm.SEQ_LEN)
    assert textlm.counted_tokens(ids).tolist() == [len(s) + 1 for s in SENTENCES]


def test_ar_nll_matches_hand_computation(tok):
    model = tiny_model("ar").eval()
    ids = batchify(SENTENCES, tok, textlm.SEQ_LEN)
    total, count = 0.0, 0
    for s in SENTENCES:                      # one token at a time: p(x_i | [EOS], x_1..x_{i-1})
        seq = [tok.eos_id] + tok.encode(s) + [tok.eos_id]
        for i in range(1, len(seq)):
            with torch.no_grad():
                logp = torch.log_softmax(model(torch.tensor([seq[:i]]))[0, -1].double(), -1)
            total -= float(logp[seq[i]])
            count += 1
    res = textlm.ar_nll(model, ids, batch_size=2)
    assert res.tokens == count == sum(len(s) + 1 for s in SENTENCES)
    assert res.nll == pytest.approx(total / count, rel=1e-5)
    assert res.se == 0.0 and res.samples == 0


def test_uniform_predictor_values(tok):
    """A model with all-zero logits: AR pays log V per counted token exactly; MDLM pays log(V - 1)
    (no mass on [MASK]) at each of the seq_len canvas positions in expectation, so its bound per
    counted token is seq_len * log(V - 1) / (n + 1) -- PAD positions count in the numerator only."""
    ids = batchify(SENTENCES, tok, textlm.SEQ_LEN)
    V = tok.vocab_size
    assert textlm.ar_nll(zero_head(tiny_model("ar")), ids).nll == pytest.approx(math.log(V))
    res = textlm.mdlm_nelbo(zero_head(tiny_model("mdlm")), ids, samples=64)
    expected = len(SENTENCES) * textlm.SEQ_LEN * math.log(V - 1) / res.tokens
    assert res.se > 0 and abs(res.nll - expected) < 4 * res.se


@pytest.mark.parametrize("kind", ["uniform", "absorbing"])
def test_d3pm_nelbo_is_finite(kind, tok):
    ids = batchify(SENTENCES, tok, textlm.SEQ_LEN)
    model = tiny_model(f"d3pm_{kind}")
    res = textlm.d3pm_nelbo(model, ids, kind, T=50, samples=4)
    assert math.isfinite(res.nll) and res.nll > 0 and math.isfinite(res.se) and res.samples == 4
    res2 = textlm.evaluate_nll(model, ids, dict(objective=f"d3pm_{kind}", model=TINY, T=50), samples=4)
    assert res2.nll == pytest.approx(res.nll)


@pytest.mark.parametrize("kind", ["uniform", "absorbing"])
def test_closed_form_d3pm_matches_reference(kind):
    """The closed-form terms equal course_lib.d3pm's dense-matrix ones (K = 6, T = 20)."""
    K, T, B, L = 6, 20, 5, 3
    g = torch.Generator().manual_seed(0)
    noise = textlm.D3PMNoise(kind, K, T, mask_id=1)
    ref = d3pm.make_discrete_schedule(kind, K, T, mask_id=1 if kind == "absorbing" else None)
    assert torch.allclose(noise.alpha_bars, ref.alpha_bars)
    x0 = torch.tensor([[0, 2, 3], [4, 5, 0], [2, 2, 2], [3, 0, 5], [5, 4, 3]])
    t = torch.tensor([1, 2, 7, 19, 20])
    x_t = noise.sample(x0, t, g)
    logits = torch.randn(B, L, K, generator=g, dtype=torch.float64)
    ours = noise.vb_terms(logits, x0, x_t, t)
    theirs = d3pm.vb_term(logits, x0, x_t, t, ref)
    assert torch.allclose(ours, theirs, atol=1e-10)
    assert torch.allclose(noise.prior_kl(x0), d3pm.prior_kl(x0, ref), atol=1e-12)


def test_mdlm_nelbo_needs_two_samples(tok):
    with pytest.raises(ValueError, match="samples"):
        textlm.mdlm_nelbo(tiny_model("mdlm"), batchify(SENTENCES, tok, textlm.SEQ_LEN), samples=1)


# ------------------------------------------------------------------ packing
def test_pack_canvases_fill_every_position_with_whole_sentences(tok):
    ids = batchify(SENTENCES, tok, textlm.SEQ_LEN)
    packed = textlm.pack_canvases(ids, 50, seed=3)
    assert packed.shape == (50, textlm.SEQ_LEN) and not bool((packed == textlm.PAD_ID).any())
    known = {tuple(r[:int(n)].tolist()) for r, n in zip(ids, textlm.counted_tokens(ids))}
    for row in packed.tolist():
        pieces, start = [], 0
        for i, token in enumerate(row):
            if token == textlm.EOS_ID:
                pieces.append(tuple(row[start:i + 1]))
                start = i + 1
        assert pieces and all(p in known for p in pieces)                        # starts at a sentence start
        assert any(k[:len(row) - start] == tuple(row[start:]) for k in known)   # the cut sentence is a prefix
    assert torch.equal(packed, textlm.pack_canvases(ids, 50, seed=3))           # deterministic
    assert not torch.equal(packed, textlm.pack_canvases(ids, 50, seed=4))


def test_pack_canvases_bad_input(tok):
    ids = batchify(SENTENCES, tok, textlm.SEQ_LEN)
    for n in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="n must"):
            textlm.pack_canvases(ids, n)
    no_eos = ids.clone()
    no_eos[no_eos == textlm.EOS_ID] = 5
    with pytest.raises(ValueError, match="EOS"):
        textlm.pack_canvases(no_eos, 4)
    with pytest.raises(ValueError, match="long tensor"):
        textlm.pack_canvases(ids.float(), 4)


def test_packed_recipe_data_has_no_padding():
    r = textlm.TEXT_RECIPES["lm_mdlm_packed"]
    assert {k: v for k, v in r.items() if k != "eval_sentences"} == textlm.TEXT_RECIPES["lm_mdlm"]
    valid = textlm.pack_canvases(textlm.language_ids("valid"), 20, seed=1)
    assert not bool((valid == textlm.PAD_ID).any())


def test_every_pretrained_mdm_from_chapter_3_on_trains_on_packed_canvases(monkeypatch):
    """The packed recipes get packed data (no [PAD]); SFT and the language editor start from the packed MDM."""
    from course_lib import editing, recipes
    assert {"lm_llada", "lm_bert15", "moe_dense", "moe_switch", "moe_switch_nobal", "moe_llada2"} \
        <= set(textlm.PACKED_RECIPES) <= set(textlm.TEXT_RECIPES)
    small = textlm.language_ids("train")[:300]
    monkeypatch.setattr(textlm, "language_ids", lambda split, tokenizer=None: small)
    monkeypatch.setattr(textlm, "TEXT_RECIPES", {k: dict(v, steps=2, batch_size=3) for k, v in
                                                  textlm.TEXT_RECIPES.items()})
    for name in ("lm_llada", "moe_llada2"):
        d = recipes.text_recipe_data(name)
        assert d["train"].shape == (6, textlm.SEQ_LEN) and not bool((d["train"] == textlm.PAD_ID).any())
        assert d["valid"].shape == (500, textlm.SEQ_LEN) and not bool((d["valid"] == textlm.PAD_ID).any())
    assert editing.LM_EDIT_RECIPE["init"] == "lm_mdlm_packed"
    loaded, load = [], textlm.load_text_model
    monkeypatch.setattr(textlm, "load_text_model", lambda name: loaded.append(name) or load(name))
    monkeypatch.setattr(textlm, "SFT_INSTRUCTIONS", 10)
    assert recipes.text_recipe_data("sft_mdm")["init"] is not None and loaded == ["lm_mdlm_packed"]


def test_packed_canvas_starts_with_the_chosen_sentence(tok):
    ids = batchify(SENTENCES * 4, tok, 12)
    canvas = textlm.packed_canvas(ids, 1)
    lengths = textlm.counted_tokens(ids)
    first = ids[1, :int(lengths[1])]
    assert canvas.shape == (1, 12) and torch.equal(canvas[0, :len(first)], first)
    assert torch.equal(canvas[0, len(first):], torch.cat([r[r != textlm.PAD_ID] for r in ids[2:]])[:12 - len(first)])
    for bad in (-1, len(ids), 1.0, True):
        with pytest.raises(ValueError, match="first must"):
            textlm.packed_canvas(ids, bad)
    with pytest.raises(ValueError, match="do not fill"):
        textlm.packed_canvas(ids, len(ids) - 1)


# ------------------------------------------------------------------ sampling
def test_samplers_return_sentences_or_none(tok):
    for samples in (textlm.sample_ar(tiny_model("ar"), 5, tok, seed=1),
                    textlm.sample_mdlm(tiny_model("mdlm"), 5, tok, steps=8, seed=1),
                    textlm.sample_mdlm(tiny_model("mdlm"), 5, tok, steps=8, order="confidence", seed=1)):
        assert len(samples) == 5
        assert all(s is None or (isinstance(s, list) and "[EOS]" not in s) for s in samples)


def test_sample_validity_counts():
    stats = textlm.sample_validity([SENTENCES[0], ["dog", "the"], None, SENTENCES[1]], data=SENTENCES)
    assert stats["n"] == 4 and stats["valid_fraction"] == 0.5 and stats["no_eos_fraction"] == 0.25
    assert stats["mean_length"] == pytest.approx(3.0) and stats["data_mean_length"] == pytest.approx(4.0)
    assert stats["length_ratio"] == pytest.approx(0.75)


# ------------------------------------------------------------------ bad inputs
@pytest.mark.parametrize("recipe", [
    dict(objective="gpt"),
    dict(objective="ar", stepz=10),
    dict(objective="ar", steps=0),
    dict(objective="ar", lr=-1.0),
    dict(objective="ar", lr=float("nan")),
    dict(objective="mdlm", batch_size=2.5),
    dict(objective="mdlm", ema_decay=1.0),
    dict(objective="mdlm", schedule="square"),
    dict(objective="ar", model=dict(attention="bidirectional")),
    dict(objective="mdlm", model=dict(time_conditioning=True)),
    dict(objective="mdlm", model=dict(d_modle=64)),
    dict(objective="mdlm", model=dict(d_model=30, n_head=4)),
    "mdlm",
])
def test_bad_recipes_raise(recipe):
    with pytest.raises(ValueError):
        textlm.TextLMConfig.from_dict(recipe)


def test_bad_data_raises(tok, data):
    recipe = dict(objective="mdlm", model=TINY, steps=1)
    with pytest.raises(ValueError, match="seq_len"):
        textlm.train_text_model(recipe, data[:, :20], show_progress=False)
    bad = data.clone()
    bad[0, 0] = tok.mask_id
    with pytest.raises(ValueError, match="MASK"):
        textlm.train_text_model(recipe, bad, show_progress=False)
    with pytest.raises(ValueError):
        textlm.train_text_model(recipe, data.float(), show_progress=False)


def test_shipped_text_recipes_are_valid_configs():
    for name, recipe in textlm.TEXT_RECIPES.items():
        cfg = textlm.TextLMConfig.from_dict(recipes.text_recipe(name))
        if name.startswith("lm_") or name == "sft_mdm":           # the course language's canvas
            assert cfg.transformer_config().seq_len == textlm.SEQ_LEN, name
    # the two D3PM recipes must see the same batches (equal size and tokens) for the chapter's comparison
    a, u = textlm.TEXT_RECIPES["lm_d3pm_absorbing"], textlm.TEXT_RECIPES["lm_d3pm_uniform"]
    assert {k: v for k, v in a.items() if k != "objective"} == {k: v for k, v in u.items() if k != "objective"}


def test_text_model_loading_errors(tmp_path, monkeypatch):
    from course_lib import checkpoints
    with pytest.raises(ValueError, match="unknown text recipe"):
        recipes.run_text_recipe("lm_nope")
    with pytest.raises(checkpoints.CheckpointError, match="retrain"):
        textlm.load_text_model("lm_nope")
    with pytest.raises(ValueError, match="unknown split"):
        textlm.language_ids("dev")


def test_shipped_text_models_load_and_match_their_recipe():
    from course_lib import checkpoints
    manifest = checkpoints.read_manifest()
    for name in textlm.TEXT_RECIPES:
        assert name in manifest, f"{name} is not shipped: ./course retrain {name}"
        model = textlm.load_text_model(name)
        assert not model.training
        assert textlm.TextLMConfig.from_dict(model.recipe).objective == textlm.TEXT_RECIPES[name]["objective"]
        assert manifest[name]["bytes"] <= 8 * 2**20, f"{name} is larger than 8 MB"
        assert manifest[name]["train_seconds"] <= 15 * 60, f"{name} took longer than 15 minutes to train"
