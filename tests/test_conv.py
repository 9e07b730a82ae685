import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conftest import TOLERANCES, assert_matches
import fastbp
from fastbp import functional as F
from fastbp import reference as ref
from fastbp._validation import pair
from fastbp.kernels import conv2d as table
from fastbp.kernels.conv2d_winograd import STACKED_TILES

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
    # Kernels more than twice as wide as the stride: patches gathered by column phases.
    ((2, 3, 13, 17), (4, 3, 7), (1, 3), (1, 2)),
    ((2, 2, 9, 12), (3, 5, 5), 2, 0),
    ((2, 3, 10, 10), (2, 3, 3), 3, 0),
    ((1, 2, 4, 4), (2, 3, 3), 1, 4),
    # Enough input and output channels for the dot-product paths of forward and dx; 11
    # channels: the forward's band copied 8 channels at a time, then 3 one by one.
    ((2, 5, 7, 6), (33, 3, 3), 2, 1),
    ((2, 11, 7, 6), (9, 3, 3), 2, 1),
    ((3, 8, 6, 6), (32, 2, 3), 1, (0, 1)),
    # Stride 1 with the batch as the vector axis (N >= 8, small planes): LeNet's conv2, and
    # a batch of two chunks, the second of 6 samples.
    ((9, 6, 14, 14), (16, 5, 5), 1, 0),
    ((70, 3, 6, 5), (5, 2, 3), 1, 1),
    # With AVX-512 also a plane of 306 cells, its forward in the dense tiles (72 taps).
    ((8, 8, 17, 18), (8, 3, 3), 1, 1),
    # Strides that divide the kernel: the phases family's default (a transposed
    # convolution's 4x4 stride 2), over the shifted and the batched stride-1 kernels.
    ((2, 3, 8, 8), (4, 4, 4), 2, 1),
    ((9, 4, 10, 11), (5, 2, 3), (2, 3), (0, 1)),
    # 3x3 stride 1 by Winograd: the default for 32 channels in and out and 24 or more
    # columns (of y, and of dx); odd sizes, padding 0 to 2.
    ((2, 32, 5, 26), (32, 3, 3), 1, 1),
    ((3, 4, 6, 25), (16, 3, 3), 1, (2, 0)),
    ((1, 3, 9, 8), (2, 3, 3), 1, (0, 2)),
    # The patches family's dw in the dense tiles (12 input channels or more): groups of 4
    # samples then 2; 33, 9 and 10 output channels (partial panels); 288, 240, 108 taps.
    ((6, 32, 9, 8), (33, 3, 3), 2, 1),
    ((5, 40, 7, 7), (9, 3, 2), (1, 2), (1, 0)),
    ((3, 12, 9, 10), (10, 3, 3), 2, 1),
]


# winograd, batched, shifted, phases, patches_dots, patches_rows: the families of ungrouped
# convolutions (depthwise takes groups == C only: tests/test_conv_groups.py)
FAMILIES = [name for name in table.FAMILIES if name != "depthwise"]


def _takes(family, stride, kernel=(1, 1), padding=0):
    """Whether ``family`` (None: chosen by shape) runs convolutions of this stride, kernel
    (KH, KW) and padding."""
    some_shape = table.Geometry(1, 1, 1, 1, 1, *kernel, 1, 1, *pair("stride", stride, 1),
                                *pair("padding", padding, 0))
    return family is None or table.FAMILIES[family].accepts(some_shape)


# Every case with the default choice (None) and with every family that takes its stride.
FAMILY_CASES = [pytest.param(case, family, id=f"{k}-{family or 'default'}")
                for k, case in enumerate(CASES) for family in [None, *FAMILIES]
                if _takes(family, case[2], case[1][1:], case[3])]


def _data(rng, x_shape, w_shape, dtype):
    n, c = x_shape[:2]
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal((w_shape[0], c, *w_shape[1:])).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype)
    return x, w, b


def _case(case, dtype):
    """(x, w, b, dy) of a case, the same for every family (seeded by the case)."""
    x_shape, w_shape, stride, padding = case
    rng = np.random.default_rng(CASES.index(case))
    x, w, b = _data(rng, x_shape, w_shape, dtype)
    dy = rng.standard_normal(F.conv2d(x, w, None, stride, padding).shape).astype(dtype)
    return x, w, b, dy


_REFERENCE = {}


def _reference(case, dtype):
    """(y, dx, dw, db) of ``fastbp.reference`` in float64 for a case's data, computed once."""
    key = (CASES.index(case), np.dtype(dtype).name)
    if key not in _REFERENCE:
        _, _, stride, padding = case
        x, w, b, dy = (a.astype(np.float64) for a in _case(case, dtype))
        _REFERENCE[key] = (ref.conv2d(x, w, b, stride, padding),
                           *ref.conv2d_backward(dy, x, w, stride, padding))
    return _REFERENCE[key]


def _run(case, dtype, family, **options):
    """(y, dx, dw, db) of fastbp with ``family``."""
    _, _, stride, padding = case
    x, w, b, dy = _case(case, dtype)
    return (F.conv2d(x, w, b, stride, padding, family=family),
            *F.conv2d_backward(dy, x, w, stride, padding, family=family, **options))


@pytest.mark.parametrize("case,family", FAMILY_CASES)
def test_conv2d_forward_and_backward_match_reference(case, family, dtype):
    for got, want in zip(_run(case, dtype, family), _reference(case, dtype)):
        assert_matches(got, want, dtype)


@pytest.mark.parametrize("case", CASES)
def test_families_agree_on_the_same_inputs(case, dtype):
    """Every family that takes a case gives the default's results up to rounding, and bit
    for bit where they share a kernel: the family the default chose, the two patches
    variants' dw (one kernel), a family's dw with and without dx (the batched kernel is
    compiled apart for each), and a family picked as a whole ("patches") or by variant."""
    _, _, stride, padding = case
    x, w, b, dy = _case(case, dtype)
    default = _run(case, dtype, None)
    results = {family: _run(case, dtype, family) for family in FAMILIES
               if _takes(family, stride, w.shape[2:], padding)}
    geometry = table.Geometry.of(x.shape, w.shape, dy.shape, *pair("s", stride, 1),
                                 *pair("p", padding, 0))
    forward, backward = (table.choose(geometry, way).name for way in ("forward", "backward"))
    assert default[0].tobytes() == results[forward][0].tobytes()
    for got, want in zip(default[1:], results[backward][1:]):
        assert got.tobytes() == want.tobytes()
    for family, got in results.items():
        for a, b_ in zip(got, default):
            np.testing.assert_allclose(a, b_, **TOLERANCES[dtype])
        _, dw, db = F.conv2d_backward(dy, x, w, stride, padding, input_grad=False, family=family)
        assert dw.tobytes() == got[2].tobytes() and db.tobytes() == got[3].tobytes()
    assert results["patches_dots"][2].tobytes() == results["patches_rows"][2].tobytes()
    whole = _run(case, dtype, "patches")
    assert whole[0].tobytes() == results[table.choose(geometry, "forward", "patches").name][0].tobytes()


