#!/usr/bin/env bash
# Runs a phase of the study (pilot, main) with one worker per core, each pinned to its core with one intra-op thread
# (what made the 8x8 sweep cheap). Rerunning resumes. Logs: runs/gd_vs_vb_16x16/<phase>.worker<i>.log.
#   studies/gd_vs_vb_16x16/run.sh pilot
set -euo pipefail
cd "$(dirname "$0")/../.."
PHASE=${1:?give a phase: pilot or main}
PY=${PYTHON:-.venv/bin/python}
WORKERS=${WORKERS:-$(nproc)}
mkdir -p runs/gd_vs_vb_16x16
for ((i = 0; i < WORKERS; i++)); do
  taskset -c $((i % $(nproc))) $PY -m studies.gd_vs_vb_16x16.study "$PHASE" --worker=$i --workers="$WORKERS" \
    > "runs/gd_vs_vb_16x16/$PHASE.worker$i.log" 2>&1 &
done
wait
