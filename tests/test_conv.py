import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import assert_matches
import fastbp
from fastbp import functional as F
from fastbp import reference as ref

# (N, C, H, W), (O, KH, KW), stride, padding
CASES = [
    ((1, 1, 5, 5), (1, 3, 3), 1, 0),
    ((2, 3, 8, 7), (4, 3, 3), 1, 1),
    ((2, 3, 9, 9), (5, 3, 3), 2, 1),
    ((3, 2, 7, 10), (3, 2, 4), (2, 3), (1, 0)),
    ((2, 1, 28, 28), (6, 5, 5), 1, 2),
    ((2, 6, 14, 14), (16, 5, 5), 1, 0),
    ((1, 4, 6, 6), (2, 1, 1), 1, 0),
    ((2, 3, 6, 5), (2, 6, 5), 1, 0),
    ((1, 2, 11, 11), (3, 7, 7), 2, 3),
    ((2, 3, 10, 10), (2, 3, 3), 3, 0),
    ((1, 2, 4, 4), (2, 3, 3), 1, 4),
    # Enough input and output channels for the dot-product paths of forward and dx.
    ((2, 5, 7, 6), (33, 3, 3), 2, 1),
    ((3, 8, 6, 6), (32, 2, 3), 1, (0, 1)),
    # Stride 1 with the batch as the vector axis (N >= 8, small planes): LeNet's conv2, and
    # a batch of two chunks, the second of 6 samples.
    ((9, 6, 14, 14), (16, 5, 5), 1, 0),
    ((70, 3, 6, 5), (5, 2, 3), 1, 1),
]


def _data(rng, x_shape, w_shape, dtype):
    n, c = x_shape[:2]
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((w_shape[0], c, *w_shape[1:])).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    return x, w, b


@pytest.mark.parametrize("x_shape,w_shape,stride,padding", CASES)
def test_conv2d_forward_and_backward_match_reference(x_shape, w_shape, stride, padding, dtype, rng):
    x, w, b = _data(rng, x_shape, w_shape, dtype)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    y = F.conv2d(x, w, b, stride, padding)
    assert_matches(y, ref.conv2d(x64, w64, b.astype(np.float64), stride, padding), dtype)

    dy = rng.standard_normal(y.shape).astype(dtype)
    expected = ref.conv2d_backward(dy.astype(np.float64), x64, w64, stride, padding)
    for got, want in zip(F.conv2d_backward(dy, x, w, stride, padding), expected):
        assert_matches(got, want, dtype)


@pytest.mark.parametrize("x_shape,w_shape,stride,padding", CASES[:10])
def test_input_gradient_is_the_flipped_kernel_convolution_of_the_dilated_gradient(
        x_shape, w_shape, stride, padding, rng):
    x, w, _ = _data(rng, x_shape, w_shape, np.float64)
    dy = rng.standard_normal(F.conv2d(x, w, None, stride, padding).shape)
    dx = F.conv2d_backward(dy, x, w, stride, padding)[0]
    expected = ref.conv2d_input_grad_by_flipped_kernel(dy, x.shape, w, stride, padding)
    np.testing.assert_allclose(dx, expected, rtol=1e-10, atol=1e-12)


def test_conv2d_without_bias_equals_zero_bias(rng):
    x, w, _ = _data(rng, (2, 3, 6, 6), (4, 3, 3), np.float32)
    np.testing.assert_array_equal(F.conv2d(x, w), F.conv2d(x, w, np.zeros(4, np.float32)))