def test_patches_weight_gradient_takes_the_tiles_from_12_input_channels():
    """By shapes and dtype only: 3x3 with 12 or 32 channels (where the CPU has a tile for
    the dtype), not 8 channels nor 1x1 kernels."""
    from fastbp.kernels.packed import product_tile

    def geometry(c, k):
        return table.Geometry(64, c, 14, 14, 64, k, k, 7, 7, 2, 2, k // 2, k // 2)

    for dtype in (np.float32, np.float64):
        has_tile = product_tile(dtype) is not None
        assert table.weight_grad_by_tiles(geometry(32, 3), dtype) is has_tile
        assert table.weight_grad_by_tiles(geometry(12, 3), dtype) is has_tile
        assert not table.weight_grad_by_tiles(geometry(8, 3), dtype)
        assert not table.weight_grad_by_tiles(geometry(64, 1), dtype)


@pytest.mark.parametrize("planes,kernel,stride,padding", [
    ((3, 13, 17), (3, 7), (1, 3), (1, 2)),
    ((2, 9, 12), (5, 5), (2, 2), (0, 0)),
    ((1, 11, 11), (7, 7), (2, 2), (3, 3)),
    ((2, 6, 5), (2, 9), (2, 4), (4, 5)),  # padding wider than the plane
    ((3, 15, 15), (3, 3), (2, 2), (1, 1)),  # each row split once for two rows of taps
    ((2, 12, 13), (3, 4), (3, 3), (2, 0)),
])
def test_patches_are_gathered_alike_by_taps_and_by_column_phases(planes, kernel, stride,
                                                                  padding, rng):
    """Both forms of ``gather_patches`` (each instruction set runs one) write the patches of
    a band of output rows from a column on, zeros outside the planes, and nothing else."""
    from fastbp.kernels.conv2d_patches import gather_patches_by_phases, gather_patches_by_taps

    x = rng.standard_normal(planes)
    (c_in, height, width), (k_h, k_w), (s_h, s_w), (p_h, p_w) = planes, kernel, stride, padding
    out_h, out_w = (height + 2 * p_h - k_h) // s_h + 1, (width + 2 * p_w - k_w) // s_w + 1
    r0, r1, start = 1, out_h, 3
    padded = np.pad(x, ((0, 0), (p_h, p_h), (p_w, p_w)))
    windows = [padded[:, i * s_h:i * s_h + k_h, j * s_w:j * s_w + k_w].reshape(-1)
               for i in range(r0, r1) for j in range(out_w)]
    length = len(windows)
    for form, extra in ((gather_patches_by_taps, (1, 1)), (gather_patches_by_phases, (1,))):
        patches = np.full((c_in * k_h * k_w, start + length + 2), np.nan)
        form(x, k_h, k_w, s_h, s_w, p_h, p_w, r0, r1, out_w, patches, start, *extra)
        np.testing.assert_array_equal(patches[:, start:start + length], np.stack(windows, 1))
        assert np.isnan(patches[:, :start]).all() and np.isnan(patches[:, start + length:]).all()


def _winograd_matches_reference(x, w, b, padding, dilation, dtype, rng):
    """(y, dy, dx): Winograd's forward and input gradient (for a random dy) of a 3x3 stride-1
    convolution, checked against the reference."""
    from fastbp.reference import conv as conv_ref

    y = F.conv2d(x, w, b, 1, padding, dilation, family="winograd")
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = F.conv2d_backward(dy, x, w, 1, padding, dilation, family="winograd")[0]
    x64, w64, b64, dy64 = (a.astype(np.float64) for a in (x, w, b, dy))
    assert_matches(y, conv_ref.conv2d_dilated_grouped(x64, w64, b64, 1, padding, dilation),
                   dtype)
    assert_matches(dx, conv_ref.conv2d_dilated_grouped_backward(dy64, x64, w64, 1, padding,
                                                                dilation)[0], dtype)
    return y, dy, dx


@pytest.mark.parametrize("tiles", [True, False], ids=["tiles", "shifted_sums"])
@pytest.mark.parametrize("x_shape,c_out,dilation,padding,stack", [
    ((43, 5, 7, 9), 6, 1, 1, 5),  # 9 bands of 5 planes of 4 x 6 tiles, the last of 3
    ((21, 4, 9, 8), 7, (2, 3), (1, 3), 5),  # row phases of 4 and 3 output rows: 42 planes
    ((64, 2, 16, 16), 3, 1, 1, STACKED_TILES // 72),  # 8 x (8 + 1) tiles: a stack's size
])
def test_winograd_stacks_small_planes_with_the_bits_of_each_alone(x_shape, c_out, dilation,
                                                                   padding, stack, tiles,
                                                                   dtype, monkeypatch, rng):
    """Planes too small for a band of their own go into one band together (a row phase of a
    sample each, ``stacked_planes``): forward and input gradient are those of the reference,
    and those of each sample computed alone (one plane a band), bit for bit in the tiles (a
    cell sums its channels in order wherever its tile falls; shifted sums may round a cell
    in their loop's scalar remainder, as a bounds-checked build does)."""
    from fastbp.kernels.conv2d_winograd import MIN_STACKS, tiling
    from fastbp.kernels.packed import product_tile

    monkeypatch.setattr(table, "MIN_DEPTH_FOR_WINOGRAD_TILES", 1 if tiles else 10**9)
    x, w, b = _data(rng, x_shape, (c_out, 3, 3), dtype)
    y, dy, dx = _winograd_matches_reference(x, w, b, padding, dilation, dtype, rng)
    dil_h, dil_w = (dilation, dilation) if isinstance(dilation, int) else dilation
    assert MIN_STACKS == 8 and tiling(*y.shape[2:], dil_h, dil_w, x_shape[0])[3] == stack
    if tiles and product_tile(dtype) is not None:
        same = np.testing.assert_array_equal
    else:
        def same(actual, desired):
            assert_matches(actual, desired.astype(np.float64), dtype)
    for n in range(x_shape[0]):
        same(F.conv2d(x[n:n + 1], w, b, 1, padding, dilation, family="winograd"), y[n:n + 1])
        same(F.conv2d_backward(dy[n:n + 1], x[n:n + 1], w, 1, padding, dilation,
                               family="winograd")[0], dx[n:n + 1])


@pytest.mark.parametrize("tiles", [True, False], ids=["tiles", "shifted_sums"])
@pytest.mark.parametrize("x_shape,c_out,dilation", [
    ((3, 20, 9, 27), 37, 1),  # blocks of output channels and panels left partial
    ((2, 17, 12, 26), 9, 2),  # column phases; one output channel per panel row short
])
def test_winograd_products_in_tiles_or_shifted_sums_match_reference(x_shape, c_out, dilation,
                                                                     tiles, dtype, monkeypatch,
                                                                     rng):
    """Winograd's 16 products run in the dense tiles (where the CPU has a tile for the
    dtype) or as shifted sums: both forms give the reference's forward and input gradient."""
    from fastbp.kernels.packed import product_tile

    monkeypatch.setattr(table, "MIN_DEPTH_FOR_WINOGRAD_TILES", 1 if tiles else 10**9)
    assert table.winograd_by_tiles(x_shape[1], dtype) is (tiles and product_tile(dtype) is not None)
    x, w, b = _data(rng, x_shape, (c_out, 3, 3), dtype)
    _winograd_matches_reference(x, w, b, dilation, dilation, dtype, rng)


@pytest.mark.parametrize("x_shape,c_out,padding,partials", [
    ((43, 5, 7, 9), 6, 1, 9),  # 5 planes stacked a band, the last band of 3
    ((2, 7, 80, 30), 35, 1, 4),  # two bands a plane; 35 output channels: two panels
    ((40, 3, 30, 30), 4, 2, 32),  # 40 bands, two to a partial sum from the 33rd on
    ((1, 4, 3, 3), 2, 0, 1),  # a 1 x 1 output: one tile, three quarters of it past dy
])
def test_winograd_weight_gradient_matches_reference(x_shape, c_out, padding, partials, dtype,
                                                    monkeypatch, rng):
    """dw by F(2x2, 3x3) (``winograd_weight_grad``, here from one channel on: where the CPU
    has a tile for the dtype, else by the direct family): the reference's dw, the same bits
    alone as with dx and at one and two threads, added to dw with ``accumulate``."""
    from fastbp.kernels.conv2d_winograd import weight_grad_partial_shape
    from fastbp.kernels.packed import product_tile

    monkeypatch.setitem(table.MIN_CHANNELS_FOR_WINOGRAD_WEIGHT_GRAD, table.CPU_KIND, 1)
    x, w, _ = _data(rng, x_shape, (c_out, 3, 3), dtype)
    dy = rng.standard_normal(F.conv2d(x, w, None, 1, padding).shape).astype(dtype)
    g = table.Geometry.of(x.shape, w.shape, dy.shape, 1, 1, padding, padding)
    assert table.winograd_weight_grad(g, dtype) is (product_tile(dtype) is not None)
    assert weight_grad_partial_shape(*x_shape[:2], c_out, *dy.shape[2:])[0] == partials
    before = fastbp.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            fastbp.set_num_threads(threads)
            dx, dw, alone = np.empty_like(x), np.empty_like(w), np.empty_like(w)
            table.conv2d_backward(dy, x, w, 1, 1, padding, padding, dx, dw, family="winograd")
            table.conv2d_backward_weight(dy, x, 1, 1, padding, padding, alone,
                                         family="winograd")
            assert alone.tobytes() == dw.tobytes()
            results.append(dw)
    finally:
        fastbp.set_num_threads(before)
    dw, again = results
    assert again.tobytes() == dw.tobytes()
    dw_ref = ref.conv2d_backward(*(a.astype(np.float64) for a in (dy, x, w)), 1, padding)[1]
    assert_matches(dw, dw_ref, dtype)
    twice = dw.copy()
    table.conv2d_backward(dy, x, w, 1, 1, padding, padding, None, twice, accumulate=True,
                          family="winograd")
    np.testing.assert_array_equal(twice, dw + dw)


@settings(max_examples=30, deadline=None)
@given(n=st.sampled_from([1, 2, 9, 17]), c=st.integers(1, 9), o=st.integers(1, 40),
       h=st.integers(1, 13), w=st.integers(1, 13), ph=st.integers(0, 2), pw=st.integers(0, 2),
       seed=st.integers(0, 2**16), use_f32=st.booleans())
@example(n=9, c=2, o=25, h=12, w=13, ph=1, pw=1, seed=209, use_f32=True)  # a cancelling tap
@example(n=1, c=1, o=4, h=1, w=1, ph=0, pw=2, seed=0, use_f32=True)  # small taps, large
def test_winograd_weight_gradient_fuzzed_shapes(n, c, o, h, w, ph, pw, seed, use_f32):
    """dw by F(2x2, 3x3), from one channel on here, on random shapes and paddings: the
    reference's (in a dtype without a tile on this CPU, the direct family's)."""
    from fastbp.kernels.packed import product_tile

    dtype = np.float32 if use_f32 else np.float64
    h, w = max(h, 3 - 2 * ph), max(w, 3 - 2 * pw)
    rng = np.random.default_rng(seed)
    x, weight, _ = _data(rng, (n, c, h, w), (o, 3, 3), dtype)
    dy = rng.standard_normal((n, o, h + 2 * ph - 2, w + 2 * pw - 2)).astype(dtype)
    g = table.Geometry.of(x.shape, weight.shape, dy.shape, 1, 1, ph, pw)
    least = table.MIN_CHANNELS_FOR_WINOGRAD_WEIGHT_GRAD[table.CPU_KIND]
    table.MIN_CHANNELS_FOR_WINOGRAD_WEIGHT_GRAD[table.CPU_KIND] = 1
    try:
        assert table.winograd_weight_grad(g, dtype) is (product_tile(dtype) is not None)
        dw = np.empty_like(weight)
        table.conv2d_backward_weight(dy, x, 1, 1, ph, pw, dw, family="winograd")
    finally:
        table.MIN_CHANNELS_FOR_WINOGRAD_WEIGHT_GRAD[table.CPU_KIND] = least
    x64, w64, dy64 = (a.astype(np.float64) for a in (x, weight, dy))
    expected = ref.conv2d_backward(dy64, x64, w64, 1, (ph, pw))[1]
    # Winograd's transforms round more than direct sums, and a tap whose terms cancel holds
    # no relative tolerance. Nor does the sum of a tap's own terms' magnitudes: a kernel's
    # taps come from one transformed 4x4 block whose products also hold the correlations at
    # offsets -1 and 3, which cancel exactly, so a tap of small terms beside large ones
    # rounds with the large (a 1 x 3 plane: 168 eps of its own terms). Each kernel's taps are
    # held to the largest of its correlations of magnitudes at offsets -1 .. 3 (150 random
    # cases: at most 2.7 eps of it in float32, 1.6 in float64).
    offsets = ref.conv2d_backward(np.abs(dy64), np.abs(x64), np.zeros((o, c, 5, 5)), 1,
                                  (ph + 1, pw + 1))[1]
    scale = offsets.max(axis=(2, 3), keepdims=True)
    assert dw.dtype == dtype
    assert (np.abs(dw - expected) <= 32 * np.finfo(dtype).eps * scale).all()


@pytest.mark.parametrize("tiles", [True, False], ids=["tiles", "shifted_sums"])
@pytest.mark.parametrize("x_shape,c_out,kernel", [
    ((70, 8, 6, 5), 17, (3, 3)),  # two chunks (6 samples in the last); panels left partial
    ((9, 6, 14, 14), 16, (5, 5)),  # LeNet's conv2
])
def test_batched_forward_in_tiles_or_shifted_sums_matches_reference(x_shape, c_out, kernel,
                                                                     tiles, dtype, monkeypatch,
                                                                     rng):
    """The batched forward sums its rows in the dense tiles (where the CPU has a tile for
    the dtype) or as shifted sums: both give the reference's output."""
    from fastbp.kernels.packed import product_tile
    from fastbp.reference import conv as conv_ref

    monkeypatch.setattr(table, "MIN_DEPTH_FOR_BATCHED_TILES", 1 if tiles else 10**9)
    x, w, b = _data(rng, x_shape, (c_out, *kernel), dtype)
    g = table.Geometry.of(x.shape, w.shape, x.shape, 1, 1, 1, 1)
    assert table.batched_by_tiles(g, dtype) is (tiles and product_tile(dtype) is not None)
    y = F.conv2d(x, w, b, 1, 1, family="batched")
    x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
    assert_matches(y, conv_ref.conv2d(x64, w64, b64, 1, 1), dtype)


@pytest.mark.parametrize("tiles", [True, False], ids=["tiles", "dot_products"])
@pytest.mark.parametrize("x_shape,c_out,kernel,stride,padding", [
    ((5, 16, 13, 11), 32, (4, 4), 2, 1),  # one panel of output channels; 30 positions a block
    ((3, 11, 11, 12), 25, (3, 5), (2, 1), (1, 2)),  # a panel with 7 columns past O
    ((2, 12, 30, 29), 48, (3, 3), 2, 1),  # a block of output rows; two panels, one partial
])
def test_forward_by_dots_in_tiles_or_dot_products_matches_reference(x_shape, c_out, kernel,
                                                                    stride, padding, tiles,
                                                                    dtype, monkeypatch, rng):
    """The patches family's forward by dots runs its products in the dense tiles (patch rows
    read in place against the weights in panels of output channels) where
    ``dots_in_tiles`` (a tile for the dtype, at most a quarter of the panels' columns past
    O), else as dot products: both give the reference's output, bit for bit at one and
    two threads."""
    from fastbp.kernels.packed import product_tile

    monkeypatch.setattr(table, "DOTS_IN_TILES", tiles)
    x, w, b = _data(rng, x_shape, (c_out, *kernel), dtype)
    y = F.conv2d(x, w, b, stride, padding, family="patches_dots")
    g = table.Geometry.of(x.shape, w.shape, y.shape, *pair("stride", stride, 1),
                          *pair("padding", padding, 0))
    assert table.dots_in_tiles(g, dtype) is (tiles and product_tile(dtype) is not None)
    x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
    assert_matches(y, ref.conv2d(x64, w64, b64, stride, padding), dtype)
    before = fastbp.get_num_threads()
    try:
        fastbp.set_num_threads(2 if before == 1 else 1)
        again = F.conv2d(x, w, b, stride, padding, family="patches_dots")
    finally:
        fastbp.set_num_threads(before)
    assert again.tobytes() == y.tobytes()


@pytest.mark.parametrize("family", ["patches_dots", "patches_rows"])
def test_patches_gather_planes_whose_columns_are_not_runs(family, dtype, rng):
    """The patches families' kernels take x whose columns are every other value of a
    wider array (their gather copies those one by one; runs go by 8 x 8 blocks): the same
    output as from a contiguous copy of x."""
    from fastbp.kernels.workspace import Workspace

    x = rng.standard_normal((4, 16, 15, 30)).astype(dtype)[..., ::2]
    w, b = (rng.standard_normal(shape).astype(dtype) for shape in ((32, 16, 3, 3), (32,)))
    outputs = []
    for planes in (x, np.ascontiguousarray(x)):
        outputs.append(np.empty((4, 32, 8, 8), dtype))
        table.conv2d_forward(planes, w, b, 2, 2, 1, 1, outputs[-1], Workspace(), family=family)
    assert outputs[0].tobytes() == outputs[1].tobytes()
    x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
    assert_matches(outputs[0], ref.conv2d(x64, w64, b64, 2, 1), dtype)


@pytest.mark.parametrize("by_dots", [True, False], ids=["flipped_forward", "batched"])
@pytest.mark.parametrize("x_shape,c_out,kernel,padding", [
    ((8, 24, 100, 6), 12, (3, 3), 1),  # dx's 24 channels in one panel of 32; 16 blocks
    ((8, 32, 70, 9), 16, (3, 2), (1, 0)),  # padded by (1, 1) for dx's forward
])
def test_batched_input_grad_by_dots_or_its_own_kernel_matches_reference(x_shape, c_out, kernel,
                                                                        padding, by_dots, dtype,
                                                                        monkeypatch, rng):
    """The batched family's dx as the forward by dots in the tiles of dy with the flipped
    kernel (where ``_input_by_dots_over_batched``: a tile for the dtype, 16 blocks of
    positions) or by its own kernel: the reference's dx, the same bits alone and with dw,
    dw unchanged, and the same at one and two threads."""
    monkeypatch.setattr(table, "BATCHED_INPUT_BY_DOTS", by_dots)
    x, w, _ = _data(rng, x_shape, (c_out, *kernel), dtype)
    dy = rng.standard_normal(F.conv2d(x, w, None, 1, padding).shape).astype(dtype)
    g = table.Geometry.of(x.shape, w.shape, dy.shape, 1, 1, *pair("padding", padding, 0))
    assert table._input_by_dots_over_batched(g, dtype) is (by_dots and table.dots_in_tiles(
        table._flipped_geometry(g), dtype))
    before = fastbp.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            fastbp.set_num_threads(threads)
            results.append(F.conv2d_backward(dy, x, w, 1, padding, family="batched"))
            alone = np.full_like(x, np.nan)
            table.conv2d_backward_input(dy, w, 1, 1, *pair("padding", padding, 0), alone,
                                        family="batched")
            assert alone.tobytes() == results[-1][0].tobytes()
    finally:
        fastbp.set_num_threads(before)
    (dx, dw, _), again = results
    assert all(a.tobytes() == b.tobytes() for a, b in zip(again, results[0]))
    x64, w64, dy64 = (a.astype(np.float64) for a in (x, w, dy))
    dx_ref, dw_ref = ref.conv2d_backward(dy64, x64, w64, 1, padding)[:2]
    assert_matches(dx, dx_ref, dtype)
    assert_matches(dw, dw_ref, dtype)


def test_batched_input_grad_by_dots_needs_16_blocks(monkeypatch):
    """The batched family's dx goes to the forward by dots from 16 blocks of positions:
    ResNet's 32 channels on 14 px (32 blocks of 2 samples) and its 64 on 7 px (16 blocks
    of 4: small planes take at most 4 samples a block), not 32 samples on 7 px (8 blocks:
    two threads would split fewer unevenly)."""
    from fastbp.kernels.conv2d_patches import block_count
    from fastbp.kernels.packed import product_tile

    monkeypatch.setattr(table, "BATCHED_INPUT_BY_DOTS", True)
    monkeypatch.setattr(table, "DOTS_IN_TILES", True)

    def takes(n, c, size):
        g = table.Geometry.of((n, c, size, size), (c, c, 3, 3), (n, c, size, size), 1, 1, 1, 1)
        return table._input_by_dots_over_batched(g, np.float32)

    assert (block_count(64, 14, 14), block_count(64, 7, 7), block_count(32, 7, 7)) == (32, 16, 8)
    assert takes(64, 32, 14) is takes(64, 64, 7) is (product_tile(np.float32) is not None)
    assert not takes(32, 64, 7)


def test_forward_by_dots_takes_the_tiles_where_few_panel_columns_are_wasted(monkeypatch):
    """dots_in_tiles: from 24 output channels in one panel of 32, not 16 (half of it past
    O) nor 33 (two panels, 31 columns past O); never for a dtype without a tile."""
    from fastbp.kernels.packed import product_tile

    monkeypatch.setattr(table, "DOTS_IN_TILES", True)

    def takes(c_out, dtype=np.float32):
        g = table.Geometry.of((2, 16, 9, 9), (c_out, 16, 3, 3), (2, c_out, 5, 5), 2, 2, 1, 1)
        return table.dots_in_tiles(g, dtype)

    assert product_tile(np.float32)[1] == 32
    assert [takes(o) for o in (16, 23, 24, 32, 33, 48, 64)] == [
        False, False, True, True, False, True, True]
    assert takes(32, np.float64) is (product_tile(np.float64) is not None)
    monkeypatch.setattr(table, "DOTS_IN_TILES", False)
    assert not takes(32)


@pytest.mark.parametrize("tiles", [True, False], ids=["tiles", "shifted_sums"])
@pytest.mark.parametrize("x_shape,c_out,kernel,stride,padding", [
    ((70, 5, 13, 12), 9, (4, 4), 2, 0),  # two chunks; the last input row read by no window
    ((9, 3, 17, 11), 16, (6, 4), (3, 2), (2, 0)),  # the last column read by none
    ((8, 4, 9, 10), 8, (3, 3), 2, 1),  # uneven phases: zero taps in some phase kernels
])
def test_strided_input_grad_by_phases_matches_reference(x_shape, c_out, kernel, stride, padding,
                                                        tiles, dtype, monkeypatch, rng):
    """The phases family's dx, each phase the batched forward of dy with the flipped phase
    kernel written straight into dx (sums in the tiles or as shifted sums): the reference's
    dx, the same bits asked alone or with dw, and with a bias (a transposed convolution's
    forward) the bits of dx plus that bias."""
    from fastbp.reference import conv as conv_ref

    monkeypatch.setattr(table, "MIN_DEPTH_FOR_BATCHED_TILES", 1 if tiles else 10**9)
    x, w, b = _data(rng, x_shape, (c_out, *kernel), dtype)
    (sh, sw), (ph, pw) = pair("stride", stride, 1), pair("padding", padding, 0)
    dy = rng.standard_normal(F.conv2d(x, w, None, stride, padding).shape).astype(dtype)
    dx, dw = F.conv2d_backward(dy, x, w, stride, padding, family="phases")[:2]
    x64, w64, dy64 = (a.astype(np.float64) for a in (x, w, dy))
    assert_matches(dx, conv_ref.conv2d_backward(dy64, x64, w64, stride, padding)[0], dtype)
    assert_matches(dw, conv_ref.conv2d_backward(dy64, x64, w64, stride, padding)[1], dtype)
    alone = np.full_like(x, np.nan)
    table.conv2d_backward_input(dy, w, sh, sw, ph, pw, alone, family="phases")
    assert alone.tobytes() == dx.tobytes()
    bias = rng.standard_normal(x_shape[1]).astype(dtype)
    table.conv2d_backward_input(dy, w, sh, sw, ph, pw, alone, family="phases", bias=bias)
    assert alone.tobytes() == (dx + bias[:, None, None]).tobytes()


def test_strided_input_grad_alone_takes_the_phases_from_a_batch_of_8(rng):
    """dx alone of a strided convolution whose stride divides the kernel (a transposed
    convolution's forward) runs on the phases from 8 samples; with dw, and below 8
    samples, the choice is as before."""
    def chosen(n, size):
        g = table.Geometry.of((n, 16, size, size), (32, 16, 4, 4), (n, 32, size // 2, size // 2),
                              2, 2, 1, 1)
        return tuple(table.choose(g, p).name for p in ("backward", "input"))

    assert chosen(64, 32) == ("patches_rows", "phases")
    assert chosen(4, 32) == ("patches_rows", "patches_rows")
    assert chosen(64, 30) == ("phases", "phases")
    x = rng.standard_normal((8, 4, 8, 8)).astype(np.float32)
    w = rng.standard_normal((4, 6, 4, 4)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    y = F.conv_transpose2d(x, w, b, 2, 1)
    assert y.tobytes() == (F.conv_transpose2d(x, w, None, 2, 1) + b[:, None, None]).tobytes()


@pytest.mark.parametrize("patch_tiles", [True, False])
def test_weight_grad_alone_takes_the_patch_tiles_where_the_cpu_kind_says(patch_tiles, rng,
                                                                         monkeypatch):
    """dw alone (a Winograd backward's included) runs on the patches family's tiles from
    32 input channels (not 16) where ``WEIGHT_GRAD_BY_PATCH_TILES`` (AVX-512), else on the shifted
    family; the same dw either way, with dx too."""
    monkeypatch.setattr(table, "WEIGHT_GRAD_BY_PATCH_TILES", patch_tiles)
    monkeypatch.setitem(table.MIN_CHANNELS_FOR_WINOGRAD_WEIGHT_GRAD, table.CPU_KIND, None)
    table.choose.cache_clear()
    try:
        x = rng.standard_normal((2, 32, 32, 32))
        w = rng.standard_normal((32, 32, 3, 3))
        dy = rng.standard_normal((2, 32, 32, 32))
        g = table.Geometry.of(x.shape, w.shape, dy.shape, 1, 1, 1, 1)
        narrow = table.Geometry.of((2, 16, 32, 32), (32, 16, 3, 3), dy.shape, 1, 1, 1, 1)
        assert table.choose(g, "weight").name == ("patches_rows" if patch_tiles else "shifted")
        assert table.choose(narrow, "weight").name == "shifted"
        assert table.choose(g, "backward").name == "winograd"
        dw_alone, dx, dw = np.empty_like(w), np.empty_like(x), np.empty_like(w)
        table.conv2d_backward_weight(dy, x, 1, 1, 1, 1, dw_alone)
        table.conv2d_backward(dy, x, w, 1, 1, 1, 1, dx, dw)
        assert dw.tobytes() == dw_alone.tobytes()
        np.testing.assert_allclose(dw, ref.conv2d_backward(dy, x, w, 1, 1)[1], rtol=1e-10)
    finally:
        table.choose.cache_clear()


@pytest.mark.parametrize("family", FAMILIES)
def test_dx_alone_and_dw_alone_give_the_bits_of_both_at_once(family, dtype, rng):
    """The kernels' backward computes dx unless it is None and dw unless it is None (numba
    compiles each combination apart; x may be None with dw): the same bits either way."""
    x, w, _ = _data(rng, (70, 3, 6, 5), (5, 3, 3), dtype)  # two chunks of the batched family
    dy = rng.standard_normal((70, 5, 6, 5)).astype(dtype)
    dx, dw, dx_alone, dw_alone = (np.empty_like(a) for a in (x, w, x, w))
    table.conv2d_backward(dy, x, w, 1, 1, 1, 1, dx, dw, family=family)
    table.conv2d_backward_input(dy, w, 1, 1, 1, 1, dx_alone, family=family)
    table.conv2d_backward_weight(dy, x, 1, 1, 1, 1, dw_alone, family=family)
    assert dx.tobytes() == dx_alone.tobytes() and dw.tobytes() == dw_alone.tobytes()


def test_family_names_and_strides_are_checked(rng):
    x, w, _ = _data(rng, (2, 3, 7, 7), (4, 3, 3), np.float32)
    with pytest.raises(ValueError, match="family 'batched' needs stride 1"):
        F.conv2d(x, w, None, 2, family="batched")
    dy = np.ones((2, 4, 3, 3), np.float32)
    with pytest.raises(ValueError, match="family 'shifted' needs stride 1"):
        F.conv2d_backward(dy, x, w, 2, family="shifted")
    with pytest.raises(ValueError, match="family 'winograd' needs a 3x3 kernel, stride 1"):
        F.conv2d(x, w[:, :, :2], None, 1, family="winograd")
    with pytest.raises(ValueError, match="family 'winograd' needs .* padding <= 2"):
        F.conv2d(x, w, None, 1, 3, family="winograd")
    with pytest.raises(ValueError, match=r"family 'phases' needs dilation 1, got stride \(2, 2\), dilation \(2, 2\)"):
        F.conv2d(x, w, None, 2, 2, 2, family="phases")
    with pytest.raises(ValueError, match="one of depthwise, winograd, batched, shifted, phases, patches_dots, patches_rows, patches"):
        F.conv2d(x, w, family="im2col")
    with pytest.raises(TypeError, match="family must be None or a str"):
        F.conv2d(x, w, family=1)


def test_the_default_choice_by_shape():
    """The table's choice on the shapes that motivated it (see ``conv2d.FAMILIES``)."""
    def chosen(x_shape, o, k, stride, pad):
        n, c, h, w = x_shape
        out = ((h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1)
        g = table.Geometry.of(x_shape, (o, c, k, k), (n, o, *out), stride, stride, pad, pad)
        return table.choose(g, "forward").name, table.choose(g, "backward").name

    assert chosen((64, 6, 14, 14), 16, 5, 1, 0) == ("batched", "batched")  # LeNet conv2
    assert chosen((4, 6, 14, 14), 16, 5, 1, 0) == ("shifted", "shifted")  # too few samples
    assert chosen((64, 1, 28, 28), 6, 5, 1, 2) == ("shifted", "shifted")  # LeNet conv1: wide
    # AVX2: forwards the batched family would take by dots in the tiles, O filling panels
    small = "patches_dots" if table.CPU_KIND == "avx2" else "batched"
    # ResNet's 14 px planes: AVX2 stacks 8 of them into a band of Winograd's tiles
    resnet_14 = ("winograd",) * 2 if table.CPU_KIND == "avx2" else ("batched", "batched")
    assert chosen((64, 32, 14, 14), 32, 3, 1, 1) == resnet_14
    assert chosen((8, 64, 32, 32), 128, 3, 2, 1) == ("patches_dots", "patches_rows")
    assert chosen((8, 64, 32, 32), 256, 3, 2, 1) == ("patches_dots", "patches_dots")
    assert chosen((8, 3, 224, 224), 64, 7, 2, 3) == ("patches_rows", "patches_rows")  # stem
    assert chosen((8, 3, 31, 31), 25, 3, 2, 0) == ("patches_rows", "patches_rows")
    assert chosen((8, 16, 28, 28), 32, 1, 2, 0) == ("patches_rows", "patches_rows")  # 16 taps
    assert chosen((64, 16, 28, 28), 32, 3, 2, 1) == ("patches_dots", "patches_rows")  # 144 taps
    assert chosen((64, 32, 14, 14), 64, 3, 2, 1) == ("patches_dots", "patches_rows")  # ResNet
    assert chosen((8, 256, 14, 14), 512, 1, 2, 0) == ("patches_rows", "patches_dots")  # 1x1
    assert chosen((64, 16, 32, 32), 32, 4, 2, 1) == ("patches_dots", "patches_rows")  # transposed
    assert chosen((64, 32, 16, 16), 16, 4, 2, 1) == ("patches_dots", "phases")  # 8 x 8 out
    assert chosen((16, 64, 32, 32), 128, 2, 2, 0) == ("patches_dots", "patches_rows")  # 2x2
    assert chosen((64, 32, 32, 32), 64, 3, 1, 1) == ("winograd", "winograd")
    assert chosen((64, 16, 28, 28), 16, 3, 1, 1) == ("winograd", "winograd")  # ResNet's first
    # AVX-512: planes beyond 16 x 16 take the batched family too where its forward runs in
    # the tiles (from 64 taps, a tile's rows of output channels), not Winograd's 8 channels
    tiled = ("batched",) * 2 if table.CPU_KIND == "avx512" else ("shifted", "shifted")
    assert chosen((64, 8, 28, 28), 8, 3, 1, 1) == tiled
    assert chosen((64, 16, 20, 20), 32, 3, 1, 1) == tiled
    assert chosen((64, 6, 64, 64), 16, 5, 1, 2) == tiled
    assert chosen((64, 6, 66, 66), 16, 5, 1, 2) == ("shifted", "shifted")  # 66 x 66 out: copies
    assert chosen((64, 4, 28, 28), 8, 3, 1, 1) == ("shifted", "shifted")  # 36 taps
    assert chosen((64, 32, 28, 28), 64, 1, 1, 0) == ("shifted", "shifted")  # 1x1
    assert chosen((64, 32, 8, 32), 32, 3, 1, 1) == ("winograd", "winograd")  # 8 rows will do
    assert chosen((64, 32, 12, 12), 32, 3, 1, 1) == (small, "batched")  # 12 px: too small
    assert chosen((64, 1, 28, 28), 16, 3, 1, 1) == ("shifted", "shifted")  # one input channel
    # the more channels, the narrower the planes where Winograd wins (its products in tiles)
    assert chosen((64, 64, 10, 10), 64, 3, 1, 1) == ("winograd", "winograd")
    assert chosen((64, 64, 8, 8), 64, 3, 1, 1) == (small, "batched")
    assert chosen((64, 64, 7, 7), 64, 3, 1, 1) == (small, "batched")  # ResNet's last
    assert chosen((64, 32, 20, 20), 32, 3, 1, 1) == ("winograd", "winograd")
    assert chosen((32, 128, 10, 10), 128, 3, 1, 1) == ("winograd", "winograd")
    assert chosen((32, 128, 8, 8), 128, 3, 1, 1) == (small, "batched")

    def dw_by_winograd(x_shape, o):
        n, c, h, w = x_shape
        g = table.Geometry.of(x_shape, (o, c, 3, 3), (n, o, h, w), 1, 1, 1, 1)
        return (table.choose(g, "weight").name == "winograd"
                and table.winograd_weight_grad(g, np.float32))

    avx2 = table.CPU_KIND == "avx2"  # dw by Winograd too: from 32 channels, AVX2
    assert dw_by_winograd((64, 32, 14, 14), 32) is avx2  # ResNet's 14 px
    assert dw_by_winograd((64, 32, 32, 32), 64) is avx2
    assert dw_by_winograd((64, 64, 10, 10), 64) is avx2
    assert not dw_by_winograd((64, 16, 28, 28), 16)  # a tile's 32 columns half empty
    assert not dw_by_winograd((64, 32, 12, 12), 32)  # no Winograd backward there
    assert not dw_by_winograd((64, 64, 7, 7), 64)
    # dw alone: with AVX-512 by the batched family below 32 channels (here under Winograd's
    # dx), from 32 in the patches family's tiles
    g = table.Geometry.of((64, 16, 28, 28), (16, 16, 3, 3), (64, 16, 28, 28), 1, 1, 1, 1)
    assert table.choose(g, "weight", without="winograd").name == tiled[0]
    g = table.Geometry.of((64, 32, 28, 28), (64, 32, 5, 5), (64, 64, 28, 28), 1, 1, 2, 2)
    assert table.choose(g, "weight").name == ("patches_rows" if tiled[0] == "batched"
                                             else "shifted")
    for kind in table.PREFERENCE:  # Winograd's tables end at one channel count (_by_channels)
        tables = (table.MIN_WIDTH_FOR_WINOGRAD[kind], table.MAX_DILATION_FOR_WINOGRAD[kind],
                  *table.MIN_PHASE_WIDTH_FOR_WINOGRAD[kind].values())
        assert {pairs[-1][0] for pairs in tables} == {16}
    assert set(table.PREFERENCE[table.CPU_KIND]) == set(table.FAMILIES)


@pytest.mark.parametrize("stride,padding,k", [((2, 2), (1, 1), (4, 4)), ((3, 2), (0, 1), (2, 3)),
                                               ((2, 3), (2, 0), (5, 1)), ((2, 3), (0, 0), (2, 1))])
def test_phases_hold_every_padded_input_cell_once(stride, padding, k, rng):
    """The phases family's copies: every cell of the zero-padded input sits in exactly one
    phase plane, where the module docstring says; the kernel's taps likewise; and
    merging gives back the input, or zero where no output reads it."""
    from fastbp.kernels import conv2d_phases as phases

    x = rng.standard_normal((2, 3, 9, 8))
    w = rng.standard_normal((4, 3, *k))
    (sh, sw), (ph, pw) = stride, padding
    out_h, out_w = (9 + 2 * ph - k[0]) // sh + 1, (8 + 2 * pw - k[1]) // sw + 1
    k_hs, k_ws, phase_h, phase_w = phases.phases_shape(*k, out_h, out_w, sh, sw)
    xs = np.full((2, 3 * sh * sw, phase_h, phase_w), np.nan)
    phases.split_phases(x, sh, sw, ph, pw, xs)
    padded = np.zeros((2, 3, phase_h * sh + 2 * ph + 9, phase_w * sw + 2 * pw + 8))
    padded[:, :, ph:ph + 9, pw:pw + 8] = x
    ws = np.full((4, 3 * sh * sw, k_hs, k_ws), np.nan)
    phases.split_phase_weights(w, sh, sw, ws)
    w_padded = np.zeros((4, 3, k_hs * sh, k_ws * sw))
    w_padded[:, :, :k[0], :k[1]] = w
    for a in range(sh):
        for b in range(sw):
            plane = [(c * sh + a) * sw + b for c in range(3)]
            assert np.array_equal(xs[:, plane], padded[:, :, a:phase_h * sh:sh, b:phase_w * sw:sw])
            assert np.array_equal(ws[:, plane], w_padded[:, :, a::sh, b::sw])
    merged = np.full_like(x, np.nan)
    phases.merge_phases(xs, sh, sw, ph, pw, merged)
    reached = np.zeros((9, 8), bool)
    reached[:phase_h * sh - ph, :phase_w * sw - pw] = True
    assert np.array_equal(merged, np.where(reached, x, 0))
    back = np.ones_like(w)
    phases.merge_phase_weights(ws, sh, sw, back, True)
    assert np.array_equal(back, w + 1)


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
    family=st.sampled_from([None, None, *FAMILIES]),  # a stride-1 family makes the stride 1
)
def test_conv2d_fuzzed_shapes(n, c, o, h, w, kh, kw, sh, sw, ph, pw, seed, use_f32, family):
    dtype = np.float32 if use_f32 else np.float64
    if family == "winograd":  # its shapes only
        kh = kw = 3
        ph, pw = min(ph, 2), min(pw, 2)
    if not _takes(family, (sh, sw), (kh, kw), (ph, pw)):
        sh = sw = 1
    rng = np.random.default_rng(seed)
    x, weight, b = _data(rng, (n, c, h, w), (o, kh, kw), dtype)
    if kh > h + 2 * ph or kw > w + 2 * pw:
        with pytest.raises(ValueError, match="larger than the padded input"):
            F.conv2d(x, weight, b, (sh, sw), (ph, pw))
        return
    x64, w64 = x.astype(np.float64), weight.astype(np.float64)
    y = F.conv2d(x, weight, b, (sh, sw), (ph, pw), family=family)
    assert_matches(y, ref.conv2d(x64, w64, b.astype(np.float64), (sh, sw), (ph, pw)), dtype)
    dy = rng.standard_normal(y.shape).astype(dtype)
    expected = ref.conv2d_backward(dy.astype(np.float64), x64, w64, (sh, sw), (ph, pw))
    got = F.conv2d_backward(dy, x, weight, (sh, sw), (ph, pw), family=family)
    for got, want in zip(got, expected):
        assert_matches(got, want, dtype)


def test_conv2d_backward_without_input_grad(rng):
    x, w, _ = _data(rng, (2, 3, 7, 7), (4, 3, 3), np.float32)
    dy = rng.standard_normal((2, 4, 4, 4)).astype(np.float32)
    dx, dw, db = F.conv2d_backward(dy, x, w, 2, 1)
    none, dw2, db2 = F.conv2d_backward(dy, x, w, 2, 1, input_grad=False)
    assert none is None
    np.testing.assert_array_equal(dw, dw2)
    np.testing.assert_array_equal(db, db2)


@pytest.mark.parametrize("family,stride", [(f, 1) for f in FAMILIES]
                         + [(f, 2) for f in FAMILIES if _takes(f, 2)])
def test_conv2d_backward_adds_to_given_gradients(family, stride, rng):
    n, size = 9, 7
    x = rng.standard_normal((n, 3, size, size))
    w = rng.standard_normal((4, 3, 3, 3))
    out = (size + 2 - 3) // stride + 1
    dy = rng.standard_normal((n, 4, out, out))
    dx, dw, db = F.conv2d_backward(dy, x, w, stride, 1, family=family)
    dw0, db0 = rng.standard_normal(w.shape), rng.standard_normal(4)
    targets = dw0.copy(), db0.copy()
    got_dx, got_dw, got_db = F.conv2d_backward(dy, x, w, stride, 1, add_to=targets,
                                               family=family)
    assert got_dw is targets[0] and got_db is targets[1]
    np.testing.assert_allclose(got_dw, dw0 + dw, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got_db, db0 + db, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(got_dx, dx)
    with pytest.raises(ValueError, match="add_to's db must be"):
        F.conv2d_backward(dy, x, w, stride, 1, add_to=(dw0, np.zeros(5)))


@pytest.mark.parametrize("family,stride", [(f, 1) for f in FAMILIES] + [("patches", 2)])
def test_conv2d_reused_workspace_gives_the_same_results(family, stride, rng):
    """A workspace left holding an earlier, larger call's scratch changes nothing."""
    workspace = fastbp.Workspace()
    for n, size in [(6, 12), (3, 9), (6, 12)]:
        x = rng.standard_normal((n, 3, size, size)).astype(np.float32)
        w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
        y = F.conv2d(x, w, None, stride, 1, workspace=workspace, family=family)
        np.testing.assert_array_equal(y, F.conv2d(x, w, None, stride, 1, family=family))
        dy = rng.standard_normal(y.shape).astype(np.float32)
        for got, fresh in zip(
                F.conv2d_backward(dy, x, w, stride, 1, workspace=workspace, family=family),
                F.conv2d_backward(dy, x, w, stride, 1, family=family)):
            np.testing.assert_array_equal(got, fresh)


def test_workspace_grows_only_and_follows_the_dtype():
    workspace = fastbp.Workspace()
    big = workspace.array("a", (4, 5), np.float32)
    small = workspace.array("a", (3,), np.float32)
    assert np.shares_memory(big, small) and small.shape == (3,)
    assert workspace.array("a", (2,), np.float64).dtype == np.float64
    assert workspace.nbytes == 2 * 8
