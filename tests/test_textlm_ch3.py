"""Chapter 3's additions to the text-model training (course_lib.textlm) and to the Transformer (course_lib.nn):
the "llada" objective and its BERT variant (fixed mask_ratio), LLaDA SFT through prompt_lengths, the shipped
chapter-3 recipes and their data, and growing a pretrained model's vocabulary."""
import copy
import functools

import pytest
import torch

from course_lib import facts, language, recipes, tasks, textlm
from course_lib.nn import Transformer, TransformerConfig, grow_vocabulary
from course_lib.tokenizer import Tokenizer, batchify
from course_lib.masked import llada_pretrain_step_loss, sft_forward_process, sft_step_loss, masked_token_nll

TINY = dict(n_layer=1, d_model=32, n_head=2)
MASK = textlm.MASK_ID


@pytest.fixture(scope="module")
def data():
    return batchify(language.sample_corpus(96, seed=9), Tokenizer.for_language(), textlm.SEQ_LEN)


@pytest.fixture(scope="module")
def sft_data():
    return tasks.instructions_to_ids(tasks.instruction_set("valid", 48, seed=0))


class Spy(Transformer):
    """A Transformer that records every input it is called on."""

    def __init__(self, config):
        super().__init__(config)
        self.seen = []

    def forward(self, idx, *args, **kw):
        self.seen.append(idx.detach().clone())
        return super().forward(idx, *args, **kw)


def spy_for(recipe):
    torch.manual_seed(0)
    return Spy(textlm.TextLMConfig.from_dict(recipe).transformer_config())


def first_step_loss(recipe, data, prompt_lengths=None):
    """The first training loss that train_text_model logs, and a copy of the model it started from."""
    model = textlm.build_model(recipe)
    start = copy.deepcopy(model)
    _, h = textlm.train_text_model(dict(recipe, steps=1, eval_every=1), data, model=model, show_progress=False,
                                   prompt_lengths=prompt_lengths)
    return h["train_loss"][0], start


# =========================================================================== the llada objective
def test_llada_training_loss_is_llada_pretrain_step_loss(data):
    recipe = dict(objective="llada", model=TINY, batch_size=8, seed=3)
    logged, start = first_step_loss(recipe, data)
    g = torch.Generator().manual_seed(3)                       # the loop's generator: rows first, then the masks
    x0 = data[torch.randint(0, len(data), (8,), generator=g)]
    expected = llada_pretrain_step_loss(start.train(), x0, MASK, g).loss
    assert logged == pytest.approx(expected.item(), rel=1e-5)


def test_bert_objective_masks_a_fixed_fraction(data):
    recipe = dict(objective="llada", mask_ratio=0.15, model=TINY, batch_size=32, seed=1)
    logged, start = first_step_loss(recipe, data)
    g = torch.Generator().manual_seed(1)
    x0 = data[torch.randint(0, len(data), (32,), generator=g)]
    # BERT's loss by hand: each position masked with probability 0.15, CE on masked positions / 0.15 / (B L)
    u = torch.rand(x0.shape, generator=g, dtype=torch.float64)
    masked = u < 0.15
    noisy = torch.where(masked, torch.full_like(x0, MASK), x0)
    nll = masked_token_nll(start.train()(noisy), x0, noisy, masked)
    assert logged == pytest.approx((nll.sum() / 0.15 / x0.numel()).item(), rel=1e-5)

    # over several steps every row is masked at about 15%, unlike llada's t ~ U(0, 1) per row
    fractions = {}
    for ratio in (0.15, None):
        r = dict(objective="llada", model=TINY, batch_size=32, steps=4, eval_every=4, seed=2, mask_ratio=ratio)
        model = spy_for(r)
        textlm.train_text_model(r, data, model=model, show_progress=False)
        seen = torch.cat(model.seen[:4])
        fractions[ratio] = (seen == MASK).double().mean(1)                   # per row
    f15, fll = fractions[0.15], fractions[None]
    n = f15.numel() * textlm.SEQ_LEN
    assert abs(float(f15.mean()) - 0.15) < 4 * (0.15 * 0.85 / n) ** 0.5
    assert float(f15.std()) < 0.1 < float(fll.std())                        # sd ~ 0.056 vs ~ 0.29


