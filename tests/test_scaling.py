"""Scaling at small scale (course_lib.scaling): compute accounting, reading the curves, the compute frontier and
the compute factor between the AR and MDM frontiers, checked on synthetic power-law curves."""
import json

import numpy as np
import pytest
import torch

from course_lib import scaling, textlm
from course_lib.checkpoints import read_manifest


# =========================================================================== compute accounting
def _ids(lengths, L=41):
    """Canvases whose rows hold ``lengths`` counted tokens (words + [EOS], no [PAD]), then [PAD]."""
    return torch.tensor([[5] * n + [textlm.PAD_ID] * (L - n) for n in lengths])


def test_curve_counts_6ND_with_every_position_the_network_reads():
    ids = _ids([10] * 50)
    nll = [4.123456, 3.5, 3.25]
    for kind, per_row in (("mdm", 41), ("ar", 10)):              # MDM reads the whole canvas, AR up to the longest
        c = scaling._curve(kind, [100.0, 200.0, 300.0], nll, n_params=1000, steps_per_eval=50, batch_size=8, ids=ids)
        assert c["n_params"] == 1000 and c["eval_steps"] == [50, 100, 150]
        assert c["tokens"] == [100, 200, 300] and all(isinstance(t, int) for t in c["tokens"])
        assert c["flops"] == pytest.approx([6 * 1000 * 8 * per_row * s for s in (50, 100, 150)])
        assert c["valid_nll"] == [4.1235, 3.5, 3.25]
        json.dumps(c)                                              # plain JSON types


def test_ar_positions_are_the_expected_longest_row_of_a_batch():
    ids = _ids([5] * 95 + [41] * 5)                                # a few long rows
    c = scaling._curve("ar", [1], [1.0], n_params=1, steps_per_eval=1, batch_size=4, ids=ids)
    pos = c["flops"][0] / 6
    # E[max of 4 rows] = 5 + 36 * P(at least one long row in 4 draws with replacement)
    expected = 4 * (5 + 36 * (1 - 0.95 ** 4))
    assert pos == pytest.approx(expected, rel=0.05)
    assert 4 * ids.ne(textlm.PAD_ID).sum(1).float().mean() < pos < 4 * 41


# =========================================================================== reading curves
def _write_runs(directory, extra=None):
    curves = {}
    for i, name in enumerate(scaling.RUNS):
        c = {"n_params": 100 * (i + 1), "flops": [1e9, 2e9, 4e9], "tokens": [1, 2, 3],
             "valid_nll": [5.0 - i * 0.1, 4.0, 3.5]}
        c.update(extra or {})
        (directory / f"{name}.json").write_text(json.dumps(c))
        curves[name] = c
    return curves


def test_load_curves_reads_the_runs_and_the_chapter2_models(tmp_path):
    written = _write_runs(tmp_path)
    out = scaling.load_curves(tmp_path)
    assert set(out) == set(scaling.RUNS) | {"ar_d128", "mdm_d128"}
    for name, c in written.items():
        assert {k: v for k, v in out[name].items() if k != "flops_tokens"} == c     # + the real-token count
    manifest = read_manifest()
    # d128: the chapter-2 models; N = n_layer (4 d^2 attention + 3 d d_ff SwiGLU + 2 d norms) + d (final norm)
    d, d_ff, n_layer = 128, 344, 4
    n = n_layer * (4 * d * d + 3 * d * d_ff + 2 * d) + d
    for kind, rec in (("ar", "lm_ar"), ("mdm", "lm_mdlm")):
        c, curve, r = out[f"{kind}_d128"], manifest[rec]["metrics"]["curve"], textlm.TEXT_RECIPES[rec]
        assert c["n_params"] == n
        assert c["valid_nll"] == pytest.approx(curve["valid_nll"]) and c["tokens"] == curve["tokens"]
        steps = np.arange(1, len(curve["valid_nll"]) + 1) * r["eval_every"]
        assert c["eval_steps"] == steps.tolist()
        per_step = np.array(c["flops"]) / (6 * n * steps)              # positions read per step: constant
        assert np.allclose(per_step, per_step[0])
        if kind == "mdm":
            assert per_step[0] == pytest.approx(r["batch_size"] * textlm.SEQ_LEN)
        else:
            assert r["batch_size"] * 5 < per_step[0] < r["batch_size"] * textlm.SEQ_LEN


