"""Transposed convolution: against the NumPy reference (``reference.conv.conv_transpose2d``),
finite differences, PyTorch where installed, fuzzed shapes, thread counts, arguments, the
layer and its checkpoint."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import assert_matches
import fastbp
from fastbp import checkpoint
from fastbp import functional as F
from fastbp.gradcheck import gradcheck, gradcheck_layer
from fastbp.reference import conv as ref

# (N, C, H, W), O, (KH, KW), stride, padding, output_padding, groups, dilation
CASES = [
    ((2, 4, 5, 6), 6, (3, 3), 2, 1, 1, 2, 1),
    ((2, 4, 5, 6), 4, (4, 4), 2, 1, 0, 1, 1),
    ((1, 3, 4, 4), 6, (3, 3), 1, 2, 1, 3, 2),  # depthwise, dilated, output_padding < dilation
    ((2, 4, 3, 5), 2, (2, 3), (3, 2), (0, 1), (2, 1), 2, (2, 1)),
    ((9, 4, 5, 5), 4, (3, 3), 1, 1, 0, 1, 1),  # batched family for dx
    ((2, 5, 7, 6), 33, (3, 3), 2, 1, 1, 1, 1),  # dot-product paths
]


def _data(case, dtype):
    x_shape, o, k, stride, padding, output_padding, groups, dilation = case
    rng = np.random.default_rng(CASES.index(case))
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((x_shape[1], o // groups, *k)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    args = (stride, padding, output_padding, groups, dilation)
    dy = rng.standard_normal(ref.conv_transpose2d(x, w, b, *args).shape).astype(dtype)
    return x, w, b, dy, args


@pytest.mark.parametrize("case", CASES)
def test_conv_transpose_matches_reference(case, dtype):
    x, w, b, dy, args = _data(case, dtype)
    x64, w64, b64, dy64 = (a.astype(np.float64) for a in (x, w, b, dy))
    want = (ref.conv_transpose2d(x64, w64, b64, *args),
            *ref.conv_transpose2d_backward(dy64, x64, w64, *args))
    got = (F.conv_transpose2d(x, w, b, *args), *F.conv_transpose2d_backward(dy, x, w, *args))
    for a, e in zip(got, want):
        assert_matches(a, e, dtype)
    none, dw, db = F.conv_transpose2d_backward(dy, x, w, *args, input_grad=False)
    assert none is None and dw.tobytes() == got[2].tobytes() and db.tobytes() == got[3].tobytes()
    targets = (np.ones_like(w), np.ones_like(b))
    F.conv_transpose2d_backward(dy, x, w, *args, add_to=targets)
    assert_matches(targets[0], want[2] + 1, dtype)
    assert_matches(targets[1], want[3] + 1, dtype)


@pytest.mark.parametrize("case", CASES)
def test_conv_transpose_matches_torch(case, dtype):
    torch = pytest.importorskip("torch")
    x, w, b, dy, (stride, padding, output_padding, groups, dilation) = _data(case, dtype)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.conv_transpose2d(xt, wt, bt, stride, padding, output_padding,
                                              groups, dilation)
    yt.backward(torch.tensor(dy))
    args = (stride, padding, output_padding, groups, dilation)
    got = (F.conv_transpose2d(x, w, b, *args), *F.conv_transpose2d_backward(dy, x, w, *args))
    for a, e in zip(got, (yt.detach(), xt.grad, wt.grad, bt.grad)):
        assert_matches(a, e.numpy().astype(np.float64), dtype)


def test_conv_transpose_is_the_adjoint_of_conv2d(rng):
    """<conv2d(u, w), v> = <u, conv_transpose2d(v, w)>: the transposed convolution is the
    convolution's input gradient."""
    u = rng.standard_normal((2, 6, 11, 10))
    w = rng.standard_normal((4, 3, 3, 3))
    y = F.conv2d(u, w, None, 2, 1, 2, 2)
    v = rng.standard_normal(y.shape)
    back = F.conv_transpose2d(v, w, None, 2, 1, (0, 1), 2, 2)
    assert back.shape == u.shape
    np.testing.assert_allclose(np.sum(y * v), np.sum(u * back), rtol=1e-10)


