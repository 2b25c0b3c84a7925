"""Dist-Space benchmarks: `python -m benchmarks [NAME...] [--list] [--quick] [--repeat N]`.

To add one, write a module here with a function decorated `@benchmark("name")`
(benchmarks/registry.py) that takes `RunOptions` and yields `Figure`s; it is found by import.
Measure workloads in fresh processes with benchmarks/measure.py, so memory figures see Rust
allocations too.
"""
