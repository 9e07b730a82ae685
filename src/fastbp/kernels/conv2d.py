"""2-D convolution passes (cross-correlation, as in every deep learning library), NCHW, and
the table of the kernel families that compute them.

Shapes: x (N, C, H, W), w (O, C / groups, KH, KW), b (O,), y (N, O, OH, OW) with
``OH = (H + 2 * pad_h - dil_h * (KH - 1) - 1) // stride_h + 1`` (likewise OW): a dilated
kernel's taps sit ``dilation`` apart, and with G groups output channel o reads only the
input channels of its group ``o // (O / G)`` (PyTorch's conventions).

A family computes one group (``Geometry.groups == 1``), except those that take the groups
themselves (``depthwise``: groups == C; ``winograd``: any groups, each job one group's); a
grouped convolution that none of those takes runs its family group by group, on contiguous
copies of the group's channels or, where the family reads them so
(``Family.reads_groups_in_place``), on the group's channels in place (``_by_groups_forward``).

``FAMILIES`` names every way a pass can be computed: a family of kernels (``batched``,
``shifted``, ``patches``) and, where it has two loop forms, the variant (``patches_dots``,
``patches_rows``), each with the shapes it accepts, the shapes it suits (where it is the
default), its forward and backward and its scratch layout. A pass runs the first entry in
``PREFERENCE[CPU_KIND]`` that accepts and suits its shapes, so the choice, and the
rounding, depends on the shapes alone, never on the thread count; ``family=`` (a name or
a family) asks for one instead, for tests and benchmarks. Scratch comes from
``workspace`` (a new one when None), so a caller that keeps its workspace allocates only
the outputs.
"""

from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Callable, NamedTuple

import numba
import numpy as np
from numba import prange

from ._jit import for_size, kernel, reduction_kernel, with_serial_twin
from .channels import copy_channels
from .conv2d_batched import (
    batched_layout,
    batched_partial_shape,
    batched_scratch_size,
    conv2d_batched_backward,
    conv2d_batched_forward,
)
from .conv2d_depthwise import (
    conv2d_depthwise_backward_input,
    conv2d_depthwise_backward_input_s1,
    conv2d_depthwise_backward_s1,
    conv2d_depthwise_backward_weight,
    conv2d_depthwise_backward_weight_s1,
    conv2d_depthwise_forward,
    conv2d_depthwise_forward_s1,
    depthwise_partial_shape,
    depthwise_s1_scratch_size,
    depthwise_scratch_size,
    pads_alike,
)
from .conv2d_patches import (
    block_count,
    conv2d_patches_backward_input,
    conv2d_patches_backward_weight,
    conv2d_patches_backward_weight_by_tiles,
    conv2d_patches_forward,
    patches_forward_layout,
    patches_input_grad_layout,
    patches_partial_shape,
    patches_scratch_size,
    patches_tiles_partial_shape,
    patches_weight_grad_layout,
    patches_weight_tiles_layout,
)
from .conv2d_phases import (
    input_grad_phase_weights,
    merge_phase_weights,
    merge_phases,
    phases_shape,
    split_phase_weights,
    split_phases,
)
from .conv2d_shifted import (
    conv2d_shifted_backward_input,
    conv2d_shifted_backward_weight,
    conv2d_shifted_forward,
    shifted_layout,
    shifted_partial_shape,
)
from .conv2d_winograd import (
    conv2d_winograd_backward_weight,
    conv2d_winograd_forward,
    weight_grad_layout,
    weight_grad_partial_shape,
    winograd_layout,
)
from .isa import MASKED_VECTORS
from .packed import product_tile
from .workspace import Workspace

