"""The affine (dense) layer: forward, input gradient, weight and bias gradients."""

from .common import KernelSuite


class Affine(KernelSuite):
    family = "linear"
    params = KernelSuite.parameters("linear")

    def time_kernel(self, *params):
        self.op.run()

    def track_gflops(self, *params):
        return self.gflops()

    track_gflops.unit = "GFLOP/s"
