"""Access control's state: the API keys (``keys``) and the log of every read of content (``log``),
both kept as records in the insert-only record log."""

from agentledger.pipeline.services.access.keys import (
    ApiKey,
    KeyBook,
    KeyConflict,
    KeyNotFound,
    new_secret,
)
from agentledger.pipeline.services.access.log import AccessRecorder, read_access_log

__all__ = [
    "AccessRecorder",
    "ApiKey",
    "KeyBook",
    "KeyConflict",
    "KeyNotFound",
    "new_secret",
    "read_access_log",
]
