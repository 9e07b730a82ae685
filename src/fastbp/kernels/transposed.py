"""An 8 x 8 block transposed in vector registers (``transpose_8x8``): a matrix's rows
packed into the columns of panels (``packed.packer``); and a whole matrix block by block
(``transpose_blocks``): planes into and out of the batched convolution's sample-innermost
layout, input rows into (column, channel) order (``conv2d_patches.gather_patch_rows``),
dy's rows for the Winograd weight gradient.

A loop that gathers one value from each of 8 (or 32) rows per step loads and stores one
value at a time, and where the rows are 4 KiB apart they share one set of the L1 cache and
evict each other between steps (1024 x 1024 float32 into panels of 32: 2.2 ms on an AMD Zen
3 core). ``transpose_8x8`` loads 8 runs of 8 values, shuffles them with LLVM's portable
``shufflevector`` (unpack pairs, pairs of pairs, halves: 24 shuffles on AVX2; other
targets get their own instructions) and stores 8 runs of 8.
"""

import llvmlite.ir as ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._jit import serial_kernel

SIZE = 8

_PAIRS = ([0, 8, 1, 9, 4, 12, 5, 13], [2, 10, 3, 11, 6, 14, 7, 15])
_PAIRS_OF_PAIRS = ([0, 1, 8, 9, 4, 5, 12, 13], [2, 3, 10, 11, 6, 7, 14, 15])
_HALVES = ([0, 1, 2, 3, 8, 9, 10, 11], [4, 5, 6, 7, 12, 13, 14, 15])


def _transposed(builder, rows):
    """The 8 columns of 8 row vectors, by three rounds of shuffles."""
    def shuffle(a, b, mask):
        return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(ir.IntType(32), 8), mask))

    pairs = [shuffle(rows[i], rows[i + 1], mask) for i in range(0, 8, 2) for mask in _PAIRS]
    # pairs: rows 0-1 low, high; rows 2-3 low, high; ... Pairs of pairs take the same half of
    # two row pairs: quads[i] holds columns i and i + 4 of rows 0-3 (i < 4) or 4-7.
    quads = [shuffle(pairs[base + half], pairs[base + half + 2], mask)
             for base in (0, 4) for half in (0, 1) for mask in _PAIRS_OF_PAIRS]
    columns = [None] * 8
    for i in range(4):
        columns[i], columns[i + 4] = (shuffle(quads[i], quads[i + 4], mask) for mask in _HALVES)
    return columns


def _block_start(builder, context, array_type, array, row, col):
    """A byte pointer to ``array[row, col]`` of a 2-D array, and its row step in bytes."""
    array = context.make_array(array_type)(context, builder, array)
    row_bytes = cgutils.unpack_tuple(builder, array.strides, 2)[0]
    bytes_ = ir.IntType(8).as_pointer()
    start = builder.gep(builder.bitcast(array.data, bytes_), [builder.mul(row, row_bytes)])
    start = builder.gep(builder.bitcast(start, array.data.type), [col])
    return builder.bitcast(start, bytes_), row_bytes


def _runs(builder, start, row_bytes, vector):
    """Pointers to the 8 runs of 8 values from ``start``, ``row_bytes`` apart."""
    steps = (builder.mul(row_bytes, ir.Constant(row_bytes.type, i)) for i in range(SIZE))
    return [builder.bitcast(builder.gep(start, [step]), vector) for step in steps]


@intrinsic
def transpose_8x8(typingctx, a, row, col, out, out_row, out_col):
    """``out[out_row + j, out_col + i] = a[row + i, col + j]`` for i, j < 8: a and out 2-D
    arrays of one dtype whose rows are runs (second stride one element), any row strides.
    Not bounds-checked: the caller keeps the block inside both."""
    if not (isinstance(a, types.Array) and isinstance(out, types.Array) and a.ndim == 2
            and out.ndim == 2 and out.dtype == a.dtype):
        return None

    def codegen(context, builder, signature, args):
        a_value, row_value, col_value, out_value, out_row_value, out_col_value = args
        element = context.get_value_type(signature.args[0].dtype)
        vector = ir.VectorType(element, SIZE).as_pointer()
        align = context.get_abi_sizeof(element)
        rows = []
        for source in _runs(builder, *_block_start(builder, context, signature.args[0], a_value,
                                                   row_value, col_value), vector):
            load = builder.load(source)
            load.align = align
            rows.append(load)
        targets = _runs(builder, *_block_start(builder, context, signature.args[3], out_value,
                                               out_row_value, out_col_value), vector)
        for column, target in zip(_transposed(builder, rows), targets):
            builder.store(column, target).align = align
        return context.get_dummy_value()

    return types.none(a, types.intp, types.intp, out, types.intp, types.intp), codegen


@serial_kernel
def transpose_blocks(a, out):
    """out (n, m) = a (m, n).T, both 2-D with contiguous rows: in 8 x 8 blocks in registers
    where both sides are 8 or more (the last block of each axis overlapping the one before
    rather than running short), one value at a time elsewhere."""
    m, n = a.shape
    if m < SIZE or n < SIZE:
        for i in range(n):
            dst = out[i]
            for j in range(m):
                dst[j] = a[j, i]
        return
    for i0 in range(0, n, SIZE):
        i = min(i0, n - SIZE)
        for j0 in range(0, m, SIZE):
            transpose_8x8(a, min(j0, m - SIZE), i, out, i, min(j0, m - SIZE))
