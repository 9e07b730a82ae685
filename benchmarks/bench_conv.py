"""2-D convolution: forward, input, weight and bias gradients."""

from .common import KernelSuite


class Conv2D(KernelSuite):
    family = "conv"
    params = KernelSuite.parameters("conv")

    def time_kernel(self, *params):
        self.op.run()

    def track_gflops(self, *params):
        return self.gflops()

    track_gflops.unit = "GFLOP/s"
