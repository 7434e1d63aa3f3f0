#!/usr/bin/env bash
# CLIP's towers (issue 8): reel's C ViT-B/32 and text tower against
# python3-torch running the same architecture (bench/clip/torch_clip.py,
# the model of tests/reference/clip_torch.py) on the same random
# ViT-B/32-sized checkpoint and inputs, in the same run; and the float32
# floor: 8.82 GFLOP per image at this CPU's FMA peak, measured here.
set -euo pipefail
build=${BUILD:-build}
py=/usr/bin/python3
cmake --build "$build" --target bench_clip >/dev/null
d=${BENCH_CLIP_DIR:-$(mktemp -d)}
[ -n "${BENCH_CLIP_DIR:-}" ] || trap 'rm -rf "$d"' EXIT
[ -f "$d/model.safetensors" ] || $py bench/clip/torch_clip.py make "$d"
load=$(cut -d' ' -f1 /proc/loadavg)
declare -A R T U
for t in 1 2; do
  R[$t]=$(OPENBLAS_NUM_THREADS=$t "$build"/bench_clip "$d" "$t")
  # torch two ways, the better counts: its own threads = OpenBLAS's = t,
  # and its own threads 1 with OpenBLAS's t (on 2 cores the first
  # oversubscribes: OpenMP and OpenBLAS each start t threads)
  T[$t]=$(OPENBLAS_NUM_THREADS=$t OMP_NUM_THREADS=$t $py bench/clip/torch_clip.py time "$d" "$t")
  U[$t]=$(OPENBLAS_NUM_THREADS=$t OMP_NUM_THREADS=1 $py bench/clip/torch_clip.py time "$d" 1)
done
get() { echo "$1" | sed -n "s/.*\"$2\": \([0-9.e+-]*\).*/\1/p"; }
best() { awk -v a="$(get "$1" "$3")" -v b="$(get "$2" "$3")" 'BEGIN {print (a > b) ? a : b}'; }
gflop=8.82
# a 77-token text: 12 layers of q/k/v/out (4 x 512^2) and the MLP (2 x 512 x
# 2048) per token, and attention over all 77 positions, 2 flops a MAC
tgflop=$(awk 'BEGIN {printf "%.2f", 2 * (12 * 77 * (4 * 512 * 512 + 2 * 512 * 2048) + 2 * 12 * 77 * 77 * 512) / 1e9}')
echo "## CLIP: ViT-B/32 and the text tower against torch (bench/clip.sh)"
echo
echo "A CLIP with ViT-B/32's sizes (vision: 12 layers, width 768, patch 32, 224 x"
echo "224; text: 12 layers, width 512, 77 tokens; projection 512) and random"
echo "weights, F32, written by \`bench/clip/torch_clip.py make\`. reel: \`build/bench_clip\`"
echo "(src/embed/clip over matmul.h's packed AVX-512 kernel). torch: python3-torch"
echo "$($py -c 'import torch; print(torch.__version__)') running the same architecture (tests/reference/clip_torch.py's modules,"
echo "batched, under \`torch.inference_mode()\`). For t threads torch runs twice, the"
echo "better counting: \`torch.set_num_threads(t)\` with OMP_NUM_THREADS and"
echo "OPENBLAS_NUM_THREADS t, and torch's own threads 1 with OPENBLAS_NUM_THREADS t"
echo "(torch's matrix products go through Debian's OpenBLAS; with both at 2 they"
echo "oversubscribe the 2 cores). Best of"
echo "3 runs of about 2 s each. Largest difference between reel's and torch's"
echo "embeddings of the same 2 images / 2 texts: $(get "${R[1]}" max_diff_image) / $(get "${R[1]}" max_diff_text)."
echo "The FP32 floor is $gflop GFLOP per image at the FMA peak measured by"
echo "bench_clip (12 independent 16-float FMA chains per thread): $(get "${R[1]}" fma_gflops) GFLOP/s on"
echo "1 thread, $(get "${R[2]}" fma_gflops) on 2. Load average at start: $load."
echo
echo "| what | threads | reel | torch | reel / torch | floor / reel |"
echo "|---|---:|---:|---:|---:|---:|"
for key in image_b1 image_b8 text_b8; do
  for t in 1 2; do
    r=$(get "${R[$t]}" $key) p=$(best "${T[$t]}" "${U[$t]}" $key) f=$(get "${R[$t]}" fma_gflops)
    case $key in
      image_b1) what="images/s, batch 1" ;;
      image_b8) what="images/s, batch 8" ;;
      text_b8) what="77-token texts/s, batch 8" ;;
    esac
    awk -v w="$what" -v t="$t" -v r="$r" -v p="$p" -v f="$f" -v g="$gflop" -v tg="$tgflop" -v k="$key" 'BEGIN {
      fl = sprintf("%.2fx", (f / ((k ~ /image/) ? g : tg)) / r)
      printf "| %s | %d | %.2f | %.2f | %.2fx | %s |\n", w, t, r, p, r / p, fl }'
  done
done
echo
echo "floor / reel: the rate the FMA peak would allow at $gflop GFLOP per image"
echo "($tgflop per 77-token text), over reel's (1.00x is the floor itself)."
echo "Goals (issue 8): >= 1.5x torch; within 1.3x of the FP32 floor."
