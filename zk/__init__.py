"""LedgerLearn zero-knowledge layer: update sketches, the filter circuit, Groth16 provers."""
