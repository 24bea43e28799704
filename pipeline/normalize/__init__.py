"""Normalization: OTLP requests in, canonical span rows and content records out."""

from agentledger.pipeline.normalize.base import (
    NormalizedBatch,
    NormalizeError,
    Normalizer,
    SourcePosition,
)
from agentledger.pipeline.normalize.native import (
    NativeNormalizer,
    make_normalizer,
    native_available,
)
from agentledger.pipeline.normalize.otlp import OtlpNormalizer

__all__ = [
    "NormalizedBatch",
    "NormalizeError",
    "Normalizer",
    "SourcePosition",
    "OtlpNormalizer",
    "NativeNormalizer",
    "make_normalizer",
    "native_available",
]