def test_llada_is_evaluated_by_the_mdlm_bound(data):
    model = textlm.build_model(dict(objective="llada", model=TINY)).eval()
    a = textlm.evaluate_nll(model, data[:16], dict(objective="llada", model=TINY), samples=2, seed=4)
    b = textlm.evaluate_nll(model, data[:16], dict(objective="mdlm", model=TINY), samples=2, seed=4)
    assert a.nll == pytest.approx(b.nll) and a.nll > 0


@pytest.mark.parametrize("recipe, match", [
    (dict(objective="mdlm", mask_ratio=0.15), "llada"),
    (dict(objective="ar", mask_ratio=0.15), "llada"),
    (dict(objective="llada", mask_ratio=0.0), r"\(0, 1\]"),
    (dict(objective="llada", mask_ratio=1.5), r"\(0, 1\]"),
    (dict(objective="llada", mask_ratio=-0.1), r"\(0, 1\]"),
    (dict(objective="llada", mask_ratio=True), r"\(0, 1\]"),
    (dict(objective="llada", mask_ratio="0.15"), r"\(0, 1\]"),
    (dict(objective="llada", mask_ratio=float("nan")), r"\(0, 1\]"),
    (dict(objective="llada", model=dict(TINY, time_conditioning=True)), "time_conditioning"),
    (dict(objective="llada", model=dict(TINY, attention="causal")), "attention"),
])
def test_llada_config_validation(recipe, match):
    with pytest.raises(ValueError, match=match):
        textlm.TextLMConfig.from_dict(recipe)


def test_full_masking_ratio_is_allowed():
    assert textlm.TextLMConfig.from_dict(dict(objective="llada", mask_ratio=1.0)).mask_ratio == 1.0
    assert textlm.TextLMConfig.from_dict(dict(objective="llada")).attention == "bidirectional"


# =========================================================================== SFT through prompt_lengths
def sft_recipe(**kw):
    return dict(objective="llada", model=dict(TINY, vocab_size=tasks.instruction_tokenizer().vocab_size),
                batch_size=16, lr=3e-3, warmup=1, **kw)


def test_sft_training_loss_is_llada_sft_step_loss(sft_data):
    x0_all, pl = sft_data
    logged, start = first_step_loss(sft_recipe(seed=5), x0_all, prompt_lengths=pl)
    g = torch.Generator().manual_seed(5)
    rows = torch.randint(0, len(x0_all), (16,), generator=g)
    expected = sft_step_loss(start.train(), x0_all[rows], pl[rows], MASK, g).loss
    assert logged == pytest.approx(expected.item(), rel=1e-5)


def test_sft_training_never_masks_the_prompt(sft_data):
    x0_all, pl = sft_data
    tok = tasks.instruction_tokenizer()
    r = sft_recipe(steps=5, eval_every=5)
    model = spy_for(r)
    out, h = textlm.train_text_model(r, x0_all, model=model, prompt_lengths=pl, show_progress=False)
    assert h["steps_done"] == 5 and len(model.seen) == 5 and h["valid_nll"] == []
    assert all(v == v and v > 0 for v in h["train_loss"])
    seen = torch.cat(model.seen)
    sep = tok.stoi[tasks.SEP]
    answer_masks = 0
    for row in seen.tolist():
        P = row.index(sep) + 1                                           # the prompt ends with [sep]
        assert tok.itos[row[0]] in tasks.INSTRUCTIONS and MASK not in row[:P]
        answer_masks += row[P:].count(MASK)
    assert answer_masks > 0                                              # the answers are masked


