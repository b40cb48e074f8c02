#!/usr/bin/env bash
# Reproduce the docs/results.md rows of one dataset: fine-tune MiniLM-L6, train TR-BERT, AdapLeR and
# DACT-BERT from it, evaluate each in PyTorch, convert to ONNX and time the graphs.
#
# Usage: scripts/reproduce_results.sh DATASET OUTDIR DATA_DIR
#   DATASET   sst2 | imdb
#   OUTDIR    where models, data subsets and results go (reruns resume finished steps)
#   DATA_DIR  the folder holding sst2/ and imdb/ (e.g. ../shared/data)
#
# Data (seed SEED, default 0; every subset is a seeded random sample):
#   sst2: max length 64. Model selection uses SEL_DEV (default 872) whole sentences held out of train,
#         with every training phrase inside them removed (SPLIT=sentence; SPLIT=example gives the random
#         phrase split of stops 10-20, whose selection phrases mostly occur inside training phrases);
#         fine-tuning uses a random FT_LIMIT (default 16,000; 0 = all 57,549 with seed 0) of the rest, the reduction
#         recipes a random RED_LIMIT (default 8,000) of those; results are on the full 872-sentence GLUE
#         dev set. The recipe defaults are the settings of docs/results.md's stop-21 section (each recipe writes
#         its own pick; TR-BERT's extra joint epochs there are resumed runs, not in this script).
#   imdb: max length 512. SEL_DEV (default 500) reviews held out of train for model selection;
#         fine-tuning (1 epoch) and the reduction recipes use a random FT_LIMIT / RED_LIMIT (default 2,000 /
#         1,000) of the rest; results are on a random EVAL_LIMIT (default 5,000) of the 25,000 test reviews.
#         The recipe defaults are those of docs/results.md (a 2-core CPU runs them in about 3 hours).
# Override any of SEED SEL_DEV SPLIT FT_LIMIT RED_LIMIT EVAL_LIMIT EPOCHS BATCH TR_ALPHA AD_GAMMA AD_PHI AD_ETA_LR
# AD_GROWTH (AdapLeR's per-epoch sharpness growth, default 10) AD_LAYERS (its --selection-layers, default every layer)
# AD_MIN_WORDS (its --min-words: SST-2 default 10, the training phrases of >= 10 words) AD_DISTILL (its --distill)
# DACT_PONDER DACT_BIAS DACT_WARMUP DACT_WARMUP_HEAD_LR (--exit-warmup-head-lr) TR_POLICY_LR TR_GUIDE TR_ALPHA_JOINT (TR-BERT's --policy-lr, --guide-rate, --alpha-joint)
# TR_MICRO (TR-BERT's --micro-batch-size) LAT_N THREADS in the environment, and the epochs of one recipe with
# FT_EPOCHS AD_EPOCHS TR_EPOCHS DACT_EPOCHS (default: EPOCHS); SKIP_ONNX=1 stops after step 3. TREXPORT names the CLI (default: trexport).
# METHODS (default "finetuned dact adapler tr_bert") picks the models to train, evaluate and convert.
# Any step can be interrupted: rerunning continues it with --resume from its last checkpoint.
set -euo pipefail

