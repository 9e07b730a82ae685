"""2-D convolution passes (cross-correlation, as in every deep learning library), NCHW.

Shapes: x (N, C, H, W), w (O, C, KH, KW), b (O,), y (N, O, OH, OW) with
``OH = (H + 2 * pad_h - KH) // stride_h + 1`` (likewise OW).

Each pass picks its kernel from the shapes alone (so the choice, and the rounding, never
depends on the thread count): stride 1 runs on shifted runs of the zero-padded planes
(``conv2d_shifted``; small planes in a batch, where the padded rows would waste over a
quarter of the work, with the batch as the vector axis instead: ``conv2d_batched``),
other strides on gathered patches (``conv2d_patches``). Scratch
comes from ``workspace`` (a new one when None), so a caller that keeps its workspace
allocates only the outputs.
"""

from numba import prange
from ._jit import reduction_kernel
import numba

from .conv2d_batched import (
    CHUNK,
    batched_scratch_size,
    conv2d_batched_backward,
    conv2d_batched_forward,
)
from .conv2d_patches import (
    conv2d_patches_backward_input,
    conv2d_patches_backward_weight,
    conv2d_patches_forward,
    patches_scratch_size,
)
from .conv2d_shifted import (
    conv2d_shifted_backward_input,
    conv2d_shifted_backward_weight,
    conv2d_shifted_forward,
    shifted_scratch_size,
)
from .partials import GROUP
from .workspace import Workspace


MIN_BATCH_FOR_BATCHED = 8  # a vector of samples


def _plan(workspace, x_shape, w_shape, y_shape, stride, pad, dtype):
    """(kernel family: "batched", "shifted" or "patches", its scratch from workspace)."""
    n_batch, c_in, height, width = x_shape
    c_out, _, k_h, k_w = w_shape
    out_h, out_w = y_shape[2:]
    workspace = workspace or Workspace()
    if stride != (1, 1):
        size = patches_scratch_size(c_in, width, c_out, k_h, k_w, *stride, pad[1], out_h, out_w)
        return "patches", workspace.per_thread("conv2d", size, dtype)
    wasted = width + 2 * pad[1] - out_w  # columns per row that conv2d_shifted drops
    if n_batch >= MIN_BATCH_FOR_BATCHED and 4 * wasted > out_w:
        size = batched_scratch_size(*x_shape, c_out, out_h, out_w, *pad,
                                    numba.config.NUMBA_NUM_THREADS)
        return "batched", workspace.array("conv2d", (size,), dtype)
    size = shifted_scratch_size(c_in, height, width, c_out, out_h, out_w, *pad)
    return "shifted", workspace.per_thread("conv2d", size, dtype)


def conv2d_forward(x, w, b, stride_h, stride_w, pad_h, pad_w, y, workspace=None):
    """Writes y (N, O, OH, OW):
    ``y[n, o, i, j] = b[o] + sum_{c, ki, kj} x[n, c, i*sh + ki - ph, j*sw + kj - pw] * w[o, c, ki, kj]``."""
    family, scratch = _plan(workspace, x.shape, w.shape, y.shape, (stride_h, stride_w),
                            (pad_h, pad_w), x.dtype)
    if family == "batched":
        conv2d_batched_forward(x, w, b, pad_h, pad_w, y, scratch)
    elif family == "shifted":
        conv2d_shifted_forward(x, w, b, pad_h, pad_w, y, scratch)
    else:
        conv2d_patches_forward(x, w, b, stride_h, stride_w, pad_h, pad_w, y, scratch)


def conv2d_backward(dy, x, w, stride_h, stride_w, pad_h, pad_w, dx, dw, workspace=None,
                    accumulate=False):
    """Writes dx (N, C, H, W) unless it is None, and dw (O, C, KH, KW) unless it is None
    (adds the gradient to dw with ``accumulate``).

    dx is the convolution of the stride-dilated dy with the flipped, channel-transposed
    kernel (see ``conv2d_patches_backward_input``);
    ``dw[o, c, ki, kj] = sum_{n, i, j} dy[n, o, i, j] * x[n, c, i*sh + ki - ph, j*sw + kj - pw]``.
    Asking for both at once lets the batched family copy dy into its layout once.
    """
    workspace = workspace or Workspace()
    family, scratch = _plan(workspace, x.shape, w.shape, dy.shape, (stride_h, stride_w),
                            (pad_h, pad_w), x.dtype)
    n_batch, c_out, n_taps = x.shape[0], w.shape[0], w[0].size
    if family == "batched":
        jobs = (n_batch + CHUNK - 1) // CHUNK * dy.shape[2]
        partial = workspace.array("conv2d partial", (jobs, c_out, n_taps), w.dtype)
        conv2d_batched_backward(dy, x, w, pad_h, pad_w, x if dx is None else dx,
                                w if dw is None else dw, scratch, partial, dx is not None,
                                dw is not None, accumulate)
        return
    if dx is not None:
        if family == "shifted":
            conv2d_shifted_backward_input(dy, w, pad_h, pad_w, dx, scratch)
        else:
            conv2d_patches_backward_input(dy, w, stride_h, stride_w, pad_h, pad_w, dx, scratch)
    if dw is None:
        return
    if family == "shifted":
        partial = workspace.array("conv2d partial", ((n_batch + GROUP - 1) // GROUP, c_out, n_taps),
                                  dw.dtype)
        conv2d_shifted_backward_weight(dy, x, pad_h, pad_w, dw, scratch, partial, accumulate)
    else:
        partial = workspace.array("conv2d partial", ((n_batch + GROUP - 1) // GROUP, n_taps, c_out),
                                  dw.dtype)
        conv2d_patches_backward_weight(dy, x, stride_h, stride_w, pad_h, pad_w, dw, scratch,
                                       partial, accumulate)


def conv2d_backward_input(dy, w, stride_h, stride_w, pad_h, pad_w, dx, workspace=None):
    """Writes dx (N, C, H, W) alone: ``conv2d_backward`` without dw."""
    conv2d_backward(dy, dx, w, stride_h, stride_w, pad_h, pad_w, dx, None, workspace)


def conv2d_backward_weight(dy, x, stride_h, stride_w, pad_h, pad_w, dw, workspace=None):
    """Writes dw (O, C, KH, KW) alone: ``conv2d_backward`` without dx."""
    conv2d_backward(dy, x, dw, stride_h, stride_w, pad_h, pad_w, None, dw, workspace)


@reduction_kernel
def conv2d_backward_bias(dy, db, accumulate):
    """db[o] (+)= sum_{n, i, j} dy[n, o, i, j]; added to db with ``accumulate``."""
    n_batch, c_out, out_h, out_w = dy.shape
    flat = dy.reshape(n_batch, c_out, out_h * out_w)
    for o in prange(c_out):
        acc = db.dtype.type(0)
        for n in range(n_batch):
            row = flat[n, o]
            for p in range(row.shape[0]):
                acc += row[p]
        db[o] = db[o] + acc if accumulate else acc