MIN_BATCH_FOR_BATCHED = 8  # a vector of samples
MAX_PLANE_FOR_BATCHED = 256  # output cells per plane up to which batched wins anyway
# With AVX-512, wherever its forward runs in the dense tiles (``batched_by_tiles``) the
# batched family beat the shifted one on larger planes too (Intel Xeon, emeraldrapids, 64
# samples, one core, float32, alternating; forward / dx / dw): 16 -> 32 on 20 px 1.47x /
# - / 1.42x (whole backward 1.63x), 6 -> 16 5x5 on 28 px 1.53x / - / 1.37x, 16 -> 16 on
# 28 px (dw under Winograd's dx) - / - / 1.20x, 12 -> 12 on 32 px 0.89-1.08x / 1.33x /
# 1.15x, 16 -> 16 on 56 px 1.06x / 1.20x / 1.08x, 8 -> 16 on 64 px 1.27x / 1.12x / 1.00x,
# 6 -> 16 5x5 on 64 px 1.72x / 1.29x / 1.26x; but not with a 1x1 kernel (32 -> 64 on 28
# px: forward 0.70x, backward 0.53x) nor below the tiles (4 -> 8, 36 taps: 0.94-0.98x).
# Up to this many output cells a plane: its chunk of 64 samples is copied whole (6 -> 16
# 5x5 on 64 px: 24 MB). AVX2, whose tiles start at 512 taps, keeps MAX_PLANE_FOR_BATCHED.
MAX_PLANE_FOR_BATCHED_TILES = 64 * 64 if MASKED_VECTORS else 0
# Where the patches family's dot products beat its axpy rows (gemm_nn as sums of four rows),
# measured on one core, float32, both forms side by side (fastbp.bench.kernels, family=):
MIN_CHANNELS_FOR_DOTS = 4  # forward: 3 channels -> rows, 2.6x (3x3) and 1.4x (7x7) faster
# forward, stride 2, since the runs are inlined (commit 0159848): 3x3 taps of 8, 16, 24
# channels -> rows 2.2x, 1.65x (AVX2 1.14x), 1.03x; of 32 and more -> dots 1.2-1.3x (AVX2
# 1.6x); 4x4 of 16 channels (256 taps) even; 5x5 of 16 -> dots 1.4x. 1x1 kernels (a patch
# is one input column) go by rows at any width: 64 and 256 channels 2.3x and 1.4x (AVX2
# 1.7x and 1.0x).
# Re-measured on 2026-12-05 (after the dots' patch gather stopped reshaping): AVX2 takes dots
# from about 100 taps (3x3 s2, one core, rows / dots speed: 108-216 taps 0.78-0.88x, 5x5
# of 8 channels 0.65x, 2x2 of 32 0.70x; at 64-72 taps 0.92-1.09x). AVX-512 stayed at 256:
# there dots win on output planes of 8 x 8 (0.83-0.92x) but rows on 14 x 14 and larger
# (1.03-1.18x), both sides of 256 taps. Since the forward by dots runs in the dense tiles
# there too (``DOTS_IN_TILES``; Intel Xeon, 2026-12-07, ab.py and in-process toggles, 64
# samples, rows / dots): 16 -> 32 channels on 28 px (144 taps, 14 x 14 outputs)
# 1.69-1.92x, 12 -> 24 on 16 px 1.39x, 2x2 of 32 on 16 px 1.11x, 5x5 of 8 on 32 px
# 0.93-1.05x: 96 on both.
MIN_TAPS_FOR_DOTS = 96
MIN_DEPTH_FOR_DOTS = 256  # input gradient: rows won for 25 to 128 output channels, 1.1-2.0x
# The forward by dots in the dense tiles (3 positions x 32 output channels) against gemm_nt's
# dot products, the product alone, one core, float32, AMD Zen 3 (AVX2), 64 samples, ms:
# 4x4 stride 2, 16 -> 32 channels on 32 px (a transposed convolution's dx) 3.9 / 3.0,
# 3x3 stride 2 16 -> 32 on 28 px 1.86 / 1.29, 32 -> 64 on 14 px 1.7-2.2 / 1.3, 64 -> 128
# on 32 px 35-50 / 36; 5x5 stride 2, 8 -> 16 (half a panel) 2.2 / 2.7. Intel AVX-512 (8
# positions x 32; 64 samples, whole forward, gemm_nt / tiles, two runs): 3x3 stride 2, 32 ->
# 64 on 14 px 1.07-1.36x, 64 -> 128 on 32 px 1.01-1.04x, 4x4 stride 2, 16 -> 32 on 32 px
# 1.21x; float64 (8 x 16) 1.15x, 1.46x, 0.97x.
DOTS_IN_TILES = True
# Stride-1 forwards by dots in the tiles instead of the batched family (whose own tiles
# need 512 taps on AVX2), one core, float32, 64 samples, AMD Zen 3, ms, batched / dots:
# 3x3 32 -> 32 on 12, 14, 16 px 4.6 / 3.8, 4.4-4.5 / 4.0, 5.7 / 4.9; 64 -> 64 on 7 px
# 4.5-4.9 / 3.25; 128 -> 128 on 7 px 25.4 / 14.7; 32 -> 64 on 8 px 2.9 / 2.5; 24 -> 32 on
# 10 px 1.80 / 1.65; 16 -> 32 on 14 px 2.0 / 1.86. Float64 (dot products: no AVX2 tile)
# 32 -> 32 on 14 px 7.6 / 8.3, 64 -> 64 on 7 px 9.3 / 7.6. Not with AVX-512, whose batched
# tiles start at 64 taps (Intel Xeon, 2026-12-07, forward / with dx by dots too: 32 -> 32
# on 14 px 0.91-1.04x / 1.06-1.08x, 64 -> 64 on 7 px 0.88-0.97x / 0.99-1.01x).
BATCHED_FORWARD_BY_DOTS = not MASKED_VECTORS
# Its dx so too, as the forward of dy with the flipped kernel, dw still by the batched
# family (which then copies dy for dw alone), float32 (no AVX2 tile for float64: dot
# products lost, 0.81-0.90x), ms, batched / dots, dx alone and with dw: 32 -> 32 on 14 px
# 4.2 / 3.9 and 8.7 / 8.7, 64 -> 64 on 7 px 4.2 / 3.3 and 7.4 / 6.7; but at two threads
# the 7 px planes' 7 blocks of 10 samples split 4 / 3: dx 1.01x, with dw 0.93-0.94x (14 px,
# 32 blocks: 1.20x and 1.06x). Hence from 16 blocks (since blocks take at most 4 samples,
# ``conv2d_patches.MAX_SAMPLES_PER_BLOCK``, 64 samples of 7 px make 16).
BATCHED_INPUT_BY_DOTS = not MASKED_VECTORS
MIN_BLOCKS_FOR_INPUT_BY_DOTS = 16
# The weight gradient in the dense tiles (from the dots form's patch rows) against gemm_nt's
# dot products, one core, float32, Intel AVX-512, ms: 3x3 stride 2 on 64 samples, 32 -> 64
# channels on 14 px 1.52 / 2.59, 64 -> 128 on 32 px 26.5 / 31.7; but 16 -> 32 on 28 px
# 2.5 / 2.1, 3 channels (7x7 stem, 3x3) 2-3x slower, 1x1 kernels 1.4-3x slower.
# Re-measured on 2026-12-05 (ab.py, 64 samples, gemm_nt / tiles), 3x3 stride 2: 16 -> 32
# channels on 28 px 1.42x (AVX2 1.11x), on 16 px 1.53x, 12 -> 24 on 16 px 1.28x (AVX2
# 1.22x), but 8 -> 32 on 32 px 0.89x (AVX2 0.78x); 4x4 stride 2, 16 -> 32 on 32 px (a
# transposed convolution's dw) 1.63x (AVX2 1.30x).
MIN_CHANNELS_FOR_DW_TILES = 12
# dw alone (a Winograd backward's, or asked alone) by the patches family in the dense tiles
# where it takes them, not by the shifted family's dot products on the padded planes: one
# core, 64 samples, 3x3 on 32 px, ms, AVX-512: 32 -> 64 27.2 -> 25.0 (float64 54.2 -> 51.1),
# dilation 2 27.2 -> 25.1 (two cores 13.7 -> 12.8); AVX2 34.9 -> 35.6-35.9, so not there;
# and from 32 input channels only (16 -> 16 on 28 px: 3.07 -> 4.12 ms).
WEIGHT_GRAD_BY_PATCH_TILES = MASKED_VECTORS
MIN_CHANNELS_FOR_DW_TILES_OVER_SHIFTED = 32
# The phases family's backward against the patches family's axpy form (one core, float32,
# since the runs are inlined): 4x4 stride 2 on 8 x 8 output planes 1.1x; on 16 x 16
# (transposed convolution 64x32x16x16 -> 16) 0.8-0.9x (AVX2 0.75x); 2x2 stride 2 (a
# kernel no wider than its stride, no overlap to share) 0.5x.
MAX_PLANE_FOR_PHASES = 256  # output cells
# Where Winograd's transforms pay for themselves (one core, float32, forward / dx against
# the direct family): 32 -> 64 channels on 32 px 1.3x / 1.6x, 32 -> 32 on 28 px 1.2x /
# 1.3x; 32 -> 32 on 14 px 0.9x / 1.0x, 7 px 0.4x. Since its output transform's fix
# (commit 1ce97c4) 16 -> 16 on 28 px 1.1x / 1.2x (AVX2 too), 12 -> 12 1.0x / 1.15x,
# 8 -> 8 0.9x / 1.0x.
# Dilated by d, its tiles are those of d x d phase planes side by side: d2 on 32 px
# (phases of 16 columns) 1.2x / 1.5x, 28 px 1.1x / 1.2x; d4 on 32 px (8 columns) 0.7x / 0.9x.
# Few rows cost less: (4, 1) on 32 px (phases 8 rows tall) 1.0x / 1.15-1.2x (AVX2 0.9x /
# 1.1x), undilated planes 8 and 10 rows tall 1.0-1.1x / 1.1-1.2x. Beyond 2 its copies
# gather each phase apart: d3 on 48 and 64 px 1.0x / 1.2x, d4 on 64 px (16 columns) 0.6x / 0.9x.
# With its products in the dense tiles (commit b762837), the more channels the narrower
# the planes where it wins over the batched (and shifted) family, forward / dx, 64
# samples (32 at 128 channels): AVX-512 128 -> 128 on 10 px 1.7x / 1.5x (8 px 1.0x / 0.9x:
# the backward's dw, by the batched family, no longer shares its copy of dy with dx),
# 64 -> 64 on 10 px 1.26x / 1.18x (8 px 0.85x), 32 -> 32 on 16 px 1.17x / 1.26x (14 px
# 1.0-1.1x, 12 px 0.8x), 16 -> 16 on 20 px 1.0x / 1.1x; AVX2 (tiles from 64 channels) 128
# on 10 px 1.4-1.6x / 1.3-1.4x (8 px 1.0x / 0.94x), 64 on 14 px 1.4x / 1.5x (12 px
# 1.0x), 32 on 20 px 1.1x / 1.3-1.4x (16 px 0.9x). Since small planes are stacked into
# long bands (``conv2d_winograd.stacked_planes``) and AVX2 takes the tiles from 32
# channels (AMD Zen 3, 64 samples, alternating, 15-25 rounds): 32 on 14 px 1.18x / 1.24x
# (12 px 0.86x / 0.96x), 64 on 10 and 12 px 1.06x / 1.06-1.20x, 128 on 7 px 0.89x /
# 1.16x, 64 on 7 px 0.64x / 0.77x. Pairs (channels, output columns of y, or of dx for the
# backward): Winograd suits a plane at least that wide when min(C, O) (of a group) has
# that many.
MIN_WIDTH_FOR_WINOGRAD = {
    "avx512": ((64, 10), (32, 16), (16, 24)),
    "avx2": ((64, 10), (32, 14), (16, 24)),
}
# Dilated, per pass: the output columns a column phase needs, and the largest dilation.
# AVX-512 with tiles (forward / dx against the shifted family, 64 samples): 64 channels
# d4 on 32 px (phases 8 wide) 1.38x / 1.92x, d2 on 16 px 1.35x / 1.77x; 32 channels d3 on
# 32 px 1.09x / 1.45x, d4 1.01x / 1.40x (on 28 px, phases 7 wide: 0.81x / 1.13x), d2 on 16
# px 0.97x / 1.06x, d (4, 1) 1.22x / 1.60x; 16 channels d4 0.75x / 0.98x, d (4, 1) 0.95x /
# 1.31x. AVX2 (shifted sums below 64 channels) keeps the earlier rule: d4 on 32 px 0.70x
# / 0.80x with 32 channels.
MIN_PHASE_WIDTH_FOR_WINOGRAD = {
    "avx512": {"forward": ((64, 8), (16, 12)), "backward": ((32, 8), (16, 12))},
    "avx2": {"forward": ((16, 12),), "backward": ((16, 12),)},
}
MAX_DILATION_FOR_WINOGRAD = {"avx512": ((32, 4), (16, 3)), "avx2": ((16, 3),)}
# Its 16 products in the dense tiles against shifted sums (one core, float32, forward,
# 64 samples): AVX-512 (8 x 32 tiles) 16 -> 16 on 28-32 px 1.2-1.3x, 32 -> 64 on 32 px
# 1.4x (dilated 2: 1.2x), 64 -> 64 1.5x, 32 -> 32 on 14 px 1.6x, float64 1.3x; AVX2 (3 x
# 32) 16 and 32 channels 0.9x, 64 1.05-1.08x. With small planes stacked into long bands
# (AMD Zen 3, 2026-12-06, cvar alternating, 15-25 rounds): AVX2 32 -> 64 on 32 px 1.11x
# (dilated 2: 1.12x), 32 -> 32 on 14 px 1.18x, but 16 -> 16 on 28 px 0.90x. Since the
# packer's and the tiles' rework (ab.py, same machine, 9-11 rounds, forward / dx): 16 ->
# 16 on 28 px 1.08-1.17x / 1.07-1.12x (float64 0.99-1.02x / 0.85-1.00x), 24 -> 24 on 32
# px 1.17x / 1.29x, grouped 16 channels a group on 32 px 1.00-1.12x / 0.93-1.09x.
MIN_DEPTH_FOR_WINOGRAD_TILES = 16  # input channels
# Its weight gradient by F(2x2, 3x3) too (``conv2d_winograd_backward_weight``: per band,
# dU (C, O) = V Z over the band's tiles in the dense tiles) against the direct family the
# table chose, 64 samples, one core, float32, AMD Zen 3 (AVX2), alternating, fastest of
# 9-11: 32 -> 32 channels on 12 px 1.06x, 14 px 1.19-1.37x, 16 px 1.47x, 28 px 1.28x;
# 32 -> 64 on 32 px 1.10-1.35x; 64 -> 64 on 10 px 1.32x, 14 px 1.42x, but 7 px 0.96-1.05x;
# 128 on 8 px (32 samples) 1.53x; 16 channels (a tile's 32 columns half empty) 0.6x.
# Dilated, the same products lost (dilation 2, 32 -> 64 on 32 px: 41 ms against the shifted
# family's 36: phase gathers in both transforms). Where the Winograd backward runs (dx's
# rule above), undilated, ungrouped, from this many channels in and out, in a dtype with a
# tile. Off with AVX-512, where it was mixed (Intel Xeon, 2026-12-07, whole backward, dw by
# the table's family before: 32 -> 32 on 16 px 0.93x, 64 -> 64 on 10 px 0.99x, 32 -> 64 on
# 32 px 1.05x).
MIN_CHANNELS_FOR_WINOGRAD_WEIGHT_GRAD = {"avx512": None, "avx2": 32}
# The batched forward's rows in the dense tiles against shifted sums (one core, float32,
# 64 samples, 3x3): AVX-512 (8 x 32) 72 taps 1.21x, 144 1.24-1.40x, 288 1.23x, 576 1.42x,
# LeNet's conv2 (150) 1.27x, but 27-36 taps 0.8-1.0x; AVX2 (3 x 32) 27-288 taps 0.77-0.97x,
# 576 1.01-1.03x, 1152 1.06x.
MIN_DEPTH_FOR_BATCHED_TILES = 64 if MASKED_VECTORS else 512  # C * KH * KW


