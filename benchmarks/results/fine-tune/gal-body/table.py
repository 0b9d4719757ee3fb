"""This folder's table (3 seeds beside recipe (e) from scratch), made by ../gal-body-10ep/table.py.

That script began as a copy of the one first written here and adds --strategy and --compare; one
script now serves every fine-tune folder. This path stays for the commands recorded here, with
this folder as the default --folder:

    python3 benchmarks/results/fine-tune/gal-body/table.py [--folder DIR] [--budget 150] ...
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    if not any(arg == "--folder" or arg.startswith("--folder=") for arg in sys.argv[1:]):
        sys.argv[1:1] = ["--folder", str(HERE)]
    runpy.run_path(str(HERE.parent / "gal-body-10ep" / "table.py"), run_name="__main__")
