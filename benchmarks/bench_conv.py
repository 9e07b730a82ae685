"""2-D convolution: forward, input, weight and bias gradients; and the transposed
convolution's, which run on the same kernels."""

from .common import KernelSuite


class Conv2D(KernelSuite):
    family = "conv"
    params = KernelSuite.parameters("conv")

    def time_kernel(self, *params):
        self.op.run()

    def track_gflops(self, *params):
        return self.gflops()

    track_gflops.unit = "GFLOP/s"


class ConvTranspose2D(Conv2D):
    """The same timings and GFLOP/s, on the transposed convolution's shapes and kernels."""

    family = "conv_transpose"
    params = KernelSuite.parameters("conv_transpose")
