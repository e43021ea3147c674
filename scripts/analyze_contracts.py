"""Static analysis of the contracts: slither, with triage, for ``make analyze`` and CI.

slither 0.11 lives in its own virtual environment (``.venv-slither``, made by ``make
analyze``: it pins web3 below 8, we use 8) and compiles with our pinned solc-js through
``contracts/tools/slither-solc.cjs``, which answers like a native solc and forces the
build's settings (viaIR). OpenZeppelin (``node_modules``) is not analysed.

Prints every finding by impact; exits 1 if a high or medium finding is not in
``contracts/slither-triage.json`` (each entry names the detector, the element slither
names first, and why it is not real; see ``docs/static-analysis.md``); says which triage
entries no longer match anything, so the list does not rot.

    python scripts/analyze_contracts.py [--slither .venv-slither/bin/slither]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = ROOT / "contracts"
TRIAGE = CONTRACTS / "slither-triage.json"
BLOCKING = ("High", "Medium")
ELEMENT = re.compile(r"[\w$]+\.[\w$]+\([^)]*\)(?:\.[\w$]+)?")


def run_slither(slither: Path) -> list[dict]:
    """slither's detector results for ``contracts/src`` (JSON output)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "slither.json"
        cmd = [
            str(slither), "src", "--solc-standard-json",
            "--solc", str(CONTRACTS / "tools" / "slither-solc.cjs"),
            "--solc-remaps", "@openzeppelin/=../node_modules/@openzeppelin/",
            "--filter-paths", "node_modules", "--json", str(out),
        ]  # fmt: skip
        done = subprocess.run(cmd, cwd=CONTRACTS, capture_output=True, text=True)
        if not out.exists():
            sys.stderr.write(done.stdout + done.stderr)
            raise SystemExit(f"slither did not run (exit {done.returncode}); see above")
        report = json.loads(out.read_text())
    if not report.get("success", False):
        raise SystemExit(f"slither failed: {report.get('error')}")
    return list(report.get("results", {}).get("detectors", []))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slither", type=Path, default=ROOT / ".venv-slither" / "bin" / "slither")
    args = parser.parse_args()
    start = time.monotonic()
    findings = run_slither(args.slither.resolve())
    triage = json.loads(TRIAGE.read_text())["triaged"]
    used = [False] * len(triage)
    blocking = []
    print(f"{'impact':<14} {'confidence':<11} {'detector':<22} {'status':<9} element")
    for f in sorted(findings, key=lambda f: (BLOCKING + ("Low",)).index(f["impact"])
                    if f["impact"] in BLOCKING + ("Low",) else 9):  # fmt: skip
        match = ELEMENT.search(f["description"])
        first = match.group() if match else f["description"].split(" ", 1)[0]
        hit = [i for i, t in enumerate(triage)
               if t["check"] == f["check"] and first.startswith(t["where"])]  # fmt: skip
        for i in hit:
            used[i] = True
        status = "triaged" if hit else ("BLOCKING" if f["impact"] in BLOCKING else "noted")
        if status == "BLOCKING":
            blocking.append(f)
        print(f"{f['impact']:<14} {f['confidence']:<11} {f['check']:<22} {status:<9} {first}")
    by_impact = {i: sum(f["impact"] == i for f in findings) for i in
                 ("High", "Medium", "Low", "Informational", "Optimization")}  # fmt: skip
    print(f"slither: {len(findings)} findings {by_impact}; {len(blocking)} high/medium "
          f"untriaged; {time.monotonic() - start:.0f} s")  # fmt: skip
    stale = [t for t, u in zip(triage, used, strict=True) if not u]
    for t in stale:
        print(f"stale triage entry (matches nothing now; remove it): {t['check']} {t['where']}")
    for f in blocking:
        print(f"\n{f['impact']} {f['check']}: {f['description'].strip()}")
    if blocking:
        print("\nfix these, or triage them in contracts/slither-triage.json and "
              "docs/static-analysis.md with the reason they are not real")  # fmt: skip
    return 1 if blocking else 0


if __name__ == "__main__":
    sys.exit(main())
