"""The persistence port: the records (``store/records.py``) and the protocols by port
(``store/ports.py``) every database adapter implements, imported from here.

Services talk only to these protocols, each to the narrowest it needs; ``open_store(url)``
picks the adapter by URL scheme. Nothing here knows SQL.
"""

from __future__ import annotations

from gateway.store.browsing import BrowseStore
from gateway.store.ports import (
    JobStore,
    KeyStore,
    MoneyStore,
    ReportStore,
    SchemaStore,
    Store,
)
from gateway.store.records import (
    TERMINAL_STATUSES,
    UNKNOWN_OUTCOME_CODE,
    UPDATABLE_JOB_FIELDS,
    Admission,
    AdmissionPlan,
    ApiKey,
    Asset,
    BudgetLimit,
    CacheResult,
    Deletion,
    IdempotencyKeyTaken,
    IdempotencyRecord,
    Job,
    JobChanges,
    JobStatus,
    KeyRevoked,
    MetricsSnapshot,
    MoneyState,
    Order,
    Team,
    TrafficLimit,
    UsageRow,
)
from gateway.store.webhook_records import WebhookStore

__all__ = [
    "TERMINAL_STATUSES",
    "UNKNOWN_OUTCOME_CODE",
    "UPDATABLE_JOB_FIELDS",
    "Admission",
    "AdmissionPlan",
    "ApiKey",
    "Asset",
    "BrowseStore",
    "BudgetLimit",
    "CacheResult",
    "Deletion",
    "IdempotencyKeyTaken",
    "IdempotencyRecord",
    "Job",
    "JobChanges",
    "JobStatus",
    "JobStore",
    "KeyRevoked",
    "KeyStore",
    "MetricsSnapshot",
    "MoneyState",
    "MoneyStore",
    "Order",
    "ReportStore",
    "SchemaStore",
    "Store",
    "Team",
    "TrafficLimit",
    "UsageRow",
    "WebhookStore",
]
