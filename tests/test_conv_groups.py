"""Dilated and grouped convolution (``dilation=``, ``groups=``): against the NumPy reference
(``reference.conv.conv2d_dilated_grouped``), finite differences, PyTorch where installed,
every family that takes the shapes, fuzzed shapes, argument checks, the layer and its
checkpoint."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import assert_matches
import fastbp
from fastbp import checkpoint
from fastbp import functional as F
from fastbp._validation import pair
from fastbp.gradcheck import gradcheck, gradcheck_layer
from fastbp.kernels import conv2d as table
from fastbp.reference import conv as ref

# (N, C, H, W), O, (KH, KW), stride, padding, dilation, groups
CASES = [
    ((2, 4, 9, 8), 6, (3, 3), 1, 1, 2, 1),
    ((2, 4, 9, 8), 6, (3, 3), 1, 2, 2, 2),
    ((2, 4, 11, 10), 4, (3, 2), 2, 2, (2, 3), 4),  # depthwise, strided, dilated
    ((9, 6, 10, 10), 6, (3, 3), 1, 1, 1, 3),  # batched family per group
    ((3, 6, 7, 9), 12, (3, 3), 1, 1, 1, 6),  # depthwise with multiplier 2
    # depthwise stride 1 with no padding in height, more than the kernel's reach in width
    # (dx crops dy's planes); the nine taps at once, and any other kernel tap by tap
    ((2, 3, 7, 8), 3, (3, 3), 1, (0, 3), 1, 3),
    ((2, 3, 7, 8), 6, (2, 3), 1, (0, 3), (2, 1), 3),
    ((2, 8, 12, 12), 8, (5, 5), 1, 4, 2, 8),
    # depthwise stride 1, output the input's size: dx and dw in one pass over dy
    ((3, 5, 9, 7), 5, (3, 3), 1, 1, 1, 5),
    ((2, 4, 8, 9), 4, (3, 3), 1, (2, 1), (2, 1), 4),
    ((2, 3, 13, 13), 33, (3, 3), (1, 2), 0, 3, 3),  # dot-product paths per group
    ((1, 2, 7, 7), 2, (2, 2), 3, 0, 4, 1),
    # 3x3 stride 1 dilated: winograd's column phases, interleaved two at a time for
    # dilation 2 (odd padding and widths: a lone first or last column), one at a time else
    ((2, 3, 9, 11), 4, (3, 3), 1, (1, 3), 2, 1),
    ((1, 2, 10, 9), 3, (3, 3), 1, (3, 2), (3, 1), 1),
    ((2, 4, 8, 13), 5, (3, 3), 1, (4, 1), (2, 4), 1),
    ((1, 32, 24, 25), 32, (3, 3), 1, 2, 2, 1),  # winograd by default
    # winograd over groups of 16 channels (products in tiles where the CPU has them), 17
    # outputs per group: a partial panel in each
    ((2, 32, 9, 10), 34, (3, 3), 1, 1, 1, 2),
]


def _data(case, dtype, seed=0):
    x_shape, o, k, stride, padding, dilation, groups = case
    rng = np.random.default_rng(seed + CASES.index(case))
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((o, x_shape[1] // groups, *k)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    y = ref.conv2d_dilated_grouped(x, w, b, stride, padding, dilation, groups)
    dy = rng.standard_normal(y.shape).astype(dtype)
    return x, w, b, dy


def _families(case):
    """None (chosen by shape) and every family that takes one group of the case's shapes."""
    x_shape, o, k, stride, padding, dilation, groups = case
    x, w, _, dy = _data(case, np.float64)
    g = table.Geometry.of(x.shape, w.shape, dy.shape, *pair("s", stride, 1),
                          *pair("p", padding, 0), *pair("d", dilation, 1),
                          groups)
    return [None, *(name for name in table.NAMES if table.refusal(name, g) is None)]


FAMILY_CASES = [pytest.param(case, family, id=f"{k}-{family or 'default'}")
                for k, case in enumerate(CASES) for family in _families(case)]