def test_load_curves_names_the_command_for_a_missing_run(tmp_path):
    _write_runs(tmp_path)
    (tmp_path / "mdm_d96.json").unlink()
    with pytest.raises(ValueError, match="python -m course_lib.scaling mdm_d96"):
        scaling.load_curves(tmp_path)


@pytest.mark.parametrize("content", ["{not json", json.dumps({"valid_nll": [1.0]}), json.dumps([1, 2, 3])])
def test_load_curves_rejects_a_broken_file(tmp_path, content):
    _write_runs(tmp_path)
    (tmp_path / "ar_d64.json").write_text(content)
    with pytest.raises(ValueError, match="not a scaling curve.*python -m course_lib.scaling ar_d64"):
        scaling.load_curves(tmp_path)


@pytest.mark.parametrize("name", ["ar", "ar_d32", "bert_d64", "ar_d64_x", "ar-d64", "d64_ar", ""])
def test_run_rejects_unknown_names(name, tmp_path):
    with pytest.raises(ValueError, match="unknown scaling run"):
        scaling.run(name, directory=tmp_path, show_progress=False)
    assert not list(tmp_path.iterdir())                                # nothing trained, nothing written


# =========================================================================== frontier and compute factor
def _power_curve(lo, hi, a, b, e=0.0, n=12):
    """A curve loss = e + a * C^-b sampled at n computes between lo and hi."""
    flops = np.geomspace(lo, hi, n)
    return {"flops": flops.tolist(), "valid_nll": (e + a * flops ** -b).tolist()}


def test_frontier_interpolates_power_laws_exactly_and_is_nan_outside():
    curves = {"ar_s": _power_curve(1e6, 1e9, 20.0, 0.1), "mdm_s": _power_curve(1e6, 1e12, 1.0, 0.5)}
    grid = np.geomspace(1e5, 1e10, 50)
    f = scaling.frontier(curves, "ar", grid)
    inside = (grid >= 1e6) & (grid <= 1e9)
    assert np.allclose(f[inside], 20.0 * grid[inside] ** -0.1, rtol=1e-9)     # log-log linear: exact
    assert np.isnan(f[~inside]).all()                                         # the MDM curve is not used


def test_frontier_takes_the_best_size_at_each_compute():
    small = _power_curve(1e6, 1e8, 10.0, 0.2, e=1.0)         # fast start, saturates at 1.0
    big = _power_curve(1e7, 1e10, 30.0, 0.2, e=0.5)          # slow start, lower floor
    curves = {"ar_small": small, "ar_big": big}
    grid = np.geomspace(1e6, 1e10, 80)
    f = scaling.frontier(curves, "ar", grid)
    for name in curves:
        single = scaling.frontier({name: curves[name]}, "ar", grid)
        ok = ~np.isnan(single)
        assert np.all(f[ok] <= single[ok] + 1e-12)
    only_small = grid < 1e7
    assert np.allclose(f[only_small], scaling.frontier({"ar_small": small}, "ar", grid)[only_small])
    assert np.isnan(scaling.frontier(curves, "mdm", grid)).all()


def _families(shift):
    """Chinchilla-like curves, loss = 1 + 50 / N^0.34 + 400 / D^0.28 at C = 6 N D, for three sizes N (each a bigger
    model starts above the frontier and overtakes it later); the MDM curves need ``shift`` times the compute for
    the same loss at every point."""
    curves = {}
    for i, n in enumerate((1e4, 3e4, 1e5)):
        d = np.geomspace(1e5, 1e8, 15)
        ar = {"flops": (6 * n * d).tolist(), "valid_nll": (1.0 + 50 / n ** 0.34 + 400 / d ** 0.28).tolist()}
        curves[f"ar_s{i}"] = ar
        curves[f"mdm_s{i}"] = {"flops": [shift * f for f in ar["flops"]], "valid_nll": ar["valid_nll"]}
    return curves


