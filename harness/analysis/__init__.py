"""What a run or a pair of runs looks like beyond the verdict: the Phase 2 failure-pattern
classifier, the Phase 5 per-subject breakdown, Phase 4a fake-quant helpers, crash-log triage."""
