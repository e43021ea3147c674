"""``ledgerlearn audit``: replay a project's rounds from on-chain CIDs and commitments.

:mod:`.compare` is the pure comparison of committed and replayed results;
:mod:`.replay` fetches what it needs (chain events, reports, updates by CID) and reruns
the same pure round function the aggregator ran (docs/architecture.md, round step 7).
"""

from marketplace.audit.compare import AuditReport, RoundAudit, RoundFacts, compare_round
from marketplace.audit.replay import audit_project, model_cid, validation_commitment

__all__ = [
    "AuditReport",
    "RoundAudit",
    "RoundFacts",
    "audit_project",
    "compare_round",
    "model_cid",
    "validation_commitment",
]
