"""Run from the repository root (``pytest examples``), each example finds its own ``src``.

Each example is also a standalone project: inside it, its own pyproject's
``pythonpath = ["src"]`` does the same.
"""

from __future__ import annotations

import sys
from pathlib import Path

for src in sorted(Path(__file__).parent.glob("*/src")):
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))
