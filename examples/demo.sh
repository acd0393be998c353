#!/usr/bin/env bash
# The main job on the shipped examples, end to end: check -> fuse -> calibrate -> report -> submit.
# Run by `make demo` (which puts .venv/bin on PATH). Outputs go to out/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
G=examples/goemotions
B=examples/emobank
OUT=out/demo
rm -rf "$OUT" && mkdir -p "$OUT"
step() { printf '\n== %s\n' "$*"; }

SYS_DEV="$G/words_dev.csv $G/chars_dev.csv $G/nb_dev.csv $G/minilm_dev.csv"
SYS_TEST="$G/words_test.csv $G/chars_test.csv $G/nb_test.csv $G/minilm_test.csv"

step "1. Check the four text systems' score files (GoEmotions, 7 Ekman classes)"
echo "(words, chars, nb: small scikit-learn systems; minilm: all-MiniLM-L6-v2 fine-tuned by sermm-system text)"
sermm-data check $SYS_DEV --labels $G/labels_dev.csv

step "2. Fuse on dev: the plain mean, interpolation (5-fold CV) and logistic regression (grouped CV)"
sermm-fuse mean --inputs $SYS_DEV --labels $G/labels_dev.csv --save $OUT/mean.json
sermm-fuse interp --inputs $SYS_DEV --labels $G/labels_dev.csv --cv 5 --save $OUT/interp.json
sermm-fuse logreg --inputs $SYS_DEV --labels $G/labels_dev.csv \
    --groups $G/groups_dev.csv --save $OUT/logreg.json --cv-output $OUT/logreg_oof_dev.csv
echo "(and the same fusion without the MiniLM system, to measure what it adds)"
sermm-fuse logreg --inputs $G/words_dev.csv $G/chars_dev.csv $G/nb_dev.csv --labels $G/labels_dev.csv \
    --save $OUT/logreg3.json

step "3. Calibrate on dev: per-class thresholds for macro-F1, tuned on the out-of-fold fused scores"
sermm-calibrate thresholds --input $OUT/logreg_oof_dev.csv --labels $G/labels_dev.csv \
    --save $OUT/thresholds.json

step "4. Evaluation: fusion, then fusion + thresholds in one command"
sermm-fuse apply $OUT/logreg.json --inputs $SYS_TEST --output $OUT/fused_test.csv
sermm-fuse apply $OUT/logreg.json --inputs $SYS_TEST --then $OUT/thresholds.json \
    --output $OUT/decisions_test.csv
sermm-fuse apply $OUT/logreg3.json --inputs $G/words_test.csv $G/chars_test.csv $G/nb_test.csv \
    --output $OUT/fused3_test.csv

step "5. Report on test: each system beside the fusion, with bootstrap CIs; the paired test sets the fusion against the best single system"
sermm-report --input $SYS_TEST $OUT/fused_test.csv --labels $G/labels_test.csv \
    --json $OUT/report_test.json --plots $OUT/plots --n-boot 500

step "5a. What the MiniLM system adds: the fusion of all four against the fusion of the other three"
sermm-report --input $OUT/fused_test.csv $OUT/fused3_test.csv --labels $G/labels_test.csv --n-boot 500

step "5b. What the dev-tuned thresholds do on test: fusion + thresholds against the fusion alone"
sermm-report --input $OUT/decisions_test.csv $OUT/fused_test.csv --labels $G/labels_test.csv --n-boot 500

step "5c. For a balanced test set (Odyssey 2024), rebalance to a uniform prior instead"
echo "(GoEmotions test is as unbalanced as train, so here it trades WA and CE for recall of rare classes)"
sermm-calibrate prior --uniform --input $OUT/fused_test.csv --output $OUT/fused_test_uniform.csv \
    --labels $G/labels_test.csv

step "6. Attributes (EmoBank): per-attribute interpolation chosen for CCC, then an MSP-style submission"
sermm-fuse interp --inputs $B/ridge_words_dev.csv $B/ridge_chars_dev.csv --labels $B/labels_dev.csv \
    --save $OUT/attr_interp.json
sermm-fuse apply $OUT/attr_interp.json --inputs $B/ridge_words_test.csv $B/ridge_chars_test.csv \
    --output $OUT/attr_test.csv
sermm-report --input $B/ridge_words_test.csv $B/ridge_chars_test.csv $OUT/attr_test.csv \
    --labels $B/labels_test.csv --n-boot 500
sermm-submit --input $OUT/attr_test.csv --format msp-attributes --output $OUT/submission_attributes.csv

step "Done: models, scores, report JSON, PNG plots and the submission are in $OUT/"
ls "$OUT" "$OUT/plots"
