"""Speed and memory benchmarks (not tests): run from the repository root as ``python -m bench.<name>``.

Every benchmark uses ``bench.harness``: interleaved timing, peak memory where it matters, the code and machine
measured, and one writer for ``bench/results/<name>.{json,md}``. Inputs come from the pipeline itself (a cached
``dvc repro`` of a copy of this project) or from its generators, never from hand-made data.
"""
