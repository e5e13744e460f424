"""Chapter 4's addition task (course_lib.arith): encodings, splits, grading, recipes, training loss, sampling,
the threshold grid and checkpoint loading. Checked against Python's own arithmetic and independent loops."""
import functools
import random

import pytest
import torch

from course_lib import arith, cap, checkpoints, decoding, editing
from course_lib.nn import Transformer, TransformerConfig
from course_lib.masked import sft_forward_process, sft_loss

P, G, V, MASK, EOS = arith.PROMPT_LENGTH, arith.GEN_LENGTH, arith.VOCAB_SIZE, arith.MASK_ID, arith.EOS_ID


pytestmark = pytest.mark.usefixtures("one_torch_thread")   # tests/conftest.py


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return Transformer(TransformerConfig(vocab_size=14, seq_len=16, n_layer=1, n_head=2, d_model=16)).eval()


def random_pairs(n, seed=0):
    rng = random.Random(seed)
    return [(rng.randrange(1000), rng.randrange(1000)) for _ in range(n)] + [(0, 0), (999, 999), (500, 500), (1, 999)]


# =========================================================================== encodings
def test_constants():
    assert (P, G, V, arith.SEQ_LEN, arith.ANSWER_DIGITS) == (8, 8, 14, 16, 4)
    assert [arith.ITOS[i] for i in (arith.PLUS_ID, arith.EQ_ID, EOS, MASK)] == ["+", "=", "[EOS]", "[MASK]"]
    assert all(arith.STOI[arith.ITOS[i]] == i for i in range(V))


def test_encodings_agree_with_python_arithmetic():
    pairs = random_pairs(500)
    prompts, full = arith.to_ids(torch.tensor(pairs))
    for k, (a, b) in enumerate(pairs):
        want_prompt = [int(c) for c in f"{a:03d}"] + [10] + [int(c) for c in f"{b:03d}"] + [11]
        want_answer = [int(c) for c in str(a + b).zfill(4)] + [12] * 4
        assert arith.encode_prompt(a, b) == want_prompt
        assert arith.encode_answer(a, b) == want_answer
        assert prompts[k].tolist() == want_prompt
        assert full[k].tolist() == want_prompt + want_answer
        # the answer digits read back as the number a + b
        assert int("".join(map(str, full[k, P:P + 4].tolist()))) == a + b
    assert prompts.dtype == full.dtype == torch.long and full.shape == (len(pairs), 16)


def test_decode_round_trip():
    pairs = random_pairs(200, seed=1)
    _, full = arith.to_ids(torch.tensor(pairs))
    for (a, b), row in zip(pairs, full):
        text = arith.decode(row)
        assert text == " ".join(f"{a:03d}") + " + " + " ".join(f"{b:03d}") + " = " + " ".join(str(a + b).zfill(4))
        # parse back: every symbol is one token, and the (dropped) [EOS] follows
        back = [arith.STOI[s] for s in text.split()] + [EOS]
        assert back == row[:P + 5].tolist()
    # [MASK] shows as "_"; everything after the first [EOS] is dropped, whatever it is
    row = full[0].clone()
    row[P + 1] = MASK
    row[P + 5:] = torch.tensor([3, MASK, 7])
    assert arith.decode(row).split()[P + 1] == "_" and len(arith.decode(row).split()) == P + 4
    with pytest.raises(ValueError, match="outside the vocabulary"):
        arith.decode([1, 2, 14])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        arith.decode([-1])


