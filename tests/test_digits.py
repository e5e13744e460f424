"""Tests of course_lib.digits: the data, the shipped reference classifier and the shipped digits DDPM.

The sample-quality bar of chapter 1: the classifier is >= 97 % accurate and confident (max softmax
>= 0.9) on >= 95 % of real held-out digits; on 100 generated digits (1000-step ancestral sampling)
its confident share is >= 85 % of that on real digits, and all 10 classes appear.
"""

import numpy as np
import pytest
import torch

from course_lib import digits


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # the recipes run on one thread; it is also the fastest setting when the other core is busy
    with digits.num_threads(1):
        yield


@pytest.fixture(scope="module")
def classifier():
    return digits.load_classifier()


@pytest.fixture(scope="module")
def ddpm_model():
    return digits.load_ddpm()


# --------------------------------------------------------------------------- data
def test_data_shapes_and_range():
    x_tr, y_tr = digits.load_digits_data("train")
    x_te, y_te = digits.load_digits_data("test")
    x_all, _ = digits.load_digits_data("all")
    assert x_tr.shape == (1347, 64) and x_te.shape == (450, 64) and x_all.shape == (1797, 64)
    assert x_tr.dtype == torch.float32 and y_tr.dtype == torch.int64
    assert float(x_all.min()) == -1.0 and float(x_all.max()) == 1.0
    assert set(y_tr.tolist()) == set(range(10)) and set(y_te.tolist()) == set(range(10))
    assert torch.bincount(y_te).min() >= 43  # stratified: 43-46 of each class


def test_split_is_deterministic_and_disjoint():
    a, ya = digits.load_digits_data("train")
    b, yb = digits.load_digits_data("train")
    assert torch.equal(a, b) and torch.equal(ya, yb)
    x_te, _ = digits.load_digits_data("test")
    train_rows = {tuple(r) for r in a.tolist()}
    test_rows = [tuple(r) for r in x_te.tolist()]
    assert not any(r in train_rows for r in test_rows)  # no held-out digit is also a training digit


def test_to_images_inverts_scaling():
    from sklearn.datasets import load_digits
    x, _ = digits.load_digits_data("all")
    img = digits.to_images(x[:5])
    assert img.shape == (5, 8, 8)
    np.testing.assert_allclose(img, load_digits().images[:5], atol=1e-5)
    assert digits.to_images(torch.full((2, 64), 3.0)).max() == 16.0


# --------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("split", ["valid", "", "Train"])
def test_unknown_split(split):
    with pytest.raises(ValueError, match="split"):
        digits.load_digits_data(split)


@pytest.mark.parametrize("shape", [(64,), (3, 8, 8), (3, 63)])
def test_bad_shapes(classifier, shape):
    with pytest.raises(ValueError, match="shape"):
        digits.to_images(torch.zeros(shape))
    with pytest.raises(ValueError, match="shape"):
        digits.classify(classifier, torch.zeros(shape))


def test_nan_and_bad_arguments(classifier):
    with pytest.raises(ValueError, match="NaN"):
        digits.classify(classifier, torch.full((2, 64), float("nan")))
    with pytest.raises(ValueError):
        digits.run_recipe("gan")
    with pytest.raises(ValueError):
        digits.sample_quality("not a model", classifier)
    with pytest.raises(ValueError):
        digits.build_classifier({"width": 3})


# --------------------------------------------------------------------------- shipped classifier
def test_shipped_classifier(classifier):
    m = digits.classifier_metrics(classifier)
    assert m["test_accuracy"] >= 0.97, m
    assert m["confident_share"] >= 0.95, m
    x, _ = digits.load_digits_data("test")
    labels, conf = digits.classify(classifier, x[:7])
    assert labels.shape == conf.shape == (7,) and labels.dtype == torch.int64
    assert bool(((conf > 0.1) & (conf <= 1.0)).all())


# --------------------------------------------------------------------------- shipped DDPM
def test_sampling_is_reproducible(ddpm_model):
    a = digits.sample(ddpm_model, n=4, seed=3, ddim_steps=20)
    b = digits.sample(ddpm_model, n=4, seed=3, ddim_steps=20)
    assert a.shape == (4, 64) and torch.equal(a, b)
    assert float(a.abs().max()) <= 1.0
