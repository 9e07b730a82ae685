"""Max and mean pooling, forward and backward; a FLOP is one comparison or addition."""

from .common import KernelSuite


class Pool2D(KernelSuite):
    family = "pool"
    params = KernelSuite.parameters("pool")

    def time_kernel(self, *params):
        self.op.run()

    def track_gflops(self, *params):
        return self.gflops()

    track_gflops.unit = "GFLOP/s"
