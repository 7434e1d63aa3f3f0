#!/usr/bin/env bash
# `reel synth` at the issue's scale: 100k users, 1M videos, ~50M events
# (budget: minutes on this machine). There is no peer simulator to run
# beside it; the budget is the yardstick.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "## Simulating a service: reel synth at full scale"
echo
echo "\`bench/lib/synth_scale.sh\`: wall time and peak memory of one run, data"
echo "written to a temporary directory (dataset.reel and truth.reel, fsynced)."
echo
bash bench/lib/synth_scale.sh --header build/reel
echo
echo "Budget (issue: Foundation): 1M videos, 100k users, 50M events in minutes."
