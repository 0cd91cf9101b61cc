"""Test helper: the pre-aggregated buckets some read-model rows add up to, as MongoDB holds
them, and the summary read from them (what GET /v1/reports/summary answers)."""
from services.reporting import facts, kpis


def bucket_documents(rows):
    """The store day buckets the rows add up to (nested documents, as stored)."""
    documents = {}
    for each in rows:
        for bucket, paths in facts.contribution(each).items():
            if not bucket.startswith("store:") or ":day:" not in bucket:
                continue
            for path, n in paths.items():
                node = documents.setdefault(bucket, {"_id": bucket})
                *parents, leaf = path.split(".")
                for name in parents:
                    node = node.setdefault(name, {})
                node[leaf] = node.get(leaf, 0) + n
    return list(documents.values())


def summarize(rows):
    return kpis.summary(kpis.totals(bucket_documents(rows)))
