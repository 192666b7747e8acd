"""``python -m recbole_coldmeta.benchmarks.speed``: see :mod:`recbole_coldmeta.benchmarks.speed`."""

from recbole_coldmeta.benchmarks.speed.cli import main

if __name__ == "__main__":
    main()
