#!/usr/bin/env bash
# MedPix 2.0, real radiology captions, from the archive to the results table.
#
# Run:    bash experiments/medpix.sh MEDPIX_DIR WORK_DIR [SEEDS...]
#         (MEDPIX_DIR holds captions.csv and images/; SEEDS default: 0 1 2)
# Expect: per seed, on the test carved from train (191 images of 1 in 8 train cases), the
#         captioner on the bundled MedNIST encoder and on an encoder trained on MedPix's own
#         labels, each beside the constant-caption and retrieval baselines of the same run;
#         results in experiments/results/medpix/*.json, the story in experiments/medpix.md.
# Small:  MEDPIX_SMOKE=1 adds --smoke to every training command (a few steps; checks the
#         commands, not the numbers).
# Images: MEDPIX_IMAGE_SIZE (default 64) and MEDPIX_CHANNELS (1 grey, default; 3 RGB) set
#         `data prepare --image-size/--channels`. At another setting than 64 grey the results
#         go to experiments/results/medpix_SIZE/ with names like labels-encoder-128rgb-seed0,
#         and only the label encoder is trained: the bundled MedNIST encoder reads 64x64 grey.
#         MEDPIX_FIT (default pad) sets `data prepare --fit`: the committed results were
#         prepared before that setting existed, with files that are not square padded to a
#         square; MEDPIX_FIT=stretch decodes as `data prepare` now does by default.
# Heads:  MEDPIX_DECODER_LABELS=1: on each seed's label encoder, a second captioner with
#         `--set decoder.labels=true` (its state and every step read the label heads'
#         probabilities), labels-encoder-heads, beside labels-encoder; both go to
#         experiments/results/medpix_heads/ (the MedNIST-encoder row is skipped).
# Encoders: MEDPIX_ENCODERS=1: the encoders compared frozen and end to end (medpix.md,
#         "Encoders"): per seed, the bundled MedNIST encoder (mednist-encoder), the label
#         classifier from random weights (labels-encoder), the label classifier started
#         from the MedNIST encoder (labels-from-mednist, `--set model.init_from=bundled`) and
#         an encoder of random weights (random-encoder: `train classifier --set
#         train.epochs=0`, trained only by the captioner's stage 2), each
#         as the recipe (-e2e: stage 1 frozen, stage 2 end to end, the better stage kept) and
#         frozen only (-frozen: `--set finetune.epochs=0`); to
#         experiments/results/medpix_encoders/.
set -euo pipefail
medpix=$(cd "$1" && pwd); work=$2; shift 2
seeds=("${@:-0 1 2}"); seeds=(${seeds[*]})
smoke=(); [ "${MEDPIX_SMOKE:-0}" = 1 ] && smoke=(--smoke)
size=${MEDPIX_IMAGE_SIZE:-64}; channels=${MEDPIX_CHANNELS:-1}; fit=${MEDPIX_FIT:-pad}
heads=${MEDPIX_DECODER_LABELS:-0}; encoders=${MEDPIX_ENCODERS:-0}
group=medpix; tag=""  # 64 grey: the committed results and names
if [ "$size/$channels" != 64/1 ]; then
    group=medpix_$size; tag=-$size$([ "$channels" = 3 ] && echo rgb || echo grey)
fi
[ "$heads" = 1 ] && group=medpix_heads
[ "$encoders" = 1 ] && group=medpix_encoders
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"

# 1. a test split carved from train, grouped by case; val stays MedPix's own dev split
python "$here/medpix_split.py" "$medpix/captions.csv" "$work/captions.csv"
# 2. prepare: 64x64 grey as MedNIST unless told, the three label columns kept for the content
#    metrics
captioning data prepare --captions "$work/captions.csv" --images "$medpix/images" \
    --root "$work/data$tag" --label-columns modality,plane,location --force \
    --image-size "$size" --channels "$channels" --fit "$fit"

train_and_record() {  # $1 name, $2 seed, then the encoder option (or nothing: the bundled one)
    local name=$1$tag seed=$2; shift 2
    captioning train captioner --data "$work/data$tag" "$@" --run-dir "$work/$name-seed$seed" \
        --set train.seed="$seed" "${smoke[@]}"
    captioning evaluate --run "$work/$name-seed$seed" --out "$work/$name-seed$seed.json"
    python "$here/record.py" "$work/$name-seed$seed" --eval "$work/$name-seed$seed.json" \
        --group "$group" --name "$name-seed$seed" --label "$name"
}

label_classifier() {  # $1 name, $2 seed, then options: trained, scored per head on test, recorded
    local name=$1-seed$2 seed=$2; shift 2
    captioning train classifier --data "$work/data" --run-dir "$work/$name" \
        --set train.seed="$seed" "$@" "${smoke[@]}"
    captioning evaluate --run "$work/$name" --split test --out "$work/$name.json"
    python "$here/record.py" "$work/$name" --eval "$work/$name.json" --group "$group" \
        --name "$name" --label "${name%-seed*}"
}

encoder_comparison() {  # $1 seed: four encoders, each frozen and end to end (64x64 grey)
    local seed=$1 stage
    label_classifier labels-classifier "$seed"
    label_classifier mednist-labels-classifier "$seed" --set model.init_from=bundled
    label_classifier untrained-classifier "$seed" --set train.epochs=0  # random weights
    for stage in e2e frozen; do
        local only=(); [ "$stage" = frozen ] && only=(--set finetune.epochs=0)
        train_and_record "mednist-encoder-$stage" "$seed" "${only[@]}"
        train_and_record "labels-encoder-$stage" "$seed" "${only[@]}" \
            --encoder "$work/labels-classifier-seed$seed"
        train_and_record "labels-from-mednist-$stage" "$seed" "${only[@]}" \
            --encoder "$work/mednist-labels-classifier-seed$seed"
        train_and_record "random-encoder-$stage" "$seed" "${only[@]}" \
            --encoder "$work/untrained-classifier-seed$seed"
    done
}

for seed in "${seeds[@]}"; do
    if [ "$encoders" = 1 ]; then encoder_comparison "$seed"; continue; fi
    # 3. the mission's encoder: the MedNIST classifier bundled with the package (64x64 grey)
    if [ -z "$tag" ] && [ "$heads" != 1 ]; then
        train_and_record mednist-encoder "$seed"
    else
        echo "medpix.sh: seed $seed: mednist-encoder skipped (the bundled encoder reads 64x64 grey and has no label heads)"
    fi
    # 4. an encoder trained on MedPix's own labels (one head per column), then the captioner
    classifier=$work/labels-classifier$tag-seed$seed
    captioning train classifier --data "$work/data$tag" --run-dir "$classifier" \
        --set train.seed="$seed" "${smoke[@]}"
    train_and_record labels-encoder "$seed" --encoder "$classifier"
    if [ "$heads" = 1 ]; then  # 5. the same encoder, the decoder reading its label heads
        train_and_record labels-encoder-heads "$seed" --encoder "$classifier" \
            --set decoder.labels=true
    fi
done
