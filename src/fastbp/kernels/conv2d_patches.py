"""Convolution on gathered patches: the kernels for any stride and padding.

Shapes as in ``conv2d.py``. Every pass is a matrix product with contiguous inner loops over output positions.
Positions are processed in blocks of about ``TARGET_BLOCK``: several whole samples when
the output plane is small, or a band of output rows of one sample when it is large (never
the whole batch), so that a block's patches stay in the L2 cache. Padding is never stored:
patches hold zeros where a tap falls outside the input. The blocking depends on the shapes
only, so results are bit-identical whatever the thread count. Block scratch is carved from
``scratch[get_thread_id()]`` ((threads, n) with n at least ``patches_scratch_size``), as
each pass's ``patches_*_layout`` says.

The forward and the input gradient each come in two loop forms, the variants of this
family: dot products over contiguous patch rows (``by_dots``; the forward's in the dense
tiles against the weights in panels where ``conv2d.dots_in_tiles``) or the axpy form over
rows (``packed.panel_product``: the dense tile where the depth pays for it, else
``gemm_nn``), which wins where the dot products would be short (``conv2d.FAMILIES``
chooses). The weight gradient sums dot products over the positions of the patches
(``gemm_nt``), and can compute the axpy-form forward from the same patches (a transposed
convolution's backward); from 12 input channels it runs in the dense tiles over the patch
rows of the dots form instead (``conv2d.weight_grad_by_tiles``).
"""

import numpy as np
from numba import get_thread_id, prange, uint64

from ._jit import reduction_kernel, serial_kernel
from .gemm import copy_transposed, dots_at, gemm_nt, transpose
from .packed import (
    MAX_TILE_ROWS,
    column_panels,
    in_panel_columns,
    panel_columns,
    panel_row_length,
    panel_product,
    panel_weights,
    rows_tiles_product,
    tile_rows,
    tiles_product,
)
from .partials import GROUP, sum_partials
from .runs import add_run, copy_run, fill_run, gather_run, scatter_add_run, zero
from .shifted import row_offsets
from .transposed import transpose_blocks
from .windows import valid_columns
from .workspace import line_up

TARGET_BLOCK = 512  # output positions per block: (C*KH*KW, 512) patches fit the L2 cache
# Small planes: at most 4 samples a block, so that 64 samples make 16 blocks for the threads
# (7 x 7 planes took 10 a block: 7 blocks, split 4 / 3 on two threads). ab.py, AMD Zen 3
# (AVX2), one / two threads: 64 -> 64 on 7 px forward 1.05x / 1.11x, dx (now by dots,
# conv2d.MIN_BLOCKS_FOR_INPUT_BY_DOTS) 1.34x / 1.21x; 3x3 s2 32 -> 64 on 14 px forward
# 1.09x / 1.12x, dx 1.15x / 1.41x; resnet_b64 step 1.11x / 1.06-1.09x, lenet5_b64 1.05x /
# 1.02x; LeNet's conv2 (10 x 10 planes, 5 a block before) 0.95-1.02x.
MAX_SAMPLES_PER_BLOCK = 4


