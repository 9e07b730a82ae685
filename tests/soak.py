"""A 10,000-step training soak of a small CNN: prints peak memory after every 1,000 steps.

Run it directly (``python tests/soak.py``) for the figures; ``test_soak.py`` runs it in a
fresh process and checks that memory stays flat. Printed as JSON: per chunk of steps, the
process's peak RSS (``ru_maxrss``), the bytes traced by ``tracemalloc`` at the chunk's end
(these grow only by the training history's one record per epoch) and at its peak above
that, and whether every layer still holds the workspace buffers it had after the first
chunk.
"""

import json
import resource
import sys
import tracemalloc

import numpy as np

import fastbp
from fastbp import layers as L

SAMPLES, BATCH = 170, 16  # 11 steps per epoch, the last one on 10 samples
EPOCHS_PER_CHUNK, CHUNKS = 91, 10  # 10 chunks of 1,001 steps


def small_cnn():
    return fastbp.Sequential(
        L.Conv2D(1, 4, 3, padding=1, seed=0), L.ReLU(), L.MaxPool2D(2),
        L.Conv2D(4, 8, 3, stride=2, padding=1, seed=1), L.ReLU(), L.Flatten(),
        L.Linear(8 * 2 * 2, 10, seed=2),
    )


def buffers(model):
    return [id(b) for layer in model.layers for b in layer.workspace._buffers.values()]


def main():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((SAMPLES, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 10, SAMPLES)
    model = small_cnn()
    trainer = fastbp.Trainer(model, fastbp.optim.SGD(model, 0.01, momentum=0.9, weight_decay=1e-4),
                             batch_size=BATCH, progress=False)
    tracemalloc.start()
    chunks, first_buffers = [], None
    for chunk in range(CHUNKS):
        tracemalloc.reset_peak()
        trainer.fit((x, y), epochs=(chunk + 1) * EPOCHS_PER_CHUNK)  # epochs in total
        current, peak = tracemalloc.get_traced_memory()
        first_buffers = first_buffers or buffers(model)
        chunks.append({
            "steps": trainer.epoch * -(-SAMPLES // BATCH),
            "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "traced_bytes": current,
            "traced_peak_above_end_bytes": peak - current,
            "same_workspace_buffers": buffers(model) == first_buffers,
        })
    json.dump(chunks, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
