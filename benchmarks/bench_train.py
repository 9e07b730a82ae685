"""Whole SGD training steps (forward, softmax cross-entropy, backward, update) of the MLP
784-256-128-10, LeNet-5 and the small ResNet (``fastbp.models.resnet``, batch norm in
training mode) through ``fastbp.Sequential``."""

from fastbp.bench.networks import fastbp_step

from .common import BY_NAME, DTYPES, THREADS, best_rate, of_family, significant, use_threads


class TrainStep:
    params = [[s.name for s in of_family("train")], DTYPES, THREADS]
    param_names = ["shape", "dtype", "threads"]
    timeout = 300

    def setup(self, shape, dtype, threads):
        use_threads(threads)
        self.batch = BY_NAME[shape].batch
        self.step = fastbp_step(BY_NAME[shape], dtype)
        self.step()

    def time_step(self, *params):
        self.step()

    def track_images_per_second(self, *params):
        return significant(best_rate(self.step, self.batch))

    track_images_per_second.unit = "images/s"

    def peakmem_step(self, *params):
        self.step()