@pytest.mark.parametrize("case,family", FAMILY_CASES)
def test_dilated_grouped_conv_matches_reference(case, family, dtype):
    _, _, _, stride, padding, dilation, groups = case
    x, w, b, dy = _data(case, dtype)
    x64, w64, b64, dy64 = (a.astype(np.float64) for a in (x, w, b, dy))
    want = (ref.conv2d_dilated_grouped(x64, w64, b64, stride, padding, dilation, groups),
            *ref.conv2d_dilated_grouped_backward(dy64, x64, w64, stride, padding, dilation,
                                                  groups))
    got = (F.conv2d(x, w, b, stride, padding, dilation, groups, family=family),
           *F.conv2d_backward(dy, x, w, stride, padding, dilation, groups, family=family))
    for a, e in zip(got, want):
        assert_matches(a, e, dtype)
    # dw alone (x may not be needed for dx), and added to given gradients
    _, dw, db = F.conv2d_backward(dy, x, w, stride, padding, dilation, groups,
                                  input_grad=False, family=family)
    assert dw.tobytes() == got[2].tobytes() and db.tobytes() == got[3].tobytes()
    targets = (np.ones_like(w), np.ones_like(b))
    F.conv2d_backward(dy, x, w, stride, padding, dilation, groups, add_to=targets, family=family)
    assert_matches(targets[0], want[2] + 1, dtype)


def test_dilated_3x3_runs_winograd_where_it_pays():
    """The table's choice for dilated 3x3 kernels (``conv2d.MIN_PHASE_WIDTH_FOR_WINOGRAD``
    and ``MAX_DILATION_FOR_WINOGRAD``, by instruction set)."""
    def chosen(x_shape, o, pad, dilation):
        n, c, h, w = x_shape
        (dh, dw), (ph, pw) = pair("d", dilation, 1), pair("p", pad, 0)
        out = (n, o, h + 2 * ph - 2 * dh, w + 2 * pw - 2 * dw)
        g = table.Geometry.of(x_shape, (o, c, 3, 3), out, 1, 1, ph, pw, dh, dw)
        return table.choose(g, "forward").name, table.choose(g, "backward").name

    assert chosen((64, 32, 32, 32), 64, 2, 2) == ("winograd", "winograd")  # compare.py's
    assert chosen((1, 32, 24, 25), 32, 2, 2) == ("winograd", "winograd")  # CASES' last
    assert chosen((64, 32, 32, 32), 32, (3, 1), (3, 1)) == ("winograd", "winograd")  # 11 tall
    assert chosen((64, 32, 32, 32), 32, (2, 1), (2, 1)) == ("winograd", "winograd")
    assert chosen((16, 32, 64, 64), 32, 3, 3) == ("winograd", "winograd")
    assert chosen((64, 8, 32, 32), 8, 2, 2) == ("shifted", "shifted")  # 8 channels
    assert chosen((64, 16, 32, 32), 16, (4, 1), (4, 1)) == ("shifted", "shifted")  # 16: d <= 3
    if table.CPU_KIND == "avx512":  # the products in tiles: dx from phases 8 wide, dilation 4
        assert chosen((64, 32, 32, 32), 32, 4, 4) == ("shifted", "winograd")
        assert chosen((64, 64, 32, 32), 64, 4, 4) == ("winograd", "winograd")
        assert chosen((64, 32, 32, 32), 32, (4, 1), (4, 1)) == ("winograd", "winograd")
        assert chosen((64, 32, 16, 16), 32, 2, 2) == ("shifted", "winograd")
        assert chosen((16, 32, 64, 64), 32, 4, 4) == ("winograd", "winograd")
    else:
        assert chosen((64, 32, 32, 32), 32, 4, 4) == ("shifted", "shifted")  # phases 8 wide
        assert chosen((64, 64, 32, 32), 64, 4, 4) == ("shifted", "shifted")
        assert chosen((64, 32, 32, 32), 32, (4, 1), (4, 1)) == ("shifted", "shifted")
        assert chosen((64, 32, 16, 16), 32, 2, 2) == ("shifted", "shifted")
        assert chosen((16, 32, 64, 64), 32, 4, 4) == ("shifted", "shifted")  # phases gathered


