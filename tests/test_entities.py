"""The named-entity task of chapter 4 (course_lib.entities): the entity table, splits, encodings, the grader and
the mixture detector, checked against direct Python transcriptions; the decoders' report on hand-made results."""
import itertools

import pytest
import torch

from course_lib import decoding, entities as E


def test_entity_table_and_vocabulary():
    assert E.ENTITIES.shape == (E.CATEGORIES, E.PER_CATEGORY, E.ENTITY_LENGTH)
    assert bool((E.ENTITIES >= 0).all()) and bool((E.ENTITIES < E.NAMES).all())
    assert bool((E.ENTITIES[:, 0] != E.ENTITIES[:, 1]).all())        # the two entities differ at every position
    assert torch.equal(E._entities(), E.ENTITIES)                      # deterministic
    assert (E.EQ_ID, E.EOS_ID, E.MASK_ID, E.VOCAB_SIZE) == (80, 81, 82, 83)
    assert E.PROMPT_LENGTH + E.GEN_LENGTH == E.SEQ_LEN and E.ANSWER_TOKENS < E.GEN_LENGTH
    assert E.MASK_ID not in E.EDIT_VOCAB and E.EOS_ID in E.EDIT_VOCAB


def _key(t):
    return [int(v) for v in (t * (E.CATEGORIES ** torch.arange(E.SLOTS - 1, -1, -1))).sum(1)]


def test_splits_are_disjoint_and_deterministic():
    test = E.problems("test")
    assert test.shape == (E.HELD_OUT, E.SLOTS) and len(set(_key(test))) == E.HELD_OUT
    train = E.problems("train", 5000, seed=1)
    assert train.shape == (5000, E.SLOTS) and not set(_key(train)) & set(_key(test))
    assert torch.equal(E.problems("train", 5000, seed=1), train)
    assert not torch.equal(E.problems("train", 5000, seed=2), train)
    assert torch.equal(E.problems("test", 10), test[:10])
    for bad in (dict(split="valid", n=3), dict(split="train", n=0), dict(split="train", n=None)):
        with pytest.raises(ValueError):
            E.problems(**bad)


def test_to_ids_against_a_transcription():
    tuples = E.problems("test", 20)
    choice = torch.randint(0, 2, tuples.shape, generator=torch.Generator().manual_seed(0))
    prompts, full = E.to_ids(tuples, choice)
    for b in range(20):
        want = [E.CATEGORY0 + int(c) for c in tuples[b]] + [E.EQ_ID]
        for s in range(E.SLOTS):
            want += E.ENTITIES[tuples[b, s], choice[b, s]].tolist()
        want += [E.EOS_ID] * (E.GEN_LENGTH - E.ANSWER_TOKENS)
        assert full[b].tolist() == want and prompts[b].tolist() == want[:E.PROMPT_LENGTH]
    with pytest.raises(ValueError):
        E.to_ids(tuples, choice + 2)
    with pytest.raises(ValueError):
        E.to_ids(tuples + E.CATEGORIES)


def _status_by_hand(names, cat):
    ents = [E.ENTITIES[cat, e].tolist() for e in range(E.PER_CATEGORY)]
    if names in ents:
        return 1
    if all(any(names[j] == ent[j] for ent in ents) for j in range(E.ENTITY_LENGTH)):
        return 0
    return -1


def test_slot_status_and_grade_on_every_mixture():
    cat = 5
    tuples = torch.tensor([[cat, 1, 2, 3]] * 9)
    rows = []
    a, b = E.ENTITIES[cat].tolist()
    for pick in itertools.product([0, 1], repeat=3):                   # all 8 ways to take each token from a or b
        rows.append([(a, b)[p][j] for j, p in enumerate(pick)])
    rows.append([a[0], a[1], (a[2] + 1) % E.NAMES if (a[2] + 1) % E.NAMES != b[2] else (a[2] + 2) % E.NAMES])
    _, full = E.to_ids(tuples)
    x = full.clone()
    for r, names in enumerate(rows):
        x[r, E.PROMPT_LENGTH:E.PROMPT_LENGTH + 3] = torch.tensor(names)
    status = E.slot_status(x, tuples)
    assert status[:, 0].tolist() == [_status_by_hand(n, cat) for n in rows]
    assert status[:, 0].tolist().count(1) == 2 and status[:, 0].tolist().count(0) == 6
    assert bool((status[:, 1:] == 1).all())
    assert E.grade(x, tuples).tolist() == [s == 1 for s in status[:, 0].tolist()]
    no_eos = full.clone()
    no_eos[:, E.PROMPT_LENGTH + E.ANSWER_TOKENS] = 0
    assert not bool(E.grade(no_eos, tuples).any())
    assert torch.equal(E.slot_status(x[:, E.PROMPT_LENGTH:], tuples), status)     # answers alone work too


