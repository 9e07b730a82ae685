"""Property-based tests: random shapes, values and dtypes for the kernel families the
shape-specific tests cover only at chosen points (every loss, with scores up to 1e4), and
random bytes for the checkpoint loader."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import assert_matches
from fastbp import checkpoint
from fastbp import functional as F
from fastbp import reference as ref

dtypes = st.sampled_from([np.float32, np.float64])
seeds = st.integers(0, 2**16)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 9), d_in=st.integers(1, 40), d_out=st.integers(1, 20), dtype=dtypes, seed=seeds)
def test_linear_matches_reference(n, d_in, d_out, dtype, seed):
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal((n, d_in)), rng.standard_normal((d_out, d_in))
    b, dy = rng.standard_normal(d_out), rng.standard_normal((n, d_out))
    assert_matches(F.linear(x.astype(dtype), w.astype(dtype), b.astype(dtype)),
                   ref.linear(*(a.astype(dtype).astype(np.float64) for a in (x, w, b))), dtype)
    got = F.linear_backward(dy.astype(dtype), x.astype(dtype), w.astype(dtype))
    want = ref.linear_backward(*(a.astype(dtype).astype(np.float64) for a in (dy, x, w)))
    for g, e in zip(got, want):
        assert_matches(g, e, dtype)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(sorted(ref.ACTIVATIONS)), shape=st.lists(st.integers(1, 6), min_size=1, max_size=4),
       scale=st.sampled_from([0.1, 3.0, 30.0]), dtype=dtypes, seed=seeds)
def test_activations_match_reference(name, shape, scale, dtype, seed):
    forward, derivative, kwargs = ref.ACTIVATIONS[name]
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * scale).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    x64 = x.astype(np.float64)
    assert_matches(getattr(F, name)(x, **kwargs), forward(x64, **kwargs), dtype)
    assert_matches(getattr(F, f"{name}_backward")(dy, x, **kwargs),
                   dy.astype(np.float64) * derivative(x64, **kwargs), dtype)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 9), k=st.integers(1, 8), scale=st.sampled_from([0.1, 3.0, 30.0]),
       dtype=dtypes, seed=seeds)
def test_multiclass_losses_match_reference(n, k, scale, dtype, seed):
    rng = np.random.default_rng(seed)
    scores = (rng.standard_normal((n, k)) * scale).astype(dtype)
    labels = rng.integers(0, k, n)
    for name in ("softmax_cross_entropy", "hinge_loss"):
        loss, grad = getattr(F, name)(scores, labels)
        want_loss, want_grad = getattr(ref, name)(scores.astype(np.float64), labels)
        assert loss == pytest.approx(want_loss, rel=1e-4 if dtype == np.float32 else 1e-10, abs=1e-6)
        assert_matches(grad, want_grad, dtype)


# Score scales up to the 1e4 the Guarantees promise: the losses must stay finite and accurate.
loss_scales = st.sampled_from([0.1, 3.0, 30.0, 1e3, 1e4])


def assert_loss_matches(loss, grad, want_loss, want_grad, dtype):
    assert isinstance(loss, float) and np.isfinite(loss) and np.all(np.isfinite(grad))
    assert loss == pytest.approx(want_loss, rel=1e-4 if dtype == np.float32 else 1e-10, abs=1e-6)
    assert_matches(grad, want_grad, dtype)


@settings(max_examples=40, deadline=None)
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=4), scale=loss_scales, dtype=dtypes,
       seed=seeds)
def test_mse_loss_matches_reference(shape, scale, dtype, seed):
    rng = np.random.default_rng(seed)
    y = (rng.standard_normal(shape) * scale).astype(dtype)
    t = (rng.standard_normal(shape) * scale).astype(dtype)
    loss, grad = F.mse_loss(y, t)
    assert_loss_matches(loss, grad, *ref.mse_loss(y.astype(np.float64), t.astype(np.float64)), dtype)


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(["logistic_loss", "logistic_pm1_loss"]), n=st.integers(1, 12),
       column=st.booleans(), scale=loss_scales, dtype=dtypes,
       target_dtype=st.sampled_from([np.int64, np.float32, np.float64]), seed=seeds)
def test_binary_logistic_losses_match_reference(name, n, column, scale, dtype, target_dtype, seed):
    rng = np.random.default_rng(seed)
    s = (rng.standard_normal(n) * scale).astype(dtype)
    y = rng.integers(0, 2, n) if name == "logistic_loss" else rng.choice([-1, 1], n)
    want_loss, want_grad = getattr(ref, name)(s.astype(np.float64), y.astype(np.float64))
    shape = (n, 1) if column else (n,)  # scores (N,) or (N, 1), targets of the same shape
    loss, grad = getattr(F, name)(s.reshape(shape), y.astype(target_dtype).reshape(shape))
    assert grad.shape == shape
    assert_loss_matches(loss, grad.reshape(n), want_loss, want_grad, dtype)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 6), d_in=st.integers(1, 12), d_out=st.integers(1, 6), pieces=st.integers(1, 4),
       dtype=dtypes, seed=seeds)
def test_maxout_matches_reference(n, d_in, d_out, pieces, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d_in)).astype(dtype)
    w = rng.standard_normal((d_out, pieces, d_in)).astype(dtype)
    b = rng.standard_normal((d_out, pieces)).astype(dtype)
    z = np.einsum("ni,jpi->njp", x.astype(np.float64), w.astype(np.float64)) + b
    assert_matches(F.maxout(x, w, b), z.max(axis=2), dtype)


def test_checkpoint_loader_turns_random_bytes_into_clear_errors(tmp_path):
    import fastbp

    path = tmp_path / "model.npz"
    checkpoint.save(path, fastbp.Sequential(fastbp.Linear(4, 3, seed=0), fastbp.ReLU()))
    valid = path.read_bytes()

    @settings(max_examples=150, deadline=None)
    @given(data=st.data())
    def damaged_files_only_raise_checkpoint_errors(data):
        choice = data.draw(st.sampled_from(["random", "flip", "cut"]))
        if choice == "random":
            content = data.draw(st.binary(max_size=2000))
        elif choice == "flip":
            at = data.draw(st.integers(0, len(valid) - 1))
            content = valid[:at] + bytes([valid[at] ^ data.draw(st.integers(1, 255))]) + valid[at + 1:]
        else:
            content = valid[:data.draw(st.integers(0, len(valid) - 1))]
        path.write_bytes(content)
        try:
            checkpoint.load_model(path)
        except checkpoint.CheckpointError:
            pass  # the promised error; a flip inside stored array data may also load fine

    damaged_files_only_raise_checkpoint_errors()
