import numpy as np
import pytest

import tinygrad_init as tg
from tinygrad_init import data


def test_spirals_shapes_balance_and_determinism():
    x, y = data.spirals(300, classes=3, generator=np.random.default_rng(0))
    x2, y2 = data.spirals(300, classes=3, generator=np.random.default_rng(0))
    assert x.shape == (300, 2) and x.dtype == np.float32 and y.dtype == np.int64
    assert np.bincount(y.detach().numpy()).tolist() == [100, 100, 100]
    np.testing.assert_array_equal(x.detach().numpy(), x2.detach().numpy())
    np.testing.assert_allclose(x.detach().numpy().std(), 1.0, rtol=1e-5)


def test_spirals_embedding_keeps_distances():
    x2, _ = data.spirals(90, generator=np.random.default_rng(1))
    x8, _ = data.spirals(90, dim=8, generator=np.random.default_rng(1))
    assert x8.shape == (90, 8)
    d2 = np.linalg.norm(x2.detach().numpy()[0] - x2.detach().numpy()[1])
    d8 = np.linalg.norm(x8.detach().numpy()[0] - x8.detach().numpy()[1])
    assert d8 == pytest.approx(d2, rel=1e-5)


def test_spirals_are_not_linearly_separable():
    x, y = data.spirals(600, classes=3, noise=0.0, generator=np.random.default_rng(0))
    features = np.c_[x.detach().numpy(), np.ones(len(y))]
    onehot = np.eye(3)[y.detach().numpy()]
    w, *_ = np.linalg.lstsq(features, onehot, rcond=None)
    accuracy = ((features @ w).argmax(1) == y.detach().numpy()).mean()
    assert accuracy < 0.7


def test_bars_put_the_bar_where_the_label_says():
    x, y = data.bars(64, size=10, noise=0.0, generator=np.random.default_rng(0))
    img = x.detach().numpy()[:, 0]
    row_peak = img.sum(2).max(1)
    col_peak = img.sum(1).max(1)
    assert np.all((row_peak > col_peak) == (y.detach().numpy() == 0))


def test_blobs_and_errors():
    x, y = data.blobs(50, classes=4, dim=3, generator=np.random.default_rng(0))
    assert x.shape == (50, 3) and set(np.unique(y.detach().numpy())) <= {0, 1, 2, 3}
    with pytest.raises(ValueError, match="classes >= 2"):
        data.spirals(10, classes=1)
    with pytest.raises(ValueError, match="dim must be at least 2"):
        data.spirals(10, dim=1)


def test_digits_when_scikit_learn_is_there():
    pytest.importorskip("sklearn")
    x, y = data.digits()
    assert x.shape == (1797, 64) and float(x.detach().numpy().max()) == 1.0
    assert tg.tensor(y.detach().numpy()).shape == (1797,)
