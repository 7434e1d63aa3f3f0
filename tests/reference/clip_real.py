#!/usr/bin/python3
"""The published zero-shot logits of openai/clip-vit-base-patch32.

  REEL_CLIP_MODEL=DIR [REEL_CLIP_IMAGE=FILE] clip_real.py BUILD/reel

DIR is the checkpoint as downloaded from Hugging Face (config.json,
model.safetensors, vocab.json, merges.txt, preprocessor_config.json).
FILE is COCO val2017's 000000039769.jpg, the two cats on a couch of
transformers' CLIP tests (by default DIR/000000039769.jpg). For the texts
"a photo of a cat" and "a photo of a dog", transformers' test_inference
expects logits_per_image [[24.5701, 19.3049]]; reel must be within 1e-2.
Without REEL_CLIP_MODEL (or the image) the test reports itself skipped
(exit status 77): weights cannot be downloaded on the build machines.
"""
import json
import os
import subprocess
import sys

EXPECTED = [24.5701, 19.3049]
SKIP = 77


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    model = os.environ.get("REEL_CLIP_MODEL")
    if not model or not os.path.isdir(model):
        print("clip_real: skipped: set REEL_CLIP_MODEL to an openai/clip-vit-base-patch32 "
              "directory to run it")
        sys.exit(SKIP)
    image = os.environ.get("REEL_CLIP_IMAGE", os.path.join(model, "000000039769.jpg"))
    if not os.path.exists(image):
        print("clip_real: skipped: no %s (COCO val2017 000000039769.jpg; set REEL_CLIP_IMAGE)"
              % image)
        sys.exit(SKIP)
    r = subprocess.run([sys.argv[1], "clip", "logits", "--clip", model, "--image", image,
                        "--text", "a photo of a cat", "a photo of a dog"],
                       capture_output=True, text=True)
    if r.returncode:
        sys.exit("clip_real: reel clip logits failed (%d): %s" % (r.returncode, r.stderr))
    got = json.loads(r.stdout)["logits"][0]
    diff = max(abs(a - b) for a, b in zip(got, EXPECTED))
    print("clip_real: logits %s, published %s, max difference %.4f" % (got, EXPECTED, diff))
    if diff > 1e-2:
        sys.exit("clip_real: more than 1e-2 from the published logits")


if __name__ == "__main__":
    main()
