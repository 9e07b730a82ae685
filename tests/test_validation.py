import numpy as np
import pytest

from fastbp import functional as F

f32, f64 = np.float32, np.float64


def ones(*shape, dtype=f64):
    return np.ones(shape, dtype)


BAD_CALLS = [
    # (call, exception, message pattern)
    (lambda: F.conv2d(ones(1, 3, 5, 5), ones(2, 4, 3, 3)), ValueError, r"x has 3 channels but w of shape \(2, 4, 3, 3\) expects 4"),
    (lambda: F.conv2d(ones(1, 1, 3, 3), ones(1, 1, 5, 5), padding=0), ValueError, r"kernel size \(5, 5\) is larger than the padded input \(3, 3\)"),
    (lambda: F.conv2d(ones(1, 1, 5, 5), ones(1, 1, 3, 3), stride=0), ValueError, "stride must be >= 1"),
    (lambda: F.conv2d(ones(1, 1, 5, 5), ones(1, 1, 3, 3), padding=-1), ValueError, "padding must be >= 0"),
    (lambda: F.conv2d(ones(1, 1, 5, 5), ones(1, 1, 3, 3), stride=1.5), TypeError, "stride must be an int"),
    (lambda: F.conv2d(ones(1, 1, 5, 5), ones(1, 1, 3, 3), stride=(1, 2, 3)), ValueError, r"stride must be an int or an \(h, w\) pair"),
    (lambda: F.conv2d(ones(1, 5, 5), ones(1, 1, 3, 3)), ValueError, r"x must be 4-D \(N, C, H, W\), got shape \(1, 5, 5\)"),
    (lambda: F.conv2d(ones(1, 1, 5, 5, dtype=f32), ones(1, 1, 3, 3)), TypeError, "mixed dtypes: x is float32, w is float64"),
    (lambda: F.conv2d(np.ones((1, 1, 5, 5), int), ones(1, 1, 3, 3)), TypeError, "x must be a float32 or float64 array, got dtype int64"),
    (lambda: F.conv2d(np.ones((1, 1, 5, 5), bool), ones(1, 1, 3, 3)), TypeError, "got dtype bool"),
    (lambda: F.conv2d(np.ones((1, 1, 5, 5), np.float16), ones(1, 1, 3, 3)), TypeError, "got dtype float16"),
    (lambda: F.conv2d(ones(0, 1, 5, 5), ones(1, 1, 3, 3)), ValueError, "empty batch"),
    (lambda: F.conv2d(ones(1, 1, 5, 5), ones(2, 1, 3, 3), ones(3)), ValueError, r"b must have shape \(2,\)"),
    (lambda: F.conv2d_backward(ones(1, 2, 4, 4), ones(1, 1, 5, 5), ones(2, 1, 3, 3)), ValueError, r"dy has shape \(1, 2, 4, 4\), expected \(1, 2, 3, 3\) \(the shape of conv2d's output\)"),
    (lambda: F.conv2d_backward(ones(1, 2, 3, 3, dtype=f32), ones(1, 1, 5, 5), ones(2, 1, 3, 3)), TypeError, "mixed dtypes: dy is float32"),
    (lambda: F.linear(ones(2, 3), ones(4, 5)), ValueError, r"x has 3 features but w of shape \(4, 5\) expects 5"),
    (lambda: F.linear(ones(3), ones(4, 3)), ValueError, r"x must be 2-D \(N, in_features\)"),
    (lambda: F.linear(ones(2, 3, dtype=f32), ones(4, 3), ones(4, dtype=f32)), TypeError, "mixed dtypes"),
    (lambda: F.linear_backward(ones(2, 5), ones(2, 3), ones(4, 3)), ValueError, r"dy has shape \(2, 5\), expected \(2, 4\)"),
    (lambda: F.max_pool2d(ones(1, 1, 4, 4), 2, padding=2), ValueError, "padding .* must be at most half the kernel size"),
    (lambda: F.avg_pool2d(ones(1, 1, 4, 4), 3, padding=(1, 2)), ValueError, "must be at most half the kernel size"),
    (lambda: F.max_pool2d(ones(1, 1, 2, 2), 3), ValueError, "larger than the padded input"),
    (lambda: F.max_pool2d(ones(1, 1, 4, 4), 0), ValueError, "kernel_size must be >= 1"),
    (lambda: F.max_pool2d(ones(1, 1, 4, 4), 2, stride=0), ValueError, "stride must be >= 1"),
    (lambda: F.max_pool2d_backward(ones(1, 1, 3, 3), ones(1, 1, 4, 4), 2), ValueError, r"expected \(1, 1, 2, 2\)"),
    (lambda: F.avg_pool2d_backward(ones(1, 1, 2, 2, dtype=f32), ones(1, 1, 4, 4), 2), TypeError, "mixed dtypes"),
    (lambda: F.relu_backward(ones(3), ones(4)), ValueError, r"dy has shape \(3,\), expected \(4,\)"),
    (lambda: F.sigmoid(np.arange(3)), TypeError, "x must be a float32 or float64 array"),
    (lambda: F.softmax_cross_entropy(ones(3, 4), np.array([0, 1, 4])), ValueError, r"labels must lie in \[0, 4\), got values from 0 to 4"),
    (lambda: F.softmax_cross_entropy(ones(3, 4), np.array([0, -1, 2])), ValueError, r"labels must lie in \[0, 4\)"),
    (lambda: F.softmax_cross_entropy(ones(3, 4), np.array([0.0, 1.0, 2.0])), TypeError, "labels must be an integer array"),
    (lambda: F.softmax_cross_entropy(ones(3, 4), np.array([0, 1])), ValueError, r"labels must have shape \(3,\)"),
    (lambda: F.hinge_loss(ones(3), np.array([0, 1, 2])), ValueError, r"scores must be 2-D \(N, classes\)"),
    (lambda: F.logistic_loss(ones(3), np.array([0, 1, 2])), ValueError, r"y must hold only the values \(0, 1\)"),
    (lambda: F.logistic_loss(ones(3), np.array([0, 1, np.nan])), ValueError, "y must hold only the values"),
    (lambda: F.logistic_pm1_loss(ones(3), np.array([0, 1, 1])), ValueError, r"y must hold only the values \(-1, 1\)"),
    (lambda: F.logistic_loss(ones(3, 2), np.zeros((3, 2))), ValueError, r"s must have shape \(N,\) or \(N, 1\)"),
    (lambda: F.mse_loss(ones(3, 2), ones(3, 3)), ValueError, r"t has shape \(3, 3\), expected \(3, 2\)"),
    (lambda: F.mse_loss(ones(3, 2), ones(3, 2, dtype=f32)), TypeError, "mixed dtypes"),
    (lambda: F.maxout(ones(2, 3), ones(4, 2, 5)), ValueError, "x has 3 features"),
    (lambda: F.maxout(ones(2, 3), ones(4, 2, 3), ones(4, 3)), ValueError, r"b has shape \(4, 3\), expected \(4, 2\)"),
]


@pytest.mark.parametrize("call,error,pattern", BAD_CALLS)
def test_bad_input_raises_a_clear_error(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def test_non_contiguous_inputs_give_the_same_answer(rng):
    x = rng.standard_normal((2, 3, 8, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    x_strided = np.asfortranarray(x)
    w_strided = np.ascontiguousarray(np.swapaxes(w, 0, 1)).swapaxes(0, 1)
    assert not x_strided.flags.c_contiguous and not w_strided.flags.c_contiguous
    np.testing.assert_array_equal(F.conv2d(x_strided, w_strided, stride=2, padding=1),
                                  F.conv2d(x, w, stride=2, padding=1))
    big = rng.standard_normal((2, 3, 16, 16))
    np.testing.assert_array_equal(F.max_pool2d(big[:, :, ::2, ::2], 2), F.max_pool2d(big[:, :, ::2, ::2].copy(), 2))
    np.testing.assert_array_equal(F.relu(big[..., ::3]), np.maximum(big[..., ::3], 0))


def test_lists_are_accepted_as_arrays():
    np.testing.assert_array_equal(F.relu([[-1.0, 2.0]]), [[0.0, 2.0]])
