"""Cohorts: new principals that behave alike, the shape of a scripted extraction campaign.

A campaign spreads its requests over many fresh accounts so that no account,
and often not even the agent's total volume, stands out. What the accounts
cannot hide is that they are new and that they send the same templated
prompt with a few slots filled in. So:

1. take the principals first seen within ``cohort_new_hours`` and active in
   the window;
2. MinHash each of their inputs (character 5-grams of the lower-cased text,
   digits folded to ``0``: slot values change a few shingles, the template
   keeps most of them);
3. link two principals when any of their inputs are near-duplicates
   (estimated Jaccard >= ``cohort_similarity``), and take connected components;
4. a component of at least ``cohort_min_principals`` principals is a cohort:
   reported with its size, its template (the medoid input), how alike its
   accounts' volume and timing are, and example traces.

Regular new users ask varied questions, and rarely arrive five at a time with
the same words: the test is the similarity, not the volume.
"""

from __future__ import annotations

import hashlib
import re
import statistics
from collections import Counter
from datetime import timedelta
from typing import Any

import numpy as np

from agentledger.pipeline.derive.signals import Anomaly, Context, Found, tenant_has_baseline, utc
from agentledger.pipeline.derive.usage import floor_hour
from agentledger.schemas.analytics import USAGE_TABLE, AnomalyType

__all__ = ["cohorts", "minhash", "shingles", "similarity_matrix", "normalise"]

_PERMUTATIONS = 64
_MASKS = (
    np.random.default_rng(20260)
    .integers(0, 2**63 - 1, size=_PERMUTATIONS, dtype=np.int64)
    .astype(np.uint64)
)
_DIGITS = re.compile(r"\d+")
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Lower case, runs of digits as ``0``, whitespace collapsed: what a template keeps."""
    return _SPACE.sub(" ", _DIGITS.sub("0", text.lower())).strip()


def shingles(text: str, k: int = 5) -> set[str]:
    t = normalise(text)
    if len(t) <= k:
        return {t} if t else set()
    return {t[i : i + k] for i in range(len(t) - k + 1)}


def minhash(text: str) -> np.ndarray:
    """64 min-wise hashes (xor-masked 64-bit BLAKE2 of the shingles); all-ones for empty text."""
    grams = shingles(text)
    if not grams:
        return np.full(_PERMUTATIONS, np.iinfo(np.uint64).max, dtype=np.uint64)
    hashes = np.fromiter(
        (int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "big") for g in grams),
        dtype=np.uint64,
        count=len(grams),
    )
    signature: np.ndarray = (hashes[:, None] ^ _MASKS[None, :]).min(axis=0)
    return signature


def similarity_matrix(signatures: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity of every pair of rows: the share of equal min-hashes."""
    n = signatures.shape[0]
    out = np.zeros((n, n), dtype=np.float64)
    for i in range(n):  # row by row: n x 64 at a time, not n x n x 64
        out[i] = (signatures == signatures[i]).mean(axis=1)
    return out


_NEW_PRINCIPALS = f"""
SELECT principal_id, toUInt32(min(hour)) AS first
FROM {USAGE_TABLE} FINAL
WHERE tenant = {{tenant:String}} AND principal_id != '' AND calls > 0 AND hour < toDateTime({{w1:UInt32}}, 'UTC')
GROUP BY principal_id
HAVING first >= {{new0:UInt32}} AND max(hour) >= toDateTime({{w0:UInt32}}, 'UTC')
"""
_INPUTS = """
SELECT trace_id, any(principal_id) AS principal, anyIf(agent_name, agent_name != '') AS agent,
       toUInt32(min(start_time)) AS t,
       argMinIf(input_preview, start_time, parent_span_id = '' AND input_preview != '') AS root_text,
       argMinIf(input_preview, start_time, kind = 'LLM' AND input_preview != '') AS llm_text
FROM spans
WHERE tenant = {tenant:String} AND principal_id IN {principals:Array(String)}
  AND start_time >= toDateTime64({w0:Int64}, 9, 'UTC') AND start_time < toDateTime64({w1:Int64}, 9, 'UTC')
GROUP BY trace_id
HAVING root_text != '' OR llm_text != ''
ORDER BY cityHash64(trace_id)
LIMIT {limit:UInt32}
"""