# =========================================================================== splits
def test_split_is_disjoint_complete_and_deterministic():
    train, test = arith.problems("train"), arith.problems("test")
    assert train.shape == (10 ** 6 - arith.HELD_OUT, 2) and test.shape == (arith.HELD_OUT, 2)
    keys = torch.cat([train[:, 0] * 1000 + train[:, 1], test[:, 0] * 1000 + test[:, 1]])
    # every one of the 10^6 pairs exactly once, in one of the two splits
    assert torch.equal(keys.sort().values, torch.arange(10 ** 6))
    assert int(train.min()) >= 0 and int(train.max()) <= 999
    assert torch.equal(arith.problems("test"), test)
    # the held-out set is a real mix, not e.g. the first 2000 pairs
    assert test[:, 0].float().std() > 200 and test[:, 1].float().std() > 200
    with pytest.raises(ValueError, match="split"):
        arith.problems("valid")


def test_problems_sample_without_replacement():
    test_keys = set((arith.problems("test")[:, 0] * 1000 + arith.problems("test")[:, 1]).tolist())
    s = arith.problems("train", 5000, seed=3)
    keys = (s[:, 0] * 1000 + s[:, 1]).tolist()
    assert s.shape == (5000, 2) and len(set(keys)) == 5000
    assert not set(keys) & test_keys                       # drawn from the training split only
    assert torch.equal(arith.problems("train", 5000, seed=3), s)
    assert not torch.equal(arith.problems("train", 5000, seed=4), s)
    whole = arith.problems("test", arith.HELD_OUT, seed=1)  # n = the whole split: a permutation of it
    assert set((whole[:, 0] * 1000 + whole[:, 1]).tolist()) == test_keys
    for bad in (0, -1, arith.HELD_OUT + 1, 2.5, True):
        with pytest.raises(ValueError, match="n must be"):
            arith.problems("test", bad)


# =========================================================================== grading
def test_grade_accepts_right_and_rejects_every_single_digit_change():
    pairs = arith.problems("test")[:300]
    _, full = arith.to_ids(pairs)
    assert bool(arith.grade(full, pairs).all())
    for pos in range(P, P + 4):
        for delta in range(1, 10):
            wrong = full.clone()
            wrong[:, pos] = (wrong[:, pos] + delta) % 10
            assert not bool(arith.grade(wrong, pairs).any())
    # a digit replaced by a symbol, or by [MASK]
    for tok in (arith.PLUS_ID, arith.EQ_ID, EOS, MASK):
        wrong = full.clone()
        wrong[:, P + 2] = tok
        assert not bool(arith.grade(wrong, pairs).any())


def test_grade_eos_rules():
    pairs = arith.problems("test")[:200]
    _, full = arith.to_ids(pairs)
    missing = full.clone()
    missing[:, P + 4] = 0                                  # no [EOS] right after the digits
    assert not bool(arith.grade(missing, pairs).any())
    early = full.clone()                                   # [EOS] after three digits
    early[:, P + 3] = EOS
    assert not bool(arith.grade(early, pairs).any())
    shifted = full.clone()                                 # digits shifted right by one, [EOS] one late
    shifted[:, P + 1:P + 5] = full[:, P:P + 4]
    shifted[:, P] = 0
    shifted[:, P + 5] = EOS
    ok = (full[:, P:P + 4] == shifted[:, P:P + 4]).all(1)  # only a row whose digits are all equal could pass
    assert not bool((arith.grade(shifted, pairs) & ~ok).any())
    # tokens after the first [EOS] are not read: any junk there, [MASK] included
    junk = full.clone()
    g = torch.Generator().manual_seed(0)
    junk[:, P + 5:] = torch.randint(0, V, (len(pairs), G - 5), generator=g)
    assert bool(arith.grade(junk, pairs).all())
    # the prompt part is not read either (the grade is about the answer to `pairs`)
    other = full.clone()
    other[:, :P] = 0
    assert bool(arith.grade(other, pairs).all())