@settings(max_examples=40, deadline=None)
@given(
    n=st.sampled_from([1, 2, 3, 8, 11, 67]),  # 8 and more: the batched stride-1 kernels too
    c=st.integers(1, 6), o=st.integers(1, 5),
    h=st.integers(1, 9), w=st.integers(1, 9), kh=st.integers(1, 5), kw=st.integers(1, 5),
    sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 3), pw=st.integers(0, 3),
    seed=st.integers(0, 2**16), use_f32=st.booleans(),
)
def test_conv2d_fuzzed_shapes(n, c, o, h, w, kh, kw, sh, sw, ph, pw, seed, use_f32):
    dtype = np.float32 if use_f32 else np.float64
    rng = np.random.default_rng(seed)
    x, weight, b = _data(rng, (n, c, h, w), (o, kh, kw), dtype)
    if kh > h + 2 * ph or kw > w + 2 * pw:
        with pytest.raises(ValueError, match="larger than the padded input"):
            F.conv2d(x, weight, b, (sh, sw), (ph, pw))
        return
    x64, w64 = x.astype(np.float64), weight.astype(np.float64)
    y = F.conv2d(x, weight, b, (sh, sw), (ph, pw))
    assert_matches(y, ref.conv2d(x64, w64, b.astype(np.float64), (sh, sw), (ph, pw)), dtype)
    dy = rng.standard_normal(y.shape).astype(dtype)
    expected = ref.conv2d_backward(dy.astype(np.float64), x64, w64, (sh, sw), (ph, pw))
    for got, want in zip(F.conv2d_backward(dy, x, weight, (sh, sw), (ph, pw)), expected):
        assert_matches(got, want, dtype)


def test_conv2d_backward_without_input_grad(rng):
    x, w, _ = _data(rng, (2, 3, 7, 7), (4, 3, 3), np.float32)
    dy = rng.standard_normal((2, 4, 4, 4)).astype(np.float32)
    dx, dw, db = F.conv2d_backward(dy, x, w, 2, 1)
    none, dw2, db2 = F.conv2d_backward(dy, x, w, 2, 1, input_grad=False)
    assert none is None
    np.testing.assert_array_equal(dw, dw2)
    np.testing.assert_array_equal(db, db2)


# the three kernel families: gathered patches (stride 2), shifted runs, batched (n >= 8)
@pytest.mark.parametrize("n,size,stride", [(2, 7, 2), (2, 9, 1), (9, 6, 1)])
def test_conv2d_backward_adds_to_given_gradients(n, size, stride, rng):
    x = rng.standard_normal((n, 3, size, size))
    w = rng.standard_normal((4, 3, 3, 3))
    out = (size + 2 - 3) // stride + 1
    dy = rng.standard_normal((n, 4, out, out))
    dx, dw, db = F.conv2d_backward(dy, x, w, stride, 1)
    dw0, db0 = rng.standard_normal(w.shape), rng.standard_normal(4)
    targets = dw0.copy(), db0.copy()
    got_dx, got_dw, got_db = F.conv2d_backward(dy, x, w, stride, 1, add_to=targets)
    assert got_dw is targets[0] and got_db is targets[1]
    np.testing.assert_allclose(got_dw, dw0 + dw, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got_db, db0 + db, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(got_dx, dx)
    with pytest.raises(ValueError, match="add_to's db must be"):
        F.conv2d_backward(dy, x, w, stride, 1, add_to=(dw0, np.zeros(5)))


@pytest.mark.parametrize("stride", [1, 2])
def test_conv2d_reused_workspace_gives_the_same_results(stride, rng):
    """A workspace left holding an earlier, larger call's scratch changes nothing."""
    workspace = fastbp.Workspace()
    for n, size in [(6, 12), (3, 9), (6, 12)]:
        x = rng.standard_normal((n, 3, size, size)).astype(np.float32)
        w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
        y = F.conv2d(x, w, None, stride, 1, workspace)
        np.testing.assert_array_equal(y, F.conv2d(x, w, None, stride, 1))
        dy = rng.standard_normal(y.shape).astype(np.float32)
        for got, fresh in zip(F.conv2d_backward(dy, x, w, stride, 1, workspace=workspace),
                              F.conv2d_backward(dy, x, w, stride, 1)):
            np.testing.assert_array_equal(got, fresh)


def test_workspace_grows_only_and_follows_the_dtype():
    workspace = fastbp.Workspace()
    big = workspace.array("a", (4, 5), np.float32)
    small = workspace.array("a", (3,), np.float32)
    assert np.shares_memory(big, small) and small.shape == (3,)
    assert workspace.array("a", (2,), np.float64).dtype == np.float64
    assert workspace.nbytes == 2 * 8
