"""python -m iqrl.bench ...: `make bench` (iqrl/bench/cli.py has the options)."""

import sys

from iqrl.bench.cli import main

sys.exit(main())