class Geometry(NamedTuple):
    """The shapes of one convolution, all a family's choice and kernels depend on."""

    n_batch: int
    c_in: int
    height: int
    width: int
    c_out: int
    k_h: int
    k_w: int
    out_h: int
    out_w: int
    stride_h: int
    stride_w: int
    pad_h: int
    pad_w: int
    dil_h: int = 1
    dil_w: int = 1
    groups: int = 1

    @classmethod
    def of(cls, x_shape, w_shape, y_shape, stride_h, stride_w, pad_h, pad_w, dil_h=1, dil_w=1,
           groups=1):
        c_out, _, k_h, k_w = w_shape
        return cls(*x_shape, c_out, k_h, k_w, *y_shape[2:], stride_h, stride_w, pad_h, pad_w,
                   dil_h, dil_w, groups)

    def one_group(self):
        """The geometry of one group's convolution (C / G input, O / G output channels)."""
        if self.groups == 1:
            return self
        return self._replace(c_in=self.c_in // self.groups, c_out=self.c_out // self.groups,
                             groups=1)

    @property
    def dilated(self):
        return self.dil_h != 1 or self.dil_w != 1

    @property
    def n_taps(self):
        return self.c_in * self.k_h * self.k_w

    @property
    def wasted(self):
        """Columns per output row that the shifted family computes and drops."""
        return self.width + 2 * self.pad_w - self.out_w


@dataclass(frozen=True)
class Family:
    """One entry of ``FAMILIES``.

    ``forward(g, x, w, b, y, workspace)`` writes y; ``backward(g, dy, x, w, dx, dw, workspace,
    accumulate)`` writes dx unless it is None and dw (adding with ``accumulate``) unless it
    is None, when x may be None too. ``accepts(g)``: whether its kernels compute shapes g
    (``needs`` says what they need otherwise); ``suits(g, pass_)``: whether it is the
    default for the pass ("forward", "backward", "input": dx alone, or "weight": dw alone)
    among the families before it in ``PREFERENCE``. ``kernels``: what runs, in words;
    ``layout``: the kernels' scratch layouts, the functions that give both the sizes the
    launchers allocate and the offsets the kernels slice. ``input_with_bias(g, dy, w,
    bias, dx, workspace)``, where the kernels can add a bias to each channel of dx on the
    way out (a transposed convolution's forward), writes dx plus that bias and returns
    True, or returns False on shapes where they cannot. ``reads_groups_in_place``: its
    forward and backward also take ``group=k`` and then read the channels of group k (of
    the groups whose one-group geometry g is) from the whole x and dy, not copies of them.
    """

    name: str
    family: str
    variant: str
    kernels: str
    accepts: Callable
    needs: str
    suits: Callable
    forward: Callable
    backward: Callable
    layout: tuple
    input_with_bias: Callable = lambda g, dy, w, bias, dx, workspace: False
    reads_groups_in_place: bool = False


# -- batched: stride 1, the batch as the vector axis ------------------------------------

def _batched_scratch(g, workspace, dtype):
    size = batched_scratch_size(g.n_batch, g.c_in, g.height, g.width, g.c_out, g.out_h,
                                g.out_w, g.pad_h, g.pad_w, 1, numba.config.NUMBA_NUM_THREADS)
    return workspace.array("conv2d", (size,), dtype)


def _batched_forward(g, x, w, b, y, workspace):
    conv2d_batched_forward(x, w.reshape(1, g.c_out, g.n_taps), g.k_h, g.k_w, b, g.pad_h, g.pad_w,
                           y, 1, 1, 0, 0, _batched_scratch(g, workspace, x.dtype),
                           batched_by_tiles(g, x.dtype))


def batched_by_tiles(g, dtype, depth=None, rows=None):
    """Whether the batched forward sums its rows in the dense tiles: by its depth (g's
    taps), dtype, and rows (g's output channels) enough to fill a tile's rows."""
    tile = product_tile(dtype)
    depth = g.n_taps if depth is None else depth
    rows = g.c_out if rows is None else rows
    return tile is not None and depth >= MIN_DEPTH_FOR_BATCHED_TILES and rows >= tile[0]


