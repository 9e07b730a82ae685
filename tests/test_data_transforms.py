"""Transforms (normalize, one_hot, splits, channel axis) and mini-batch iteration."""

import numpy as np
import pytest

from fastbp.data import (
    NormStats,
    minibatches,
    normalize,
    num_batches,
    one_hot,
    to_nchw,
    train_val_split,
)


def test_one_hot_encodes_each_label():
    encoded = one_hot(np.array([2, 0, 1, 2]), 3)
    expected = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    assert encoded.dtype == np.float32
    np.testing.assert_array_equal(encoded, expected)


def test_one_hot_keeps_label_shape_and_dtype():
    labels = np.array([[0, 3], [1, 2]], dtype=np.uint8)
    encoded = one_hot(labels, 4, dtype=np.float64)
    assert encoded.shape == (2, 2, 4) and encoded.dtype == np.float64
    np.testing.assert_array_equal(encoded.argmax(-1), labels)
    assert one_hot(np.array([], dtype=np.int64), 5).shape == (0, 5)


@pytest.mark.parametrize(
    "labels, num_classes, message",
    [
        (np.array([0, 3]), 3, "label 3 is outside 0..2"),
        (np.array([0, -1]), 3, "label -1"),
        (np.array([0.0, 1.0]), 3, "integer dtype"),
        (np.array([True, False]), 3, "integer dtype"),
        (np.array([0, 1]), 0, "at least 1"),
        (np.array([0, 1]), 2.0, "num_classes must be an integer"),
    ],
)
def test_one_hot_rejects_bad_input(labels, num_classes, message):
    with pytest.raises(ValueError, match=message):
        one_hot(labels, num_classes)


def test_normalize_uint8_standardises_and_returns_stats():
    images = np.random.default_rng(0).integers(0, 256, (50, 6, 6), dtype=np.uint8)
    standardised, stats = normalize(images)
    assert isinstance(stats, NormStats)
    assert standardised.dtype == np.float32 and standardised.shape == images.shape
    scaled = images / 255.0
    assert stats.mean == pytest.approx(scaled.mean()) and stats.std == pytest.approx(scaled.std())
    assert standardised.mean() == pytest.approx(0, abs=1e-5)
    assert standardised.std() == pytest.approx(1, abs=1e-5)
    expected = (scaled - stats.mean) / stats.std
    np.testing.assert_allclose(standardised, expected, rtol=1e-5, atol=1e-5)


def test_normalize_applies_given_stats():
    images = np.array([[0, 255], [51, 102]], dtype=np.uint8)
    standardised, stats = normalize(images, 0.5, 0.25, dtype=np.float64)
    assert stats == NormStats(0.5, 0.25) and standardised.dtype == np.float64
    np.testing.assert_allclose(standardised, (images / 255 - 0.5) / 0.25)
    train, train_stats = normalize(images)
    again, _ = normalize(images, *train_stats)
    np.testing.assert_array_equal(again, train)


def test_normalize_keeps_float_scale_and_does_not_modify_input():
    images = np.array([0.0, 0.5, 1.0], dtype=np.float64)
    original = images.copy()
    standardised, stats = normalize(images)
    assert stats.mean == pytest.approx(0.5)
    np.testing.assert_array_equal(images, original)
    np.testing.assert_allclose(standardised, (original - 0.5) / original.std(), rtol=1e-6)


@pytest.mark.parametrize(
    "images, kwargs, message",
    [
        (np.zeros((2, 2), np.int32), {}, "uint8 or floating"),
        (np.full((2, 2), 7, np.uint8), {}, "std must be positive"),
        (np.zeros((2, 2), np.uint8), {"std": 0.0}, "std must be positive"),
    ],
)
def test_normalize_rejects_bad_input(images, kwargs, message):
    with pytest.raises(ValueError, match=message):
        normalize(images, **kwargs)


def test_to_nchw_adds_channel_axis_as_view():
    images = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    nchw = to_nchw(images)
    assert nchw.shape == (2, 1, 3, 4) and np.shares_memory(nchw, images)
    np.testing.assert_array_equal(nchw[:, 0], images)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        to_nchw(nchw)


def paired_data(n=20):
    x = np.arange(n * 3).reshape(n, 3)
    return x, x[:, 0] // 3