if [ $# -ne 3 ]; then
    sed -n '4,8p' "$0" >&2
    exit 2
fi
DATASET=$1 OUT=$2 DATA_DIR=$3
TREXPORT=${TREXPORT:-trexport}
PYTHON=${PYTHON:-python}
SEED=${SEED:-0}
EPOCHS=${EPOCHS:-2}
THREADS=${THREADS:-2}
LAT_N=${LAT_N:-500}

case "$DATASET" in
    sst2)
        TRAIN_SRC=$DATA_DIR/sst2/train.jsonl.gz; TEST=$DATA_DIR/sst2/validation.jsonl.gz
        MAXLEN=64; BATCH=${BATCH:-32}; SEL_DEV=${SEL_DEV:-872}; SPLIT=${SPLIT:-sentence}; FT_LIMIT=${FT_LIMIT:-16000}; RED_LIMIT=${RED_LIMIT:-8000}
        EVAL_LIMIT=${EVAL_LIMIT:-0}; AD_EPOCHS=${AD_EPOCHS:-3}; AD_MIN_WORDS=${AD_MIN_WORDS:-10}
        AD_PHI=${AD_PHI:-1.0}; AD_ETA_LR=${AD_ETA_LR:-1e-3}
        TR_ALPHA=${TR_ALPHA:-0.5}; TR_ALPHA_JOINT=${TR_ALPHA_JOINT:-0.25}; TR_POLICY_LR=${TR_POLICY_LR:-1e-2}; TR_GUIDE=${TR_GUIDE:-0.5}
        DACT_PONDER=${DACT_PONDER:-0.115}; DACT_WARMUP=${DACT_WARMUP:-2}; DACT_WARMUP_HEAD_LR=${DACT_WARMUP_HEAD_LR:-1e-3} ;;  # docs/results.md, stop 21
    imdb)
        TRAIN_SRC=$DATA_DIR/imdb/train.jsonl.gz; TEST=$DATA_DIR/imdb/test.jsonl.gz
        MAXLEN=512; BATCH=${BATCH:-16}; SEL_DEV=${SEL_DEV:-500}; SPLIT=${SPLIT:-example}; FT_LIMIT=${FT_LIMIT:-2000}; RED_LIMIT=${RED_LIMIT:-1000}
        EVAL_LIMIT=${EVAL_LIMIT:-5000}; TR_ALPHA=${TR_ALPHA:-1.0}; FT_EPOCHS=${FT_EPOCHS:-1}; TR_EPOCHS=${TR_EPOCHS:-1}
        AD_PHI=${AD_PHI:-0.5}; AD_ETA_LR=${AD_ETA_LR:-7e-3}; DACT_PONDER=${DACT_PONDER:-0.15}; DACT_EPOCHS=${DACT_EPOCHS:-1}
        TR_POLICY_LR=${TR_POLICY_LR:-1e-2}; TR_GUIDE=${TR_GUIDE:-0.5}; TR_ALPHA_JOINT=${TR_ALPHA_JOINT:-0.5}
        TR_MICRO=${TR_MICRO:-2} ;;  # docs/results.md; TR-BERT's joint stage at 16 x 8 paths x 512 tokens needs > 24 GiB
    *) echo "unknown dataset $DATASET (sst2 or imdb)" >&2; exit 2 ;;
esac
AD_GAMMA=${AD_GAMMA:-1.0} AD_PHI=${AD_PHI:-0.5} AD_ETA_LR=${AD_ETA_LR:-1e-2} AD_GROWTH=${AD_GROWTH:-10} DACT_PONDER=${DACT_PONDER:-0.2} DACT_BIAS=${DACT_BIAS:-0.0}
EXIT_POOLING=${EXIT_POOLING:-mean}  # all-MiniLM-L6-v2's [CLS] is constant before layer 4 (docs/results.md)
mkdir -p "$OUT/data" "$OUT/results"

# 1. Held-out selection dev set and the training pool (disjoint), written once. SST-2 holds out whole
#    sentences and drops their phrases from training (SPLIT=sentence); SPLIT=example is a random split.
if [ ! -f "$OUT/data/train.jsonl.gz" ]; then
    $TREXPORT train split "$TRAIN_SRC" "$OUT/data" --dev-size "$SEL_DEV" --seed "$SEED" --by "$SPLIT"
fi
TRAIN=$OUT/data/train.jsonl.gz DEV=$OUT/data/dev.jsonl.gz
limit() { [ "$1" -gt 0 ] && echo "--limit $1" || true; }
flag() { [ -n "$2" ] && echo "$1 $2" || true; }  # an option only when set (else the CLI's default)
COMMON="--data $TRAIN --dev $DEV --max-length $MAXLEN --batch-size $BATCH --seed $SEED"
FT_EPOCHS=${FT_EPOCHS:-$EPOCHS} AD_EPOCHS=${AD_EPOCHS:-$EPOCHS} TR_EPOCHS=${TR_EPOCHS:-$EPOCHS} DACT_EPOCHS=${DACT_EPOCHS:-$EPOCHS}
DACT_WARMUP=${DACT_WARMUP:-1}

