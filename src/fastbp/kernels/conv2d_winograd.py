"""3x3 stride-1 convolution by Winograd's minimal filtering F(2x2, 3x3), dilated or not.

Shapes as in ``conv2d.py``; kernel 3x3, stride 1, any groups (each group a convolution of
its own channels, the jobs one group's each). The output is cut into 2x2 tiles; tile (ti,
tj) reads the 4x4 window d of the zero-padded input whose top left corner is padded cell
(2*ti, 2*tj). Per tile and channel pair,

    y_tile = A^T [(G g G^T) * (B^T d B)] A

with g the 3x3 kernel, * the product cell by cell, and

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]

(Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2015). Summed over
input channels, each of the 16 cells of a transformed tile is a matrix product
``M[cell] (O, T) = U[cell] (O, C) @ V[cell] (C, T)`` over T tiles: 16 multiply-adds per
tile and channel pair where the direct sum takes 36. The transforms only add, subtract
and halve, so the rounding stays close to the direct sum's. The products run in the dense
tiles (``packed.tiles_product``, U in panels) where the caller asks (``by_tiles``: this CPU
has a tile for the dtype), else as shifted sums of V's rows (``shifted_sums_2``).

With dilation (dh, dw) the output cells of one phase (rows = py mod dh, columns = px mod
dw) read only the padded input cells of the same phase, and among those the kernel is
undilated: the convolution is dh * dw undilated ones on the phase planes, and the tiles
above are tiles of a phase plane.

The input gradient is the forward of the flipped, channel-transposed kernel on dy padded
by ``2 * dilation - pad`` (``conv2d.py`` arranges it). The weight gradient (undilated)
turns the forward around: with Z = A dY A^T of each 2x2 tile dY of dy, ``dU[cell] (C, O) =
sum over tiles of V[cell] Z[cell]``, and ``dw[o, c] = G^T dU[:, c, o] G``. Its products
run in the dense tiles with the band's tiles as their depth: V's rows read in place, Z's
in panels of output channels (as dot products over a band's tiles they lost to the direct
families, 0.3-0.8x).

Layout: the jobs are bands of whole tile rows of one row phase of one group of one sample,
or of several such planes whole, one after another (small planes: ``stacked_planes``;
each plane's tiles are transformed apart, the products and the transform back run over
all of them at once). A plane's padded input rows are stored by parity, each row holding
the column phases side by side, and every tile row of a column phase gets one extra
"virtual" tile ((TW + 1) * dw per row, rows * (TW + 1) * dw a plane): then tile t's window
starts at element 2t of its parity's flat rows, and the tile below it is tile t + (TW +
1) * dw, so every transform is one long loop over t with fixed offsets (short loops run in
scalar code). Virtual tiles read the next phase's or row's values; their results are
dropped. V's rows are ``panel_row_length(T)`` long (T: the band's tiles), zero past T, as
the tiles read them.

Each job writes only its own output cells, so results do not depend on the thread count.
"""

import numpy as np
from numba import get_thread_id, prange, uint64
from numba.np.numpy_support import carray

from ._jit import inline_kernel, reduction_kernel, serial_kernel
from .isa import MASKED_VECTORS
from .packed import (
    MAX_TILE_COLUMNS,
    MAX_TILE_ROWS,
    into_panels,
    panel_row_length,
    rows_tiles_product,
    tile_columns,
    tile_rows,
    tiles_product,
)
from .runs import copy_run, gather_run, scatter_run, zero
from .shifted import in_fours, row_offsets, shifted_sums, shifted_sums_2
from .stack import stack_pointer
from .transposed import transpose_blocks
from .workspace import line_up

