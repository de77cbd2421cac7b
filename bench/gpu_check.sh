#!/usr/bin/env bash
# The one prepared GPU check: training tokens/s and MFU (bench/gpu_train.py: tunewise LoRA, QLoRA, TRL baseline),
# then vLLM multi-adapter serving (bench/gpu_serve.py), each under `timeout`, in under 10 minutes in all.
# Results: ${OUT:-bench-results}/{train,serve}.json and .log, then a summary (bench/gpu_plan.py summary).
#
#   bench/gpu_check.sh --dry-run                      # both plans, on any machine: no CUDA, no weights
#   bench/gpu_check.sh                                # on the GPU machine, the embedded SmolLM2-135M
#   bench/gpu_check.sh --model DIR [--random-init]    # a 1B-8B Hugging Face directory on that machine
#
# Budgets (seconds): TRAIN_BUDGET_S (default 200) and SERVE_BUDGET_S (default 340); each script refuses a plan over
# its budget and is killed 20 s past it. TRAIN_ARGS and SERVE_ARGS add arguments (e.g. TRAIN_ARGS="--steps 10").
# PYTHON picks the interpreter (default python3). Exit status: 0 when both scripts exited 0, else 1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_DIR="${OUT:-bench-results}"
PYTHON="${PYTHON:-python3}"
TRAIN_BUDGET_S="${TRAIN_BUDGET_S:-200}"
SERVE_BUDGET_S="${SERVE_BUDGET_S:-340}"
GRACE_S=20

common=()
dry_run=()
while (($#)); do
  case "$1" in
    --dry-run) dry_run=(--dry-run) ;;
    --model) common+=(--model "${2:?--model needs a path}"); shift ;;
    --random-init) common+=(--random-init) ;;
    -h | --help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

mkdir -p "$OUT_DIR"
# tunewise from this checkout where it is not installed; no hub on the GPU machine
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1

status=0
run() {  # name budget script args...: one script under timeout, its JSON and log in $OUT_DIR
  local name=$1 budget=$2 script=$3 rc=0
  shift 3
  echo "== $name: $script (budget ${budget} s)"
  timeout --kill-after=10 "$((budget + GRACE_S))" "$PYTHON" "$ROOT/bench/$script" "$@" \
    --budget-s "$budget" --json "$OUT_DIR/$name.json" >"$OUT_DIR/$name.log" 2>&1 || rc=$?
  sed '/^{$/,/^}$/d' "$OUT_DIR/$name.log"  # the log without the JSON, which is in $name.json
  case $rc in
    0) ;;
    124 | 137) echo "== $name: TIMED OUT after $((budget + GRACE_S)) s (partial results kept)"; status=1 ;;
    *) echo "== $name: FAILED (exit $rc)"; status=1 ;;
  esac
}

# shellcheck disable=SC2086  # TRAIN_ARGS and SERVE_ARGS are word lists on purpose
run train "$TRAIN_BUDGET_S" gpu_train.py "${dry_run[@]}" "${common[@]}" ${TRAIN_ARGS:-}
# the check's own shapes: 128 requests per row keep the serve part inside its share of the 10 minutes
# shellcheck disable=SC2086
run serve "$SERVE_BUDGET_S" gpu_serve.py "${dry_run[@]}" "${common[@]}" --requests 128 ${SERVE_ARGS:-}

echo "== summary ($OUT_DIR)"
"$PYTHON" "$ROOT/bench/gpu_plan.py" summary "$OUT_DIR"
exit "$status"
