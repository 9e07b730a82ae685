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
from .conv2d_batched import (
    CHUNK,
    batched_scratch_size,
    conv2d_batched_backward_input,
    conv2d_batched_backward_weight,
    conv2d_batched_forward,
)
from .conv2d_patches import (
    GROUP,
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
from .workspace import Workspace


def _scratch(workspace, x_shape, w_shape, y_shape, stride, pad, dtype):
    """(per-thread scratch, whether the stride-1 kernels run)."""
    _, c_in, height, width = x_shape
    c_out, _, k_h, k_w = w_shape
    out_h, out_w = y_shape[2:]
    shifted = stride == (1, 1)
    if shifted:
        size = shifted_scratch_size(c_in, height, width, c_out, out_h, out_w, *pad)
    else:
        size = patches_scratch_size(c_in, width, c_out, k_h, k_w, *stride, pad[1], out_h, out_w)
    return (workspace or Workspace()).per_thread("conv2d", size, dtype), shifted


MIN_BATCH_FOR_BATCHED = 8  # a vector of samples


def _batched_scratch(workspace, x_shape, w_shape, y_shape, stride, pad, dtype):
    """Scratch for ``conv2d_batched`` if it runs these shapes (the batch as the vector
    axis), else None."""
    out_w = y_shape[3]
    wasted = x_shape[3] + 2 * pad[1] - out_w  # columns per row conv2d_shifted drops
    if stride != (1, 1) or x_shape[0] < MIN_BATCH_FOR_BATCHED or 4 * wasted <= out_w:
        return None
    size = batched_scratch_size(*x_shape, w_shape[0], *y_shape[2:], *pad)
    return (workspace or Workspace()).array("conv2d batched", (size,), dtype)


def conv2d_forward(x, w, b, stride_h, stride_w, pad_h, pad_w, y, workspace=None):
    """y[n, o, i, j] = b[o] + sum_{c, ki, kj} x[n, c, i*sh + ki - ph, j*sw + kj - pw] * w[o, c, ki, kj]."""
    stride, pad = (stride_h, stride_w), (pad_h, pad_w)
    scratch = _batched_scratch(workspace, x.shape, w.shape, y.shape, stride, pad, x.dtype)
    if scratch is not None:
        conv2d_batched_forward(x, w, b, pad_h, pad_w, y, scratch)
        return
    scratch, shifted = _scratch(workspace, x.shape, w.shape, y.shape, (stride_h, stride_w),
                                (pad_h, pad_w), x.dtype)
    if shifted:
        conv2d_shifted_forward(x, w, b, pad_h, pad_w, y, scratch)
    else:
        conv2d_patches_forward(x, w, b, stride_h, stride_w, pad_h, pad_w, y, scratch)


def conv2d_backward_input(dy, w, stride_h, stride_w, pad_h, pad_w, dx, workspace=None):
    """dx (N, C, H, W): the convolution of the stride-dilated dy with the flipped,
    channel-transposed kernel (see ``conv2d_patches_backward_input``)."""
    stride, pad = (stride_h, stride_w), (pad_h, pad_w)
    scratch = _batched_scratch(workspace, dx.shape, w.shape, dy.shape, stride, pad, dx.dtype)
    if scratch is not None:
        conv2d_batched_backward_input(dy, w, pad_h, pad_w, dx, scratch)
        return
    scratch, shifted = _scratch(workspace, dx.shape, w.shape, dy.shape, (stride_h, stride_w),
                                (pad_h, pad_w), dx.dtype)
    if shifted:
        conv2d_shifted_backward_input(dy, w, pad_h, pad_w, dx, scratch)
    else:
        conv2d_patches_backward_input(dy, w, stride_h, stride_w, pad_h, pad_w, dx, scratch)


def conv2d_backward_weight(dy, x, stride_h, stride_w, pad_h, pad_w, dw, workspace=None):
    """dw[o, c, ki, kj] = sum_{n, i, j} dy[n, o, i, j] * x[n, c, i*sh + ki - ph, j*sw + kj - pw]."""
    workspace = workspace or Workspace()
    c_out, n_taps = dw.shape[0], dw[0].size
    stride, pad = (stride_h, stride_w), (pad_h, pad_w)
    scratch = _batched_scratch(workspace, x.shape, dw.shape, dy.shape, stride, pad, x.dtype)
    if scratch is not None:
        jobs = (x.shape[0] + CHUNK - 1) // CHUNK * dy.shape[2]
        partial = workspace.array("conv2d partial", (jobs, c_out, n_taps), dw.dtype)
        conv2d_batched_backward_weight(dy, x, pad_h, pad_w, dw, scratch, partial)
        return
    scratch, shifted = _scratch(workspace, x.shape, dw.shape, dy.shape, stride, pad, x.dtype)
    groups = (x.shape[0] + GROUP - 1) // GROUP
    if shifted:
        partial = workspace.array("conv2d partial", (groups, c_out, n_taps), dw.dtype)
        conv2d_shifted_backward_weight(dy, x, pad_h, pad_w, dw, scratch, partial)
    else:
        partial = workspace.array("conv2d partial", (groups, n_taps, c_out), dw.dtype)
        conv2d_patches_backward_weight(dy, x, stride_h, stride_w, pad_h, pad_w, dw, scratch, partial)


@reduction_kernel
def conv2d_backward_bias(dy, db):
    """db[o] = sum_{n, i, j} dy[n, o, i, j]."""
    n_batch, c_out, out_h, out_w = dy.shape
    flat = dy.reshape(n_batch, c_out, out_h * out_w)
    for o in prange(c_out):
        acc = db.dtype.type(0)
        for n in range(n_batch):
            row = flat[n, o]
            for p in range(row.shape[0]):
                acc += row[p]
        db[o] = acc