# Tiles per band: long runs for the products. 512 rather than 256 takes 32 px planes in one
# band of 16 tile rows (272 tiles: 6% of the tiles' columns wasted, not 15% with 136): one
# core, AVX-512, forward 32 -> 64 on 32 px 18.2 -> 15.6 ms, 64 -> 64 30.0 -> 26.3; no
# slower with V far beyond L2 (256 channels: 8 MB), which the products stream through.
TARGET_TILES = 512
# Planes of fewer tiles go into one band together: products over 72 tiles (16 px planes)
# or 144 (a 32 px plane dilated by 2) paid their short loops, the transform back its calls
# per plane (one core, AVX2, 256 x 32 x 16 x 16 -> 64 forward 39.7 -> 36.1 ms, the
# transforms alone 10.9 -> 6.7). At most 1 / MIN_STACKS of the planes a band, so that the
# threads still share them: 8 rather than 16 put 14 px planes 448 tiles a band, not 224
# (64 samples, 32 -> 32 channels, dx 1.02-1.26x).
MIN_STACKS = 8
# A stack stops at fewer tiles with AVX-512, whose 8 x 32 tiles take blocks of 32 output
# channels (AVX2's 3 x 32: 12): a block's products M (16, block, T) and V then outgrew
# L2. Intel Xeon (emeraldrapids, L2 2 MiB), 64 samples, ab.py against 512, forward / dx:
# one thread 32 -> 32 on 16 px 1.36x / 1.35x, 64 -> 64 on 16 px 1.27x / 1.27x, dilated 2
# 32 -> 64 on 32 px 1.04-1.16x / 1.09-1.19x, 16 -> 16 on 28 px 1.09x / 1.11x; two
# threads 1.67x / 1.38x, 1.19x / 1.50x, 1.08x / 1.21x; 128 tiles lost to 256 (0.81-0.90x
# on 16 px). AVX2 (as-avx2, same CPU) was 0.94-1.17x, and AMD Zen 3 had lost with 224
# tiles on 14 px (MIN_STACKS above), so it keeps 512.
STACKED_TILES = 256 if MASKED_VECTORS else TARGET_TILES
BLOCK_OUT = 8  # output channels whose shifted sums are transformed back while in L1
PANELS_PER_BLOCK = 4  # the same in tile panels (32 channels with AVX-512's 8 x 32 tiles)


@inline_kernel
def row_tiles(tiles_w, dil_w):
    """Tiles in one tile row of a band, the virtual ones included: TW + 1 per column
    phase."""
    return (tiles_w + 1) * dil_w


@inline_kernel
def stacked_plane(index, dil_h):
    """(n, py): the sample and row phase of a band's stacked plane ``index``."""
    return index // dil_h, index % dil_h


