#!/usr/bin/env bash
# The nightly job every CI shape below calls. Exit status: 0 all passed, 1 regression, 3 only
# unresolved jobs (crash/timeout/OOM), 2 bad suite/references. Outputs under $OUT.
#   NIGHTLY_SUITE   suite YAML            (default configs/nightly.yaml)
#   NIGHTLY_OUT     output root           (default reports/nightly)
#   NIGHTLY_HISTORY history database      (default reports/regress/history.db; keep it between runs)
#   NIGHTLY_ARGS    extra regress flags   (e.g. "--executor slurm --partition gpu --gpus 1 --time 120")
#   HARNESS_VENV    a virtual environment to activate first (default: the python already on PATH)
# The log gets one progress line per evaluation (and the bisects' lines); a failing job's culprit is
# printed at the end, and is in summary.md, summary.json and junit.xml.
set -u
cd "$(dirname "$0")/../.."
if [ -n "${HARNESS_VENV:-}" ]; then . "$HARNESS_VENV/bin/activate"; fi
SUITE="${NIGHTLY_SUITE:-configs/nightly.yaml}"
OUT="${NIGHTLY_OUT:-reports/nightly}/$(date -u +%Y%m%dT%H%M%SZ)"
HISTORY="${NIGHTLY_HISTORY:-reports/regress/history.db}"
mkdir -p "$OUT" "$(dirname "$HISTORY")"
python -m harness regress --suite "$SUITE" --out "$OUT" --history "$HISTORY" --bisect-on-fail ${NIGHTLY_ARGS:-}
rc=$?
python -m harness history --db "$HISTORY" --plots "$OUT/trends" || true
python -m harness triage --reports "$OUT" > "$OUT/triage.txt" 2>&1 || true
ln -sfn "$(basename "$OUT")" "$(dirname "$OUT")/latest"
echo "nightly: exit $rc; junit $OUT/junit.xml; summary $OUT/summary.md; trends $OUT/trends"
exit $rc