def _batched_backward(g, dy, x, w, dx, dw, workspace, accumulate):
    """One kernel for both gradients, so that dy is copied into its layout once; dx
    apart where ``_input_by_dots_over_batched``: the forward by dots of dy with the flipped
    kernel."""
    if dx is not None and _input_by_dots_over_batched(g, w.dtype):
        flipped, no_bias = _flipped_kernel(g, w, workspace)
        transposed = _flipped_geometry(g)
        FAMILIES["patches_dots"].forward(transposed, dy, flipped, no_bias, dx, workspace)
        if dw is None:
            return
        dx = None
    scratch = _batched_scratch(g, workspace, w.dtype)
    if dw is None:  # x and partial unused: None, so numba compiles the dx-only kernel
        x = partial_sums = None
    else:
        partial_sums = workspace.array(
            "conv2d partial", batched_partial_shape(g.n_batch, g.c_out, g.n_taps, g.out_h), w.dtype)
    conv2d_batched_backward(dy, x, w, g.pad_h, g.pad_w, dx, dw, scratch, partial_sums, accumulate)


# -- shifted: stride 1 (any dilation), shifted runs of the zero-padded planes ------------

def _shifted_scratch(g, workspace, dtype):
    _, _, size = shifted_layout(g.c_in, g.height, g.width, g.c_out, g.out_h, g.out_w,
                                g.pad_h, g.pad_w)
    return workspace.per_thread("conv2d", size, dtype)


def _shifted_forward(g, x, w, b, y, workspace, group=0):
    conv2d_shifted_forward(x, group * g.c_in, w, b, g.pad_h, g.pad_w, y,
                           _shifted_scratch(g, workspace, x.dtype), g.dil_h, g.dil_w)


def _shifted_backward(g, dy, x, w, dx, dw, workspace, accumulate, group=0):
    scratch = _shifted_scratch(g, workspace, w.dtype)
    if dx is not None:
        conv2d_shifted_backward_input(dy, group * g.c_out, w, g.pad_h, g.pad_w, dx, scratch,
                                      g.dil_h, g.dil_w)
    if dw is not None:
        partial_sums = workspace.array(
            "conv2d partial", shifted_partial_shape(g.n_batch, g.c_out, g.n_taps), w.dtype)
        conv2d_shifted_backward_weight(dy, x, group * g.c_out, group * g.c_in, g.pad_h,
                                       g.pad_w, dw, scratch, partial_sums, accumulate,
                                       g.dil_h, g.dil_w)


# -- patches: any stride, gathered patches times the weights ------------------------------

def _patches_scratch(g, workspace, dtype):
    size = patches_scratch_size(g.c_in, g.width, g.c_out, g.k_h, g.k_w, g.stride_h, g.stride_w,
                                g.pad_w, g.out_h, g.out_w, g.dil_h, g.dil_w)
    return workspace.per_thread("conv2d", size, dtype)


