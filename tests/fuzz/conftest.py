"""Print the number of fuzz cases run per target at the end of the session."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fuzzing import COUNTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not COUNTS:
        return
    terminalreporter.section("fuzz cases per target")
    for target, count in sorted(COUNTS.items()):
        terminalreporter.write_line(f"{target:<40} {count:>8}")
    terminalreporter.write_line(f"{'total':<40} {sum(COUNTS.values()):>8}")
    out = os.environ.get("LEDGERLEARN_FUZZ_COUNTS")
    if out:
        Path(out).write_text(json.dumps(dict(sorted(COUNTS.items())), indent=2) + "\n")
