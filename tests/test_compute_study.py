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
