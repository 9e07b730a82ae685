"""Arrays on the stack, for accumulators that LLVM is to keep in registers.

A numba array (``np.empty``) lives on the heap, where LLVM cannot tell that nothing else
reads it, so a loop that adds into one loads and stores it every iteration. An array of
a constant size on the stack (an ``alloca``) that never leaves the function is promoted
to registers once its loops are unrolled: ``packed``'s tile of MR x NR running sums of a
matrix product (``stack_pointer(MR * NR, out.dtype)``) stays in vector registers.
Portable LLVM: no instruction set is named.
"""

import llvmlite.ir as ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def stack_pointer(typingctx, count, dtype):
    """A pointer to ``count`` (a compile-time constant) uninitialised elements of
    ``dtype`` (a NumPy scalar type or an array's ``.dtype``) in the calling function's
    frame, valid until it returns: ``carray(stack_pointer(64, a.dtype), (64,))`` is the
    array. (Not wrapped in a function: the frame would be the wrapper's.)"""
    if not isinstance(count, types.IntegerLiteral):
        return None
    element = getattr(dtype, "dtype", dtype)
    size = count.literal_value

    def codegen(context, builder, signature, args):
        return cgutils.alloca_once(builder, context.get_value_type(element),
                                   size=ir.Constant(ir.IntType(64), size))

    return types.CPointer(element)(count, dtype), codegen
