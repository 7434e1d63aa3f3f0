#!/usr/bin/env bash
# Tells every reel serve pod to load the item side that `current` now
# points to (POST /admin/reload), one pod at a time, from inside the pod
# (kubectl exec + curl): the token never leaves the pod and no port is
# forwarded. docs/DEPLOY.md, "The item side".
#
#   deploy/reload-all.sh [-n NAMESPACE] [-l SELECTOR] [RELEASE]
#
# RELEASE (the name the build job printed, e.g. 20250101T030000Z): first
# wait until the pod sees its DIR (/data/CATALOGUE/current) link to
# releases/RELEASE: clients of a shared file system may cache the old
# link for a while. -l adds labels to the pods' selector. Exits
# non-zero when a pod could not be reloaded; the others keep what they
# loaded (each reload is atomic, and a failed one changes nothing).
set -euo pipefail

ns=()
extra=
release=
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--namespace) ns=(-n "$2"); shift 2 ;;
    -l|--selector) extra=",$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "reload-all: unknown option $1" >&2; exit 2 ;;
    *) release=$1; shift ;;
  esac
done

selector=app.kubernetes.io/name=reel,app.kubernetes.io/component=serve$extra
# Every pod, ready or not: one still starting may have opened the old
# release before the switch. Waiting for it to be ready comes first.
pods=$(kubectl "${ns[@]}" get pods -l "$selector" \
  --field-selector=status.phase!=Failed,status.phase!=Succeeded \
  -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
if [ -z "$pods" ]; then
  echo "reload-all: no pods match $selector" >&2
  exit 1
fi

# Runs in the pod with DIR and RELEASE: waits for the link (when RELEASE
# is given), then posts the reload with the token read from the mounted
# Secret into curl's config on stdin (not on a command line).
# shellcheck disable=SC2016 # expanded by the shell in the pod
script='
set -eu
if [ -n "$2" ]; then
  i=0
  while [ "$(readlink "$1")" != "releases/$2" ]; do
    i=$((i + 1))
    if [ "$i" -gt 120 ]; then
      echo "$1 is $(readlink "$1"), not releases/$2, after 120 s" >&2
      exit 1
    fi
    sleep 1
  done
fi
t=$(cat /etc/reel-token/token)
printf "header = \"Authorization: Bearer %s\"\n" "$t" |
  curl -fsS -K - -X POST --max-time 300 http://127.0.0.1:8080/admin/reload
'

failed=0
for p in $pods; do
  if ! kubectl "${ns[@]}" wait --for=condition=Ready "pod/$p" --timeout=600s >/dev/null; then
    echo "reload-all: $p: not ready after 600 s" >&2
    failed=$((failed + 1))
    continue
  fi
  # DIR: the argument after `serve` (deploy/k8s/serve-deployment.yaml).
  dir=$(kubectl "${ns[@]}" get pod "$p" \
    -o jsonpath='{.spec.containers[?(@.name=="reel")].args[1]}')
  if out=$(kubectl "${ns[@]}" exec "$p" -c reel -- sh -c "$script" sh "$dir" "$release"); then
    echo "reload-all: $p: $out"
  else
    echo "reload-all: $p: reload failed" >&2
    failed=$((failed + 1))
  fi
done
if [ "$failed" -gt 0 ]; then
  echo "reload-all: $failed pod(s) not reloaded" >&2
  exit 1
fi
