import numpy as np
import pytest

import fastbp
from fastbp import functional as F
from fastbp import optim
from fastbp.kernels.conv2d import FAMILIES


def _calls(rng, dtype):
    x = rng.standard_normal((5, 3, 11, 9)).astype(dtype)
    w = rng.standard_normal((4, 3, 3, 3)).astype(dtype)
    dy = rng.standard_normal((5, 4, 6, 5)).astype(dtype)
    a = rng.standard_normal((7, 300)).astype(dtype)
    wl = rng.standard_normal((13, 300)).astype(dtype)
    dyl = rng.standard_normal((7, 13)).astype(dtype)
    labels = rng.integers(0, 13, 7)
    xb = rng.standard_normal((70, 3, 6, 5)).astype(dtype)  # two chunks of the batched family
    dyb = rng.standard_normal((70, 4, 6, 5)).astype(dtype)
    wd = rng.standard_normal((33, 5, 3, 3)).astype(dtype)  # long enough for dot products
    xd = rng.standard_normal((5, 5, 11, 9)).astype(dtype)
    dyd = rng.standard_normal((5, 33, 6, 5)).astype(dtype)
    wg = rng.standard_normal((10, 1, 3, 3)).astype(dtype)  # depthwise, multiplier 2
    dyg = rng.standard_normal((5, 10, 6, 5)).astype(dtype)
    wb = rng.standard_normal((6, 1, 3, 3)).astype(dtype)
    dyb3 = rng.standard_normal((70, 6, 6, 5)).astype(dtype)
    dydd = rng.standard_normal((5, 33, 11, 9)).astype(dtype)
    deep_dy = rng.standard_normal((260, 270)).astype(dtype)  # dot products in linear_backward
    deep_x, deep_w = a[:, :40].repeat(38, axis=0)[:260], rng.standard_normal((270, 40)).astype(dtype)
    wide_x = rng.standard_normal((260, 264)).astype(dtype)  # every side >= 256: packed panels
    x32 = rng.standard_normal((6, 32, 9, 8)).astype(dtype)  # dw in the dense tiles
    w32, dy32 = wd[:, :1].repeat(32, axis=1), rng.standard_normal((6, 33, 5, 4)).astype(dtype)
    x20 = rng.standard_normal((3, 20, 9, 27)).astype(dtype)  # Winograd's products in tiles
    w20 = rng.standard_normal((37, 20, 3, 3)).astype(dtype)
    dy20 = x20[:, :, :7, :25].repeat(2, axis=1)[:, :37].copy()
    x8, w8 = x32[:, :8].copy(), w20[:17, :8].copy()  # the batched forward's tiles: 72 taps
    w32g = w20[:34, :16].copy()  # Winograd on two groups of 16 channels
    dy32g = rng.standard_normal((6, 34, 9, 8)).astype(dtype)
    short_x = rng.standard_normal((64, 790)).astype(dtype)  # batch 64: weights read in place
    short_w, short_dy = wide_x[:250, :].repeat(3, axis=1)[:, :790].copy(), deep_dy[:64, :250].copy()
    x70 = xb.repeat(6, axis=1)[:, :16, :5].copy()  # transposed, 4x4 stride 2: on the phases
    wt, bt = rng.standard_normal((16, 8, 4, 4)).astype(dtype), wl[:8, 0].copy()
    calls = {
        "conv2d": lambda: [F.conv2d(x, w, None, 2, 1)],
        "conv2d_backward": lambda: F.conv2d_backward(dy, x, w, 2, 1),
        # dilation and groups: the depthwise kernels (strided and dilated, and stride 1),
        # a dilated convolution, and the same group by group (patches, batched)
        "conv2d_dilated_grouped": lambda: [
            F.conv2d(xd, wg, None, 2, 2, 2, 5), *F.conv2d_backward(dyg, xd, wg, 2, 2, 2, 5),
            F.conv2d(xb, wb, None, 1, 1, 1, 3), *F.conv2d_backward(dyb3, xb, wb, 1, 1, 1, 3),
            F.conv2d(xd, wd, None, 1, 2, 2), *F.conv2d_backward(dydd, xd, wd, 1, 2, 2),
            F.conv2d(xd, wd, None, 1, (2, 3), (2, 3), family="winograd"),
            *F.conv2d_backward(dydd, xd, wd, 1, (2, 3), (2, 3), family="winograd"),
            F.conv2d(xd, wg, None, 2, 2, 2, 5, family="patches"),
            *F.conv2d_backward(dyg, xd, wg, 2, 2, 2, 5, family="patches"),
            F.conv2d(xb, wb, None, 1, 1, 1, 3, family="batched"),
            *F.conv2d_backward(dyb3, xb, wb, 1, 1, 1, 3, family="batched")],
        "conv2d_weight_tiles": lambda: F.conv2d_backward(dy32, x32, w32, 2, 1),
        "conv2d_winograd_tiles": lambda: [F.conv2d(x20, w20, None, 1, 0, family="winograd"),
                                          *F.conv2d_backward(dy20, x20, w20, 1, 0,
                                                             family="winograd")],
        "conv2d_batched_tiles": lambda: [F.conv2d(x8, w8, None, 1, 1, family="batched")],
        "conv2d_winograd_groups": lambda: [
            F.conv2d(x32, w32g, None, 1, 1, groups=2, family="winograd"),
            *F.conv2d_backward(dy32g, x32, w32g, 1, 1, groups=2, family="winograd")],
        "conv_transpose_phases": lambda: [F.conv_transpose2d(x70, wt, bt, 2, 1)],
        "linear": lambda: [F.linear(a, wl)],
        "linear_backward": lambda: F.linear_backward(dyl, a, wl),
        "linear_backward_deep": lambda: F.linear_backward(deep_dy, deep_x, deep_w),
        "linear_packed": lambda: [F.linear(wide_x, deep_dy[:, :264].copy()),
                                  *F.linear_backward(deep_dy[:, :258], wide_x,
                                                     deep_dy[:258, :264].copy())],
        "linear_short_batch": lambda: [F.linear(short_x, short_w),
                                       *F.linear_backward(short_dy, short_x, short_w)],
        "max_pool": lambda: [F.max_pool2d(x, 3, 2, 1), F.max_pool2d_backward(dy[:, :3], x, 3, 2, 1)],
        "relu_max_pool": lambda: [F.relu_max_pool2d(x, 2)[0],
                                  F.relu_max_pool2d_backward(dy[:, :3, :5, :4],
                                                             F.relu_max_pool2d(x, 2)[1])],
        "avg_pool": lambda: [F.avg_pool2d(x, 3, 2, 1), F.avg_pool2d_backward(dy[:, :3], x, 3, 2, 1)],
        "activations": lambda: [F.softplus(x), F.elu_backward(x, x)],
        "losses": lambda: [np.array(F.softmax_cross_entropy(dyl, labels)[0]),
                           F.softmax_cross_entropy(dyl, labels)[1], np.array(F.mse_loss(a, a * 2)[0])],
    }
    for family in (f for f in FAMILIES if f != "depthwise"):  # every ungrouped conv2d family, stride 1 (and 2 where it takes it)
        def conv(family=family):
            stride_2 = family.startswith("patches") or family == "phases"
            return [F.conv2d(xb, w, None, 1, 1, family=family),
                    *F.conv2d_backward(dyb, xb, w, 1, 1, family=family),
                    *F.conv2d_backward(dyb, xb, w, 1, 1, input_grad=False, family=family)[1:],
                    F.conv2d(xd, wd, None, 2, 1, family=family) if stride_2 else xd,
                    *(F.conv2d_backward(dyd, xd, wd, 2, 1, family=family) if stride_2 else [])]
        calls[f"conv2d_{family}"] = conv
    return calls