def test_grouped_3x3_runs_winograd_on_all_groups_at_once():
    """Winograd takes the groups itself (no copies of each group's channels) where one
    group's shapes suit it; with fewer channels per group the table runs group by group."""
    def chosen(x_shape, o, groups):
        n, c, h, w = x_shape
        g = table.Geometry.of(x_shape, (o, c // groups, 3, 3), (n, o, h, w), 1, 1, 1, 1, 1, 1,
                              groups)
        entries = [table.takes_groups(g, pass_) for pass_ in ("forward", "backward")]
        return tuple(entry and entry.name for entry in entries)

    assert chosen((64, 64, 32, 32), 64, 4) == ("winograd", "winograd")  # compare.py's
    assert chosen((64, 64, 32, 32), 64, 8) == (None, None)  # 8 channels a group
    assert chosen((64, 64, 32, 32), 64, 64) == ("depthwise", "depthwise")


def test_shifted_family_reads_each_group_in_place_as_from_copies(dtype):
    """Group by group, the shifted family reads each group's channels of x and dy in
    place, and every pass is exactly that of the group's channels copied apart."""
    x, w, b, dy = _data(CASES[1], dtype)
    kw = dict(stride=1, padding=2, dilation=2)
    assert table.FAMILIES["shifted"].reads_groups_in_place
    got = (F.conv2d(x, w, b, groups=2, family="shifted", **kw),
           *F.conv2d_backward(dy, x, w, groups=2, family="shifted", **kw))
    for k, group in enumerate((slice(0, 2), slice(2, 4))):
        outputs = slice(3 * k, 3 * k + 3)
        x_k, dy_k = np.ascontiguousarray(x[:, group]), np.ascontiguousarray(dy[:, outputs])
        y = F.conv2d(x_k, w[outputs], b[outputs], family="shifted", **kw)
        dx, dw, _ = F.conv2d_backward(dy_k, x_k, w[outputs], family="shifted", **kw)
        np.testing.assert_array_equal(got[0][:, outputs], y)
        np.testing.assert_array_equal(got[1][:, group], dx)
        np.testing.assert_array_equal(got[2][outputs], dw)


@pytest.mark.parametrize("case", [CASES[8], CASES[9], CASES[7]], ids=["3x3", "dilated", "5x5"])
def test_depthwise_gradients_in_one_pass_are_its_two_passes(case, dtype):
    """Where one pass over dy serves dx and dw (stride 1, the output the input's size),
    both are exactly dx alone and dw alone."""
    x_shape, o, (k_h, k_w), _, padding, dilation, groups = case
    pads, options = pair("padding", padding, 0), dict(dilation=pair("dilation", dilation, 1),
                                                     groups=groups)
    assert o == x_shape[1] == groups and table.pads_alike(k_h, k_w, *pads, *options["dilation"])
    x, w, _, dy = _data(case, dtype)
    dx, dw, dx_alone, dw_alone = (np.empty_like(a) for a in (x, w, x, w))
    table.conv2d_backward(dy, x, w, 1, 1, *pads, dx, dw, **options)
    table.conv2d_backward_input(dy, w, 1, 1, *pads, dx_alone, **options)
    table.conv2d_backward_weight(dy, x, 1, 1, *pads, dw_alone, **options)
    np.testing.assert_array_equal(dx, dx_alone)
    np.testing.assert_array_equal(dw, dw_alone)


def test_reference_reduces_to_the_plain_convolution(rng):
    x = rng.standard_normal((2, 3, 8, 7))
    w = rng.standard_normal((4, 3, 3, 2))
    dy = rng.standard_normal((2, 4, 4, 3))
    np.testing.assert_allclose(ref.conv2d_dilated_grouped(x, w, None, 2, 1),
                               ref.conv2d(x, w, None, 2, 1), rtol=1e-12, atol=1e-12)
    for a, b in zip(ref.conv2d_dilated_grouped_backward(dy, x, w, 2, 1),
                    ref.conv2d_backward(dy, x, w, 2, 1)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_reference_groups_are_independent_convolutions(rng):
    """Groups: the plain convolution of each group's channels, side by side; dilation: the
    plain convolution with the kernel spread out by zeros."""
    x = rng.standard_normal((2, 6, 9, 9))
    w = rng.standard_normal((4, 3, 3, 3))
    y = ref.conv2d_dilated_grouped(x, w, None, 1, 1, 2, 2)
    spread = np.zeros((4, 3, 5, 5))
    spread[:, :, ::2, ::2] = w
    want = np.concatenate([ref.conv2d(x[:, :3], spread[:2], None, 1, 1),
                           ref.conv2d(x[:, 3:], spread[2:], None, 1, 1)], axis=1)
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES[:8])
def test_dilated_grouped_gradients_by_finite_differences(case):
    _, _, _, stride, padding, dilation, groups = case
    x, w, b, dy = _data(case, np.float64)
    x, w = x[:1].copy(), w.copy()
    dy = dy[:1]

    def objective():
        return float(np.sum(F.conv2d(x, w, b, stride, padding, dilation, groups) * dy))

    dx, dw, db = F.conv2d_backward(dy, x, w, stride, padding, dilation, groups)
    gradcheck(objective, x, dx, rtol=1e-5, atol=1e-6)
    gradcheck(objective, w, dw, rtol=1e-5, atol=1e-6)
    gradcheck(objective, b, db, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", CASES)
def test_dilated_grouped_conv_matches_torch(case, dtype):
    torch = pytest.importorskip("torch")
    _, _, _, stride, padding, dilation, groups = case
    x, w, b, dy = _data(case, dtype)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.conv2d(xt, wt, bt, stride, padding, dilation, groups)
    yt.backward(torch.tensor(dy))
    got = (F.conv2d(x, w, b, stride, padding, dilation, groups),
           *F.conv2d_backward(dy, x, w, stride, padding, dilation, groups))
    want = (yt.detach(), xt.grad, wt.grad, bt.grad)
    for a, e in zip(got, want):
        assert_matches(a, e.numpy().astype(np.float64), dtype)


@settings(max_examples=40, deadline=None)
@given(
    n=st.sampled_from([1, 2, 3, 9]),
    groups=st.integers(1, 4), c_per=st.integers(1, 3), o_per=st.integers(1, 3),
    h=st.integers(1, 10), w=st.integers(1, 10), kh=st.integers(1, 4), kw=st.integers(1, 4),
    sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 3), pw=st.integers(0, 3),
    dh=st.integers(1, 3), dw=st.integers(1, 3),
    seed=st.integers(0, 2**16), use_f32=st.booleans(),
    family=st.sampled_from([None, None, *table.NAMES]),
)
def test_dilated_grouped_fuzzed_shapes(n, groups, c_per, o_per, h, w, kh, kw, sh, sw, ph, pw,
                                       dh, dw, seed, use_f32, family):
    dtype = np.float32 if use_f32 else np.float64
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, groups * c_per, h, w)).astype(dtype)
    weight = rng.standard_normal((groups * o_per, c_per, kh, kw)).astype(dtype)
    b = rng.standard_normal(groups * o_per).astype(dtype)
    args = ((sh, sw), (ph, pw), (dh, dw), groups)
    if dh * (kh - 1) + 1 > h + 2 * ph or dw * (kw - 1) + 1 > w + 2 * pw:
        with pytest.raises(ValueError, match="larger than the padded input"):
            F.conv2d(x, weight, b, *args)
        return
    if ph > max(h, dh * (kh - 1), 16) or pw > max(w, dw * (kw - 1), 16):
        return  # too much padding: test_arguments' business
    refused = ((family == "batched" and (sh, sw, dh, dw) != (1, 1, 1, 1))
               or (family == "shifted" and (sh, sw) != (1, 1))
               or (family == "phases" and (dh, dw) != (1, 1))
               or (family == "winograd" and ((sh, sw) != (1, 1) or (kh, kw) != (3, 3)
                                             or ph > 2 * dh or pw > 2 * dw)))
    if refused:
        with pytest.raises(ValueError, match="needs (stride|dilation|a 3x3)"):
            F.conv2d(x, weight, b, *args, family=family)
        family = None
    if family == "depthwise" and (groups == 1 or c_per != 1):
        with pytest.raises(ValueError, match="needs groups == in_channels"):
            F.conv2d(x, weight, b, *args, family=family)
        family = None
    x64, w64 = x.astype(np.float64), weight.astype(np.float64)
    y = F.conv2d(x, weight, b, *args, family=family)
    assert_matches(y, ref.conv2d_dilated_grouped(x64, w64, b.astype(np.float64), *args), dtype)
    dy = rng.standard_normal(y.shape).astype(dtype)
    expected = ref.conv2d_dilated_grouped_backward(dy.astype(np.float64), x64, w64, *args)
    for got, want in zip(F.conv2d_backward(dy, x, weight, *args, family=family), expected):
        assert_matches(got, want, dtype)