@pytest.mark.parametrize("call", [
    lambda: arith.encode_prompt(1000, 0), lambda: arith.encode_prompt(0, -1), lambda: arith.encode_prompt(1.0, 2),
    lambda: arith.encode_prompt(True, 2), lambda: arith.encode_answer(1000, 5), lambda: arith.encode_answer(3, -2),
    lambda: arith.to_ids(torch.tensor([1, 2])), lambda: arith.to_ids(torch.tensor([[1, 2, 3]])),
    lambda: arith.to_ids(torch.tensor([[1.0, 2.0]])), lambda: arith.to_ids(torch.tensor([[1000, 2]])),
    lambda: arith.to_ids(torch.tensor([[-1, 2]])), lambda: arith.to_ids(torch.tensor([[True, False]])),
])
def test_bad_operands_raise(call):
    with pytest.raises(ValueError):
        call()


def test_grade_bad_inputs():
    pairs = arith.problems("test")[:4]
    _, full = arith.to_ids(pairs)
    with pytest.raises(ValueError, match="shape"):
        arith.grade(full[:, :-1], pairs)
    with pytest.raises(ValueError, match="shape"):
        arith.grade(full[:3], pairs)
    with pytest.raises(ValueError, match="shape"):
        arith.grade(full.tolist(), pairs)
    for bad in (V, -1):
        x = full.clone()
        x[0, P + 6] = bad
        with pytest.raises(ValueError, match="token ids"):
            arith.grade(x, pairs)
    with pytest.raises(ValueError, match="token ids"):
        arith.grade(full.float(), pairs)
    with pytest.raises(ValueError, match="operands"):
        arith.grade(full, pairs + 1000)


# =========================================================================== recipes
def test_shipped_recipes_are_valid():
    for name in arith.ARITH_RECIPES:
        r = arith.arith_recipe(name)
        cfg = r.transformer_config()
        assert (cfg.vocab_size, cfg.seq_len, cfg.attention) == (14, 16, "bidirectional")
        assert r.to_dict()["model"]["vocab_size"] == 14
    with pytest.raises(ValueError, match="unknown addition recipe"):
        arith.arith_recipe("add_nope")


@pytest.mark.parametrize("kw", [
    dict(objective="ar"), dict(objective="sft", cap_lambda=1.0), dict(objective="cap"),
    dict(objective="cap", cap_lambda=-1.0), dict(objective="cap", cap_lambda=float("nan")),
    dict(objective="edit"), dict(objective="sft", edit_rate=0.2), dict(objective="cap", cap_lambda=1.0, edit_rate=0.1),
    dict(objective="edit", edit_rate=1.5), dict(objective="edit", edit_rate=float("nan")),
    dict(objective="sft", draft_rate=0.5), dict(objective="edit", edit_rate=0.2, draft_rate=1.5),
    dict(steps=0), dict(steps=2.5), dict(batch_size=True), dict(lr=0.0), dict(lr=float("nan")),
    dict(warmup=-1), dict(min_lr_ratio=1.5), dict(weight_decay=-0.1), dict(init=3),
])
def test_recipe_validation(kw):
    with pytest.raises(ValueError):
        arith.ArithRecipe(**kw)


def test_recipe_good_combinations():
    arith.ArithRecipe(objective="cap", cap_lambda=2.0)
    arith.ArithRecipe(objective="edit", edit_rate=0.2, draft_rate=0.5)
    arith.ArithRecipe(objective="edit", edit_rate=1.0)


# =========================================================================== loss and training
TINY = dict(n_layer=1, n_head=2, d_model=16)


def _batch(n=6, seed=0):
    pairs = arith.problems("train", n, seed=seed)
    return pairs, arith.to_ids(pairs)[1]