def test_readable():
    _, full = E.to_ids(torch.tensor([[7, 0, 31, 2]]))
    text = E.readable(full[0])
    assert text.startswith("c07 c00 c31 c02 = n") and text.endswith("[EOS]") and text.count("[EOS]") == 1
    assert E.readable([E.MASK_ID, 3]) == "_ n03"
    with pytest.raises(ValueError):
        E.readable([E.VOCAB_SIZE])


class Marginals(torch.nn.Module):
    """The best model of the data that sees only the prompt: 50/50 at every name position, so parallel decoding
    of a whole slot commits a mixture unless one position is committed first. It conditions on committed names:
    once a slot has a name, the other positions follow that entity."""

    def forward(self, x):
        B = len(x)
        tuples = x[:, :E.SLOTS] - E.CATEGORY0
        logits = torch.full((B, E.SEQ_LEN, E.VOCAB_SIZE), -20.0)
        logits[:, E.PROMPT_LENGTH + E.ANSWER_TOKENS:, E.EOS_ID] = 20.0
        for s in range(E.SLOTS):
            pos = E.PROMPT_LENGTH + 3 * s + torch.arange(3)
            ents = E.ENTITIES[tuples[:, s]]                                  # (B, 2, 3)
            seen = x[:, pos]
            votes = (seen[:, None, :] == ents).sum(-1).float()               # names of each entity on the canvas
            w = torch.softmax(8.0 * votes + torch.tensor([0.01, 0.0]), -1)   # a slight preference for entity 0
            for j in range(3):
                for e in range(2):
                    logits[torch.arange(B), pos[j], ents[:, e, j]] = torch.log(w[:, e])
        return logits


def test_decode_report_counts_mixtures_and_repairs():
    tuples = E.problems("test", 50)
    prompts, _ = E.to_ids(tuples)
    model = Marginals()
    slow = decoding.threshold_decode(model, prompts, E.GEN_LENGTH, E.GEN_LENGTH, 0.9, E.MASK_ID, E.EOS_ID)
    r = E.decode_report(slow, tuples)
    assert r["accuracy"] == 100.0 and r["mixtures_drafted"] == 0 and r["repaired"] == 0 and r["slots"] == 200
    edit = decoding.edit_decode(model, prompts, E.GEN_LENGTH, E.GEN_LENGTH, 0.0, 0.5, E.MASK_ID, E.EOS_ID)
    r = E.decode_report(edit, tuples)
    # everything is drafted at once from 50/50 marginals with a slight preference: every slot is entity 0, no mixture
    assert r["mixtures_drafted"] == 0 and r["accuracy"] == 100.0


def test_decode_report_on_a_forced_mixture():
    tuples = E.problems("test", 4)
    _, full = E.to_ids(tuples)
    x = full.clone()
    x[:, E.PROMPT_LENGTH] = E.ENTITIES[tuples[:, 0], 1, 0]              # slot 0: first name of the other entity
    drafts = x[:, E.PROMPT_LENGTH:].clone()
    res = decoding.DecodeResult(x=full, prompt_length=E.PROMPT_LENGTH, forwards=torch.full((4,), 3),
                                tokens=torch.full((4,), 13), tpf=13 / 3,
                                row_tpf=torch.full((4,), 13 / 3, dtype=torch.float64),
                                blocks=torch.ones(4, dtype=torch.long), events={}, drafts=drafts,
                                edits=torch.zeros(0, 5, dtype=torch.long), steps=None)
    r = E.decode_report(res, tuples)
    assert (r["mixtures_drafted"], r["repaired"], r["mixtures_final"], r["accuracy"]) == (4, 4, 0, 100.0)


def test_recipes_are_a_fair_pair():
    a, b = E.RECIPES["ent_sft"], E.RECIPES["ent_edit"]
    assert set(E.RECIPES) == {"ent_sft", "ent_edit"}
    assert {k for k in set(a) | set(b) if a.get(k) != b.get(k)} == {"objective", "edit_rate", "draft_rate"}


def test_stored_fronts_cover_every_setting_and_are_consistent():
    import json
    d = json.loads(E.FRONTS_PATH.read_text())
    assert d["n"] == 1000
    assert len(d["runs"]) == 2 * len(E.THRESHOLDS) + len(E.TAU_MASK) * len(E.TAU_EDIT)
    keys = {(r["decoder"], r["model"], r["tau_mask"], r["tau_edit"]) for r in d["runs"]}
    assert len(keys) == len(d["runs"])
    for r in d["runs"]:
        assert 0 <= r["accuracy"] <= 100 and 0 < r["tpf"] <= 13
        assert r["slots"] == 4000 and 0 <= r["repaired"] <= r["mixtures_drafted"] <= r["slots"]
        assert r["mixtures_final"] <= r["slots"]
        if r["decoder"] == "threshold":               # nothing is edited, so every drafted mixture stays
            assert r["repaired"] == 0 and r["mixtures_final"] == r["mixtures_drafted"]
