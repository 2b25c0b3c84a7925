"""Dist-Space benchmarks: `python -m benchmarks [NAME...] [--list] [--quick] [--repeat N]`.

To add one, write a module here with a function decorated `@benchmark("name")`
(benchmarks/registry.py) that takes `RunOptions` and yields `Figure`s; it is found by import.
Declare it `cheap=True` if its `--quick` run takes seconds and needs no more than the tests do
(no daemon mesh, npm or cargo build): the test suite then runs it
(tests/benchmarks/test_benchmarks_quick.py).
Measure workloads in fresh processes with benchmarks/measure.py, so memory figures see Rust
allocations too.
"""
