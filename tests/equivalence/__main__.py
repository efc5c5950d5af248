"""`python -m tests.equivalence [--only qwen3]`: the model x check table; exit 1 on any failure."""

from __future__ import annotations

import argparse
import sys

from tests.equivalence.runner import main


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tests.equivalence", description=__doc__)
    parser.add_argument("--only", help="run only modules whose id (e.g. qwen3/cpu) contains this text")
    sys.exit(main(parser.parse_args().only))