CALLS = ["conv2d", "conv2d_backward",
         *(f"conv2d_{family}" for family in FAMILIES if family != "depthwise"),
         "conv2d_dilated_grouped", "conv2d_weight_tiles", "conv2d_winograd_tiles",
         "conv2d_batched_tiles", "conv2d_winograd_groups", "conv_transpose_phases",
         "linear", "linear_backward", "linear_backward_deep", "linear_packed",
         "linear_short_batch", "max_pool",
         "relu_max_pool", "avg_pool", "activations", "losses"]


@pytest.mark.parametrize("name", CALLS)
def test_results_are_bit_identical_across_thread_counts(name, dtype):
    call = _calls(np.random.default_rng(1), dtype)[name]
    before = fastbp.get_num_threads()
    try:
        results = {}
        for threads in (1, 2):
            fastbp.set_num_threads(threads)
            assert fastbp.get_num_threads() == threads
            results[threads] = [r.tobytes() for r in call()]
    finally:
        fastbp.set_num_threads(before)
    assert results[1] == results[2]


def test_set_num_threads_rejects_bad_values():
    with pytest.raises(ValueError, match="positive int"):
        fastbp.set_num_threads(0)
    with pytest.raises(ValueError, match="exceeds"):
        fastbp.set_num_threads(10_000)


def test_serial_twins_give_the_parallel_kernels_bits(monkeypatch, dtype):
    """Small calls run a serial copy of a parallel kernel (``for_size``): same results."""
    from fastbp.kernels import _jit

    def run():
        rng = np.random.default_rng(2)
        x = rng.standard_normal((7, 300)).astype(dtype)
        w = rng.standard_normal((13, 300)).astype(dtype)
        dy = rng.standard_normal((7, 13)).astype(dtype)
        out = [F.relu(x), F.sigmoid_backward(x, x), F.linear(x, w, w[:, 0].copy()),
               *F.linear_backward(dy, x, w), F.softmax_cross_entropy(dy, np.arange(7))[1],
               F.hinge_loss(dy, np.arange(7))[1], F.mse_loss(x, 2 * x)[1]]
        for optimizer in (optim.SGD, lambda p, lr: optim.SGD(p, lr, momentum=0.9, nesterov=True),
                          optim.Adam):
            params = {"w.weight": w.copy(), "w.bias": x[0].copy()}
            step = optimizer(params, 0.1)
            for _ in range(2):
                step.step({"w.weight": w * 0.5, "w.bias": x[1]})
            out += list(params.values())
        return [r.tobytes() for r in out]

    monkeypatch.setattr(_jit, "PARALLEL_MIN", 0)
    parallel = run()
    monkeypatch.setattr(_jit, "PARALLEL_MIN", 1 << 62)
    assert run() == parallel