def test_arith_loss_sft_equals_llada_sft_loss_and_a_transcription():
    model, (_, x0) = tiny_model(), _batch()
    recipe = arith.ArithRecipe(model=TINY)
    loss, parts = arith.arith_loss(model, recipe, x0, torch.Generator().manual_seed(11))
    pl = torch.full((len(x0),), P)
    noisy, masked, p_mask = sft_forward_process(x0, pl, MASK, torch.Generator().manual_seed(11))
    logits = model(noisy)
    want = sft_loss(logits, x0, noisy, masked, p_mask, pl, mask_id=MASK)
    torch.testing.assert_close(loss, want)
    assert parts == {"sft": pytest.approx(want.item())}
    # a loop transcription of LLaDA's SFT loss: CE at masked answer positions / p_mask / answer length, row mean
    total = 0.0
    for b in range(len(x0)):
        lp = torch.log_softmax(torch.cat([logits[b, :, :MASK], logits[b, :, MASK + 1:]], -1), -1)
        for i in range(P, 16):
            if noisy[b, i] == MASK:
                total += -lp[i, x0[b, i]].item() / float(p_mask[b]) / G
    assert loss.item() == pytest.approx(total / len(x0), rel=1e-5)
    assert not bool(masked[:, :P].any()) and bool(masked.any())


def test_arith_loss_cap_and_edit():
    model, (_, x0) = tiny_model(), _batch()
    pl = torch.full((len(x0),), P)
    r = arith.ArithRecipe(objective="cap", cap_lambda=2.0, model=TINY)
    loss, parts = arith.arith_loss(model, r, x0, torch.Generator().manual_seed(5))
    noisy, masked, p_mask = sft_forward_process(x0, pl, MASK, torch.Generator().manual_seed(5))
    logits = model(noisy)
    sft = sft_loss(logits, x0, noisy, masked, p_mask, pl, mask_id=MASK)
    conf = cap.confidence_loss(logits, x0, masked, MASK)
    torch.testing.assert_close(loss, sft + 2.0 * conf)
    assert set(parts) == {"sft", "conf"}
    r = arith.ArithRecipe(objective="edit", edit_rate=0.3, draft_rate=0.5, model=TINY)
    loss, parts = arith.arith_loss(model, r, x0, torch.Generator().manual_seed(5))
    want, want_parts = editing.m2t_t2t_loss(model, x0, pl, MASK, 0.3, list(range(10)) + [EOS],
                                            torch.Generator().manual_seed(5), draft_rate=0.5)
    torch.testing.assert_close(loss, want)
    assert parts == pytest.approx(want_parts)


@pytest.mark.parametrize("kw", [dict(objective="sft"), dict(objective="cap", cap_lambda=2.0),
                                dict(objective="edit", edit_rate=0.2, draft_rate=0.5)])
def test_train_arith_is_deterministic(kw):
    threads = torch.get_num_threads()
    recipe = dict(kw, model=TINY, steps=5, batch_size=16, warmup=2, seed=3)
    m1, h1 = arith.train_arith(recipe, show_progress=False)
    m2, h2 = arith.train_arith(arith.ArithRecipe(**recipe), show_progress=False)
    assert torch.get_num_threads() == threads
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert h1["step"] == [5] and h1["loss"] == h2["loss"] and all(map(torch.isfinite, map(torch.tensor, h1["loss"])))
    assert set(h1["parts"][0]) == {"sft": {"sft"}, "cap": {"sft", "conf"}, "edit": {"m2t", "t2t"}}[kw["objective"]]
    assert not m1.training and m1.recipe["objective"] == kw["objective"] and m1.recipe["model"]["d_model"] == 16
    # training did move the weights away from the seeded initialisation, and another seed gives another model
    torch.manual_seed(3)
    init = Transformer(arith.ArithRecipe(**recipe).transformer_config()).state_dict()
    assert not all(torch.equal(init[k], s1[k]) for k in s1)
    m3, _ = arith.train_arith(dict(recipe, seed=4), show_progress=False)
    assert not all(torch.equal(m3.state_dict()[k], s1[k]) for k in s1)


