"""Where every bench keeps the figures it printed: bench/results/<name>-<time>.json."""
import contextlib
import json
from datetime import datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def save(figures, name):
    """Write the run's figures (a failure to write never fails the run)."""
    with contextlib.suppress(OSError):
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
        path.write_text(json.dumps(figures, indent=2, default=str) + "\n", encoding="utf-8")
        print(f"figures written to {path}")
