"""Fan-out benchmark: mrclient against the async reference client and raw gRPC.

Not part of the installed package. ``make bench`` and ``make bench-quick`` run
it; ``python -m benchmarks.run --help`` lists its options. The method and the
figures of a full run are in ``docs/performance.rst``.
"""