class _Components:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


def cohorts(ctx: Context) -> Found:
    """New principals of the window linked by near-duplicate inputs, in groups of ``cohort_min_principals``."""
    s = ctx.settings
    found = Found()
    if not tenant_has_baseline(ctx):
        return found  # every principal of a young tenant is new: no cohort stands out
    new0 = int(ctx.window_start.timestamp()) - s.cohort_new_hours * 3600
    new = {
        r["principal_id"]: r["first"]
        for r in ctx.store.query_rows(_NEW_PRINCIPALS, ctx.params(new0=new0))
    }
    found.tests = 1
    if len(new) < s.cohort_min_principals:
        return found
    rows = ctx.store.query_rows(
        _INPUTS, ctx.params(principals=sorted(new), limit=s.cohort_max_inputs)
    )
    if not rows:
        return found
    texts = [r["root_text"] or r["llm_text"] for r in rows]
    sims = similarity_matrix(np.stack([minhash(t) for t in texts]))
    principals = sorted({r["principal"] for r in rows})
    index = {p: i for i, p in enumerate(principals)}
    comps = _Components(len(principals))
    pairs = np.argwhere(np.triu(sims >= s.cohort_similarity, k=1))
    for i, j in pairs:
        if rows[i]["principal"] != rows[j]["principal"]:
            comps.union(index[rows[i]["principal"]], index[rows[j]["principal"]])
    groups: dict[int, list[int]] = {}
    for k, r in enumerate(rows):
        groups.setdefault(comps.find(index[r["principal"]]), []).append(k)
    found.tests = max(1, len(groups))
    for members in groups.values():
        accounts = {rows[k]["principal"] for k in members}
        if len(accounts) < s.cohort_min_principals:
            continue
        found.anomalies.append(_cohort_anomaly(ctx, rows, texts, sims, members, accounts, new))
    return found


def _cohort_anomaly(
    ctx: Context,
    rows: list[dict[str, Any]],
    texts: list[str],
    sims: np.ndarray,
    members: list[int],
    accounts: set[str],
    new: dict[str, int],
) -> Anomaly:
    sub = sims[np.ix_(members, members)]
    n = len(members)
    mean_sim = float((sub.sum() - n) / (n * (n - 1))) if n > 1 else 1.0
    medoid = members[int(sub.sum(axis=1).argmax())]
    template = normalise(texts[medoid])
    agent, _ = Counter(rows[k]["agent"] for k in members).most_common(1)[0]
    runs = Counter(rows[k]["principal"] for k in members)
    per_account = statistics.median(runs.values())
    spread = statistics.pstdev(runs.values()) / max(statistics.mean(runs.values()), 1e-9)
    first = min(rows[k]["t"] for k in members)
    start = floor_hour(utc(first))
    arrived = max(new[a] for a in accounts) - min(new[a] for a in accounts)
    score = round(len(accounts) * mean_sim, 3)
    traces = sorted(rows[k]["trace_id"] for k in members)[:5]
    return Anomaly(
        ctx.tenant,
        AnomalyType.COHORT.value,
        "principals",
        {"agent_name": agent, "template": template[:80]},
        start,
        start + timedelta(hours=1),
        score,
        0.0,
        float(len(accounts)),
        traces,
        f"{len(accounts)} accounts first seen within {arrived // 3600 + 1} h sent {n} near-identical prompts "
        f"(similarity {mean_sim:.2f}, {per_account:g} runs per account, spread {spread:.2f}) to "
        f'{agent or "an unnamed agent"}, e.g. "{template[:100]}": likely a scripted extraction campaign; '
        "suspend these accounts and rate-limit new sign-ups.",
    )
