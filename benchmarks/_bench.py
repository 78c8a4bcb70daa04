"""What the benchmark scripts share: their --child / --table modes and the skip when data is absent."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path


def handled(args: argparse.Namespace, child_row: Callable[[], dict], table: Callable[[Path], str]) -> bool:
    """True when this call was a child step (one JSON line printed) or --table; exits if the data is missing."""
    if args.child:
        print(json.dumps(child_row()))
        return True
    if args.table:
        print(table(args.out))
        return True
    if not (args.data / "train.tsv").is_file():
        sys.exit(f"skipped: SST-2 not found at {args.data} (see ../shared/data/README.md)")
    return False
