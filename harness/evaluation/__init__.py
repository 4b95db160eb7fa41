"""One evaluation and what it leaves behind: the spec and result, running a spec in this process,
per-sample records, the cache key (with the weight fingerprint), the SQLite store of results, and
run directories on disk."""
