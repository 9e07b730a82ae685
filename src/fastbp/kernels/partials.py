"""Parallel sums with a fixed partition: partial sums per fixed group, added in group order,
so a total never depends on how many threads computed the partials."""

from numba import prange

from ._jit import reduction_kernel

GROUP = 4  # samples per partial weight gradient, fixed so sums never depend on threads


@reduction_kernel
def sum_partials(partial, out, accumulate):
    """out (M, K) (+)= partial (G, M, K) summed over G in order, parallel over rows of out;
    with ``accumulate`` the sum is added to out, otherwise it replaces it."""
    for m in prange(out.shape[0]):
        for k in range(out.shape[1]):
            total = partial[0, m, k]
            for g in range(1, partial.shape[0]):
                total += partial[g, m, k]
            out[m, k] = out[m, k] + total if accumulate else total