@serial_kernel
def blocking(out_h, out_w):
    """(samples per block, output rows per block) for an (out_h, out_w) output plane."""
    plane = out_h * out_w
    if plane >= TARGET_BLOCK:
        return 1, max(1, TARGET_BLOCK // out_w)
    return min(MAX_SAMPLES_PER_BLOCK, TARGET_BLOCK // plane), out_h


@serial_kernel
def block_count(n_batch, out_h, out_w):
    """The blocks of ``blocking`` over n_batch (out_h, out_w) output planes: the forward's
    parallel jobs."""
    per_block, rows = blocking(out_h, out_w)
    return (n_batch + per_block - 1) // per_block * ((out_h + rows - 1) // rows)


@serial_kernel
def padded_depth(depth):
    """depth rounded up to a multiple of 16, so gemm_nt's vector loop has no scalar tail."""
    return (depth + 15) // 16 * 16


@serial_kernel
def band_shape(width, k_h, k_w, stride_h, stride_w, pad_w, out_h, out_w, dil_h, dil_w):
    """(rows, columns) of the zero-padded input band the forward by dots copies a block's
    input rows into (per channel); a dilated kernel spans ``dil * (k - 1) + 1``."""
    rows = blocking(out_h, out_w)[1]
    return ((rows - 1) * stride_h + dil_h * (k_h - 1) + 1,
            max(width + 2 * pad_w, (out_w - 1) * stride_w + dil_w * (k_w - 1) + 1))


@serial_kernel
def patches_forward_layout(c_in, width, c_out, k_h, k_w, stride_h, stride_w, pad_w, out_h,
                           out_w, length, dil_h=1, dil_w=1):
    """A thread's scratch row for the forward of a block of ``length`` positions, in
    elements: (band, patches_t, size). At 0, the block's output (O, L), or (L, O) from
    the tiles; by dots, the input band at ``band`` and the patch rows (L, padded depth) at
    ``patches_t``, and ``MAX_TILE_ROWS`` more rows that the tiles read; in the axpy form,
    the patches (C*KH*KW, panel_row_length(L)) at ``band``. The scratch is sized for a full
    block."""
    n_taps = c_in * k_h * k_w
    band_rows, band_w = band_shape(width, k_h, k_w, stride_h, stride_w, pad_w, out_h, out_w,
                                   dil_h, dil_w)
    band = line_up(c_out * length)
    patches_t = band + line_up(band_rows * band_w * c_in)
    return band, patches_t, max(patches_t + (length + MAX_TILE_ROWS) * padded_depth(n_taps),
                                band + n_taps * panel_row_length(length))


@serial_kernel
def patches_input_grad_layout(c_in, width, c_out, k_h, k_w, stride_h, stride_w, pad_w, out_h,
                              out_w):
    """A thread's scratch row for the input gradient, in elements: (grad_t, taps, size).
    At 0, a block of dy (O, L) (axpy form), its rows up to ``panel_row_length(L)`` long for
    the tiles; at ``grad_t``, the same transposed (L, O) (by dots); at ``taps``, the
    block's tap sums (C*KH*KW, L)."""
    per_block, rows = blocking(out_h, out_w)
    block = per_block * rows * out_w
    grad_t = line_up(c_out * panel_row_length(block))
    taps = 2 * grad_t
    return grad_t, taps, taps + c_in * k_h * k_w * block


@serial_kernel
def patches_weight_grad_layout(c_in, width, c_out, k_h, k_w, stride_h, stride_w, pad_w, out_h,
                               out_w):
    """A thread's scratch row for the weight gradient (and the forward paired with it), in
    elements: (block, patches, grad, size). Blocks of at most ``GROUP`` samples, of
    ``block`` positions: at 0, the paired forward's output (O, L); at ``patches``, their
    patches (C*KH*KW, L), up to ``panel_row_length(L)`` columns for the paired forward's
    tiles; at ``grad``, their dy (O, L)."""
    per_block, rows = blocking(out_h, out_w)
    block = min(per_block, GROUP) * rows * out_w
    patches = line_up(c_out * block)
    grad = patches + line_up(c_in * k_h * k_w * panel_row_length(block))
    return block, patches, grad, grad + c_out * block


@serial_kernel
def patches_weight_tiles_layout(c_in, width, c_out, k_h, k_w, stride_h, stride_w, pad_w, out_h,
                                out_w, dil_h=1, dil_w=1):
    """A thread's scratch row for the weight gradient in tiles (and the forward paired with
    it), in elements: (band, patch rows, panels, out, size). Blocks of at most ``GROUP``
    samples, of L positions: at ``band``, the input band of ``gather_patch_rows``; at
    ``patch rows``, their (L, taps) patch rows, ``panel_row_length(C*KH*KW)`` long, and
    ``MAX_TILE_ROWS`` more that the paired forward's tiles read; at
    ``panels``, their dy in panels of the tile's rows (at most 8, so O + 8 rows); at
    ``out``, the paired forward's output (O, L)."""
    per_block, rows = blocking(out_h, out_w)
    block = min(per_block, GROUP) * rows * out_w
    band_rows, band_w = band_shape(width, k_h, k_w, stride_h, stride_w, pad_w, out_h, out_w,
                                   dil_h, dil_w)
    patch_rows = line_up(band_rows * band_w * c_in)
    panels = patch_rows + line_up((block + MAX_TILE_ROWS) * panel_row_length(c_in * k_h * k_w))
    out = panels + line_up((c_out + 8) * block)
    return 0, patch_rows, panels, out, out + c_out * block


@serial_kernel
def patches_scratch_size(c_in, width, c_out, k_h, k_w, stride_h, stride_w, pad_w, out_h, out_w,
                         dil_h=1, dil_w=1):
    """Scratch per thread, in elements, for any of the passes (their layouts)."""
    args = (c_in, width, c_out, k_h, k_w, stride_h, stride_w, pad_w, out_h, out_w)
    per_block, rows = blocking(out_h, out_w)
    return max(patches_forward_layout(*args, per_block * rows * out_w, dil_h, dil_w)[2],
               patches_input_grad_layout(*args)[2], patches_weight_grad_layout(*args)[3],
               patches_weight_tiles_layout(*args, dil_h, dil_w)[4])


# Gathering a strided row's taps by column phases (``gather_patches_by_phases``) against
# one strided gather per tap, one core, forward / dw: AVX-512 (Intel) 5x5 stride 2 on
# 64x8x32x32 -> 16 1.30x / 1.27x, the 7x7 stride-2 stem 1.07x / 1.07x (two threads 1.29x /
# 1.23x and 1.13x / 1.08x); AVX2 on an AMD Zen 3: the stem 1.08x / 1.08x, 5x5 stride 2 of 3
# channels on 64 px 1.13x / 1.32x, dw of 8 channels on 32 px 1.25x. That split each input
# row again for every output row reading it, which lost on 3x3 stride 2 (16 -> 32 on 28
# px 0.91x, AVX-512). Since each row of a channel is split once (2026-12-07, AMD Zen 3,
# the gather alone, one core, min of 15, by taps / by phases): 3x3 stride 2 of 3 channels
# on 31 px 1.11-1.23x, of 16 on 28 px 1.08x, of 32 on 14 px 1.19x, 4x4 stride 2 of 3 on
# 32 px 1.45x; against the split per output row: the stem 1.30-1.39x, 5x5 stride 2 1.22-1.48x.
# The passes (ab.py, min and median of 21): 3 -> 25 on 31 px forward 1.05-1.09x, dw
# 1.06-1.09x; the stem's forward 1.03-1.06x.


@serial_kernel
def gather_patches(planes, k_h, k_w, stride_h, stride_w, pad_h, pad_w, r0, r1, out_w,
                   patches, start, dil_h, dil_w):
    """Write the patches of output rows [r0, r1) of one sample into columns from ``start``:

    ``patches[(c, ki, kj), start + (i - r0) * out_w + j] = planes[c, i*sh + ki*dh - ph, j*sw + kj*dw - pw]``,
    zero where that index falls outside the (C, H, W) planes (taps at offsets ``k * dilation``):
    by column phases where a phase holds more than one tap (see above), else tap by tap."""
    if 1 < stride_w < k_w and dil_w == 1:
        gather_patches_by_phases(planes, k_h, k_w, stride_h, stride_w, pad_h, pad_w, r0, r1,
                                 out_w, patches, start, dil_h)
    else:
        gather_patches_by_taps(planes, k_h, k_w, stride_h, stride_w, pad_h, pad_w, r0, r1,
                               out_w, patches, start, dil_h, dil_w)


@serial_kernel
def gather_patches_by_taps(planes, k_h, k_w, stride_h, stride_w, pad_h, pad_w, r0, r1, out_w,
                           patches, start, dil_h, dil_w):
    """``gather_patches``, one run (a copy, or a strided gather) per tap and output row."""
    n_planes, height, width = planes.shape
    k = 0
    for c in range(n_planes):
        plane = planes[c]
        for ki in range(k_h):
            for kj in range(k_w):
                dst = patches[k]
                shift = kj * dil_w - pad_w
                lo, hi = valid_columns(shift, stride_w, width, out_w)
                for i in range(r0, r1):
                    base = start + (i - r0) * out_w
                    row = i * stride_h + ki * dil_h - pad_h
                    if row < 0 or row >= height:
                        fill_run(dst, base, out_w, 0)
                        continue
                    src = plane[row]
                    fill_run(dst, base, lo, 0)
                    if stride_w == 1:
                        copy_run(src, lo + shift, dst, base + lo, hi - lo)
                    else:
                        gather_run(src, lo * stride_w + shift, stride_w, dst, base + lo, hi - lo)
                    fill_run(dst, base + hi, out_w - hi, 0)
                k += 1


@serial_kernel
def gather_patches_by_phases(planes, k_h, k_w, stride_h, stride_w, pad_h, pad_w, r0, r1,
                             out_w, patches, start, dil_h):
    """``gather_patches`` with no dilation along rows: each input row of a channel that the
    patches read is first split once into its ``stride_w`` column phases, zero-padded
    (phase e holds padded columns e, e + sw, ...), and tap kj's run of each output row is
    then one contiguous copy from phase kj % sw at kj // sw, not a strided gather per tap."""
    n_planes, height, width = planes.shape
    phase_w = out_w + (k_w - 1) // stride_w
    top = max(0, r0 * stride_h - pad_h)
    bottom = min(height, (r1 - 1) * stride_h + (k_h - 1) * dil_h - pad_h + 1)
    # the input rows [top, bottom) by phase, zero past each phase's columns
    split = np.zeros((max(0, bottom - top), stride_w, phase_w), planes.dtype)
    bounds = np.empty((stride_w, 2), np.int64)  # phase e's columns inside the plane
    for e in range(stride_w):
        bounds[e, 0], bounds[e, 1] = valid_columns(e - pad_w, stride_w, width, phase_w)
    for c in range(n_planes):
        plane = planes[c]
        for row in range(top, bottom):
            for e in range(stride_w):
                lo, hi = bounds[e, 0], bounds[e, 1]
                gather_run(plane[row], lo * stride_w + e - pad_w, stride_w, split[row - top, e],
                           lo, hi - lo)
        for ki in range(k_h):
            first = (c * k_h + ki) * k_w
            for i in range(r0, r1):
                base = start + (i - r0) * out_w
                row = i * stride_h + ki * dil_h - pad_h
                if row < 0 or row >= height:
                    for kj in range(k_w):
                        fill_run(patches[first + kj], base, out_w, 0)
                    continue
                phases = split[row - top]
                for kj in range(k_w):
                    copy_run(phases[kj % stride_w], kj // stride_w, patches[first + kj], base,
                             out_w)


@serial_kernel
def gather_patch_rows(planes, k_h, k_w, stride_h, stride_w, pad_h, pad_w, r0, r1, out_w,
                      band, patches_t, start, dil_h, dil_w):
    """Write the patches of output rows [r0, r1) of one sample as rows from ``start``:

    ``patches_t[start + (i - r0) * out_w + j, (ki, kj, c)] = planes[c, i*sh + ki*dh - ph, j*sw + kj*dw - pw]``
    (zero outside the planes). The input rows they need are first copied, zero-padded, into
    ``band`` in (row, column, channel) order, so that each (ki) run of KW * C values of a
    patch is one contiguous copy (one run of C per (ki, kj) with a dilated kernel).
    """
    n_planes, height, width = planes.shape
    band_rows = (r1 - r0 - 1) * stride_h + dil_h * (k_h - 1) + 1
    band_w = band.shape[1]
    first = r0 * stride_h - pad_h
    for r in range(band_rows):
        dst = band[r]
        zero(dst)
        row = first + r
        if 0 <= row < height:
            # Into (column, channel) order by 8 x 8 blocks in registers (64x64x32x32 -> 128,
            # 3x3 s2 forward, one core: 8 channels a step 1.12x on AVX-512, 1.16x on AVX2
            # against one channel at a time, which stored strided values).
            columns = dst[pad_w:pad_w + width, :n_planes]
            if planes.strides[2] == planes.itemsize:
                transpose_blocks(planes[:, row], columns)
            else:
                for c in range(n_planes):
                    src, column = planes[c, row], columns[:, c]
                    for q in range(width):
                        column[q] = src[q]
    run, row_size = k_w * n_planes, band_w * n_planes
    flat_band = band.reshape(band.size)  # once: a reshape per run cost ~40 ns
    for i in range(r0, r1):
        for j in range(out_w):
            dst = patches_t[start + (i - r0) * out_w + j]
            for ki in range(k_h):
                at = ((i - r0) * stride_h + ki * dil_h) * row_size + j * stride_w * n_planes
                if dil_w == 1:
                    copy_run(flat_band, at, dst, ki * run, run)
                else:
                    for kj in range(k_w):
                        copy_run(flat_band, at + kj * dil_w * n_planes, dst,
                                 ki * run + kj * n_planes, n_planes)


@serial_kernel
def taps_in_row_order(w):
    """w (O, C, KH, KW) as (O, padded_depth(C*KH*KW)): each row's taps in the (ki, kj, c)
    order of a patch row (``gather_patch_rows``), zero past them (see ``padded_depth``)."""
    c_out, c_in, k_h, k_w = w.shape
    weights_hwc = np.zeros((c_out, padded_depth(c_in * k_h * k_w)), w.dtype)
    for o in range(c_out):
        k = 0
        for ki in range(k_h):
            for kj in range(k_w):
                for c in range(c_in):
                    weights_hwc[o, k] = w[o, c, ki, kj]
                    k += 1
    return weights_hwc


@serial_kernel
def dots_weights(w, in_tiles):
    """``dots_block``'s weights from w (O, C, KH, KW): (``taps_in_row_order(w)``, its first
    C*KH*KW columns in panels of output channels (``column_panels``) ``in_tiles``, else no
    panels: dot products)."""
    weights_hwc = taps_in_row_order(w)
    n_taps = w.shape[1] * w.shape[2] * w.shape[3]
    return weights_hwc, column_panels(weights_hwc[:w.shape[0] if in_tiles else 0, :n_taps])


@serial_kernel
def forward_block_by_dots(x, weights_hwc, weight_panels, b, k_h, k_w, stride_h, stride_w,
                          pad_h, pad_w, n0, n1, r0, r1, out_w, band, rows, depth, out, flat_y,
                          dil_h, dil_w):
    """y's cells of output rows [r0, r1) of samples [n0, n1) by ``dots_block`` from their
    patch rows, gathered (L, depth) at the start of the 1-D ``rows``."""
    length = (n1 - n0) * (r1 - r0) * out_w
    gather_block_rows(x, k_h, k_w, stride_h, stride_w, pad_h, pad_w, n0, n1, r0, r1, out_w,
                      band, rows[:length * depth].reshape(length, depth), dil_h, dil_w)
    dots_block(weights_hwc, weight_panels, b, x.shape[1] * k_h * k_w, rows, depth, n0, n1, r0,
               r1, out_w, out, flat_y)


@serial_kernel
def dots_block(weights_hwc, weight_panels, b, n_taps, rows, row_length, n0, n1, r0, r1, out_w,
               out, flat_y):
    """y's cells of output rows [r0, r1) of samples [n0, n1) (``store_block``) = b +
    weights_hwc (O, padded depth) @ their patches, from the block's L patch rows,
    ``row_length`` apart from the start of the 1-D ``rows``: as dot products (``dots_at``)
    into out (O, L) or, with weight panels (``column_panels`` of weights_hwc's first
    n_taps columns; none: dots), as (L, O) in the dense tiles in out's memory
    (``rows_tiles_product``: rows holds ``MAX_TILE_ROWS`` more). Either way a cell's sum
    depends on its patch row alone, not on the block."""
    c_out, depth = weights_hwc.shape
    length = (n1 - n0) * (r1 - r0) * out_w
    if weight_panels.shape[0] == 0:
        by_dots = out[:c_out * length].reshape(c_out, length)
        dots_at(weights_hwc, rows, row_offsets(length, row_length, length), depth, by_dots,
                False)
        store_block(by_dots, b, flat_y, n0, n1, r0, r1, out_w)
        return
    by_tiles = out[:length * c_out].reshape(length, c_out)
    rows_tiles_product(rows, row_length, n_taps, weight_panels, by_tiles)
    store_block(by_tiles.T, b, flat_y, n0, n1, r0, r1, out_w)


@serial_kernel
def gather_block_rows(x, k_h, k_w, stride_h, stride_w, pad_h, pad_w, n0, n1, r0, r1, out_w,
                      band, patches_t, dil_h, dil_w):
    """The patch rows of output rows [r0, r1) of samples [n0, n1) one after the other in
    patches_t (L, >= C*KH*KW) (``gather_patch_rows``), zeros in the columns past the taps."""
    segment = (r1 - r0) * out_w
    patches_t[:, band.shape[2] * k_h * k_w:] = 0
    for n in range(n0, n1):
        gather_patch_rows(x[n], k_h, k_w, stride_h, stride_w, pad_h, pad_w, r0, r1, out_w,
                          band, patches_t, (n - n0) * segment, dil_h, dil_w)


@serial_kernel
def gather_block(x, k_h, k_w, stride_h, stride_w, pad_h, pad_w, n0, n1, r0, r1, out_w,
                 patches, dil_h, dil_w):
    """The patches of output rows [r0, r1) of samples [n0, n1) side by side in the first
    L columns of patches (C*KH*KW, >= L), zeros in the rest (``panel_product``'s last
    tiles read them and drop their sums)."""
    segment = (r1 - r0) * out_w
    for n in range(n0, n1):
        gather_patches(x[n], k_h, k_w, stride_h, stride_w, pad_h, pad_w, r0, r1, out_w,
                       patches, (n - n0) * segment, dil_h, dil_w)
    length = (n1 - n0) * segment
    if length < patches.shape[1]:
        for k in range(patches.shape[0]):
            fill_run(patches[k], length, patches.shape[1] - length, 0)


@serial_kernel
def forward_block_by_rows(x, weights, k_h, k_w, stride_h, stride_w, pad_h, pad_w,
                          n0, n1, r0, r1, out_w, patches, out, dil_h, dil_w):
    """The same product as ``forward_block_by_dots`` over (C*KH*KW, L) patches, in tiles
    whose loads run along the positions (``panel_product``): no horizontal sums, which
    wins when C*KH*KW is short or C too small for long runs."""
    gather_block(x, k_h, k_w, stride_h, stride_w, pad_h, pad_w, n0, n1, r0, r1, out_w, patches,
                 dil_h, dil_w)
    panel_product(weights, patches, (n1 - n0) * (r1 - r0) * out_w, out)


@serial_kernel
def store_block(out, b, flat_y, n0, n1, r0, r1, out_w):
    """flat_y (N, O, OH*OW)[n, o] over output rows [r0, r1) = the block's out (O, L) plus
    b[o], samples [n0, n1) side by side in out."""
    segment = (r1 - r0) * out_w
    for n in range(n0, n1):
        for o in range(out.shape[0]):
            dst = flat_y[n, o, r0 * out_w:r1 * out_w]
            src = out[o, (n - n0) * segment:(n - n0 + 1) * segment]
            bias = b[o]
            for p in range(segment):
                dst[p] = src[p] + bias


@reduction_kernel
def conv2d_patches_forward(x, w, b, stride_h, stride_w, pad_h, pad_w, y, scratch, by_dots,
                           dil_h, dil_w, dots_in_tiles=False):
    """y[n, o, i, j] = b[o] + sum_{c, ki, kj} x[n, c, i*sh + ki*dh - ph, j*sw + kj*dw - pw] * w[o, c, ki, kj].

    Per block, out (O, L) = w (O, C*KH*KW) @ patches (C*KH*KW, L): ``by_dots`` over patch
    rows (``dots_block``: dot products or, ``dots_in_tiles``, the dense tiles against the
    weights in panels of output channels), otherwise in axpy form. Parallel over blocks,
    each owning its cells of y. scratch as ``patches_forward_layout``.
    """
    n_batch, _, _, width = x.shape
    c_out, c_in, k_h, k_w = w.shape
    out_h, out_w = y.shape[2], y.shape[3]
    n_taps = c_in * k_h * k_w
    weights = panel_weights(w.reshape(c_out, n_taps))
    weights_hwc, weight_panels = dots_weights(w, dots_in_tiles)
    flat_y = y.reshape(n_batch, c_out, out_h * out_w)
    per_block, rows = blocking(out_h, out_w)
    row_blocks = (out_h + rows - 1) // rows
    band_rows, band_w = band_shape(width, k_h, k_w, stride_h, stride_w, pad_w, out_h, out_w,
                                   dil_h, dil_w)
    band_size = band_rows * band_w * c_in
    depth = weights_hwc.shape[1]
    for job in prange(block_count(n_batch, out_h, out_w)):
        n0 = (job // row_blocks) * per_block
        n1 = min(n_batch, n0 + per_block)
        r0 = (job % row_blocks) * rows
        r1 = min(out_h, r0 + rows)
        segment = (r1 - r0) * out_w
        length = (n1 - n0) * segment
        buffer = scratch[get_thread_id()]
        band_at, patches_t_at, _ = patches_forward_layout(c_in, width, c_out, k_h, k_w,
                                                          stride_h, stride_w, pad_w, out_h,
                                                          out_w, length, dil_h, dil_w)
        if by_dots:
            band = buffer[band_at:band_at + band_size].reshape(band_rows, band_w, c_in)
            rows_at = buffer[patches_t_at:patches_t_at + (length + MAX_TILE_ROWS) * depth]
            forward_block_by_dots(x, weights_hwc, weight_panels, b, k_h, k_w, stride_h,
                                  stride_w, pad_h, pad_w, n0, n1, r0, r1, out_w, band, rows_at,
                                  depth, buffer, flat_y, dil_h, dil_w)
            continue
        out = buffer[:c_out * length].reshape(c_out, length)
        columns = panel_columns(length, c_out, n_taps, y)
        patches = buffer[band_at:band_at + n_taps * columns].reshape(n_taps, columns)
        forward_block_by_rows(x, weights, k_h, k_w, stride_h, stride_w, pad_h, pad_w,
                              n0, n1, r0, r1, out_w, patches, out, dil_h, dil_w)
        store_block(out, b, flat_y, n0, n1, r0, r1, out_w)


@reduction_kernel
def conv2d_patches_backward_input(dy, w, stride_h, stride_w, pad_h, pad_w, dx, scratch, by_dots,
                                  dil_h, dil_w):
    """dx (N, C, H, W): the convolution of the stride-dilated upstream gradient with the
    flipped, channel-transposed kernel.

    Dilate ``dy`` by the stride (``stride - 1`` zeros between entries), pad it by
    ``K - 1 - pad`` and correlate it with ``w_t[c, o, a, b] = w[o, c, KH-1-a, KW-1-b]``:
    ``dx[n, c, r, s] = sum_{o, a, b} dy_dilated_padded[n, o, r + a, s + b] * w_t[c, o, a, b]``.
    Its non-zero terms are exactly the products ``dy[n, o, i, j] * w[o, c, ki, kj]`` with
    ``r = i*sh + ki*dh - ph`` and ``s = j*sw + kj*dw - pw`` (dilation d), so it is evaluated in that order (a
    transposed convolution): per block, ``taps (C*KH*KW, L) = w.T @ dy_block`` (``gemm_nt``
    over O ``by_dots``, else ``panel_product``), then each row of taps is added onto the dx
    cells it reaches. The dilation zeros are never multiplied. Parallel over blocks of
    samples: each iteration owns those samples' dx and adds into it in a fixed order.
    scratch as ``patches_input_grad_layout``.
    """
    n_batch, c_in, height, width = dx.shape
    c_out, _, k_h, k_w = w.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    n_taps = c_in * k_h * k_w
    w_t = np.empty((n_taps, c_out), w.dtype)
    transpose(w.reshape(c_out, n_taps), w_t)
    weights_t = panel_weights(w_t)
    flat_dy = dy.reshape(n_batch, c_out, out_h * out_w)
    per_block, rows = blocking(out_h, out_w)
    block = per_block * rows * out_w
    grad_t_at, taps_at, _ = patches_input_grad_layout(c_in, width, c_out, k_h, k_w, stride_h,
                                                      stride_w, pad_w, out_h, out_w)
    for job in prange((n_batch + per_block - 1) // per_block):
        n0 = job * per_block
        n1 = min(n_batch, n0 + per_block)
        dx[n0:n1] = 0
        buffer = scratch[get_thread_id()]
        grad_t = buffer[grad_t_at:grad_t_at + c_out * block].reshape(block, c_out)
        taps = buffer[taps_at:taps_at + n_taps * block].reshape(n_taps, block)
        for r0 in range(0, out_h, rows):
            r1 = min(out_h, r0 + rows)
            segment = (r1 - r0) * out_w
            length = (n1 - n0) * segment
            if by_dots:
                for n in range(n0, n1):
                    copy_transposed(flat_dy[n, :, r0 * out_w:r1 * out_w],
                                    grad_t[(n - n0) * segment:(n - n0 + 1) * segment])
                gemm_nt(w_t, grad_t[:length], taps[:, :length], False)
            else:
                columns = panel_columns(length, n_taps, c_out, dx)
                grad = buffer[:c_out * columns].reshape(c_out, columns)
                for o in range(c_out):
                    for n in range(n0, n1):
                        copy_run(flat_dy[n, o], r0 * out_w, grad[o], (n - n0) * segment,
                                 segment)
                    fill_run(grad[o], length, columns - length, 0)  # read by the last tiles
                panel_product(weights_t, grad, length, taps)
            for n in range(n0, n1):
                for t in range(n_taps):
                    c = t // (k_h * k_w)
                    ki = (t // k_w) % k_h
                    shift = (t % k_w) * dil_w - pad_w
                    lo, hi = valid_columns(shift, stride_w, width, out_w)
                    if lo >= hi:
                        continue
                    plane = dx[n, c]
                    for i in range(r0, r1):
                        r = i * stride_h + ki * dil_h - pad_h
                        if r < 0 or r >= height:
                            continue
                        base = (n - n0) * segment + (i - r0) * out_w
                        if stride_w == 1:
                            add_run(taps[t], base + lo, plane[r], lo + shift, hi - lo)
                        else:
                            scatter_add_run(taps[t], base + lo, plane[r], lo * stride_w + shift,
                                            stride_w, hi - lo)


def patches_partial_shape(n_batch, c_out, n_taps):
    """Shape of the weight gradient's partial sums: one (C*KH*KW, O) per group of samples."""
    return ((n_batch + GROUP - 1) // GROUP, n_taps, c_out)


@reduction_kernel
def conv2d_patches_backward_weight(dy, x, stride_h, stride_w, pad_h, pad_w, dw, scratch, partial,
                                   accumulate, dil_h, dil_w, w, b, y):
    """dw[o, c, ki, kj] = sum_{n, i, j} dy[n, o, i, j] * x[n, c, i*sh + ki*dh - ph, j*sw + kj*dw - pw].

    The correlation of the input with the upstream gradient: per block,
    ``patches (C*KH*KW, L) @ dy_block.T`` with ``gemm_nt``. Samples are split into fixed
    groups of ``GROUP``; the groups' partial sums are computed in parallel and added in
    group order (and to dw with ``accumulate``): partial is ``patches_partial_shape``.
    scratch as ``patches_weight_grad_layout``.

    With w, b and y (None otherwise, and numba compiles the kernel without them), it also
    writes y = b + the convolution of x with w from the same patches, as
    ``conv2d_patches_forward`` in axpy form, bit for bit: the two passes of a transposed
    convolution's backward, which both read the patches of its dy (here x).
    """
    n_batch, c_in, _, width = x.shape
    c_out, _, k_h, k_w = dw.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    n_taps = c_in * k_h * k_w
    flat_dy = dy.reshape(n_batch, c_out, out_h * out_w)
    if y is not None:
        weights = panel_weights(w.reshape(c_out, n_taps))
        flat_y = y.reshape(n_batch, c_out, out_h * out_w)
    per_block, rows = blocking(out_h, out_w)
    per_block = min(per_block, GROUP)
    n_groups = (n_batch + GROUP - 1) // GROUP
    _, patches_at, grad_at, _ = patches_weight_grad_layout(c_in, width, c_out, k_h, k_w, stride_h,
                                                           stride_w, pad_w, out_h, out_w)
    for g in prange(n_groups):
        acc = partial[g]
        zero(acc)
        buffer = scratch[get_thread_id()]
        group_end = min(n_batch, (g + 1) * GROUP)
        for n0 in range(g * GROUP, group_end, per_block):
            n1 = min(group_end, n0 + per_block)
            for r0 in range(0, out_h, rows):
                r1 = min(out_h, r0 + rows)
                segment = (r1 - r0) * out_w
                length = (n1 - n0) * segment
                columns = length if y is None else panel_columns(length, c_out, n_taps, y)
                # Contiguous rows, so gemm_nt's loads have unit stride.
                patches = buffer[patches_at:patches_at + n_taps * columns].reshape(n_taps, columns)
                grad = buffer[grad_at:grad_at + c_out * length].reshape(c_out, length)
                gather_block(x, k_h, k_w, stride_h, stride_w, pad_h, pad_w, n0, n1, r0, r1,
                             out_w, patches, dil_h, dil_w)
                for n in range(n0, n1):
                    for o in range(c_out):
                        copy_run(flat_dy[n, o], r0 * out_w, grad[o], (n - n0) * segment, segment)
                if y is not None:
                    out = buffer[:c_out * length].reshape(c_out, length)
                    panel_product(weights, patches, length, out)
                    store_block(out, b, flat_y, n0, n1, r0, r1, out_w)
                gemm_nt(patches, grad, acc, True)  # the first L columns of patches
    sum_partials(partial.transpose(0, 2, 1), dw.reshape(c_out, n_taps), accumulate)


def patches_tiles_partial_shape(n_batch, c_out, n_taps):
    """Shape of the tiled weight gradient's partial sums: one (O, in_panel_columns(C*KH*KW))
    per group of samples, taps in (ki, kj, c) order."""
    return ((n_batch + GROUP - 1) // GROUP, c_out, in_panel_columns(n_taps))


@serial_kernel
def pack_block_panels(flat_dy, n0, n1, start, segment, panels):
    """panels (P, L * R): positions [start, start + segment) of samples [n0, n1) of flat_dy
    (N, O, OH*OW), side by side (L of them), in panels of R = ``tile_rows`` channels:
    ``panels[o // R, l * R + o % R]``, zero past O. R a constant and the R channels of a
    panel innermost, so that each position's R values are stored together (transposed 4x4
    stride 2, 64x32x16x16 -> 16, the backward's 64 samples: 0.36 -> 0.11 ms, AMD Zen 3)."""
    c_out = flat_dy.shape[1]
    rows = tile_rows(flat_dy)
    for p in range(panels.shape[0]):
        panel, o0 = panels[p], p * rows
        for n in range(n0, n1):
            at = uint64((n - n0) * segment * rows)
            if o0 + rows <= c_out:
                block = flat_dy[n, o0:o0 + rows]
                for j in range(uint64(segment)):
                    for r in range(rows):
                        panel[at + j * uint64(rows) + uint64(r)] = block[r, uint64(start) + j]
                continue
            for j in range(segment):
                for r in range(rows):
                    o = o0 + r
                    panel[at + j * rows + r] = flat_dy[n, o, start + j] if o < c_out else 0


@reduction_kernel
def conv2d_patches_backward_weight_by_tiles(dy, x, stride_h, stride_w, pad_h, pad_w, dw, scratch,
                                            partial, accumulate, dil_h, dil_w, w, b, y,
                                            dots_in_tiles=False):
    """dw as ``conv2d_patches_backward_weight``, in the dense tiles: per block, the patch rows
    of the dots form (L, C*KH*KW in (ki, kj, c) order, ``gather_patch_rows``) read in place,
    and the block's dy (O, L) packed into the tile's panels (``packed.tiles_product``).
    Samples in fixed groups of ``GROUP``; partial (``patches_tiles_partial_shape``) holds one
    (O, taps) sum per group, added in group order into dw (to it with ``accumulate``) in
    (c, ki, kj) order. Only where this CPU has a tile for the dtype. scratch as
    ``patches_weight_tiles_layout``.

    With w, b and y (None otherwise, and numba compiles the kernel without them), it also
    writes y = b + the convolution of x with w from the same patch rows, as
    ``conv2d_patches_forward`` by dots (``dots_block``, in the tiles with
    ``dots_in_tiles``; rows at another stride): the two passes of a transposed
    convolution's backward."""
    n_batch, c_in, _, width = x.shape
    c_out, _, k_h, k_w = dw.shape
    out_h, out_w = dy.shape[2], dy.shape[3]
    n_taps = c_in * k_h * k_w
    row_length = panel_row_length(n_taps)  # the tiles read partial.shape[2] of them
    flat_dy = dy.reshape(n_batch, c_out, out_h * out_w)
    per_block, rows = blocking(out_h, out_w)
    per_block = min(per_block, GROUP)
    band_rows, band_w = band_shape(width, k_h, k_w, stride_h, stride_w, pad_w, out_h, out_w,
                                   dil_h, dil_w)
    band_at, patch_rows_at, panels_at, out_at, _ = patches_weight_tiles_layout(
        c_in, width, c_out, k_h, k_w, stride_h, stride_w, pad_w, out_h, out_w, dil_h, dil_w)
    if y is not None:
        weights_hwc, weight_panels = dots_weights(w, dots_in_tiles)
        flat_y = y.reshape(n_batch, c_out, out_h * out_w)
    tile = tile_rows(dw)
    p_count = (c_out + tile - 1) // tile
    for g in prange(partial.shape[0]):
        acc = partial[g]
        zero(acc)
        buffer = scratch[get_thread_id()]
        band = buffer[band_at:band_at + band_rows * band_w * c_in].reshape(band_rows, band_w,
                                                                           c_in)
        group_end = min(n_batch, (g + 1) * GROUP)
        for n0 in range(g * GROUP, group_end, per_block):
            n1 = min(group_end, n0 + per_block)
            for r0 in range(0, out_h, rows):
                r1 = min(out_h, r0 + rows)
                segment = (r1 - r0) * out_w
                length = (n1 - n0) * segment
                patch_rows = buffer[patch_rows_at:patch_rows_at + length * row_length].reshape(
                    length, row_length)
                gather_block_rows(x, k_h, k_w, stride_h, stride_w, pad_h, pad_w, n0, n1, r0,
                                  r1, out_w, band, patch_rows, dil_h, dil_w)
                if y is not None:
                    dots_block(weights_hwc, weight_panels, b, n_taps,
                               buffer[patch_rows_at:patch_rows_at
                                      + (length + MAX_TILE_ROWS) * row_length],
                               row_length, n0, n1, r0, r1, out_w, buffer[out_at:], flat_y)
                panels = buffer[panels_at:panels_at + p_count * length * tile].reshape(
                    p_count, length * tile)
                pack_block_panels(flat_dy, n0, n1, r0 * out_w, segment, panels)
                tiles_product(panels, patch_rows, length, acc, True)
    for o in prange(c_out):
        for c in range(c_in):
            for ki in range(k_h):
                for kj in range(k_w):
                    t = (ki * k_w + kj) * c_in + c
                    total = partial[0, o, t]
                    for g in range(1, partial.shape[0]):
                        total += partial[g, o, t]
                    dw[o, c, ki, kj] = dw[o, c, ki, kj] + total if accumulate else total
