#!/usr/bin/env bash
# Runs a phase of the study (pilot, main) with one worker per core, each pinned to its core with one intra-op thread
# (what made the 8x8 sweep cheap). The workers run the committed code of HEAD from a worktree of their own
# (runs/gd_vs_vb_16x16/code/<commit>), so that editing this checkout never reaches them; their runs and kept results
# land in this checkout. Rerunning resumes. Logs: runs/gd_vs_vb_16x16/<phase>.worker<i>.log.
#   studies/gd_vs_vb_16x16/run.sh pilot
set -euo pipefail
cd "$(dirname "$0")/../.."
HOME_CHECKOUT=$(pwd)
PHASE=${1:?give a phase: pilot or main}
PY=${PYTHON:-$HOME_CHECKOUT/.venv/bin/python}
WORKERS=${WORKERS:-$(nproc)}
COMMIT=$(git rev-parse HEAD)
CODE=runs/gd_vs_vb_16x16/code/$COMMIT
mkdir -p runs/gd_vs_vb_16x16/code
[ -d "$CODE" ] || git worktree add --detach "$CODE" "$COMMIT" > /dev/null
echo "study code: $COMMIT (uncommitted edits in this checkout are not run)"
for ((i = 0; i < WORKERS; i++)); do
  (cd "$CODE" && taskset -c $((i % $(nproc))) "$PY" -m studies.gd_vs_vb_16x16.study "$PHASE" --worker=$i \
    --workers="$WORKERS" --home="$HOME_CHECKOUT" > "$HOME_CHECKOUT/runs/gd_vs_vb_16x16/$PHASE.worker$i.log" 2>&1) &
done
wait
