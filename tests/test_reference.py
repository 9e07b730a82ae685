"""fastbp.reference, the notes' formulas in plain NumPy that the other tests use as their
oracle: it stands alone (NumPy and the standard library only), its identities hold when
computed another way, and the formulas the kernel tests do not cover (per-sample forms,
the delta recursion, the update) agree with the fast code."""

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastbp import functional as F
from fastbp import optim
from fastbp import reference as ref

PACKAGE = Path(ref.__file__).parent


def test_reference_imports_nothing_but_numpy_and_the_standard_library():
    allowed = {"numpy"} | set(sys.stdlib_module_names)
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: another module of the reference itself
                    assert (PACKAGE / f"{node.module}.py").exists(), (path.name, node.module)
                    continue
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"
    # Loaded on its own, without fastbp's __init__: works, and brings in neither numba nor fastbp.
    script = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('notes', {str(PACKAGE / '__init__.py')!r},\n"
        f"    submodule_search_locations=[{str(PACKAGE)!r}])\n"
        "notes = importlib.util.module_from_spec(spec)\n"
        "sys.modules['notes'] = notes\n"
        "spec.loader.exec_module(notes)\n"
        "import numpy as np\n"
        "assert notes.linear(np.ones((1, 2)), np.ones((3, 2)), 0.0).shape == (1, 3)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numba', 'fastbp', 'llvmlite')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_everything_exported_exists():
    assert all(callable(getattr(ref, name)) or name == "ACTIVATIONS" for name in ref.__all__)


def _dilated_padded(dy, n, o, r, q, stride, offset):
    """Entry (r, q) of dy dilated by the stride (s - 1 zeros between neighbours) and shifted
    by ``offset`` = K - 1 - p rows and columns of zeros; zero outside."""
    (sh, sw), (top, left) = stride, offset
    r, q = r - top, q - left
    if r < 0 or q < 0 or r % sh or q % sw or r // sh >= dy.shape[2] or q // sw >= dy.shape[3]:
        return 0.0
    return dy[n, o, r // sh, q // sw]


# x shape, w shape, stride, padding: remainder rows the windows never reach, a rectangular
# stride, padding beyond K - 1, a 1x1 kernel
CASES = [
    ((1, 1, 5, 5), (1, 1, 3, 3), (1, 1), (0, 0)),
    ((2, 3, 9, 8), (4, 3, 3, 3), (2, 2), (1, 1)),
    ((1, 2, 7, 10), (3, 2, 2, 4), (2, 3), (1, 0)),
    ((2, 2, 10, 10), (2, 2, 3, 3), (3, 3), (0, 0)),
    ((1, 2, 4, 4), (2, 2, 3, 3), (1, 1), (4, 4)),
    ((1, 4, 6, 6), (2, 4, 1, 1), (2, 1), (0, 0)),
]


@pytest.mark.parametrize("x_shape,w_shape,stride,padding", CASES)
def test_conv_input_gradient_is_the_flipped_kernel_convolution_of_the_dilated_gradient(
        x_shape, w_shape, stride, padding, rng):
    """``dX^c_{u,v} = sum_{k,i,j} K~(i,j)^c_k dY~^k_{u+i, v+j}``, ``K~(i,j)^c_k = K(K-1-i,
    K-1-j)^k_c``, written out index by index. Small integers, so every sum is exact and the
    three computations agree to the last bit."""
    x = rng.integers(-3, 4, x_shape).astype(np.float64)
    w = rng.integers(-3, 4, w_shape).astype(np.float64)
    dy = rng.integers(-3, 4, ref.conv2d(x, w, None, stride, padding).shape).astype(np.float64)
    (n_, c_, h, wd), (o_, _, kh, kw) = x_shape, w_shape
    flipped = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)  # K~[c, k, i, j]
    offset = (kh - 1 - padding[0], kw - 1 - padding[1])
    expected = np.zeros(x_shape)
    for n in range(n_):
        for c in range(c_):
            for u in range(h):
                for v in range(wd):
                    expected[n, c, u, v] = sum(
                        flipped[c, k, i, j] * _dilated_padded(dy, n, k, u + i, v + j, stride, offset)
                        for k in range(o_) for i in range(kh) for j in range(kw))
    np.testing.assert_array_equal(ref.conv2d_input_grad_by_flipped_kernel(dy, x_shape, w, stride, padding),
                                  expected)
    np.testing.assert_array_equal(ref.conv2d_backward(dy, x, w, stride, padding)[0], expected)


@pytest.mark.parametrize("x_shape,w_shape,stride,padding", CASES)
def test_conv_weight_gradient_is_the_input_correlated_with_the_dilated_gradient(
        x_shape, w_shape, stride, padding, rng):
    x = rng.integers(-3, 4, x_shape).astype(np.float64)
    w = rng.integers(-3, 4, w_shape).astype(np.float64)
    dy = rng.integers(-3, 4, ref.conv2d(x, w, None, stride, padding).shape).astype(np.float64)
    np.testing.assert_array_equal(ref.conv2d_weight_grad_by_dilated_gradient(dy, x, w_shape, stride, padding),
                                  ref.conv2d_backward(dy, x, w, stride, padding)[1])


def test_per_sample_formulas_are_the_batch_matrix_form(rng):
    """``z_n = W a_n + b`` stacked as rows is ``y = x @ w.T + b``; ``W^T delta_n`` is row n of
    ``dy @ w``; ``sum_n delta_n a_n^T`` is ``dy.T @ x``."""
    x, w, b = rng.standard_normal((5, 7)), rng.standard_normal((3, 7)), rng.standard_normal(3)
    dy = rng.standard_normal((5, 3))
    np.testing.assert_allclose(ref.linear_by_samples(x, w, b), ref.linear(x, w, b), rtol=1e-13)
    for per_sample, matrix in zip(ref.linear_backward_by_samples(dy, x, w), ref.linear_backward(dy, x, w)):
        np.testing.assert_allclose(per_sample, matrix, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("name", sorted(ref.ACTIVATIONS))
def test_delta_recursion_is_the_affine_input_gradient_through_the_activation(name, rng):
    """``delta_l = (W_{l+1}^T delta_{l+1}) * f'(z_l)`` is what fastbp computes as the
    activation's backward of the next affine layer's input gradient."""
    forward, derivative, kwargs = ref.ACTIVATIONS[name]
    z = rng.standard_normal((6, 5)) * 2
    w_next, delta_next = rng.standard_normal((4, 5)), rng.standard_normal((6, 4))
    dx = F.linear_backward(delta_next, getattr(F, name)(z, **kwargs), w_next)[0]
    np.testing.assert_allclose(getattr(F, f"{name}_backward")(dx, z, **kwargs),
                               ref.backprop_delta(delta_next, w_next, z, derivative, **kwargs),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(ref.ACTIVATIONS))
def test_activation_derivatives_by_central_differences(name, rng):
    forward, derivative, kwargs = ref.ACTIVATIONS[name]
    z = rng.uniform(0.1, 3.0, 20) * rng.choice([-1.0, 1.0], 20)  # away from the kinks at 0
    h = 1e-6
    numeric = (forward(z + h, **kwargs) - forward(z - h, **kwargs)) / (2 * h)
    np.testing.assert_allclose(derivative(z, **kwargs), numeric, rtol=1e-7, atol=1e-9)


def _loss_cases(rng):
    labels = rng.integers(0, 4, 6)
    return {
        "mse_loss": (rng.standard_normal((6, 4)), rng.standard_normal((6, 4))),
        "softmax_cross_entropy": (rng.standard_normal((6, 4)) * 3, labels),
        "hinge_loss": (rng.standard_normal((6, 4)), labels),
        "logistic_loss": (rng.standard_normal(6) * 3, rng.integers(0, 2, 6)),
        "logistic_pm1_loss": (rng.standard_normal(6) * 3, rng.choice([-1, 1], 6)),
    }


@pytest.mark.parametrize("name", sorted(_loss_cases(np.random.default_rng(0))))
def test_loss_gradients_by_central_differences(name, rng):
    """Each loss's delta is the gradient of its batch mean (the notes' delta, over N)."""
    scores, target = _loss_cases(rng)[name]
    loss = getattr(ref, name)
    numeric = np.zeros_like(scores)
    for index in np.ndindex(scores.shape):
        step = np.zeros_like(scores)
        step[index] = 1e-6
        numeric[index] = (loss(scores + step, target)[0] - loss(scores - step, target)[0]) / 2e-6
    np.testing.assert_allclose(loss(scores, target)[1], numeric, rtol=1e-6, atol=1e-8)


def test_softmax_cross_entropy_delta_is_p_minus_one_hot(rng):
    scores, labels = rng.standard_normal((5, 3)), rng.integers(0, 3, 5)
    np.testing.assert_allclose(ref.softmax_cross_entropy(scores, labels)[1] * 5,
                               ref.softmax(scores) - np.eye(3)[labels], rtol=1e-12, atol=1e-15)


def test_maxout_matches_the_kernels(rng):
    x, w, b = rng.standard_normal((6, 5)), rng.standard_normal((3, 4, 5)), rng.standard_normal((3, 4))
    dy = rng.standard_normal((6, 3))
    np.testing.assert_allclose(F.maxout(x, w, b), ref.maxout(x, w, b)[0], rtol=1e-12, atol=1e-12)
    for got, want in zip(F.maxout_backward(dy, x, w, b), ref.maxout_backward(dy, x, w, b)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_sgd_with_weight_decay_matches_the_optimizer(rng):
    """``W <- W - eta (dE/dW + lambda W)``, the gradient of ``lambda/2 ||W||^2`` being
    ``lambda W``; biases are not decayed."""
    w, b = rng.standard_normal((4, 3)), rng.standard_normal(4)
    dw, db = rng.standard_normal((4, 3)), rng.standard_normal(4)
    want_w, want_b = ref.sgd_step(w, dw, 0.1, 0.01), ref.sgd_step(b, db, 0.1)
    params = {"0.weight": w.copy(), "0.bias": b.copy()}
    optim.SGD(params, lr=0.1, weight_decay=0.01).step({"0.weight": dw, "0.bias": db})
    np.testing.assert_allclose(params["0.weight"], want_w, rtol=1e-14)
    np.testing.assert_allclose(params["0.bias"], want_b, rtol=1e-14)
