"""python -m iqrl.bench ...: `make bench` (iqrl/bench/measure.py has the options)."""

import sys

from iqrl.bench.measure import main

sys.exit(main())