@pytest.mark.parametrize("case", CASES[:4])
def test_conv_transpose_gradients_by_finite_differences(case):
    x, w, b, dy, args = _data(case, np.float64)
    x, dy = x[:1].copy(), dy[:1]

    def objective():
        return float(np.sum(F.conv_transpose2d(x, w, b, *args) * dy))

    dx, dw, db = F.conv_transpose2d_backward(dy, x, w, *args)
    gradcheck(objective, x, dx, rtol=1e-5, atol=1e-6)
    gradcheck(objective, w, dw, rtol=1e-5, atol=1e-6)
    gradcheck(objective, b, db, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", CASES)
def test_conv_transpose_bit_identical_across_thread_counts(case, dtype):
    x, w, b, dy, args = _data(case, dtype)
    before = fastbp.get_num_threads()
    results = {}
    try:
        for threads in (1, 2):
            fastbp.set_num_threads(threads)
            results[threads] = [a.tobytes() for a in (
                F.conv_transpose2d(x, w, b, *args), *F.conv_transpose2d_backward(dy, x, w, *args))]
    finally:
        fastbp.set_num_threads(before)
    assert results[1] == results[2]


# x (N, C, H, W), O, K, stride, padding, dilation, whether both passes take the patches family
PAIRED = [
    ((5, 5, 9, 9), 6, 3, 2, 1, 1, True),  # a last group of one sample
    ((2, 4, 11, 11), 8, 3, 2, 2, 2, True),  # dilated
    ((2, 11, 11, 11), 33, 5, 2, 2, 1, True),  # 275 taps: the table's forward by dots
    ((2, 29, 9, 9), 33, 3, 2, 1, 1, True),  # 29 channels: dw in the tiles, y by dots with it
    ((2, 16, 9, 9), 20, 3, 2, 1, 1, True),  # 144 taps: y by dots (AVX2), in axpy form apart (AVX-512)
    ((2, 12, 9, 9), 32, 3, 2, 1, 1, True),  # 108 taps, 32 outputs: y by dots in the tiles (AVX2)
    ((2, 7, 12, 12), 5, 4, 2, 1, 1, False),  # 6 x 6 outputs: dw by the phases family
    ((3, 4, 8, 8), 4, 3, 1, 1, 1, False),  # stride 1
]


@pytest.mark.parametrize("case", PAIRED)
def test_dx_and_dw_from_one_gather_match_the_passes_alone(case, dtype):
    """kernels.conv2d.conv2d_forward_and_backward_weight (a transposed convolution's dx and
    dw): y bit for bit the patches family's axpy-form forward where it pairs the passes
    with dw not in the tiles (both on the patches family), the table's forward apart, and
    paired by dots with dw in the tiles the dots forward, bit for bit where its products
    run in the tiles (a cell's sum follows its patch row alone), within rounding as dot
    products (their patch rows lie at another stride); dw the weight gradient alone, added
    with accumulate; y and dw the same whatever the thread count."""
    from fastbp.kernels import conv2d as K

    x_shape, o, k, s, p, d, paired = case
    rng = np.random.default_rng(PAIRED.index(case))
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((o, x_shape[1], k, k)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    out_hw = [(size + 2 * p - d * (k - 1) - 1) // s + 1 for size in x_shape[2:]]
    g = rng.standard_normal((x_shape[0], o, *out_hw)).astype(dtype)
    geometry = K.Geometry.of(x.shape, w.shape, g.shape, s, s, p, p, d, d)
    families = {K.choose(geometry, pass_).family for pass_ in ("forward", "backward")}
    assert (families == {"patches"}) == paired
    dot_products = (paired and K.choose(geometry, "forward").name == "patches_dots"
                    and not K.dots_in_tiles(geometry, w.dtype))
    paired = paired and not K.weight_grad_by_tiles(geometry, w.dtype)
    y_alone, dw_alone = np.empty_like(g), np.empty_like(w)
    K.conv2d_forward(x, w, b, s, s, p, p, y_alone, family="patches_rows" if paired else None,
                     dilation=(d, d))
    K.conv2d_backward_weight(g, x, s, s, p, p, dw_alone, dilation=(d, d))
    before = fastbp.get_num_threads()
    ys = []
    try:
        for threads in (1, 2):
            fastbp.set_num_threads(threads)
            y, dw = np.empty_like(g), np.ones_like(w)
            K.conv2d_forward_and_backward_weight(x, w, b, g, s, s, p, p, y, dw, accumulate=True,
                                                 dilation=(d, d))
            ys.append(y.tobytes())
            if dot_products and not paired:  # dw's patch rows lie at another stride than the forward's
                assert_matches(y, y_alone.astype(np.float64), dtype)
            else:
                assert y.tobytes() == y_alone.tobytes()
            assert dw.tobytes() == (dw_alone + 1).tobytes()
            K.conv2d_forward_and_backward_weight(x, w, b, g, s, s, p, p, y, dw, dilation=(d, d))
            assert dw.tobytes() == dw_alone.tobytes()
    finally:
        fastbp.set_num_threads(before)
    assert ys[0] == ys[1]


@settings(max_examples=30, deadline=None)
@given(
    n=st.sampled_from([1, 2, 9]), groups=st.integers(1, 3), c_per=st.integers(1, 3),
    o_per=st.integers(1, 3), h=st.integers(1, 6), w=st.integers(1, 6),
    kh=st.integers(1, 4), kw=st.integers(1, 4), s=st.integers(1, 3), p=st.integers(0, 2),
    d=st.integers(1, 3), extra=st.integers(0, 2), seed=st.integers(0, 2**16),
    use_f32=st.booleans(),
)
def test_conv_transpose_fuzzed_shapes(n, groups, c_per, o_per, h, w, kh, kw, s, p, d, extra,
                                      seed, use_f32):
    dtype = np.float32 if use_f32 else np.float64
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, groups * c_per, h, w)).astype(dtype)
    weight = rng.standard_normal((groups * c_per, o_per, kh, kw)).astype(dtype)
    b = rng.standard_normal(groups * o_per).astype(dtype)
    args = (s, p, extra, groups, d)
    if extra >= max(s, d):
        with pytest.raises(ValueError, match="output_padding"):
            F.conv_transpose2d(x, weight, b, *args)
        return
    out = [(size - 1) * s - 2 * p + d * (k - 1) + extra + 1 for size, k in ((h, kh), (w, kw))]
    if min(out) < 1:
        with pytest.raises(ValueError, match="leaves no output"):
            F.conv_transpose2d(x, weight, b, *args)
        return
    x64, w64 = x.astype(np.float64), weight.astype(np.float64)
    y = F.conv_transpose2d(x, weight, b, *args)
    assert_matches(y, ref.conv_transpose2d(x64, w64, b.astype(np.float64), *args), dtype)
    dy = rng.standard_normal(y.shape).astype(dtype)
    expected = ref.conv_transpose2d_backward(dy.astype(np.float64), x64, w64, *args)
    for got, want in zip(F.conv_transpose2d_backward(dy, x, weight, *args), expected):
        assert_matches(got, want, dtype)


@pytest.mark.parametrize("options,message", [
    (dict(stride=2, output_padding=2), "output_padding .* must be smaller than the stride"),
    (dict(output_padding=1), "output_padding .* must be smaller than the stride"),
    (dict(dilation=0), "dilation must be >= 1"),
    (dict(groups=3), "groups=3 must divide the 4 input channels"),
    (dict(groups=0), "groups must be a positive int"),
])
def test_bad_arguments_are_value_errors_naming_them(options, message):
    x, w = np.ones((1, 4, 5, 5)), np.ones((4, 2, 3, 3))
    with pytest.raises(ValueError, match=message):
        F.conv_transpose2d(x, w, **options)
    with pytest.raises(ValueError, match=message):
        F.conv_transpose2d_backward(np.ones((1, 2, 7, 7)), x, w, **options)
    with pytest.raises(ValueError, match="output_padding"):
        fastbp.ConvTranspose2D(4, 2, 3, stride=2, output_padding=2)


def test_layer_gradients_and_checkpoint(tmp_path):
    layer = fastbp.ConvTranspose2D(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2,
                                   dtype=np.float64, seed=1)
    assert layer.params["weight"].shape == (4, 3, 3, 3)
    assert fastbp.ConvTranspose2D.param_shapes(**layer.config()) == {
        "weight": (4, 3, 3, 3), "bias": (6,)}
    x = np.random.default_rng(0).standard_normal((2, 4, 4, 3))
    assert layer.forward(x).shape == (2, 6, 8, 6)
    gradcheck_layer(layer, x)
    model = fastbp.Sequential(layer)
    checkpoint.save(tmp_path / "m.npz", model)
    loaded = checkpoint.load_model(tmp_path / "m.npz")
    assert loaded.layers[0].config() == layer.config()
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))
