"""A strided convolution as a stride-1 one on the input's phases (space to depth).

Shapes as in ``conv2d.py``; stride (sh, sw), dilation 1, one group. Output (i, j) reads
the zero-padded input at rows ``i*sh + ki``: writing ``ki = u*sh + a`` (0 <= a < sh), that
is row ``i + u`` of the input's phase a, the plane of padded rows ``a, a + sh, a + 2sh,
...``. So with

    xs[n, (c*sh + a)*sw + b, i, j] = xpad[n, c, i*sh + a, j*sw + b]   (Hs x Ws phase planes)
    ws[o, (c*sh + a)*sw + b, u, v] = w[o, c, u*sh + a, v*sw + b]       (0 beyond KH, KW)

the convolution is the stride-1 convolution of xs (C*sh*sw channels) with ws, a kernel of
``ceil(KH / sh) x ceil(KW / sw)`` taps, no padding, ``Hs = OH + ceil(KH / sh) - 1`` (Ws
likewise), and its gradients are the stride-1 gradients moved back: dx is dxs's phases
interleaved (less the padding), dw is dws's taps put back in place. When the stride
divides the kernel no tap is zero and no product is wasted; that is the transposed
convolution's case (4x4, stride 2), whose passes are this one's backward.

dx needs no phase planes: dx's phase (a, b) is the stride-1 correlation of dy,
zero-padded by the phase kernel's size - 1, with the phase kernels flipped and their
channels swapped (``input_grad_phase_weights``), which the batched family's forward
computes and writes interleaved into dx.

The copies are parallel over (sample, channel) planes, each job writing only its own.
"""

from numba import prange, uint64

from ._jit import kernel, serial_kernel
from .runs import zero


@serial_kernel
def phases_shape(k_h, k_w, out_h, out_w, stride_h, stride_w):
    """(KHs, KWs, Hs, Ws): the phase kernel's taps and the phase planes' size."""
    k_hs = (k_h + stride_h - 1) // stride_h
    k_ws = (k_w + stride_w - 1) // stride_w
    return k_hs, k_ws, out_h + k_hs - 1, out_w + k_ws - 1


@serial_kernel
def valid_range(phase, stride, pad, size, count):
    """(first, stop): the phase indices i < count whose input index ``i*stride + phase -
    pad`` lies in [0, size)."""
    first = max(0, (pad - phase + stride - 1) // stride)
    stop = min(count, (size + pad - phase + stride - 1) // stride)
    return first, max(first, stop)


@kernel
def split_phases(x, stride_h, stride_w, pad_h, pad_w, out):
    """out (N, C*sh*sw, Hs, Ws) = the phases of x (N, C, H, W) zero-padded by (pad_h,
    pad_w) (see the module docstring); zero where the padded input ends."""
    n_batch, c_in, height, width = x.shape
    phase_h, phase_w = out.shape[2], out.shape[3]
    for job in prange(n_batch * c_in):
        n, c = job // c_in, job % c_in
        plane = x[n, c]
        for a in range(stride_h):
            i0, i1 = valid_range(a, stride_h, pad_h, height, phase_h)
            for b in range(stride_w):
                j0, j1 = valid_range(b, stride_w, pad_w, width, phase_w)
                dst = out[n, (c * stride_h + a) * stride_w + b]
                zero(dst)
                for i in range(i0, i1):
                    src, row = plane[i * stride_h + a - pad_h], dst[i]
                    for j in range(uint64(j0), uint64(j1)):
                        row[j] = src[j * stride_w + b - pad_w]


@kernel
def merge_phases(xs, stride_h, stride_w, pad_h, pad_w, out):
    """out (N, C, H, W) = the phases xs (N, C*sh*sw, Hs, Ws) interleaved, less the padding:
    ``split_phases`` undone; zero at input cells no phase reaches (beyond Hs*sh rows)."""
    n_batch, c_in, height, width = out.shape
    phase_h, phase_w = xs.shape[2], xs.shape[3]
    for job in prange(n_batch * c_in):
        n, c = job // c_in, job % c_in
        plane = out[n, c]
        if phase_h * stride_h - pad_h < height or phase_w * stride_w - pad_w < width:
            zero(plane)
        for a in range(stride_h):
            i0, i1 = valid_range(a, stride_h, pad_h, height, phase_h)
            for b in range(stride_w):
                j0, j1 = valid_range(b, stride_w, pad_w, width, phase_w)
                src = xs[n, (c * stride_h + a) * stride_w + b]
                for i in range(i0, i1):
                    row, phase_row = plane[i * stride_h + a - pad_h], src[i]
                    for j in range(uint64(j0), uint64(j1)):
                        row[j * stride_w + b - pad_w] = phase_row[j]


@serial_kernel
def split_phase_weights(w, stride_h, stride_w, out):
    """out (O, C*sh*sw, KHs, KWs) = the taps of w (O, C, KH, KW) by phase, zero beyond w."""
    c_out, c_in, k_h, k_w = w.shape
    out[...] = 0
    for o in range(c_out):
        for c in range(c_in):
            for ki in range(k_h):
                for kj in range(k_w):
                    phase = (c * stride_h + ki % stride_h) * stride_w + kj % stride_w
                    out[o, phase, ki // stride_h, kj // stride_w] = w[o, c, ki, kj]


@serial_kernel
def merge_phase_weights(ws, stride_h, stride_w, out, accumulate):
    """out (O, C, KH, KW) (+)= ``split_phase_weights`` undone on ws; added with
    ``accumulate``."""
    c_out, c_in, k_h, k_w = out.shape
    for o in range(c_out):
        for c in range(c_in):
            for ki in range(k_h):
                for kj in range(k_w):
                    phase = (c * stride_h + ki % stride_h) * stride_w + kj % stride_w
                    value = ws[o, phase, ki // stride_h, kj // stride_w]
                    out[o, c, ki, kj] = out[o, c, ki, kj] + value if accumulate else value


@serial_kernel
def input_grad_phase_weights(w, stride_h, stride_w, k_hs, k_ws, out):
    """out (sh*sw, C, O * KHs * KWs): for each phase p = a*sw + e of the input, the kernel
    whose stride-1 correlation with dy zero-padded by (KHs - 1, KWs - 1) is dx's phase p
    (the phase kernels flipped, input and output channels swapped):
    ``out[p, c, (o*KHs + u)*KWs + v] = w[o, c, (KHs-1-u)*sh + a, (KWs-1-v)*sw + e]``, zero
    beyond w."""
    c_out, c_in, k_h, k_w = w.shape
    for a in range(stride_h):
        for e in range(stride_w):
            phase = out[a * stride_w + e]
            for c in range(c_in):
                for o in range(c_out):
                    for u in range(k_hs):
                        for v in range(k_ws):
                            ki, kj = (k_hs - 1 - u) * stride_h + a, (k_ws - 1 - v) * stride_w + e
                            inside = ki < k_h and kj < k_w
                            phase[c, (o * k_hs + u) * k_ws + v] = w[o, c, ki, kj] if inside else 0
