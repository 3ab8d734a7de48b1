#!/usr/bin/env bash
# Smoke-test an image: start a container, wait until Docker's HEALTHCHECK reports healthy,
# optionally run a probe on the host, then remove the container (also on failure).
#
#   .ci/smoke_image.sh <image> <timeout seconds> [docker run options...]
#   SMOKE_PROBE='curl -fsS http://127.0.0.1:19696/ready' .ci/smoke_image.sh img 120 -p 127.0.0.1:19696:9696
#
# Fails when the image declares no HEALTHCHECK, the container exits or turns unhealthy, or
# the timeout passes; then prints the health log and the container's last log lines.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 <image> <timeout seconds> [docker run options...]" >&2; exit 2; }
image=$1
timeout=$2
shift 2
docker=${DOCKER:-docker}
name="smoke-$(printf '%s' "$image" | tr -c 'a-zA-Z0-9_.-' '-')-$$"

cleanup() { $docker rm -f "$name" >/dev/null 2>&1 || true; }
trap cleanup EXIT

fail() {
  echo "SMOKE FAILED: $image: $1" >&2
  $docker inspect --format '{{json .State.Health}}' "$name" >&2 || true
  $docker logs --tail 80 "$name" >&2 || true
  exit 1
}

if ! $docker image inspect --format '{{if .Config.Healthcheck}}yes{{end}}' "$image" | grep -q yes; then
  echo "SMOKE FAILED: $image declares no HEALTHCHECK" >&2
  exit 1
fi

start=$(date +%s)
$docker run -d --name "$name" "$@" "$image" >/dev/null
while :; do
  status=$($docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$name")
  running=$($docker inspect --format '{{.State.Running}}' "$name")
  case "$status" in
    healthy) break ;;
    unhealthy) fail "health check reports unhealthy" ;;
  esac
  [ "$running" = true ] || fail "the container exited"
  [ $(( $(date +%s) - start )) -lt "$timeout" ] || fail "not healthy within ${timeout} s (status: $status)"
  sleep 3
done
echo "$image: healthy after $(( $(date +%s) - start )) s"

if [ -n "${SMOKE_PROBE:-}" ]; then
  echo "+ $SMOKE_PROBE"
  bash -c "$SMOKE_PROBE" || fail "probe failed: $SMOKE_PROBE"
  echo
fi
echo "$image: smoke test passed"