@pytest.mark.parametrize("stratify", [False, True])
def test_train_val_split_partitions_deterministically(stratify):
    x, y = paired_data(20)
    (x_train, y_train), (x_val, y_val) = train_val_split(x, y, 0.25, seed=3, stratify=stratify)
    assert len(x_val) == len(y_val) == 5 and len(x_train) == len(y_train) == 15
    x_both, y_both = np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val])
    np.testing.assert_array_equal(np.sort(x_both[:, 0]), x[:, 0])
    np.testing.assert_array_equal(y_both, x_both[:, 0] // 3)
    (_, _), (x_val_again, _) = train_val_split(x, y, 0.25, seed=3, stratify=stratify)
    np.testing.assert_array_equal(x_val_again, x_val)
    (_, _), (x_val_other, _) = train_val_split(x, y, 0.25, seed=4, stratify=stratify)
    assert not np.array_equal(x_val_other, x_val)


def test_stratified_split_gives_each_class_its_share():
    labels = np.repeat(np.arange(4), [40, 20, 30, 10])
    _, (_, val_labels) = train_val_split(labels, labels, 0.3, seed=0, stratify=True)
    assert len(val_labels) == 30
    np.testing.assert_allclose(np.bincount(val_labels), [12, 6, 9, 3], atol=1)


@pytest.mark.parametrize(
    "n_y, fraction, kwargs, message",
    [
        (19, 0.2, {}, "differ in length"),
        (20, 0.0, {}, r"in \(0, 1\)"),
        (20, 1.0, {}, r"in \(0, 1\)"),
        (20, 0.01, {}, "empty"),
        (20, 0.2, {"stratify": True, "y_2d": True}, "1-D"),
    ],
)
def test_train_val_split_rejects_bad_input(n_y, fraction, kwargs, message):
    x, _ = paired_data(20)
    y = np.zeros((n_y, 2)) if kwargs.pop("y_2d", False) else np.zeros(n_y)
    with pytest.raises(ValueError, match=message):
        train_val_split(x, y, fraction, **kwargs)


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("shuffle", [False, True])
def test_minibatches_cover_each_sample_once(shuffle, drop_last):
    x, y = paired_data(23)
    batches = list(minibatches(x, y, 5, shuffle=shuffle, rng=0, drop_last=drop_last))
    sizes = [len(xb) for xb, _ in batches]
    assert sizes == ([5] * 4 if drop_last else [5] * 4 + [3])
    for xb, yb in batches:
        np.testing.assert_array_equal(yb, xb[:, 0] // 3)
    seen = np.concatenate([xb[:, 0] for xb, _ in batches])
    assert len(np.unique(seen)) == len(seen)
    if not drop_last:
        np.testing.assert_array_equal(np.sort(seen), x[:, 0])
    assert shuffle == (not np.array_equal(seen, np.sort(seen)))


def test_minibatches_same_seed_same_order():
    x, y = paired_data(30)

    def order(rng):
        return np.concatenate([xb[:, 0] for xb, _ in minibatches(x, y, 4, rng=rng)])

    np.testing.assert_array_equal(order(7), order(7))
    np.testing.assert_array_equal(order(np.random.default_rng(7)), order(7))
    assert not np.array_equal(order(7), order(8))


def test_unshuffled_batches_are_views():
    x, y = paired_data(8)
    xb, yb = next(minibatches(x, y, 4, shuffle=False))
    assert np.shares_memory(xb, x) and np.shares_memory(yb, y)


@pytest.mark.parametrize(
    "y_len, batch_size, message",
    [
        (9, 2, "differ in length"),
        (10, 0, "at least 1"),
        (10, 2.5, "integer"),
        (10, True, "integer"),
    ],
)
def test_minibatches_validate_on_call(y_len, batch_size, message):
    x, _ = paired_data(10)
    with pytest.raises(ValueError, match=message):
        minibatches(x, np.zeros(y_len), batch_size)


def test_one_generator_reshuffles_each_epoch_reproducibly():
    x, y = paired_data(10)

    def epochs(seed, count=3):
        rng = np.random.default_rng(seed)
        return [np.concatenate([xb[:, 0] for xb, _ in minibatches(x, y, 3, rng=rng)])
                for _ in range(count)]

    assert num_batches(10, 3, drop_last=False) == len(list(minibatches(x, y, 3, rng=0))) == 4
    assert num_batches(10, 3, drop_last=True) == len(list(minibatches(x, y, 3, drop_last=True))) == 3
    first_run = epochs(1)
    for epoch in first_run:
        np.testing.assert_array_equal(np.sort(epoch), x[:, 0])
    assert not np.array_equal(first_run[0], first_run[1])
    for epoch, again in zip(first_run, epochs(1), strict=True):
        np.testing.assert_array_equal(epoch, again)
    assert len(list(minibatches(x, y, 3, shuffle=False))) == 4
