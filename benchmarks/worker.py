"""Entry point of a fresh workload process: `python -m benchmarks.worker MODULE FUNCTION KWARGS_JSON`
runs MODULE.FUNCTION(**KWARGS) and prints the dict it returns as one JSON line.

A fresh process per workload keeps each one's memory figures its own (see benchmarks/measure.py).
"""

import importlib
import json
import sys


def main() -> None:
    module, function, kwargs = sys.argv[1:]
    result = getattr(importlib.import_module(module), function)(**json.loads(kwargs))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