@serial_kernel
def tiling(out_h, out_w, dil_h, dil_w, n_batch=1):
    """(TH, TW, rows per band, planes per band, T): the 2x2 tiles covering a phase of an
    (out_h, out_w) output (the largest phase: ceil(out_h / dil_h) x ceil(out_w / dil_w)),
    how many tile rows a band takes, how many row-phase planes of the n_batch samples it
    stacks (``stacked_planes``) and its tiles with the virtual ones ((TW + 1) * dil_w per
    row)."""
    tiles_h = ((out_h + dil_h - 1) // dil_h + 1) // 2
    tiles_w = ((out_w + dil_w - 1) // dil_w + 1) // 2
    per_row = row_tiles(tiles_w, dil_w)
    most = max(1, min(tiles_h, TARGET_TILES // per_row))
    bands = (tiles_h + most - 1) // most
    band_rows = (tiles_h + bands - 1) // bands  # as even as the bands can be
    stack = stacked_planes(n_batch * dil_h, tiles_h, per_row) if bands == 1 else 1
    return tiles_h, tiles_w, band_rows, stack, stack * band_rows * per_row


@serial_kernel
def stacked_planes(n_planes, tiles_h, per_row):
    """How many of n_planes whole row-phase planes of TH tile rows a band stacks: up to
    ``STACKED_TILES`` tiles, leaving at least ``MIN_STACKS`` bands for the threads."""
    return max(1, min(STACKED_TILES // (tiles_h * per_row), n_planes // MIN_STACKS))


@serial_kernel
def output_block(c_out, rows):
    """Output channels per block of products: ``PANELS_PER_BLOCK`` panels of the tiles'
    ``rows``, or ``BLOCK_OUT`` (rows 0: shifted sums); at most c_out."""
    return min(c_out, rows * PANELS_PER_BLOCK if rows else BLOCK_OUT)


@serial_kernel
def winograd_layout(c_in, c_out, out_h, out_w, dil_h=1, dil_w=1, panel_rows=0, n_batch=1):
    """A thread's scratch row, in elements, for tiles of ``panel_rows`` rows (0: shifted
    sums) over n_batch samples: (products, rows, sums, wide, size). At 0, a band's
    transformed input V (16, C, panel_row_length(T)); at ``products``, the products M (16,
    block, T) of a block of output channels (``output_block``); at ``rows``, one plane's
    padded rows of the band by parity (2, rows + 1, 2 * (TW + 1) * dil_w) and two spare
    zeros; at ``sums``, their column transforms (2, 4, (rows + 1) * (TW + 1) * dil_w); at
    ``wide``, two output rows per tile row (2, 2 * T)."""
    _, tiles_w, band_rows, _, tiles = tiling(out_h, out_w, dil_h, dil_w, n_batch)
    per_row = row_tiles(tiles_w, dil_w)
    products = line_up(16 * c_in * panel_row_length(tiles))
    rows = products + line_up(16 * output_block(c_out, panel_rows) * tiles)
    sums = rows + line_up(2 * (band_rows + 1) * 2 * per_row + 2)
    wide = sums + line_up(8 * (band_rows + 1) * per_row)
    return products, rows, sums, wide, wide + line_up(4 * tiles)


@serial_kernel
def cell_weights(w, rows):
    """The transformed kernels (``transform_weights``) as the products read them: per
    cell, panels of ``rows`` output channels (16, ceil(O / rows), C * rows)
    (``packed.into_panels``), or rows 0: (16, O, in_fours(C)) for the shifted sums."""
    c_out, c_in = w.shape[0], w.shape[1]
    u = np.empty((16, c_out, in_fours(c_in)), w.dtype)
    transform_weights(w, u)
    if rows == 0:
        return u
    panels = np.empty((16, (c_out + rows - 1) // rows, c_in * rows), w.dtype)
    for cell in range(16):
        into_panels(u[cell, :, :c_in], panels[cell])
    return panels


@serial_kernel
def transform_weights(w, out):
    """out (16, O, C4) = G g G^T of every 3x3 kernel g = w[o, c] (w (O, C, 3, 3)), cell
    (i, k) at 4*i + k; columns from C on zero (the shifted sums take C4 = in_fours(C))."""
    c_out, c_in = w.shape[0], w.shape[1]
    zero(out)
    half = w.dtype.type(0.5)
    t = np.empty((4, 3), w.dtype)  # G g
    for o in range(c_out):
        for c in range(c_in):
            g = w[o, c]
            for k in range(3):
                t[0, k] = g[0, k]
                t[1, k] = half * (g[0, k] + g[1, k] + g[2, k])
                t[2, k] = half * (g[0, k] - g[1, k] + g[2, k])
                t[3, k] = g[2, k]
            for i in range(4):
                out[4 * i, o, c] = t[i, 0]
                out[4 * i + 1, o, c] = half * (t[i, 0] + t[i, 1] + t[i, 2])
                out[4 * i + 2, o, c] = half * (t[i, 0] - t[i, 1] + t[i, 2])
                out[4 * i + 3, o, c] = t[i, 2]


@serial_kernel
def phase_row(src, pad_w, dil_w, phase_w, rows, start):
    """Copies an input row src (W,) into its column phases: rows[start + px * phase_w + q]
    = src[px + q * dil_w - pad_w] where that is a column of src (the rest is left as it
    is, zero)."""
    width = src.shape[0]
    if dil_w == 2:  # columns lead + 2i (phase 0) and lead + 2i + 1 (phase 1) in one loop
        lead = pad_w % 2
        even = uint64(start + (lead + pad_w) // 2)
        odd = even + uint64(phase_w)
        col = uint64(lead)
        if lead:
            rows[odd - 1] = src[0]
        pairs = (width - lead) // 2
        for i in range(uint64(pairs)):
            rows[even + i] = src[col + 2 * i]
            rows[odd + i] = src[col + 2 * i + 1]
        if (width - lead) % 2:
            rows[even + pairs] = src[width - 1]
        return
    for px in range(dil_w):
        first = max(0, (pad_w - px + dil_w - 1) // dil_w)
        column = px + first * dil_w - pad_w
        if column < width:
            count = min(phase_w - first, (width - column + dil_w - 1) // dil_w)
            gather_run(src, column, dil_w, rows, start + px * phase_w + first, count)


@serial_kernel
def output_row(wide_row, start, tiles_w, dil_w, dst):
    """dst (OW,)[px + q * dil_w] = wide_row[start + px * 2 * (TW + 1) + q]: one output row
    from its column phases, side by side in a wide row."""
    out_w = dst.shape[0]
    phase_w = 2 * (tiles_w + 1)
    if dil_w == 2:  # interleaved in one loop
        even, odd = uint64(start), uint64(start + phase_w)
        for q in range(uint64(out_w // 2)):
            dst[2 * q] = wide_row[even + q]
            dst[2 * q + 1] = wide_row[odd + q]
        if out_w % 2:
            dst[out_w - 1] = wide_row[start + out_w // 2]
        return
    for px in range(min(dil_w, out_w)):
        scatter_run(wide_row, start + px * phase_w, dst, px, dil_w,
                    (out_w - px + dil_w - 1) // dil_w)


@serial_kernel
def transform_band(x_n, pad_h, pad_w, dil_h, dil_w, py, ti0, band_rows, tiles_w, rows, sums,
                   v, at, end):
    """v[:, :, at + t] (v (16, C, >= end)) = B^T d B for the window d of every tile of tile
    rows [ti0, ti0 + band_rows) of row phase py of x_n (C, H, W), tile t = (ti - ti0) *
    (TW + 1) * dil_w + px * (TW + 1) + tj, zeros from past the band's tiles to end; rows
    and sums are scratch (``winograd_layout``)."""
    per_row = row_tiles(tiles_w, dil_w)
    padded_w = 2 * per_row
    phase_w = 2 * (tiles_w + 1)  # padded columns of one column phase
    height, width = x_n.shape[1], x_n.shape[2]
    span = (band_rows + 1) * per_row  # column transforms per parity
    n_tiles = uint64(band_rows * per_row)
    step = uint64(per_row)
    first = uint64(at)
    zero(rows)
    for c in range(x_n.shape[0]):
        plane = x_n[c]
        for k in range(2 * band_rows + 2):  # the phase's padded row 2 * ti0 + k, by parity
            r = py + (2 * ti0 + k) * dil_h - pad_h
            start = (k % 2) * ((band_rows + 1) * padded_w) + (k // 2) * padded_w
            if not 0 <= r < height:
                continue  # zero, as zero(rows) left it
            if dil_w == 1:  # inline: a call per row cost the whole forward 4-6%
                copy_run(plane[r], 0, rows, start + pad_w, min(width, padded_w - pad_w))
            else:
                phase_row(plane[r], pad_w, dil_w, phase_w, rows, start)
        for parity in range(2):  # d B: the window's columns 2t .. 2t + 3 of each row
            src = rows[parity * (band_rows + 1) * padded_w:]
            out = sums[parity * 4 * span:]
            for u in range(uint64(span)):
                a, b, c2, d = src[2 * u], src[2 * u + 1], src[2 * u + 2], src[2 * u + 3]
                out[u] = a - c2
                out[span + u] = b + c2
                out[2 * span + u] = c2 - b
                out[3 * span + u] = b - d
        for k in range(4):  # B^T (d B); rows 2ti .. 2ti + 3: even[t], odd[t], even[t + step], odd[...]
            even = sums[k * span:]
            odd = sums[(4 + k) * span:]
            v0, v1, v2, v3 = v[k, c], v[4 + k, c], v[8 + k, c], v[12 + k, c]
            for t in range(n_tiles):
                e0, o0, e1, o1 = even[t], odd[t], even[t + step], odd[t + step]
                v0[first + t] = e0 - e1
                v1[first + t] = o0 + e1
                v2[first + t] = e1 - o0
                v3[first + t] = o0 - o1
            for row in (v0, v1, v2, v3):
                zero(row[first + n_tiles:end])


@serial_kernel
def untransform_tiles(m, k, bias, count, top, bottom):
    """bias + A^T m[:, k, t] A for tiles t < count: the top row pair of tile t's outputs at
    top[2t:2t + 2], the bottom one at bottom[2t:2t + 2]. top and bottom come as
    arguments: taken here as rows of one array, the loop's stores ran 4x slower (LLVM
    could not tell them apart)."""
    for t in range(uint64(count)):
        a0 = m[0, k, t] + m[4, k, t] + m[8, k, t]
        a1 = m[1, k, t] + m[5, k, t] + m[9, k, t]
        a2 = m[2, k, t] + m[6, k, t] + m[10, k, t]
        a3 = m[3, k, t] + m[7, k, t] + m[11, k, t]
        b0 = m[4, k, t] - m[8, k, t] - m[12, k, t]
        b1 = m[5, k, t] - m[9, k, t] - m[13, k, t]
        b2 = m[6, k, t] - m[10, k, t] - m[14, k, t]
        b3 = m[7, k, t] - m[11, k, t] - m[15, k, t]
        top[2 * t] = a0 + a1 + a2 + bias
        top[2 * t + 1] = a1 - a2 - a3 + bias
        bottom[2 * t] = b0 + b1 + b2 + bias
        bottom[2 * t + 1] = b1 - b2 - b3 + bias


@serial_kernel
def output_rows(top, bottom, at, dil_h, dil_w, py, ti0, band_rows, tiles_w, y_plane):
    """Row phase py of y_plane (OH, OW), tile rows [ti0, ti0 + band_rows), from the
    untransformed tiles at + t (``untransform_tiles``); cells beyond OH or OW (and virtual
    tiles) are dropped."""
    out_h, out_w = y_plane.shape
    per_row = row_tiles(tiles_w, dil_w)
    for j in range(band_rows):
        r = py + 2 * (ti0 + j) * dil_h
        start = 2 * (at + j * per_row)
        if dil_w == 1:  # inline, as in transform_band
            if r < out_h:
                copy_run(top, start, y_plane[r], 0, out_w)
            if r + dil_h < out_h:
                copy_run(bottom, start, y_plane[r + dil_h], 0, out_w)
            continue
        if r < out_h:
            output_row(top, start, tiles_w, dil_w, y_plane[r])
        if r + dil_h < out_h:
            output_row(bottom, start, tiles_w, dil_w, y_plane[r + dil_h])


@serial_kernel
def group_cell_weights(w, groups, rows):
    """``cell_weights`` of each group's kernels (w (O, C / groups, 3, 3), group k's output
    channels k * O / groups onwards), stacked: (groups, *cell_weights' shape)."""
    per_group = w.shape[0] // groups
    first = cell_weights(w[:per_group], rows)
    weights = np.empty((groups,) + first.shape, w.dtype)
    weights[0] = first
    for k in range(1, groups):
        weights[k] = cell_weights(w[k * per_group:(k + 1) * per_group], rows)
    return weights


@reduction_kernel
def conv2d_winograd_forward(x, w, b, pad_h, pad_w, dil_h, dil_w, groups, y, scratch,
                            by_tiles):
    """y (N, O, OH, OW) = b + the 3x3 stride-1 correlation of x with w (O, C / groups, 3,
    3) dilated by (dil_h, dil_w), group k's output channels reading its input channels: per
    band, the group's input windows transformed (``transform_band``), then per block of
    output channels (``output_block``) the 16 products with the transformed kernels, in the
    dense tiles (``by_tiles``) or as shifted sums, and their transform back. Parallel over
    (group, stack of planes, band): a band is tile rows of one row phase of one sample, or
    whole row-phase planes stacked (``tiling``). scratch (threads, ``winograd_layout`` size
    for one group's channels and n_batch samples, for ``tile_rows(y)`` rows by tiles)."""
    n_batch, c_in = x.shape[0], x.shape[1] // groups
    c_out = w.shape[0] // groups
    out_h, out_w = y.shape[2], y.shape[3]
    tiles_h, tiles_w, band_rows, stack, tiles = tiling(out_h, out_w, dil_h, dil_w, n_batch)
    rows = tile_rows(y) if by_tiles else 0
    weights = group_cell_weights(w, groups, rows)
    products_at, rows_at, sums_at, wide_at, _ = winograd_layout(c_in, c_out, out_h, out_w,
                                                                dil_h, dil_w, rows, n_batch)
    v_row = panel_row_length(tiles)
    block_out = output_block(c_out, rows)
    bands = (tiles_h + band_rows - 1) // band_rows
    n_planes = n_batch * dil_h
    stacks = (n_planes + stack - 1) // stack
    per_row = row_tiles(tiles_w, dil_w)
    plane_step = band_rows * per_row  # tiles from one stacked plane to the next
    offsets = row_offsets(c_in, v_row, in_fours(c_in))
    for job in prange(groups * stacks * bands):
        group, first_plane = job // (stacks * bands), job // bands % stacks * stack
        ti0 = (job % bands) * band_rows
        rows_here = min(band_rows, tiles_h - ti0)
        planes = min(stack, n_planes - first_plane)
        buffer = scratch[get_thread_id()]
        v = buffer[:16 * c_in * v_row].reshape(16, c_in, v_row)
        for s in range(planes):
            n, py = stacked_plane(first_plane + s, dil_h)
            transform_band(x[n, group * c_in:(group + 1) * c_in], pad_h, pad_w, dil_h, dil_w,
                           py, ti0, rows_here, tiles_w, buffer[rows_at:sums_at],
                           buffer[sums_at:wide_at], v,
                           s * plane_step, (s + 1) * plane_step if s < planes - 1 else v_row)
        flat_v = v.reshape(16, c_in * v_row)
        wide = buffer[wide_at:wide_at + 4 * tiles].reshape(2, 2 * tiles)
        length = (planes - 1) * plane_step + rows_here * per_row
        u = weights[group]
        first_out = group * c_out
        for o0 in range(0, c_out, block_out):
            block = min(block_out, c_out - o0)
            m = buffer[products_at:products_at + 16 * block * tiles].reshape(16, block, tiles)
            if rows:
                p0, p1 = o0 // rows, (o0 + block + rows - 1) // rows
                for cell in range(16):
                    tiles_product(u[cell, p0:p1], v[cell], c_in, m[cell], False)
            else:
                zero(m)
                for cell in range(16):
                    u_cell, products = u[cell], m[cell]
                    for k in range(0, block - 1, 2):
                        shifted_sums_2(u_cell[o0 + k], u_cell[o0 + k + 1], offsets,
                                       flat_v[cell], products[k], products[k + 1], length)
                    if block % 2:
                        shifted_sums(u_cell[o0 + block - 1], offsets, flat_v[cell],
                                     products[block - 1], length)
            for k in range(block):
                o = first_out + o0 + k
                untransform_tiles(m, k, b[o], length, wide[0], wide[1])
                for s in range(planes):
                    n, py = stacked_plane(first_plane + s, dil_h)
                    output_rows(wide[0], wide[1], s * plane_step, dil_h, dil_w, py, ti0,
                                rows_here, tiles_w, y[n, o])


# -- the weight gradient ------------------------------------------------------------------

MAX_PARTIALS = 32  # per-job sums of dU: the jobs, or runs of consecutive jobs when more
# Bytes between one cell's transformed dy and the next's beyond their length, so that the
# cells start an odd number of cache lines apart: written 16 cells at once, runs a multiple
# of 4 KiB apart all fell into one set of the L1 cache (32 -> 32 channels on 14 px, 64
# samples, one core: dy's transform 5.4 -> 3.0 ms).
GRADS_SKEW_BYTES = 64
SIDES = 8 * MAX_TILE_COLUMNS  # a tile's rows transformed along their columns, per channel


@serial_kernel
def weight_grad_layout(c_in, c_out, out_h, out_w, n_batch, panel_cols):
    """A thread's scratch row for ``conv2d_winograd_backward_weight``, in elements: (grads,
    rows, sums, dy_rows, size). At 0, a band's transformed input V (16, C, v_row) and
    ``MAX_TILE_ROWS`` rows more (the tiles read whole tiles of rows); at ``grads``, its
    transformed dy Z, per cell the panels of ``panel_cols`` output channels (Q, T,
    panel_cols); at ``rows`` and ``sums``, as ``winograd_layout``; at ``dy_rows``, two rows
    of dy with the channels innermost (2, 2 * (TW + 1), Q * panel_cols)."""
    _, tiles_w, band_rows, _, tiles = tiling(out_h, out_w, 1, 1, n_batch)
    per_row = row_tiles(tiles_w, 1)
    v_row = panel_row_length(tiles)
    channels = (c_out + panel_cols - 1) // panel_cols * panel_cols
    grads = line_up((16 * c_in + MAX_TILE_ROWS) * v_row)
    rows = grads + line_up(16 * (channels * tiles + GRADS_SKEW_BYTES))  # skew: any dtype
    sums = rows + line_up(2 * (band_rows + 1) * 2 * per_row + 2)
    dy_rows = sums + line_up(8 * (band_rows + 1) * per_row)
    return grads, rows, sums, dy_rows, dy_rows + line_up(4 * per_row * channels)


def weight_grad_partial_shape(n_batch, c_in, c_out, out_h, out_w):
    """Shape of the per-job sums of dU (``MAX_PARTIALS``): (P, 16, C, O)."""
    tiles_h, _, band_rows, stack, _ = tiling(out_h, out_w, 1, 1, n_batch)
    jobs = (n_batch + stack - 1) // stack * ((tiles_h + band_rows - 1) // band_rows)
    return (min(jobs, MAX_PARTIALS), 16, c_in, c_out)


@serial_kernel
def transform_grad_rows(dy_n, row, dy_rows, tiles, grads, at, length, panels, cell_step):
    """A dY A^T, the forward's output transform turned around, for the 2x2 windows dY of
    dy_n (O, OH, OW) at rows row, row + 1 and columns 2 tj, 2 tj + 1 (zero past dy), tj <
    ``tiles`` (the row's tiles and its virtual one): cell (i, j) of tile at + tj, for
    output channel q * cols + c, at ``grads[(4i + j) * cell_step + ((q * length) + at +
    tj) * cols + c]``: per cell, the channels in ``panels`` panels of the tile's columns
    (Q, length, cols). dy_rows: scratch (2, 2 * tiles, Q * cols), the two rows with the
    channels innermost."""
    c_out, out_h, out_w = dy_n.shape
    zero(dy_rows.reshape(-1))
    for r in range(2):
        if row + r < out_h:
            transpose_blocks(dy_n[:, row + r], dy_rows[r, :out_w, :c_out])
    width = dy_rows.shape[2]
    cols = width // panels
    rows = dy_rows.reshape(-1)
    second = dy_rows.shape[1] * width  # the bottom row
    # A along the columns of each row: d0, d0 + d1, d0 - d1, -d1 (top row, then bottom),
    # in the frame, so that the cells' loops below load nothing their stores might alias
    # and run as vectors (one loop storing all 16 cells stayed scalar: 3.0 -> 0.9 ms).
    sides = carray(stack_pointer(SIDES, grads.dtype), (8, MAX_TILE_COLUMNS))
    for tj in range(tiles):
        for q in range(panels):
            src = 2 * tj * width + q * cols
            for c in range(cols):
                a0, a1 = rows[src + c], rows[src + width + c]
                b0, b1 = rows[second + src + c], rows[second + src + width + c]
                sides[0, c], sides[1, c], sides[2, c], sides[3, c] = a0, a0 + a1, a0 - a1, -a1
                sides[4, c], sides[5, c], sides[6, c], sides[7, c] = b0, b0 + b1, b0 - b1, -b1
            first = (q * length + at + tj) * cols
            for j in range(4):  # then along the rows: u, u + v, u - v, -v
                u, v = sides[j], sides[4 + j]
                top, plus = grads[first + j * cell_step:], grads[first + (4 + j) * cell_step:]
                minus = grads[first + (8 + j) * cell_step:]
                below = grads[first + (12 + j) * cell_step:]
                for c in range(cols):
                    top[c] = u[c]
                for c in range(cols):
                    plus[c] = u[c] + v[c]
                for c in range(cols):
                    minus[c] = u[c] - v[c]
                for c in range(cols):
                    below[c] = -v[c]


@reduction_kernel
def conv2d_winograd_backward_weight(dy, x, pad_h, pad_w, dw, scratch, partial, accumulate):
    """dw (O, C, 3, 3) (+)= the weight gradient of the 3x3 stride-1 undilated convolution
    of x (N, C, H, W) padded by (pad_h, pad_w) whose output gradient is dy (N, O, OH, OW),
    by F(2x2, 3x3): per band (as the forward's, ``tiling``), the input windows transformed
    (V, ``transform_band``) and dy's 2x2 tiles too (Z = A dY A^T), then per cell the
    product ``dU[cell] (C, O) = V[cell] (C, T) @ Z[cell] (T, O)`` in the dense tiles (this
    CPU must have one for the dtype), summed per job in partial (``weight_grad_partial_shape``,
    consecutive jobs sharing a sum when there are more than ``MAX_PARTIALS``), then over
    the jobs in order and transformed back, ``dw[o, c] = G^T dU[:, c, o] G``. scratch
    (threads, ``weight_grad_layout`` size)."""
    n_batch, c_in = x.shape[0], x.shape[1]
    c_out, out_h, out_w = dy.shape[1], dy.shape[2], dy.shape[3]
    tiles_h, tiles_w, band_rows, stack, tiles = tiling(out_h, out_w, 1, 1, n_batch)
    cols = tile_columns(dy)
    panels = (c_out + cols - 1) // cols
    grads_at, rows_at, sums_at, dy_rows_at, _ = weight_grad_layout(
        c_in, c_out, out_h, out_w, n_batch, cols)
    v_row = panel_row_length(tiles)
    bands = (tiles_h + band_rows - 1) // band_rows
    stacks = (n_batch + stack - 1) // stack
    per_row = row_tiles(tiles_w, 1)
    plane_step = band_rows * per_row
    jobs, n_partials = stacks * bands, partial.shape[0]
    for part in prange(n_partials):
        buffer = scratch[get_thread_id()]
        part_sums = partial[part]
        for job in range(part * jobs // n_partials, (part + 1) * jobs // n_partials):
            first_plane, ti0 = job // bands * stack, (job % bands) * band_rows
            rows_here = min(band_rows, tiles_h - ti0)
            planes = min(stack, n_batch - first_plane)
            length = (planes - 1) * plane_step + rows_here * per_row
            v = buffer[:16 * c_in * v_row].reshape(16, c_in, v_row)
            cell_step = panels * length * cols + GRADS_SKEW_BYTES // dy.itemsize
            grads = buffer[grads_at:grads_at + 16 * cell_step]
            dy_rows = buffer[dy_rows_at:dy_rows_at + 4 * per_row * panels * cols].reshape(
                2, 2 * per_row, panels * cols)
            for s in range(planes):
                n = first_plane + s
                transform_band(x[n], pad_h, pad_w, 1, 1, 0, ti0, rows_here, tiles_w,
                               buffer[rows_at:sums_at], buffer[sums_at:dy_rows_at], v,
                               s * plane_step, (s + 1) * plane_step if s < planes - 1 else v_row)
                for j in range(rows_here):
                    transform_grad_rows(dy[n], 2 * (ti0 + j), dy_rows, per_row, grads,
                                        s * plane_step + j * per_row, length, panels,
                                        cell_step)
            fresh = job == part * jobs // n_partials
            for cell in range(16):
                rows_tiles_product(buffer[cell * c_in * v_row:], v_row, length,
                                   grads[cell * cell_step:][:panels * length * cols].reshape(
                                       panels, length * cols), part_sums[cell],
                                   not fresh)
    for c in prange(c_in):
        untransform_weight_grads(partial, c, dw, accumulate)


@serial_kernel
def untransform_weight_grads(partial, c, dw, accumulate):
    """dw[:, c] (O, 3, 3) (+)= G^T dU G for dU[cell] = partial[:, cell, c, o] (partial (P,
    16, C, O)) summed over P in order, cell (i, k) at 4i + k."""
    du = np.empty((16, dw.shape[0]), dw.dtype)
    for cell in range(16):
        total = du[cell]
        total[:] = partial[0, cell, c]
        for p in range(1, partial.shape[0]):
            row = partial[p, cell, c]
            for o in range(total.shape[0]):
                total[o] += row[o]
    s = np.empty((3, 4), dw.dtype)  # G^T dU
    for o in range(dw.shape[0]):
        for k in range(4):
            s[0, k], s[1, k], s[2, k] = g_transposed(du[k, o], du[4 + k, o], du[8 + k, o],
                                                     du[12 + k, o])
        g = dw[o, c]
        for a in range(3):
            values = g_transposed(s[a, 0], s[a, 1], s[a, 2], s[a, 3])
            for b in range(3):
                g[a, b] = g[a, b] + values[b] if accumulate else values[b]


@inline_kernel
def g_transposed(d0, d1, d2, d3):
    """G^T d for a column d of 4 values: (d0 + (d1 + d2) / 2, (d1 - d2) / 2, (d1 + d2) / 2
    + d3)."""
    half = type(d0)(0.5)
    return d0 + half * (d1 + d2), half * (d1 - d2), half * (d1 + d2) + d3
