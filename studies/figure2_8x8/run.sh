#!/usr/bin/env bash
# Runs the Figure 2 sweep as distributed KerasTuner searches on one machine, one search per flag file: the main grid
# (studies/figure2_8x8/figure2.flags), its extension to stronger bottlenecks (studies/figure2_8x8/figure2_extension.flags), then the reruns of
# two settings' lost seeds for the noisy evaluation (studies/figure2_8x8/figure2_rescore.flags). Every search
# has a chief that serves its oracle (each on its own port); each CPU core runs one worker, pinned to it (small models
# use one core better than two processes sharing both), through the searches in turn: a core whose worker finds no
# trial left in one search moves on to the next instead of idling until the other cores' last runs end.
# When a core has no trial left, its worker trains the finished runs that missed the convergence criterion further,
# at their final learning rate, until they meet it (tuning.extend; the workers share those runs as well).
# Rerunning resumes: each search's state lives in studies/figure2_8x8/results/<project>/ and is committed as trials complete; a
# finished search ends at once, and so does an extension with nothing left to do. Logs:
# runs/figure2/<search>.{chief,worker0,...}.log and runs/figure2/extend.worker<i>.log. Then `make figure2` draws the
# frontier.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
WORKERS=${WORKERS:-2}
FIRST_PORT=${PORT:-8471}
SEARCHES=(studies/figure2_8x8/figure2.flags studies/figure2_8x8/figure2_extension.flags studies/figure2_8x8/figure2_rescore.flags)
RUNS=(studies/figure2_8x8/results/search studies/figure2_8x8/results/search_extension studies/figure2_8x8/results/search_rescore)  # their folders
mkdir -p runs/figure2
export KERASTUNER_ORACLE_IP=127.0.0.1
chiefs=()
for k in "${!SEARCHES[@]}"; do
  flagfile=${SEARCHES[$k]}
  KERASTUNER_ORACLE_PORT=$((FIRST_PORT + k)) KERASTUNER_TUNER_ID=chief $PY -m tuning.search --flagfile="$flagfile" \
    --leave_when_idle "$@" > "runs/figure2/$(basename "$flagfile" .flags).chief.log" 2>&1 &
  chiefs+=($!)
done
sleep 10
workers=()
for ((i = 0; i < WORKERS; i++)); do
  (
    for k in "${!SEARCHES[@]}"; do
      flagfile=${SEARCHES[$k]}
      KERASTUNER_ORACLE_PORT=$((FIRST_PORT + k)) KERASTUNER_TUNER_ID=tuner$i taskset -c $((i % $(nproc))) \
        $PY -m tuning.search --flagfile="$flagfile" --leave_when_idle "$@" \
        > "runs/figure2/$(basename "$flagfile" .flags).worker$i.log" 2>&1 || true
    done
    taskset -c $((i % $(nproc))) $PY -m tuning.extend "${RUNS[@]}" --extra_epochs=3 --max_epochs=24 \
      --probe_latents=sample > "runs/figure2/extend.worker$i.log" 2>&1 || true
  ) &
  workers+=($!)
done
wait "${workers[@]}"
wait "${chiefs[@]}"
