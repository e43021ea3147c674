"""Read-only views of projects, from the chain and the content store.

One place that turns contract state and events into what people look at: the CLI's
``project list|status|history`` and the web dashboard both print these dataclasses
(each has ``to_json()``: plain JSON, amounts as wei integers). In attested projects each
round's :class:`Settlement` says whether the trainers confirmed or replaced the
aggregator's scores. Events are read through
:meth:`MarketClient.project_logs`, which scans each block once per process, so a view
polled every few seconds costs only the new blocks.
"""

from marketplace.views.history import RoundRecord, project_history
from marketplace.views.model import TrainedModel, fetch_model
from marketplace.views.projects import ProjectSummary, list_projects
from marketplace.views.settlement import Settlement, Vote, VoteGroup
from marketplace.views.status import ProjectStatus, Seat, project_status

__all__ = [
    "ProjectStatus",
    "ProjectSummary",
    "RoundRecord",
    "Seat",
    "Settlement",
    "TrainedModel",
    "Vote",
    "VoteGroup",
    "fetch_model",
    "list_projects",
    "project_history",
    "project_status",
]