def test_sft_forward_process_keeps_prompts(sft_data):
    x0, pl = sft_data
    noisy, masked, _ = sft_forward_process(x0, pl, MASK, torch.Generator().manual_seed(0))
    prompt = torch.arange(x0.shape[1])[None] < pl[:, None]
    assert torch.equal(noisy[prompt], x0[prompt]) and not bool(masked[prompt].any())
    assert bool(masked[~prompt].any())


def test_sft_can_fine_tune_a_grown_pretrained_model(data, sft_data):
    x0, pl = sft_data
    pre, _ = textlm.train_text_model(dict(objective="llada", model=TINY, steps=2, batch_size=8, eval_every=2),
                                     data, show_progress=False)
    grown = grow_vocabulary(pre, tasks.instruction_tokenizer().vocab_size)
    out, h = textlm.train_text_model(sft_recipe(steps=3, eval_every=3), x0, model=grown, prompt_lengths=pl,
                                     show_progress=False)
    assert h["steps_done"] == 3 and out.config.vocab_size == 356


@pytest.mark.parametrize("recipe, pl, match", [
    (dict(objective="ar", model=dict(TINY, vocab_size=356)), "ok", "llada"),
    (dict(objective="mdlm", model=dict(TINY, vocab_size=356)), "ok", "llada"),
    (dict(objective="llada", mask_ratio=0.15, model=dict(TINY, vocab_size=356)), "ok", "variable masking"),
    (dict(objective="llada", model=dict(TINY, vocab_size=356)), "short", "shape"),
])
def test_prompt_lengths_bad_input(sft_data, recipe, pl, match):
    x0, lengths = sft_data
    lengths = lengths if pl == "ok" else lengths[:-1]
    with pytest.raises(ValueError, match=match):
        textlm.train_text_model(dict(recipe, steps=1), x0, prompt_lengths=lengths, show_progress=False)


# =========================================================================== shipped chapter-3 recipes
def test_every_recipe_is_valid_and_has_a_thread_count():
    assert set(textlm.TEXT_RECIPE_THREADS) == set(textlm.TEXT_RECIPES)
    for name in textlm.TEXT_RECIPES:
        r = recipes.text_recipe(name)
        assert r["seed"] == 0
        textlm.TextLMConfig.from_dict(r)                                 # raises if invalid
    a, b = recipes.text_recipe("lm_llada"), recipes.text_recipe("lm_bert15")
    assert b.pop("mask_ratio") == 0.15 and a == b                        # the pair differs only by the masking rate
    assert recipes.text_recipe("icl_ar")["model"] == recipes.text_recipe("icl_mdm")["model"]
    for bad in ("lm_bert", "", "facts", "sft"):
        with pytest.raises(ValueError, match="unknown text recipe"):
            recipes.text_recipe(bad)
    for bad in ("", "facts", "sft", "bert15"):
        with pytest.raises(ValueError, match="unknown text recipe"):
            recipes.text_recipe_data(bad)


@pytest.mark.parametrize("bad", ["lm_bert", "facts_typo"])
def test_recipe_data_rejects_unknown_names_with_a_known_prefix(bad):
    with pytest.raises(ValueError, match="unknown text recipe"):
        recipes.text_recipe_data(bad)


@functools.lru_cache(maxsize=None)
def recipe_data(name):
    return recipes.text_recipe_data(name)


@pytest.mark.parametrize("name", ["lm_llada", "facts_ar", "facts_mdm"])
def test_recipe_data_fits_its_recipe(name):
    tc = textlm.TextLMConfig.from_dict(recipes.text_recipe(name)).transformer_config()
    d = recipe_data(name)
    for split in ("train", "valid"):
        ids = d[split]
        assert ids.shape[1] == tc.seq_len and int(ids.max()) < tc.vocab_size and not bool((ids == MASK).any())
        assert bool((ids == textlm.EOS_ID).any(1).all())                   # every row ends
    assert "prompt_lengths" not in d


