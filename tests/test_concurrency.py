"""One model served from several threads at once, and kernels in forked processes: the
threading set-up of ``fastbp.threads`` (numba's TBB layer) makes both safe."""

import multiprocessing
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastbp
from fastbp import models, threads


def lenet():
    return models.lenet5(image_size=16, seed=0)


def test_kernels_run_on_the_tbb_threading_layer():
    layer, concurrent_safe, fork_safe = threads.threading_layer()
    assert (layer, concurrent_safe, fork_safe) == ("tbb", True, True)


@pytest.mark.parametrize("workers", [2, 4])
def test_one_model_serves_several_threads_at_once(workers, rng):
    model = lenet()
    inputs = [rng.standard_normal((16 + 8 * (i % 3), 1, 16, 16)).astype(np.float32)
              for i in range(24)]
    expected = [model.forward(x, training=False) for x in inputs]
    with ThreadPoolExecutor(workers) as pool:
        for _ in range(3):
            outputs = list(pool.map(lambda x: model.forward(x, training=False), inputs))
            for out, want in zip(outputs, expected):
                assert out.tobytes() == want.tobytes()


def test_each_thread_backpropagates_its_own_forward(rng):
    """The input a layer caches for its backward is kept per thread. (Parameter gradients
    are one set of arrays per model: training stays one thread's job.)"""
    model = fastbp.Sequential(fastbp.ReLU(), fastbp.MaxPool2D(2), fastbp.AvgPool2D(3, 1, 1),
                              fastbp.Flatten())
    inputs = [rng.standard_normal((8, 3, 16, 16)) for _ in range(24)]

    def input_gradient(x):
        y = model.forward(x)
        return model.backward(np.arange(y.size, dtype=y.dtype).reshape(y.shape))

    expected = [input_gradient(x) for x in inputs]
    with ThreadPoolExecutor(4) as pool:
        for dx, want in zip(pool.map(input_gradient, inputs), expected):
            assert dx.tobytes() == want.tobytes()


def _forward_in_child(x):
    return _forked_model.forward(x, training=False)


_forked_model = None


def test_a_process_forked_after_kernels_ran_runs_them_too(rng):
    global _forked_model
    _forked_model = lenet()
    inputs = [rng.standard_normal((32, 1, 16, 16)).astype(np.float32) for _ in range(4)]
    expected = [_forked_model.forward(x, training=False) for x in inputs]  # threads started
    with multiprocessing.get_context("fork").Pool(2) as pool:
        outputs = pool.map_async(_forward_in_child, inputs).get(timeout=60)
    for out, want in zip(outputs, expected):
        assert out.tobytes() == want.tobytes()
