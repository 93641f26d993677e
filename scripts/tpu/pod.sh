#!/usr/bin/env bash
# Run small-e-jax training on a Cloud TPU VM slice (every worker runs the same command;
# jax.distributed.initialize() finds the others through the TPU metadata).
#
#   scripts/tpu/pod.sh [options] create            create the TPU VM slice
#   scripts/tpu/pod.sh [options] setup             copy this checkout to every worker, install it
#   scripts/tpu/pod.sh [options] launch [-- ARGS]  start `python -m $EXPERIMENT ARGS` on all workers
#   scripts/tpu/pod.sh [options] logs              stream worker 0's log
#   scripts/tpu/pod.sh [options] stop              SIGTERM the training (it saves a checkpoint)
#   scripts/tpu/pod.sh [options] teardown          delete the slice
#   scripts/tpu/pod.sh [options] all [-- ARGS]     create, setup, launch, logs
#
# Options (or the environment variables in brackets):
#   --name NAME [TPU_NAME, default small-e]      --zone ZONE [TPU_ZONE, default us-central2-b]
#   --type TYPE [TPU_TYPE, default v4-32]        --version V [TPU_VERSION, default tpu-ubuntu2204-base]
#   --project P [TPU_PROJECT, default: gcloud's] --experiment M [EXPERIMENT, default experiments.librilight_medium]
#   --spot      request a preemptible (spot) slice; training resumes from its checkpoints
#   --dry-run   print every command instead of running it
#
# Checkpoints must go to storage shared by all workers (orbax writes one checkpoint together), e.g.
#   launch -- --data=librilight_medium checkpoint.directory=gs://BUCKET/run1 data.data_dir=gs://BUCKET/tfds
set -euo pipefail

NAME="${TPU_NAME:-small-e}"
ZONE="${TPU_ZONE:-us-central2-b}"
TYPE="${TPU_TYPE:-v4-32}"
VERSION="${TPU_VERSION:-tpu-ubuntu2204-base}"
PROJECT="${TPU_PROJECT:-}"
EXPERIMENT="${EXPERIMENT:-experiments.librilight_medium}"
SPOT=0
DRY_RUN=0
REMOTE_DIR="small-e-jax"
LOG="train.log"

die() { echo "error: $*" >&2; exit 2; }

# Print a command (shell-quoted); run it unless --dry-run.
run() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
  if [[ "$DRY_RUN" == 0 ]]; then
    "$@"
  fi
}

gcloud_tpu() {
  local extra=()
  if [[ -n "$PROJECT" ]]; then extra+=(--project "$PROJECT"); fi
  run gcloud compute tpus tpu-vm "$@" --zone "$ZONE" "${extra[@]}"
}

on_all_workers() { gcloud_tpu ssh "$NAME" --worker=all --command "$1"; }

cmd_create() {
  local spot=()
  if [[ "$SPOT" == 1 ]]; then spot=(--spot); fi
  gcloud_tpu create "$NAME" --accelerator-type "$TYPE" --version "$VERSION" "${spot[@]}"
}

cmd_setup() {
  local root tarball
  root="$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
  tarball="$(mktemp -d)/small-e-jax.tar.gz"
  # The committed tree (HEAD): commit before `setup` so that every worker runs the same code.
  if [[ -n "$(git -C "$root" status --porcelain --untracked-files=no)" ]]; then
    echo "warning: uncommitted changes are not copied (git archive HEAD)" >&2
  fi
  run git -C "$root" archive --format=tar.gz -o "$tarball" HEAD
  gcloud_tpu scp "$tarball" "$NAME:~/small-e-jax.tar.gz" --worker=all
  on_all_workers "mkdir -p ~/$REMOTE_DIR && tar -xzf ~/small-e-jax.tar.gz -C ~/$REMOTE_DIR && cd ~/$REMOTE_DIR && python3 -m pip install -q -U pip && python3 -m pip install -q 'jax[tpu]' -r requirements.txt && python3 -m pip install -q -e ."
}

cmd_launch() {
  local args="" a
  for a in "$@"; do args+=" $(printf '%q' "$a")"; done
  on_all_workers "cd ~/$REMOTE_DIR && nohup python3 -m $EXPERIMENT$args > ~/$LOG 2>&1 < /dev/null &"
}

cmd_logs() { gcloud_tpu ssh "$NAME" --worker=0 --command "tail -n +1 -F ~/$LOG"; }

cmd_stop() { on_all_workers "pkill -TERM -f 'python3 -m $EXPERIMENT' || true"; }

cmd_teardown() { gcloud_tpu delete "$NAME" --quiet; }

main() {
  local command=""
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --name) NAME="${2:?--name needs a value}"; shift 2 ;;
      --zone) ZONE="${2:?--zone needs a value}"; shift 2 ;;
      --type) TYPE="${2:?--type needs a value}"; shift 2 ;;
      --version) VERSION="${2:?--version needs a value}"; shift 2 ;;
      --project) PROJECT="${2:?--project needs a value}"; shift 2 ;;
      --experiment) EXPERIMENT="${2:?--experiment needs a value}"; shift 2 ;;
      --spot) SPOT=1; shift ;;
      --dry-run) DRY_RUN=1; shift ;;
      -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
      --) shift; break ;;
      -*) die "unknown option $1 (see --help)" ;;
      *) if [[ -z "$command" ]]; then command="$1"; shift; else break; fi ;;
    esac
  done
  if [[ "${1:-}" == "--" ]]; then shift; fi
  [[ "$EXPERIMENT" =~ ^experiments\.[a-z_]+$ ]] || die "--experiment must look like experiments.NAME"
  case "$command" in
    create) cmd_create ;;
    setup) cmd_setup ;;
    launch) cmd_launch "$@" ;;
    logs) cmd_logs ;;
    stop) cmd_stop ;;
    teardown) cmd_teardown ;;
    all) cmd_create; cmd_setup; cmd_launch "$@"; cmd_logs ;;
    "") die "missing command: create | setup | launch | logs | stop | teardown | all (see --help)" ;;
    *) die "unknown command $command (see --help)" ;;
  esac
}

main "$@"