# =========================================================================== sampling
def greedy_one_per_step(model, prompts):
    """An independent greedy decoder: each step, commit the most confident masked position (leftmost on ties)."""
    x = torch.cat([prompts, torch.full((len(prompts), G), MASK)], 1)
    with torch.no_grad():
        for _ in range(G):
            logits = model(x).double()
            logits[..., MASK] = float("-inf")
            p = torch.softmax(logits, -1)
            conf, tok = p.max(-1)
            conf = torch.where(x == MASK, conf, torch.full_like(conf, -1.0))
            pos = conf.argmax(1)
            x[torch.arange(len(x)), pos] = tok[torch.arange(len(x)), pos]
    return x


def counting_model(x):
    """A fake model whose proposal depends on the canvas: every position proposes (number of [MASK]s left) mod 10,
    more confidently the further left it is (all confidences > 0.9). Decoded one token per step it writes
    8 7 6 5 4 3 2 1; any decoder that commits two tokens in one step writes something else."""
    left = (x == MASK).sum(1) % 10
    logits = torch.zeros(x.shape[0], x.shape[1], V)
    logits[torch.arange(len(x)), :, left] = (20.0 - torch.arange(x.shape[1]) / 2)[None]
    return logits


@pytest.mark.parametrize("model", [tiny_model(seed=2), counting_model], ids=["random", "counting"])
def test_sample_answers_greedy_equals_threshold_one_and_an_independent_loop(model):
    pairs = arith.problems("test")[:40]
    prompts, _ = arith.to_ids(pairs)
    got = arith.sample_answers(model, prompts, temperature=0.0)
    want = decoding.threshold_decode(model, prompts, G, G, 1.0, MASK, EOS).x
    assert torch.equal(got, want)
    mine = greedy_one_per_step(model, prompts)
    # the course decoder turns everything after the first [EOS] into [EOS]; compare up to it
    for row_got, row_mine in zip(got, mine):
        ans = row_mine[P:].tolist()
        k = ans.index(EOS) + 1 if EOS in ans else G
        assert row_got[P:P + k].tolist() == ans[:k]
    assert torch.equal(got[:, :P], prompts)
    if model is counting_model:
        assert got[:, P:].tolist() == [[8, 7, 6, 5, 4, 3, 2, 1]] * len(prompts)


def test_sample_answers_at_temperature_one_is_seeded():
    model = tiny_model(seed=2)
    prompts, _ = arith.to_ids(arith.problems("test")[:40])
    a = arith.sample_answers(model, prompts, torch.Generator().manual_seed(1), 1.0)
    b = arith.sample_answers(model, prompts, torch.Generator().manual_seed(1), 1.0)
    c = arith.sample_answers(model, prompts, torch.Generator().manual_seed(2), 1.0)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not bool((a == MASK).any()) and torch.equal(a[:, :P], prompts)


class Oracle(torch.nn.Module):
    """A fake model that knows the sum: logits = strength * onehot(right answer) + noise, the noise a fixed
    (position, token) table picked by (a + b) mod 7, so that some problems come out wrong and others right."""

    def __init__(self, strength, table_scale, seed=0):
        super().__init__()
        self.strength = strength
        self.table = table_scale * torch.randn(7, 16, V, generator=torch.Generator().manual_seed(seed))

    def forward(self, x):
        a = x[:, 0] * 100 + x[:, 1] * 10 + x[:, 2]
        b = x[:, 4] * 100 + x[:, 5] * 10 + x[:, 6]
        _, full = arith.to_ids(torch.stack([a, b], 1))
        return self.strength * torch.nn.functional.one_hot(full, V).float() + self.table[(a + b) % 7]


def test_heldout_reward_of_a_perfect_oracle_and_a_random_model():
    assert arith.heldout_reward(Oracle(50.0, 0.0), n=50) == {"sampled": 1.0, "greedy": 1.0}
    r = arith.heldout_reward(tiny_model(), n=50)
    assert set(r) == {"sampled", "greedy"} and r["greedy"] < 0.1


