"""Element-wise activations, forward and backward: memory-bound, so tracked in GB/s
(bytes read and written per second) rather than GFLOP/s."""

from .common import KernelSuite


class Activation(KernelSuite):
    family = "activation"
    params = KernelSuite.parameters("activation")

    def time_kernel(self, *params):
        self.op.run()

    def track_gbytes_per_second(self, *params):
        return self.gbytes_per_second()

    track_gbytes_per_second.unit = "GB/s"
