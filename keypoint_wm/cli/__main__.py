"""``python -m keypoint_wm.cli ...`` (also what ``torchrun -m keypoint_wm.cli`` runs)."""

from __future__ import annotations

import sys

from keypoint_wm.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