def dots_in_tiles(g, dtype):
    """Whether the patches family's forward by dots runs in the dense tiles (patch rows
    against the weights in panels of output channels) rather than on ``gemm_nt``: where
    ``DOTS_IN_TILES``, this CPU has a tile for the dtype and at most a quarter of the
    panels' columns would be past the output channels."""
    tile = product_tile(dtype)
    return (DOTS_IN_TILES and tile is not None
            and 4 * g.c_out >= 3 * (-(-g.c_out // tile[1]) * tile[1]))


def _patches_forward(g, x, w, b, y, workspace, by_dots):
    conv2d_patches_forward(x, w, b, g.stride_h, g.stride_w, g.pad_h, g.pad_w, y,
                           _patches_scratch(g, workspace, x.dtype), by_dots, g.dil_h, g.dil_w,
                           by_dots and dots_in_tiles(g, x.dtype))


def weight_grad_by_tiles(g, dtype):
    """Whether the patches family computes dw in the dense tiles
    (``conv2d_patches_backward_weight_by_tiles``), by the shapes and dtype alone (None:
    a dtype with tiles)."""
    return (g.c_in >= MIN_CHANNELS_FOR_DW_TILES and g.k_h * g.k_w > 1
            and (dtype is None or product_tile(dtype) is not None))


def _patches_backward(g, dy, x, w, dx, dw, workspace, accumulate, by_dots):
    """``by_dots`` picks dx's loop form; dw's by ``weight_grad_by_tiles``."""
    if dx is not None:
        conv2d_patches_backward_input(dy, w, g.stride_h, g.stride_w, g.pad_h, g.pad_w, dx,
                                      _patches_scratch(g, workspace, w.dtype), by_dots,
                                      g.dil_h, g.dil_w)
    if dw is not None:
        _patches_weight_grad(g, dy, x, dw, workspace, accumulate)


def _patches_weight_grad(g, dy, x, dw, workspace, accumulate, w=None, b=None, y=None):
    """dw from the patches of x, in the tiles where ``weight_grad_by_tiles``; with w, b
    and y, also y = the forward of x from the same patches (by dots where dw is in the
    tiles, else in axpy form)."""
    scratch = _patches_scratch(g, workspace, dw.dtype)
    if weight_grad_by_tiles(g, dw.dtype):
        partial_sums = workspace.array(
            "conv2d partial tiles", patches_tiles_partial_shape(g.n_batch, g.c_out, g.n_taps),
            dw.dtype)
        conv2d_patches_backward_weight_by_tiles(dy, x, g.stride_h, g.stride_w, g.pad_h,
                                                g.pad_w, dw, scratch, partial_sums, accumulate,
                                                g.dil_h, g.dil_w, w, b, y,
                                                y is not None and dots_in_tiles(g, dw.dtype))
    else:
        partial_sums = workspace.array(
            "conv2d partial", patches_partial_shape(g.n_batch, g.c_out, g.n_taps), dw.dtype)
        conv2d_patches_backward_weight(dy, x, g.stride_h, g.stride_w, g.pad_h, g.pad_w, dw,
                                       scratch, partial_sums, accumulate, g.dil_h, g.dil_w,
                                       w, b, y)


PATCHES_LAYOUT = (patches_forward_layout, patches_input_grad_layout, patches_weight_grad_layout,
                  patches_weight_tiles_layout)


# -- winograd: 3x3, stride 1, F(2x2, 3x3) --------------------------------------------

def _winograd_accepts(g):
    return (g.stride_h == 1 and g.stride_w == 1 and g.k_h == 3 and g.k_w == 3
            and g.pad_h <= 2 * g.dil_h and g.pad_w <= 2 * g.dil_w)


def _winograd_suits(g, pass_):
    """By the width of what the transforms produce (y, or dx for the backward) and the
    channels: the input transform's cost is shared by the output channels, the output
    transform's by the input channels (of one group). dw alone ("weight") where the
    backward would run and computes dw too (``winograd_weight_grad``)."""
    if pass_ == "weight":
        return winograd_weight_grad(g) and _winograd_suits(g, "backward")
    pass_ = "forward" if pass_ == "forward" else "backward"
    width = g.out_w if pass_ == "forward" else g.width
    channels = min(g.c_in, g.c_out) // g.groups
    columns = _by_channels(MIN_WIDTH_FOR_WINOGRAD[CPU_KIND], channels)
    if columns is None:  # fewer channels than any pair's
        return False
    phase = _by_channels(MIN_PHASE_WIDTH_FOR_WINOGRAD[CPU_KIND][pass_], channels)
    return (width >= columns
            and (g.dil_w == 1 or width >= phase * g.dil_w)
            and max(g.dil_h, g.dil_w) <= _by_channels(MAX_DILATION_FOR_WINOGRAD[CPU_KIND],
                                                      channels))


def _by_channels(table, channels):
    """The value of the first (channels, value) pair of table (most channels first) whose
    channel count ``channels`` reaches, or None. The three Winograd tables end at the same
    count (16), so one lookup decides whether any applies."""
    return next((value for least, value in table if channels >= least), None)


def winograd_by_tiles(c_in, dtype):
    """Whether Winograd's products over ``c_in`` input channels run in the dense tiles, by
    the depth and dtype alone."""
    return c_in >= MIN_DEPTH_FOR_WINOGRAD_TILES and product_tile(dtype) is not None


def winograd_weight_grad(g, dtype=None):
    """Whether the Winograd backward computes dw by F(2x2, 3x3) too, by the shapes
    (``MIN_CHANNELS_FOR_WINOGRAD_WEIGHT_GRAD``) and the dtype (None: one with a tile), not
    by the family the table would choose without it."""
    least = MIN_CHANNELS_FOR_WINOGRAD_WEIGHT_GRAD[CPU_KIND]
    return (least is not None and not g.dilated and g.groups == 1
            and min(g.c_in, g.c_out) >= least
            and (dtype is None or product_tile(dtype) is not None))


def _winograd_weight_grad(g, dy, x, dw, workspace, accumulate):
    layout = weight_grad_layout(g.c_in, g.c_out, g.out_h, g.out_w, g.n_batch,
                                product_tile(dw.dtype)[1])
    scratch = workspace.per_thread("conv2d", layout[-1], dw.dtype)
    partial_sums = workspace.array(
        "conv2d partial", weight_grad_partial_shape(g.n_batch, g.c_in, g.c_out, g.out_h,
                                                    g.out_w), dw.dtype)
    conv2d_winograd_backward_weight(dy, x, g.pad_h, g.pad_w, dw, scratch, partial_sums,
                                    accumulate)


def _winograd_forward_on(g, x, w, b, pad_h, pad_w, y, workspace):
    """y = the Winograd forward of x (N, C, H, W) with w (O, C / groups, 3, 3), scratch
    sized for one group."""
    c_in, c_out = x.shape[1] // g.groups, w.shape[0] // g.groups
    by_tiles = winograd_by_tiles(c_in, x.dtype)
    rows = product_tile(x.dtype)[0] if by_tiles else 0
    size = winograd_layout(c_in, c_out, y.shape[2], y.shape[3], g.dil_h, g.dil_w, rows,
                           x.shape[0])[-1]
    scratch = workspace.per_thread("conv2d", size, x.dtype)
    conv2d_winograd_forward(x, w, b, pad_h, pad_w, g.dil_h, g.dil_w, g.groups, y, scratch,
                            by_tiles)


def _winograd_forward(g, x, w, b, y, workspace):
    _winograd_forward_on(g, x, w, b, g.pad_h, g.pad_w, y, workspace)


def _flipped_kernel(g, w, workspace):
    """(w_t, zeros): the flipped, channel-transposed kernel (C, O / groups, KH, KW) whose
    stride-1 forward on dy is dx (``w_t[c, o] = w[o, c]`` turned by 180 degrees, group by
    group), and a zero bias of C channels, in workspace."""
    c_in, c_out = g.c_in // g.groups, g.c_out // g.groups
    flipped = workspace.array("conv2d flipped w", (g.c_in, c_out, g.k_h, g.k_w), w.dtype)
    for k in range(g.groups):
        flipped[k * c_in:(k + 1) * c_in] = (
            w[k * c_out:(k + 1) * c_out].transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
    no_bias = workspace.array("conv2d flipped b", (g.c_in,), w.dtype)
    no_bias[...] = 0
    return flipped, no_bias


def _winograd_backward(g, dy, x, w, dx, dw, workspace, accumulate):
    """dx as the forward of the flipped, channel-transposed kernel (group by group) on dy
    padded by 2 * dilation - pad; dw by F(2x2, 3x3) too where ``winograd_weight_grad``, else
    by the family the table would choose without this one (group by group if none takes
    the groups)."""
    if dx is not None:
        flipped, no_bias = _flipped_kernel(g, w, workspace)
        _winograd_forward_on(g, dy, flipped, no_bias, 2 * g.dil_h - g.pad_h,
                             2 * g.dil_w - g.pad_w, dx, workspace)
    if dw is None:
        return
    if winograd_weight_grad(g, dw.dtype):
        _winograd_weight_grad(g, dy, x, dw, workspace, accumulate)
    elif g.groups == 1:
        choose(g, "weight", without="winograd").backward(g, dy, x, w, None, dw, workspace,
                                                         accumulate)
    else:
        _by_groups_backward(g, dy, x, w, None, dw, workspace, accumulate, None, "winograd")


# -- phases: any stride, a stride-1 convolution of the input's phases ---------------------

def _phases_geometry(g):
    """The stride-1 convolution of the phases that computes g (``conv2d_phases``)."""
    k_hs, k_ws, phase_h, phase_w = phases_shape(g.k_h, g.k_w, g.out_h, g.out_w, g.stride_h,
                                                g.stride_w)
    return Geometry(g.n_batch, g.c_in * g.stride_h * g.stride_w, phase_h, phase_w, g.c_out,
                    k_hs, k_ws, g.out_h, g.out_w, 1, 1, 0, 0)


def _phase_weights(s1, g, w, workspace):
    ws = workspace.array("conv2d phases w", (g.c_out, s1.c_in, s1.k_h, s1.k_w), w.dtype)
    split_phase_weights(w, g.stride_h, g.stride_w, ws)
    return ws


def _phase_planes(s1, g, x, workspace, name):
    return workspace.array(name, (g.n_batch, s1.c_in, s1.height, s1.width), x.dtype)


def _phases_forward(g, x, w, b, y, workspace):
    s1 = _phases_geometry(g)
    xs = _phase_planes(s1, g, x, workspace, "conv2d phases x")
    split_phases(x, g.stride_h, g.stride_w, g.pad_h, g.pad_w, xs)
    choose(s1, "forward").forward(s1, xs, _phase_weights(s1, g, w, workspace), b, y, workspace)


def _phases_input_grad(g, dy, w, bias, dx, workspace):
    """dx alone (plus bias (C,) on each channel), phase by phase as the batched forward of
    dy (zero-padded by the phase kernel's size - 1) with the flipped phase kernels, written
    interleaved into dx: no phase planes to merge, and the products in the dense tiles.
    For a batch (the vector axis) of at least ``MIN_BATCH_FOR_BATCHED``; False otherwise."""
    if g.n_batch < MIN_BATCH_FOR_BATCHED:
        return False
    s1 = _phases_geometry(g)
    pad_h, pad_w = s1.k_h - 1, s1.k_w - 1
    weights = workspace.array("conv2d phases w", (g.stride_h * g.stride_w, g.c_in,
                                                  g.c_out * s1.k_h * s1.k_w), w.dtype)
    input_grad_phase_weights(w, g.stride_h, g.stride_w, s1.k_h, s1.k_w, weights)
    size = batched_scratch_size(g.n_batch, g.c_out, g.out_h, g.out_w, g.c_in, s1.height,
                                s1.width, pad_h, pad_w, g.stride_w,
                                numba.config.NUMBA_NUM_THREADS)
    scratch = workspace.array("conv2d", (size,), dx.dtype)
    conv2d_batched_forward(dy, weights, s1.k_h, s1.k_w, bias, pad_h, pad_w, dx, g.stride_h,
                           g.stride_w, g.pad_h, g.pad_w, scratch,
                           batched_by_tiles(g, dx.dtype, weights.shape[2], g.c_in))
    covered_h = s1.height * g.stride_h - g.pad_h  # input rows and columns no window reads
    covered_w = s1.width * g.stride_w - g.pad_w
    dx[:, :, covered_h:] = bias[:, None, None] + 0  # + 0: a bias of -0.0 writes 0.0
    dx[:, :, :, covered_w:] = bias[:, None, None] + 0
    return True


def _phases_backward(g, dy, x, w, dx, dw, workspace, accumulate):
    """dx by ``_phases_input_grad`` where it runs (so that dx alone and dx with dw are the
    same bits), dw and the rest of dx by the stride-1 backward on the phase planes."""
    direct = dx is not None and _phases_input_grad(g, dy, w, np.full(g.c_in, -0.0, dx.dtype),
                                                   dx, workspace)
    if direct and dw is None:
        return
    s1 = _phases_geometry(g)
    ws = _phase_weights(s1, g, w, workspace)
    xs = dxs = dws = None
    if dw is not None:
        xs = _phase_planes(s1, g, x, workspace, "conv2d phases x")
        split_phases(x, g.stride_h, g.stride_w, g.pad_h, g.pad_w, xs)
        dws = workspace.array("conv2d phases dw", ws.shape, w.dtype)
    if dx is not None and not direct:
        dxs = _phase_planes(s1, g, dx, workspace, "conv2d phases dx")
    # dw by the same stride-1 family with or without dx: the same bits either way
    pass_ = "input" if dws is None else "backward"
    choose(s1, pass_).backward(s1, dy, xs, ws, dxs, dws, workspace, False)
    if dxs is not None:
        merge_phases(dxs, g.stride_h, g.stride_w, g.pad_h, g.pad_w, dx)
    if dw is not None:
        merge_phase_weights(dws, g.stride_h, g.stride_w, dw, accumulate)


def _undilated(g):
    return not g.dilated and g.groups == 1


# -- depthwise: groups == C, a stencil per plane -----------------------------------------

def _depthwise(g):
    return g.groups > 1 and g.groups == g.c_in and g.c_out % g.c_in == 0


def _depthwise_s1_scratch(g, workspace, dtype):
    size = depthwise_s1_scratch_size(g.height, g.width, g.k_h, g.k_w, g.pad_h, g.pad_w,
                                     g.dil_h, g.dil_w)
    return workspace.per_thread("conv2d", size, dtype)


def _depthwise_forward(g, x, w, b, y, workspace):
    """Stride 1: flat runs of padded planes; otherwise runs of valid columns."""
    if _stride_1_any(g):
        conv2d_depthwise_forward_s1(x, w, b, g.pad_h, g.pad_w, g.dil_h, g.dil_w, y,
                                    _depthwise_s1_scratch(g, workspace, x.dtype))
    else:
        conv2d_depthwise_forward(x, w, b, g.stride_h, g.stride_w, g.pad_h, g.pad_w, g.dil_h,
                                 g.dil_w, y)


def _depthwise_backward(g, dy, x, w, dx, dw, workspace, accumulate):
    s1 = _stride_1_any(g)
    partial_sums = None if dw is None else workspace.array(
        "conv2d partial", depthwise_partial_shape(g.n_batch, g.c_out, g.k_h, g.k_w), w.dtype)
    if (s1 and dx is not None and dw is not None and g.c_out == g.c_in
            and pads_alike(g.k_h, g.k_w, g.pad_h, g.pad_w, g.dil_h, g.dil_w)):
        conv2d_depthwise_backward_s1(dy, x, w, g.pad_h, g.pad_w, g.dil_h, g.dil_w, dx, dw,
                                     _depthwise_s1_scratch(g, workspace, w.dtype), partial_sums,
                                     accumulate)
        return
    if dx is not None:
        if s1:
            conv2d_depthwise_backward_input_s1(dy, w, g.pad_h, g.pad_w, g.dil_h, g.dil_w, dx,
                                               _depthwise_s1_scratch(g, workspace, w.dtype))
        else:
            conv2d_depthwise_backward_input(dy, w, g.stride_h, g.stride_w, g.pad_h, g.pad_w,
                                            g.dil_h, g.dil_w, dx)
    if dw is not None:
        if s1:
            conv2d_depthwise_backward_weight_s1(
                dy, x, g.pad_h, g.pad_w, g.dil_h, g.dil_w, dw,
                _depthwise_s1_scratch(g, workspace, w.dtype), partial_sums, accumulate)
        else:
            scratch = workspace.per_thread(
                "conv2d", depthwise_scratch_size(g.k_h, g.k_w, g.out_w), w.dtype)
            conv2d_depthwise_backward_weight(dy, x, g.stride_h, g.stride_w, g.pad_h, g.pad_w,
                                             g.dil_h, g.dil_w, dw, scratch, partial_sums,
                                             accumulate)


def _stride_1_any(g):
    """Stride 1, any dilation."""
    return g.stride_h == 1 and g.stride_w == 1


def _stride_1(g):
    return g.stride_h == 1 and g.stride_w == 1 and not g.dilated and g.groups == 1


def _stride_1_dilated(g):
    return g.stride_h == 1 and g.stride_w == 1 and g.groups == 1


def _any_shape(g):
    return g.groups == 1


def _always(g, pass_):
    return True


def _weight_grad_by_patch_tiles(g):
    """Whether a weight gradient the shifted family could take runs in the patches
    family's tiles instead (``MIN_CHANNELS_FOR_DW_TILES_OVER_SHIFTED``)."""
    return (WEIGHT_GRAD_BY_PATCH_TILES and weight_grad_by_tiles(g, None)
            and g.c_in >= MIN_CHANNELS_FOR_DW_TILES_OVER_SHIFTED)


def _batched_suits(g, pass_):
    """Small planes in a batch: the shifted family's dropped columns would waste over a
    quarter of the work, or its runs are short (3x3 pad 1 on 12 to 16 px planes, 64
    samples, one core: batched 1.1-1.5x faster, AVX-512 and AVX2); or larger planes whose
    forward runs in the tiles (``MAX_PLANE_FOR_BATCHED_TILES``), except a weight gradient
    that the patches family's tiles take (``_weight_grad_by_patch_tiles``)."""
    plane = g.out_h * g.out_w
    return (g.n_batch >= MIN_BATCH_FOR_BATCHED
            and (4 * g.wasted > g.out_w or plane <= MAX_PLANE_FOR_BATCHED
                 or plane <= MAX_PLANE_FOR_BATCHED_TILES and g.k_h * g.k_w > 1
                 and batched_by_tiles(g, np.float32)
                 and not (pass_ == "weight" and _weight_grad_by_patch_tiles(g))))


def _forward_by_dots(g):
    """Whether the patches family's forward suits dot products over patch rows."""
    return g.c_in >= MIN_CHANNELS_FOR_DOTS and g.n_taps >= MIN_TAPS_FOR_DOTS and g.k_h * g.k_w > 1


def _flipped_geometry(g):
    """The geometry of dx of an undilated stride-1 convolution as the forward of dy with the
    flipped kernel (``_flipped_kernel``), padded by kernel - 1 - padding."""
    return g._replace(c_in=g.c_out, height=g.out_h, width=g.out_w, c_out=g.c_in,
                      out_h=g.height, out_w=g.width, pad_h=g.k_h - 1 - g.pad_h,
                      pad_w=g.k_w - 1 - g.pad_w)


def _input_by_dots_over_batched(g, dtype):
    """Whether the batched family's dx runs as the forward by dots in the tiles of dy with
    the flipped kernel (``BATCHED_INPUT_BY_DOTS``; padding below the kernel, and enough
    blocks of positions to share among threads)."""
    if not (BATCHED_INPUT_BY_DOTS and g.pad_h < g.k_h and g.pad_w < g.k_w):
        return False
    transposed = _flipped_geometry(g)
    return (block_count(g.n_batch, transposed.out_h, transposed.out_w)
            >= MIN_BLOCKS_FOR_INPUT_BY_DOTS
            and _forward_by_dots(transposed) and dots_in_tiles(transposed, dtype))


def _forward_by_dots_over_batched(g, pass_):
    """Whether a forward that the batched family would take runs by dots in the tiles
    instead (``BATCHED_FORWARD_BY_DOTS``; in float32's tiles, whatever the dtype)."""
    return (pass_ == "forward" and BATCHED_FORWARD_BY_DOTS and _stride_1(g)
            and _batched_suits(g, pass_)
            and _forward_by_dots(g) and dots_in_tiles(g, np.float32))


#: Every way to compute a pass, by name. ``family=`` takes a name or a family (the first
#: of its variants that suits the shapes, else its first).
FAMILIES = {f.name: f for f in (
    Family(
        name="depthwise", family="depthwise", variant="",
        kernels="conv2d_depthwise: forward, dx and dw as per-plane stencils; stride 1 as "
                "one loop over the flat zero-padded plane (3x3: the nine taps in one loop), "
                "other strides one multiply-add over a run of valid columns per tap; dw in "
                "fixed groups of samples",
        accepts=_depthwise, needs="groups == in_channels (depthwise)", suits=_always,
        forward=_depthwise_forward, backward=_depthwise_backward,
        layout=(depthwise_s1_scratch_size, depthwise_scratch_size, depthwise_partial_shape),
    ),
    Family(
        name="winograd", family="winograd", variant="",
        kernels="conv2d_winograd: forward and dx by F(2x2, 3x3) (input windows transformed, "
                "16 products per tile in the dense tiles or by shifted_sums_2, transformed "
                "back), over bands of tile rows of each dilation phase and group; dw by "
                "F(2x2, 3x3) too (input windows and dy's tiles transformed, dU = V Z over a "
                "band's tiles in the dense tiles, summed per band, transformed back) from 32 "
                "channels undilated where the CPU has a tile (winograd_weight_grad), else by "
                "the batched or shifted family, group by group",
        accepts=_winograd_accepts,
        needs="a 3x3 kernel, stride 1 and padding <= 2 * dilation",
        suits=_winograd_suits, forward=_winograd_forward, backward=_winograd_backward,
        layout=(winograd_layout, weight_grad_layout),
    ),
    Family(
        name="batched", family="batched", variant="",
        kernels="conv2d_batched: forward in the dense tiles reading the taps' runs in place "
                "(batched_by_tiles) or as sums of shifted rows (shifted_sums_2), dx as the "
                "latter, dw as dot products (dots_at), on chunks of up to 64 samples copied "
                "to (C, Hp, Wp, samples) order; dx, where the patches family's forward by "
                "dots runs in the dense tiles (AVX2), as that forward of dy with the flipped "
                "kernel",
        accepts=_stride_1, needs="stride 1 and dilation 1",
        suits=lambda g, pass_: (_batched_suits(g, pass_)
                                and not _forward_by_dots_over_batched(g, pass_)),
        forward=_batched_forward, backward=_batched_backward, layout=(batched_layout,),
    ),
    Family(
        name="shifted", family="shifted", variant="",
        kernels="conv2d_shifted: forward and dx as sums of shifted runs of the zero-padded "
                "planes (shifted_sums_2), dw as dot products (dots_at), sample by sample",
        accepts=_stride_1_dilated, needs="stride 1",
        suits=lambda g, pass_: not (pass_ == "weight" and _weight_grad_by_patch_tiles(g)
                                    or _forward_by_dots_over_batched(g, pass_)),
        forward=_shifted_forward, backward=_shifted_backward, layout=(shifted_layout,),
        reads_groups_in_place=True,
    ),
    Family(
        name="phases", family="phases", variant="",
        kernels="conv2d_phases: the input split into its stride x stride phases (space to "
                "depth), then the stride-1 family the shapes choose on those planes with "
                "the kernel's taps split likewise; dx and dw moved back; from 8 samples dx "
                "phase by phase as the batched forward of dy with the flipped phase kernels, "
                "written in place (a transposed convolution's forward, its bias added there)",
        accepts=_undilated, needs="dilation 1",
        suits=lambda g, pass_: (pass_ != "forward" and g.stride_h * g.stride_w > 1
                                and g.k_h % g.stride_h == 0 and g.k_w % g.stride_w == 0
                                and g.k_h * g.k_w > g.stride_h * g.stride_w
                                and (g.out_h * g.out_w < MAX_PLANE_FOR_PHASES
                                     or pass_ == "input" and g.n_batch >= MIN_BATCH_FOR_BATCHED)),
        forward=_phases_forward, backward=_phases_backward, layout=(phases_shape,),
        input_with_bias=_phases_input_grad,
    ),
    Family(
        name="patches_dots", family="patches", variant="dots",
        kernels="conv2d_patches: gathered patches; forward and dx as dot products over "
                "contiguous rows (gemm_nt; the forward's in the dense tiles against the "
                "weights in panels where dots_in_tiles), dw by gemm_nt or, from 12 input "
                "channels, in the dense tiles (weight_grad_by_tiles)",
        accepts=_any_shape, needs="",
        suits=lambda g, pass_: (_forward_by_dots(g) if pass_ == "forward"
                                else g.c_out >= MIN_DEPTH_FOR_DOTS),
        forward=partial(_patches_forward, by_dots=True),
        backward=partial(_patches_backward, by_dots=True),
        layout=PATCHES_LAYOUT,
    ),
    Family(
        name="patches_rows", family="patches", variant="rows",
        kernels="conv2d_patches: gathered patches; forward and dx in axpy form over rows "
                "(panel_product: the dense tiles, or gemm_nn on short depths), dw by gemm_nt "
                "or, from 12 input channels, in the dense tiles "
                "(weight_grad_by_tiles)",
        accepts=_any_shape, needs="", suits=_always,
        forward=partial(_patches_forward, by_dots=False),
        backward=partial(_patches_backward, by_dots=False),
        layout=PATCHES_LAYOUT,
    ),
)}

#: The default: each pass runs the first of these that accepts and suits its shapes. One
#: order per kind of CPU (``isa``); where an instruction set changes which family wins,
#: its order (or its own entries) goes here.
PREFERENCE = {
    "avx512": ("depthwise", "winograd", "batched", "shifted", "phases", "patches_dots",
               "patches_rows"),
    "avx2": ("depthwise", "winograd", "batched", "shifted", "phases", "patches_dots",
             "patches_rows"),
}
CPU_KIND = "avx512" if MASKED_VECTORS else "avx2"

#: What ``family=`` takes: an entry's name, or a family with variants (its variant then
#: chosen by shape).
NAMES = (*FAMILIES, *sorted({f.family for f in FAMILIES.values()} - set(FAMILIES)))


def named(name):
    """The entries ``family=name`` may run, in preference order: the one of that name, or
    the variants of that family (none: an unknown name)."""
    return [FAMILIES[n] for n in PREFERENCE[CPU_KIND] if name in (n, FAMILIES[n].family)]


def refusal(name, g):
    """Why ``family=name`` cannot run shapes g, or None when it can."""
    entries = named(name)
    if not entries:
        return f"family must be None or one of {', '.join(NAMES)}, got {name!r}"
    if not any(f.accepts(g) or f.accepts(g.one_group()) for f in entries):
        got = f"stride {(g.stride_h, g.stride_w)}"
        if g.dilated:
            got += f", dilation {(g.dil_h, g.dil_w)}"
        if entries[0].family == "winograd":
            got += f", kernel {(g.k_h, g.k_w)}, padding {(g.pad_h, g.pad_w)}"
        if g.groups > 1 or entries[0].family == "depthwise":
            got += f", groups {g.groups} of {g.c_in} input channels"
        return f"conv2d family {name!r} needs {entries[0].needs}, got {got}"
    return None


def _backward_pass(dx, dw):
    """The pass a backward is chosen for: "backward", or "input" (dx alone) or "weight" (dw
    alone)."""
    return "input" if dw is None else "weight" if dx is None else "backward"


@lru_cache(maxsize=1024)
def choose(g, pass_, name=None, without=None):
    """The entry that runs ``pass_`` (as ``Family.suits``) on shapes g: the first in
    preference order (of ``named(name)`` when given) that accepts and suits g, else the
    first that accepts g (a family asked for by name on shapes it does not suit). The
    caller has checked ``name`` (``refusal``). With groups, g is one group's geometry
    (``Geometry.one_group``) unless ``takes_groups`` found a family for the whole.
    ``without``: an entry's name to pass over (a family handing part of a pass on)."""
    order = named(name) if name is not None else [FAMILIES[n] for n in PREFERENCE[CPU_KIND]]
    candidates = [f for f in order if f.accepts(g) and f.name != without]
    for f in candidates:
        if f.suits(g, pass_):
            return f
    return candidates[0]


def _group_channels(a, group, groups, workspace, name):
    """Channels of ``group`` (of ``groups`` equal slices along axis 1) of a (N, K, H, W)
    array, as a contiguous copy in ``workspace``'s array ``name``."""
    size = a.shape[1] // groups
    copy = workspace.array(name, (a.shape[0], size, *a.shape[2:]), a.dtype)
    for_size(copy_channels, copy.size)(a, group * size, copy, 0, size)
    return copy


def _group_output(a, groups, workspace, name):
    """A contiguous (N, K / groups, H, W) array of ``workspace`` to compute one group's
    channels of a into."""
    return workspace.array(name, (a.shape[0], a.shape[1] // groups, *a.shape[2:]), a.dtype)


def _by_groups_forward(g, x, w, b, y, workspace, family):
    """The forward group by group: y's channels of group k from x's channels of group k
    and w[k*O/G:(k+1)*O/G] (contiguous already)."""
    one = g.one_group()
    entry = choose(one, "forward", family)
    c_out = one.c_out
    y_group = _group_output(y, g.groups, workspace, "conv2d group y")
    for k in range(g.groups):
        out = slice(k * c_out, (k + 1) * c_out)
        if entry.reads_groups_in_place:
            x_group, where = x, {"group": k}
        else:
            x_group, where = _group_channels(x, k, g.groups, workspace, "conv2d group x"), {}
        entry.forward(one, x_group, w[out], b[out], y_group, workspace, **where)
        for_size(copy_channels, y_group.size)(y_group, 0, y, out.start, c_out)


def _by_groups_backward(g, dy, x, w, dx, dw, workspace, accumulate, family, without=None):
    """The backward group by group, as ``_by_groups_forward`` (``without``: as ``choose``);
    dw's rows of a group are a contiguous slice of dw, written (or added to) in place."""
    one = g.one_group()
    entry = choose(one, _backward_pass(dx, dw), family, without)
    c_out = one.c_out
    dx_group = None if dx is None else _group_output(dx, g.groups, workspace, "conv2d group dx")
    for k in range(g.groups):
        out = slice(k * c_out, (k + 1) * c_out)
        dw_group = None if dw is None else dw[out]
        if entry.reads_groups_in_place:
            dy_group, x_group, where = dy, x, {"group": k}
        else:
            dy_group = _group_channels(dy, k, g.groups, workspace, "conv2d group dy")
            x_group = None if dw is None else _group_channels(x, k, g.groups, workspace,
                                                                "conv2d group x")
            where = {}
        entry.backward(one, dy_group, x_group, w[out], dx_group, dw_group, workspace,
                       accumulate, **where)
        if dx is not None:
            for_size(copy_channels, dx_group.size)(dx_group, 0, dx, k * one.c_in, one.c_in)


def takes_groups(g, pass_, name=None):
    """For a grouped g: the entry that computes all its groups at once (as ``choose``: the
    first of ``named(name)`` or the preference that accepts and suits g, else the first
    that accepts it), or None when it is to run group by group."""
    order = named(name) if name is not None else [FAMILIES[n] for n in PREFERENCE[CPU_KIND]]
    candidates = [f for f in order if f.accepts(g)]
    for f in candidates:
        if f.suits(g, pass_):
            return f
    return candidates[0] if candidates and name is not None else None


def conv2d_forward(x, w, b, stride_h, stride_w, pad_h, pad_w, y, workspace=None, family=None,
                   dilation=(1, 1), groups=1):
    """Writes y (N, O, OH, OW):
    ``y[n, o, i, j] = b[o] + sum_{c, ki, kj} x[n, c + G(o) C/G, i*sh + ki*dh - ph, j*sw + kj*dw - pw] * w[o, c, ki, kj]``
    with ``G(o) = o // (O / groups)`` and c over the C / groups channels of a group."""
    g = Geometry.of(x.shape, w.shape, y.shape, stride_h, stride_w, pad_h, pad_w, *dilation,
                    groups)
    workspace = workspace or Workspace()
    if groups == 1 or takes_groups(g, "forward", family):
        choose(g, "forward", family).forward(g, x, w, b, y, workspace)
    else:
        _by_groups_forward(g, x, w, b, y, workspace, family)


def conv2d_backward(dy, x, w, stride_h, stride_w, pad_h, pad_w, dx, dw, workspace=None,
                    accumulate=False, family=None, dilation=(1, 1), groups=1):
    """Writes dx (N, C, H, W) unless it is None, and dw (O, C / groups, KH, KW) unless it
    is None (adds the gradient to dw with ``accumulate``); x may be None when dw is.

    dx is the convolution of the stride-dilated dy with the flipped, channel-transposed
    kernel (see ``conv2d_patches_backward_input``);
    ``dw[o, c, ki, kj] = sum_{n, i, j} dy[n, o, i, j] * x[n, c + G(o) C/G, i*sh + ki*dh - ph, j*sw + kj*dw - pw]``.
    Asking for both at once lets the batched family copy dy into its layout once.
    """
    g = Geometry.of((x if dx is None else dx).shape, w.shape, dy.shape, stride_h, stride_w,
                    pad_h, pad_w, *dilation, groups)
    workspace = workspace or Workspace()
    pass_ = _backward_pass(dx, dw)
    if groups == 1 or takes_groups(g, pass_, family):
        choose(g, pass_, family).backward(g, dy, x, w, dx, dw, workspace, accumulate)
    else:
        _by_groups_backward(g, dy, x, w, dx, dw, workspace, accumulate, family)


def conv2d_backward_input(dy, w, stride_h, stride_w, pad_h, pad_w, dx, workspace=None,
                          family=None, dilation=(1, 1), groups=1, bias=None):
    """Writes dx (N, C, H, W) alone: ``conv2d_backward`` without dw; plus bias (C,) on
    every plane of channel c when given (a transposed convolution's forward), on the way
    out where the family's kernels can (``Family.input_with_bias``)."""
    if bias is not None and groups == 1:
        g = Geometry.of(dx.shape, w.shape, dy.shape, stride_h, stride_w, pad_h, pad_w,
                        *dilation)
        if choose(g, "input", family).input_with_bias(g, dy, w, bias, dx,
                                                      workspace or Workspace()):
            return
    conv2d_backward(dy, None, w, stride_h, stride_w, pad_h, pad_w, dx, None, workspace,
                    family=family, dilation=dilation, groups=groups)
    if bias is not None:
        for_size(add_bias, dx.size)(dx, bias)


def conv2d_backward_weight(dy, x, stride_h, stride_w, pad_h, pad_w, dw, workspace=None,
                           family=None, dilation=(1, 1), groups=1):
    """Writes dw (O, C / groups, KH, KW) alone: ``conv2d_backward`` without dx."""
    conv2d_backward(dy, x, dw, stride_h, stride_w, pad_h, pad_w, None, dw, workspace,
                    family=family, dilation=dilation, groups=groups)


def conv2d_forward_and_backward_weight(x, w, b, g, stride_h, stride_w, pad_h, pad_w, y, dw,
                                       workspace=None, accumulate=False, dilation=(1, 1),
                                       groups=1):
    """Writes y as ``conv2d_forward(x, w, b, ...)`` and dw (O, C / groups, KH, KW) as
    ``conv2d_backward_weight(g, x, ...)`` for g (N, O, OH, OW) shaped like y (adds it to dw
    with ``accumulate``): the backward of a transposed convolution, whose dx and dw both
    read the patches of its dy (here x). Where the table runs both passes on the patches
    family, one kernel gathers each block's patches once for both, and dw is the same as
    alone: with dw not in the tiles (``weight_grad_by_tiles``), y is ``patches_rows``'s
    forward bit for bit (transposed 4x4 stride 2, 64x32x16x16 -> 16, one core: 12.1 -> 9.2
    ms); with dw in the tiles, where the table's forward is ``patches_dots``, y is that
    forward's by the same dot products (the same shape on an AMD Zen 3: 11.3 -> 10.2 ms).
    Otherwise the passes run one after the other."""
    geometry = Geometry.of(x.shape, w.shape, y.shape, stride_h, stride_w, pad_h, pad_w,
                           *dilation, groups)
    workspace = workspace or Workspace()
    forward = choose(geometry, "forward") if groups == 1 else None
    if (forward is not None and forward.family == "patches"
            and choose(geometry, "backward").family == "patches"
            and (forward.name == "patches_dots" or not weight_grad_by_tiles(geometry, w.dtype))):
        _patches_weight_grad(geometry, g, x, dw, workspace, accumulate, w, b, y)
        return
    conv2d_forward(x, w, b, stride_h, stride_w, pad_h, pad_w, y, workspace, dilation=dilation,
                   groups=groups)
    conv2d_backward(g, x, w, stride_h, stride_w, pad_h, pad_w, None, dw, workspace, accumulate,
                    dilation=dilation, groups=groups)


@with_serial_twin
@kernel
def add_bias(y, b):
    """y (N, C, H, W) += b (C,) on every plane of channel c."""
    n_batch, channels = y.shape[0], y.shape[1]
    flat = y.reshape(n_batch * channels, y.shape[2] * y.shape[3])
    for plane in prange(n_batch * channels):
        row, value = flat[plane], b[plane % channels]
        for p in range(row.shape[0]):
            row[p] += value


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