BAD_ARGUMENTS = [  # (w's shape, options, message); x is (1, 4, 7, 7)
    ((4, 4, 3, 3), dict(groups=0), "groups must be a positive int"),
    ((4, 1, 3, 3), dict(groups=5), r"groups=5 must divide the 4 input channels"),
    ((3, 2, 3, 3), dict(groups=2), r"groups=2 must divide the 3 output channels"),
    ((4, 4, 3, 3), dict(groups=2), r"x has 4 channels but w of shape \(4, 4, 3, 3\) expects 8"),
    ((4, 4, 3, 3), dict(dilation=0), r"dilation must be >= 1"),
    ((4, 4, 3, 3), dict(dilation=(1, 0)), r"dilation must be >= 1"),
    ((4, 4, 3, 3), dict(dilation=4), r"dilated kernel size \(9, 9\) \(kernel_size \(3, 3\), "
                                     r"dilation \(4, 4\)\) is larger than the padded input"),
]


@pytest.mark.parametrize("w_shape,options,message", BAD_ARGUMENTS)
def test_bad_dilation_and_groups_are_value_errors_naming_them(w_shape, options, message):
    x, w = np.ones((1, 4, 7, 7)), np.ones(w_shape)
    with pytest.raises(ValueError, match=message):
        F.conv2d(x, w, **options)
    with pytest.raises(ValueError, match=message):
        F.conv2d_backward(np.ones((1, 4, 5, 5)), x, w, **options)


def test_layer_with_dilation_and_groups(tmp_path):
    layer = fastbp.Conv2D(4, 6, 3, padding=2, dilation=2, groups=2, dtype=np.float64, seed=1)
    assert layer.params["weight"].shape == (6, 2, 3, 3)
    assert fastbp.Conv2D.param_shapes(**layer.config()) == {"weight": (6, 2, 3, 3), "bias": (6,)}
    x = np.random.default_rng(0).standard_normal((2, 4, 6, 5))
    gradcheck_layer(layer, x)
    model = fastbp.Sequential(layer)
    checkpoint.save(tmp_path / "m.npz", model)
    loaded = checkpoint.load_model(tmp_path / "m.npz")
    again = loaded.layers[0]
    assert (again.dilation, again.groups) == ((2, 2), 2)
    assert again.config() == layer.config()
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))
    assert "dilation" not in fastbp.Conv2D(4, 6, 3).config()  # plain: as before
    with pytest.raises(ValueError, match="groups=4 must divide in_channels"):
        fastbp.Conv2D(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="dilation must be >= 1"):
        fastbp.Conv2D(4, 6, 3, dilation=0)