@pytest.mark.parametrize("shift", [8.0, 16.0, 1.0])
def test_compute_factor_recovers_a_known_shift(shift):
    curves = _families(shift)
    res = scaling.compute_factor(curves)
    assert res["median"] == pytest.approx(shift, rel=0.05)
    assert len(res["losses"]) == len(res["factor"]) > 10
    assert np.isfinite(res["factor"]).all() and np.allclose(res["factor"], shift, rtol=0.05)
    # only losses both frontiers reach are compared
    assert res["losses"].min() > min(min(c["valid_nll"]) for c in curves.values())
    assert res["losses"].max() < max(max(c["valid_nll"]) for c in curves.values())


def test_compute_factor_with_a_frontier_that_jumps():
    """A bigger size whose first point lies below the smaller sizes' curves makes the frontier jump; the
    factor there is only as precise as the compute grid, but the median stays within 5% of the shift."""
    curves = {}
    for i, (lo, hi, a, e) in enumerate(((1e6, 1e8, 10.0, 1.2), (3e6, 1e9, 12.0, 0.9), (1e7, 1e10, 15.0, 0.7))):
        ar = _power_curve(lo, hi, a, 0.25, e=e, n=15)
        curves[f"ar_s{i}"] = ar
        curves[f"mdm_s{i}"] = {"flops": [8 * f for f in ar["flops"]], "valid_nll": ar["valid_nll"]}
    assert scaling.compute_factor(curves)["median"] == pytest.approx(8.0, rel=0.05)


def test_compute_factor_of_pure_power_laws_is_the_shift_at_every_loss():
    ar = _power_curve(1e6, 1e10, 20.0, 0.2, n=20)
    mdm = {"flops": [8 * f for f in ar["flops"]], "valid_nll": ar["valid_nll"]}
    res = scaling.compute_factor({"ar_x": ar, "mdm_x": mdm})
    assert np.isfinite(res["factor"]).all()
    assert np.allclose(res["factor"], 8.0, rtol=0.05)
    # the losses compared are those both frontiers reach
    assert res["losses"].min() >= min(ar["valid_nll"]) and res["losses"].max() <= max(ar["valid_nll"])


def test_frontier_never_rises_with_more_compute():
    """What a smaller model reached at low compute stays reached after its curve ends."""
    small = {"flops": [1e6, 1e7, 1e8], "valid_nll": [3.0, 2.0, 1.5]}
    big = {"flops": [1e7, 1e8, 1e9], "valid_nll": [4.0, 2.5, 1.0]}
    f = scaling.frontier({"ar_small": small, "ar_big": big}, "ar", [1e8, 2e8, 1e9])
    assert f[0] == pytest.approx(1.5) and f[1] == pytest.approx(1.5) and f[2] == pytest.approx(1.0)


def test_compute_counted_on_real_tokens():
    """flops_tokens = 6 N x (real tokens trained on), the same count for both objectives; positions processed
    exceed it, for the MDM by its canvas padding (41 positions per row against about 9.5 counted tokens)."""
    import numpy as np
    from course_lib import scaling
    curves = scaling.load_curves()
    for name, c in curves.items():
        np.testing.assert_allclose(c["flops_tokens"], 6.0 * c["n_params"] * np.asarray(c["tokens"], dtype=float))
        assert all(p >= t for p, t in zip(c["flops"], c["flops_tokens"]))
    real, pos = scaling.compute_factor(curves, key="flops_tokens"), scaling.compute_factor(curves, key="flops")
    ratio = pos["factor"] / real["factor"]
    assert np.allclose(ratio, np.median(ratio), rtol=0.02) and 1.2 < np.median(ratio) < 1.6
    with pytest.raises(ValueError):
        scaling.compute_factor(curves, key="seconds")