def test_editing_grid_structure_and_tau_edit_one_is_no_editing():
    tm, te = [0.0, 0.9], [0.5, 1.0]
    grid = arith.editing_grid(tiny_model(), tm, te, n=20, show_progress=False)
    assert set(grid) == {"tau_mask", "tau_edit", "accuracy", "tpf", "n"}
    assert grid["tau_mask"] == tm and grid["tau_edit"] == te and grid["n"] == 20
    assert [len(r) for r in grid["accuracy"]] == [2, 2] and [len(r) for r in grid["tpf"]] == [2, 2]
    assert all(0 <= a <= 100 for r in grid["accuracy"] for a in r) and all(0 < t <= G for r in grid["tpf"] for t in r)
    # an imperfect oracle gives accuracies strictly between 0 and 100, so the comparison below means something
    oracle = Oracle(3.0, 1.0, seed=4)
    grid = arith.editing_grid(oracle, tm, te, n=60, show_progress=False)
    pairs = arith.problems("test")[:60]
    prompts, _ = arith.to_ids(pairs)
    for i, tau_mask in enumerate(tm):
        res = decoding.edit_decode(oracle, prompts, G, G, tau_mask, 1.0, MASK, EOS, editing=False)
        thr = decoding.threshold_decode(oracle, prompts, G, G, tau_mask, MASK, EOS)
        assert torch.equal(res.x, thr.x)
        assert grid["accuracy"][i][1] == round(100 * arith.grade(res.x, pairs).float().mean().item(), 2)
        assert grid["tpf"][i][1] == round(res.tpf, 4)
        # tau_edit = 1.0 with editing on makes no edit (no probability exceeds 1): same answers
        on = decoding.edit_decode(oracle, prompts, G, G, tau_mask, 1.0, MASK, EOS, editing=True)
        assert torch.equal(on.x, res.x) and on.events["t2t"] == 0
    assert any(0 < a < 100 for r in grid["accuracy"] for a in r)


# =========================================================================== checkpoints
def test_shipped_add_sft_loads():
    if "add_sft" not in checkpoints.read_manifest():
        pytest.skip("data/manifest.json has no add_sft entry")
    model = arith.load_arith_model("add_sft")
    assert isinstance(model, Transformer) and not model.training
    assert model.config.vocab_size == 14 and model.config.seq_len == 16
    assert model.recipe["objective"] == "sft"


def test_missing_or_corrupt_checkpoint_names_retrain(tmp_path, monkeypatch):
    manifest = tmp_path / "manifest.json"
    model = tiny_model(seed=1)
    recipe = arith.ArithRecipe(model=TINY).to_dict()
    entry = checkpoints.save_checkpoint("add_tiny", model.state_dict(), recipe, {"acc": 0.0}, 1.0, manifest=manifest)
    # load_arith_model reads the default manifest; point it at the temporary one
    load_from_tmp = functools.partial(checkpoints.load_checkpoint, manifest=manifest)
    monkeypatch.setattr(checkpoints, "load_checkpoint", load_from_tmp)
    loaded = arith.load_arith_model("add_tiny")
    assert not loaded.training and all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    with pytest.raises(checkpoints.CheckpointError, match=r"\./course retrain add_nope"):
        arith.load_arith_model("add_nope")
    path = tmp_path / entry["file"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(checkpoints.CheckpointError, match=r"corrupt.*\./course retrain add_tiny"):
        arith.load_arith_model("add_tiny")
    path.unlink()
    with pytest.raises(checkpoints.CheckpointError, match=r"missing.*\./course retrain add_tiny"):
        arith.load_arith_model("add_tiny")
    # a file whose weights do not fit its recorded config
    bad = dict(recipe, model=dict(recipe["model"], d_model=32, d_ff=88))
    checkpoints.save_checkpoint("add_tiny", model.state_dict(), bad, {}, 1.0, manifest=manifest)
    with pytest.raises(checkpoints.CheckpointError, match=r"(?s)does not match.*\./course retrain add_tiny"):
        arith.load_arith_model("add_tiny")
