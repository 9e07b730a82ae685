"""Benchmark support: the named shapes and their work counts (``shapes``), the raw kernel
calls timed by the asv suite in ``benchmarks/`` (``kernels``), the benchmark networks
(``networks``), the NumPy and PyTorch peers, start-up latency (``startup``) and the
side-by-side comparison ``compare.main`` (``benchmarks/compare.py``, ``fastbp bench``).
"""
