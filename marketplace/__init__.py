"""LedgerLearn contribution marketplace: contracts client, storage, learning, aggregation."""

import sys as _sys

__version__ = "0.1.0"

#: CPython's default recursion limit, what every LedgerLearn process runs with.
RECURSION_LIMIT = 1000


def _keep_recursion_limit() -> None:
    """Undo py_ecc's process-wide ``sys.setrecursionlimit(100000)``.

    eth-keys imports py_ecc, whose ``__init__`` raises the limit to 100,000 for its
    recursive field exponentiation. With that limit, any recursion an attacker can drive
    (200,000 nested JSON brackets, a deeply nested object's ``repr``) overflows the C stack
    and the node dies with SIGSEGV instead of a ``RecursionError``. Importing py_ecc here,
    first, and restoring the limit keeps it out of every node; the one caller that needs
    deep recursion (:mod:`zk.verify_pyecc`) raises it only around its own computation.
    """
    before = _sys.getrecursionlimit()
    try:
        import py_ecc  # noqa: F401  (imported for its side effect, undone below)
    except ImportError:
        return
    _sys.setrecursionlimit(before if before < 100_000 else RECURSION_LIMIT)


_keep_recursion_limit()
