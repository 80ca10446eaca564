#!/usr/bin/env bash
# The acquisition caption set (orientation, position): frozen encoder against end to end, with
# the set's recipe (experiments/captioner_acquisition.toml: the decoder's state read from the
# whole feature map, a trained head per field), one run per seed. The committed seeds of the
# recipe without field heads ran with --set captions.templates=acquisition --set
# decoder.init_from_map=true (their recorded command).
#
# Run:    bash experiments/acquisition.sh MEDNIST_PREPARED WORK_DIR [SEEDS...]
#         (MEDNIST_PREPARED: a `captioning data prepare` root; its acquisition captions are
#         written if missing; SEEDS default: 0 1 2)
# Expect: on the whole test split (5,296 images of the development copy, its own draws),
#         every finding right 78.9 +- 1.6% frozen and 81.8 +- 0.5% end to end over seeds 0-2,
#         end to end ahead by 1.8-4.2 points in each seed, orientation about 82% frozen and 85%
#         end to end, position 98% (experiments/acquisition.md); results in
#         experiments/results/acquisition/acquisition-{frozen,e2e}-map-heads-1000pc-seedN.json.
# Small:  ACQUISITION_SMOKE=1 adds --smoke to every training command (a few steps; checks the
#         commands, not the numbers).
# Heads:  ACQUISITION_FIELD_HEADS=0: the same runs with `--set decoder.field_heads=false`,
#         named acquisition-{frozen,e2e}-map-1000pc-seedN (every finding right 71.0 +- 2.1%
#         frozen and 73.9 +- 1.5% end to end).
# Decoder: ACQUISITION_DECODER=show_tell: the same runs with Show-Tell (`--set
#         decoder.kind=show_tell`: no attention, the state and field heads read the pooled
#         vector alone, so `--set decoder.init_from_map=false`, an attention setting), named
#         acquisition-{frozen,e2e}-showtell-heads-1000pc-seedN (-showtell- without heads);
#         expect every finding right about 16.5% frozen and 19% end to end (seeds 0-2).
# Encoder: ACQUISITION_ENCODER=RUN (a `train classifier` run folder) and ACQUISITION_ENCODER_NAME
#         (a short tag): the same runs on that encoder (`--encoder RUN`) instead of the bundled
#         classifier's, named acquisition-{frozen,e2e}-map-heads-enc-TAG-1000pc-seedN (TAG:
#         letters and digits). The encoder pretrained on the set's own fields (TAG acq):
#         experiments/acquisition_labelled.py, then `data prepare --label-columns
#         class,orientation,position` and `train classifier --set train.seed=N` on its file
#         (experiments/acquisition.md, "An encoder pretrained on the set's own fields").
# Pretrain: ACQUISITION_PRETRAIN=acq or acqwide: the script makes that encoder itself, per
#         seed, before the two runs (the steps above, the set's train and val images only;
#         acqwide: `--set "model.widths=[32,64,128,128]" --set model.depth=2`, about 5
#         minutes more per seed), and names the runs as ACQUISITION_ENCODER_NAME would.
#         Expect with acqwide (seeds 0-2): every finding right 97.2% frozen and 97.3% end to
#         end, orientation 98.7%, position 99.7% balanced over values: the set's targets.
# Time:   15-20 minutes per seed on a 2-core machine (both runs, training and evaluation).
set -euo pipefail
data=$(cd "$1" && pwd); work=$2; shift 2
seeds=("${@:-0 1 2}"); seeds=(${seeds[*]})
smoke=(); [ "${ACQUISITION_SMOKE:-0}" = 1 ] && smoke=(--smoke)
variant=map-heads; heads=(); state=", state from the whole map"; with=", field heads"
if [ "${ACQUISITION_FIELD_HEADS:-1}" = 0 ]; then
    variant=map; heads=(--set decoder.field_heads=false); with=""
fi
if [ "${ACQUISITION_DECODER:-attention}" = show_tell ]; then  # the pooled vector, no map
    heads+=(--set decoder.kind=show_tell --set decoder.init_from_map=false)
    variant=showtell${variant#map}; state=""; with="${with}, Show-Tell"
fi
encoder=(); pretrain=${ACQUISITION_PRETRAIN:-}; widen=()
case "$pretrain" in
    "" | acq) ;;
    acqwide) widen=(--set "model.widths=[32,64,128,128]" --set model.depth=2) ;;
    *) echo "ACQUISITION_PRETRAIN=$pretrain: expected acq or acqwide" >&2; exit 2 ;;
esac
if [ -n "$pretrain" ]; then
    variant=$variant-enc-$pretrain; with="$with, encoder $pretrain"
elif [ -n "${ACQUISITION_ENCODER:-}" ]; then
    tag=${ACQUISITION_ENCODER_NAME:?name the encoder: ACQUISITION_ENCODER_NAME=TAG}
    encoder=(--encoder "$ACQUISITION_ENCODER"); variant=$variant-enc-$tag; with="$with, encoder $tag"
fi
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"

# 1. the acquisition captions (rotations and shifts drawn per image from a seeded hash)
if [ ! -f "$data/captions/acquisition_images.npy" ]; then
    captioning data captions --root "$data" --templates acquisition
fi

train_and_record() {  # $1 name, $2 seed, $3 label, then extra options
    local name=$1-$variant-1000pc-seed$2 seed=$2 label=$3; shift 3
    captioning train captioner --data "$data" --config "$here/captioner_acquisition.toml" \
        --set data.per_class_limit=1000 --set train.seed="$seed" "${heads[@]}" "${encoder[@]}" "$@" \
        --run-dir "$work/$name" "${smoke[@]}"
    captioning evaluate --run "$work/$name" --out "$work/$name.json"
    python "$here/record.py" "$work/$name" --eval "$work/$name.json" \
        --group acquisition --name "$name" --label "$label"
}

pretrain_encoder() {  # $1 seed: the encoder taught class, orientation and position
    local run="$work/classifier-$pretrain-seed$1"
    if [ ! -d "$work/acq-prepared" ]; then
        python "$here/acquisition_labelled.py" --data "$data" --out "$work/acq-labelled"
        captioning data prepare --captions "$work/acq-labelled/labels.csv" \
            --images "$work/acq-labelled/images" --root "$work/acq-prepared" \
            --label-columns class,orientation,position
    fi
    captioning train classifier --data "$work/acq-prepared" --run-dir "$run" \
        --set train.seed="$1" "${widen[@]}" "${smoke[@]}"
    encoder=(--encoder "$run")
}

for seed in "${seeds[@]}"; do
    [ -n "$pretrain" ] && pretrain_encoder "$seed"
    # 2. frozen: stage 1 only, the bundled classifier's encoder as it is
    train_and_record acquisition-frozen "$seed" "frozen encoder$state$with" \
        --set finetune.epochs=0
    # 3. end to end: the same stage 1, then encoder and decoder together
    train_and_record acquisition-e2e "$seed" "end to end$state$with"
done
