"""Loss kernels (per-sample losses and the gradient in one pass): memory-bound, so
tracked in GB/s (bytes read and written per second)."""

from .common import KernelSuite


class Loss(KernelSuite):
    family = "loss"
    params = KernelSuite.parameters("loss")

    def time_kernel(self, *params):
        self.op.run()

    def track_gbytes_per_second(self, *params):
        return self.gbytes_per_second()

    track_gbytes_per_second.unit = "GB/s"
