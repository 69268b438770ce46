"""Installs tests/faults.py's fault injection in every Python process started with this folder on
PYTHONPATH and IQRL_FAULTS set (a packed job's children included); does nothing otherwise."""

import os
import sys

if os.environ.get("IQRL_FAULTS"):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import faults

    faults.from_env()
