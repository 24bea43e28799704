"""Erasure of a data subject's content (GDPR art. 17), recorded in the ledger.

* :mod:`.subject` - ``KEY=VALUE`` to the span column that names a subject;
* :mod:`.service` - ``erase``: every copy of the subject's text removed, awaited, and an erasure
  record appended (a ledger leaf that keeps ``verify`` OK);
* :mod:`.marks` - what an audit shows where erased content was.
"""

from agentledger.pipeline.services.erasure.marks import erasure_marks, mark_erased
from agentledger.pipeline.services.erasure.service import erase
from agentledger.pipeline.services.erasure.subject import SUBJECT_KEYS, Subject, parse_subject

__all__ = ["SUBJECT_KEYS", "Subject", "erase", "erasure_marks", "mark_erased", "parse_subject"]