def test_facts_data_are_the_world_statements():
    w = facts.reversal_world()
    tok = facts.world_tokenizer(w)
    d = recipes.text_recipe_data("facts_ar")
    rows = {tuple(tok.itos[i] for i in row[:row.index(tok.eos_id)]) for row in d["train"].tolist()}
    assert rows == {tuple(s) for s in w.training_statements()}
    assert len(d["train"]) == len(w.training_statements())


def test_sft_data_grow_the_shipped_language_model():
    d = recipes.text_recipe_data("sft_mdm")
    tok = tasks.instruction_tokenizer()
    tc = textlm.TextLMConfig.from_dict(recipes.text_recipe("sft_mdm")).transformer_config()
    assert d["init"].config.to_dict() == tc.to_dict()                     # train_text_model accepts it
    assert d["valid"] is None and d["prompt_lengths"].shape == (len(d["train"]),)
    x0, pl = d["train"], d["prompt_lengths"]
    assert x0.shape[1] == tc.seq_len and int(x0.max()) < tc.vocab_size
    sep = tok.stoi[tasks.SEP]
    for row, p in zip(x0[:200].tolist(), pl[:200].tolist()):
        assert tok.itos[row[0]] in tasks.INSTRUCTIONS and row[p - 1] == sep and row[-1] == tok.eos_id
    base = textlm.load_text_model("lm_mdlm_packed")
    x = textlm.language_ids("test")[:4]
    with torch.no_grad():
        torch.testing.assert_close(d["init"](x)[..., :base.config.vocab_size], base(x))


# =========================================================================== grow_vocabulary
def tiny_transformer(**kw):
    torch.manual_seed(0)
    return Transformer(TransformerConfig(vocab_size=20, seq_len=8, n_layer=1, n_head=2, d_model=32, **kw))


@pytest.mark.parametrize("kw", [dict(), dict(tie_embeddings=True), dict(attention="causal")])
def test_grow_vocabulary_keeps_old_logits(kw):
    model = tiny_transformer(**kw).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randint(0, 20, (3, 8), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        old = model(x)
        grown = grow_vocabulary(model, 25)
        new = grown(x)
    assert new.shape == (3, 8, 25) and grown.config.vocab_size == 25
    torch.testing.assert_close(new[..., :20], old)
    assert grown.tok_emb.weight.shape == (25, 32) and grown.lm_head.weight.shape == (25, 32)
    torch.testing.assert_close(grown.tok_emb.weight[:20], model.tok_emb.weight)
    extra = grown.tok_emb.weight[20:].detach()
    assert 0.01 < float(extra.std()) < 0.04 and bool((extra != 0).all())
    if kw.get("tie_embeddings"):
        assert grown.lm_head.weight is grown.tok_emb.weight              # still tied
    # the original is untouched, the new ids are usable, the other settings carried over
    assert model.config.vocab_size == 20
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert grown(torch.tensor([[21, 24, 3]])).shape == (1, 3, 25)
    assert {k: v for k, v in grown.config.to_dict().items() if k != "vocab_size"} == \
        {k: v for k, v in model.config.to_dict().items() if k != "vocab_size"}


def test_grow_vocabulary_is_seeded_and_keeps_the_mode():
    model = tiny_transformer()
    model.train()
    a, b, c = grow_vocabulary(model, 23, seed=1), grow_vocabulary(model, 23, seed=1), grow_vocabulary(model, 23, seed=2)
    assert a.training
    assert torch.equal(a.tok_emb.weight, b.tok_emb.weight) and torch.equal(a.lm_head.weight, b.lm_head.weight)
    assert not torch.equal(a.tok_emb.weight[20:], c.tok_emb.weight[20:])
    assert not grow_vocabulary(model.eval(), 23).training
    same = grow_vocabulary(model, 20)
    x = torch.randint(0, 20, (2, 8))
    with torch.no_grad():
        torch.testing.assert_close(same(x), model(x))


@pytest.mark.parametrize("bad", [19, 0, 22.0, True, "25"])
def test_grow_vocabulary_bad_size(bad):
    with pytest.raises(ValueError, match="vocab_size"):
        grow_vocabulary(tiny_transformer(), bad)
