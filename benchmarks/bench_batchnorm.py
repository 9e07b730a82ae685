"""2-D batch norm with the batch's statistics (training), forward and backward (dx, dweight,
dbias): memory-bound, so tracked in GB/s (bytes read and written per second)."""

from .common import KernelSuite


class BatchNorm2D(KernelSuite):
    family = "batchnorm"
    params = KernelSuite.parameters("batchnorm")

    def time_kernel(self, *params):
        self.op.run()

    def track_gbytes_per_second(self, *params):
        return self.gbytes_per_second()

    track_gbytes_per_second.unit = "GB/s"
