"""The validity-against-compute study of chapter 2 (course_lib.compute_study): the stored results are the recipes
cut to the stated fractions, with compute counted as position passes."""
from course_lib import compute_study, textlm


def test_stored_study_matches_the_recipes():
    study = compute_study.load()
    rows = study["rows"]
    assert {(r["family"], r["fraction"]) for r in rows} == {(f, x) for f in compute_study.MODELS
                                                            for x in compute_study.FRACTIONS}
    for r in rows:
        full = textlm.TEXT_RECIPES[compute_study.MODELS[r["family"]]]
        assert r["steps"] == round(full["steps"] * r["fraction"])
        assert r["position_passes"] == r["steps"] * full["batch_size"] * 41
        assert r["n"] == compute_study.N_SAMPLES and 0 <= r["valid_fraction"] <= 1


def test_passes_counts_steps_batch_and_positions():
    assert compute_study.passes(10, 64) == 10 * 64 * 41


def test_stored_shape_runs_match_their_budgets():
    """The 8 x 96 runs: one with the shipped steps (equal position passes), one with the steps that the measured
    step times give for equal training time; each is the shipped recipe with only the shape changed."""
    study = compute_study.load()
    full = textlm.TEXT_RECIPES[compute_study.MODELS["MDLM"]]
    t = study["step_seconds"]
    equal_time = int(round(full["steps"] * t["4x128"] / t["8x96"], -1))
    assert t["8x96"] > 0 and t["4x128"] > 0
    rows = study["shape_rows"]
    assert sorted(r["steps"] for r in rows) == sorted([full["steps"], equal_time])
    for r in rows:
        assert r["shape"] == compute_study.DEEP and r["family"] == "MDLM" and r["threads"] == 1
        assert r["position_passes"] == r["steps"] * full["batch_size"] * 41
        assert r["n"] == compute_study.N_SAMPLES and 0 <= r["valid_fraction"] <= 1


def test_the_deep_shape_has_the_parameters_stated():
    import torch
    from course_lib.nn import Transformer
    cfg = textlm.TextLMConfig.from_dict(dict(textlm.TEXT_RECIPES["lm_mdlm_packed"], model=compute_study.DEEP))
    with torch.device("meta"):
        n = sum(p.numel() for p in Transformer(cfg.transformer_config()).parameters())
    assert n == compute_study.load()["shape_rows"][0]["n_params"]
