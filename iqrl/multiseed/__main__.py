"""python -m iqrl.multiseed seeds=0,1,2,3 agent=iqrl task=... out=ROOT [key=value ...]: the K-seed mode."""

import sys

from iqrl.multiseed.runs import main
from iqrl.train import stop_on_signals

sys.exit(main(should_stop=stop_on_signals("iqrl.multiseed")))
