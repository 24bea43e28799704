"""Flywheel-ready training datasets from production traces, with feedback and lineage.

* :mod:`.feedback` - scores, labels, comments and corrections on traces and
  spans (API, CLI, and evaluation attributes carried on spans);
* :mod:`.feedback_kafka` - the feedback topic: producer for the collector,
  consumer for the pipeline;
* :mod:`.export` - ``export_dataset``: chat fine-tuning JSONL, Parquet,
  preference pairs, trajectories; streaming;
* :mod:`.hygiene` - redaction, exact and near-duplicate removal, splits;
* :mod:`.lineage` - manifests, and the spans <-> datasets questions.
"""

from agentledger.pipeline.services.datasets.export import (
    FORMATS,
    ExportError,
    ExportRequest,
    demo_dataset,
    export_dataset,
)
from agentledger.pipeline.services.datasets.feedback import (
    FeedbackIn,
    FeedbackRecord,
    feedback_from_spans,
    list_feedback,
    resolve_trace_ids,
    to_record,
    write_feedback,
)
from agentledger.pipeline.services.datasets.hygiene import DatasetRedactor
from agentledger.pipeline.services.datasets.lineage import (
    MEMBER_SPANS_SQL,
    dataset_spans,
    datasets_of_span,
    get_dataset,
    list_datasets,
    record_dataset,
)
from agentledger.pipeline.services.datasets.selection import ExportFilters, FeedbackFilter

__all__ = [
    "FORMATS",
    "MEMBER_SPANS_SQL",
    "ExportError",
    "ExportFilters",
    "ExportRequest",
    "FeedbackFilter",
    "FeedbackIn",
    "FeedbackRecord",
    "DatasetRedactor",
    "dataset_spans",
    "datasets_of_span",
    "demo_dataset",
    "export_dataset",
    "feedback_from_spans",
    "get_dataset",
    "list_datasets",
    "list_feedback",
    "record_dataset",
    "resolve_trace_ids",
    "to_record",
    "write_feedback",
]