# 2. Train each model (skipped when done; resumed when interrupted).
METHODS=${METHODS:-finetuned dact adapler tr_bert}
train() {  # train RECIPE DIR ARGS...
    local recipe=$1 dir=$2; shift 2
    case " $METHODS " in *" $(basename "$dir") "*) ;; *) return ;; esac
    if [ -f "$dir/.done" ]; then
        echo "== $recipe: $dir exists, skipped"; return
    fi
    local resume=""; [ -f "$dir/checkpoints/checkpoint.pt" ] && resume="--resume"
    echo "== $TREXPORT train $recipe $* --out $dir $resume"
    # shellcheck disable=SC2086
    $TREXPORT train "$recipe" "$@" --out "$dir" $resume
    if [ -f "$dir/model.safetensors" ]; then touch "$dir/.done"; fi
}
train finetune "$OUT/finetuned" $COMMON --epochs "$FT_EPOCHS" $(limit "$FT_LIMIT") --lr 5e-5
train dact "$OUT/dact" $COMMON --epochs "$DACT_EPOCHS" $(limit "$RED_LIMIT") --base "$OUT/finetuned" --ponder-cost "$DACT_PONDER" \
    --halting-bias "$DACT_BIAS" --exit-warmup-epochs "$DACT_WARMUP" --exit-pooling "$EXIT_POOLING" \
    $(flag --exit-warmup-head-lr "${DACT_WARMUP_HEAD_LR:-}")
train adapler "$OUT/adapler" $COMMON --epochs "$AD_EPOCHS" $(limit "$RED_LIMIT") --base "$OUT/finetuned" --gamma "$AD_GAMMA" --phi "$AD_PHI" --eta-lr "$AD_ETA_LR" \
    --sharpness-growth "$AD_GROWTH" $(flag --selection-layers "${AD_LAYERS:-}") $(flag --min-words "${AD_MIN_WORDS:-}") $(flag --distill "${AD_DISTILL:-}")
TR_MICRO=${TR_MICRO:-0}  # examples per joint-stage forward/backward (0: the whole batch)
train tr-bert "$OUT/tr_bert" $COMMON --epochs "$TR_EPOCHS" $(limit "$RED_LIMIT") --base "$OUT/finetuned" --alpha "$TR_ALPHA" \
    $(flag --policy-lr "${TR_POLICY_LR:-}") $(flag --guide-rate "${TR_GUIDE:-}") $(flag --alpha-joint "${TR_ALPHA_JOINT:-}") \
    $([ "$TR_MICRO" -gt 0 ] && echo "--micro-batch-size $TR_MICRO" || true)

# 3. PyTorch evaluation on the reported split: accuracy, kept tokens / depth, FLOPs ratio.
for method in $METHODS; do
    echo "== $TREXPORT evaluate $OUT/$method --data $TEST $(limit "$EVAL_LIMIT")"
    # shellcheck disable=SC2046
    $TREXPORT evaluate "$OUT/$method" --data "$TEST" --max-length "$MAXLEN" $(limit "$EVAL_LIMIT") --seed "$SEED" \
        --json "$OUT/results/$method.json"
done

if [ "${SKIP_ONNX:-0}" = 1 ]; then echo "== results in $OUT/results/ (ONNX steps skipped)"; exit 0; fi

# 4. ONNX: convert (with the parity check; on SST-2 also on every dev sentence) and time at batch 1 and 32 on LAT_N test
#    texts (through the runtime, tokenizing included; adaptive-depth graphs drive their segments).
PARITY=""; [ "$DATASET" = sst2 ] && PARITY="--parity-data $TEST"  # every dev sentence; IMDB: random inputs only
graphs=()
for method in $METHODS; do
    if [ ! -f "$OUT/onnx/$method.onnx" ]; then
        mkdir -p "$OUT/onnx"
        $TREXPORT convert "$OUT/$method" "$OUT/onnx/$method.onnx" $PARITY || { echo "== convert $method failed (see above)"; continue; }
    fi
    graphs+=("$method")
done
"$PYTHON" - "$OUT" "$TEST" "$LAT_N" "$THREADS" "${graphs[@]}" <<'EOF'
import json, sys
from trexport.bench.latency import time_predict
from trexport.runtime import ReducedClassifier, read_jsonl
out, test, n, threads, names = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
texts = [e.text for e in read_jsonl(test, limit=n)]
# Thread spinning off for every graph: idle sessions' spinning pools would take the cores (docs/performance.md).
classifiers = {m: ReducedClassifier(f"{out}/onnx/{m}.onnx", intra_op_num_threads=threads, allow_spinning=False) for m in names}
report = {}
for batch_size in (1, 32):
    seconds, _ = time_predict(classifiers, texts, batch_size=batch_size)
    report[f"batch_{batch_size}"] = {m: {"seconds": s, "latency_ratio": seconds["finetuned"] / s} for m, s in seconds.items()}
json.dump({"texts": len(texts), "threads": threads, **report}, open(f"{out}/results/latency.json", "w"), indent=2)
print(json.dumps(report, indent=2))
EOF
echo "== results in $OUT/results/"
