#!/usr/bin/env bash
# `make integration`: every selected integration target as its own ansible-test run, each followed by
# check_leftovers.py, so that a target that leaves a process, a listening port, a network namespace or a link of
# the suite's behind fails and is named. Processes and namespaces that ran before the target are not counted.
#
#   tests/tools/integration.sh ANSIBLE_TEST PYTHON_VERSION [INTEGRATION_ARGS...]   # run from the test tree
#
# INTEGRATION_ARGS are ansible-test's: targets and selection options (--include, --exclude, --require,
# --start-at, --changed...) choose the targets; the others go to each target's run. Leftovers are ended once
# named, so that the next target starts clean (LLMD_VERIFY_KEEP_LEFTOVERS=1 keeps them for a look).
# A target that runs longer than LLMD_VERIFY_TARGET_TIMEOUT seconds (1800) gets SIGTERM, which its runme.sh's
# EXIT trap turns into its clean-up, and SIGKILL a minute later; then the check runs as after any other.
set -euo pipefail

ansible_test=$1 python_version=$2
shift 2
checker="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/check_leftovers.py"
kill_option=--kill
[ "${LLMD_VERIFY_KEEP_LEFTOVERS:-}" = 1 ] && kill_option=""

all_args=("$@")
# The options for each target's run: without the targets and the selection options (and their values).
run_options=() continue_on_error=""
while [ $# -gt 0 ]; do
  case "$1" in
    --include | --exclude | --require | --start-at | --changed-all-target | --changed-all-mode | --base-branch) shift ;;
    --changed | --untracked | --ignore-committed | --ignore-staged | --ignore-unstaged | --list-targets) ;;
    --continue-on-error) continue_on_error=1 ;;
    --tags | --skip-tags | --start-at-task | --truncate | --display-traceback | --python | --python-interpreter | \
      --docker-network | --docker-terminate | --docker-memory | --docker-seccomp | --controller | --target)
      run_options+=("$1" "${2:-}"); shift ;;
    -*) run_options+=("$1") ;;
    *) ;;  # a target, an alias or a prefix: a selection
  esac
  shift
done
# All of them choose the targets (ansible-test prints its notes on stderr, the targets on stdout).
mapfile -t targets < <("${ansible_test}" integration --list-targets --color no "${all_args[@]}" 2>/dev/null)
[ "${#targets[@]}" -gt 0 ] || { echo "no integration target matches: ${all_args[*]}"; exit 1; }

snapshot=$(mktemp "${TMPDIR:-/tmp}/llmd-leftovers.XXXXXX")
# The run's marker (`make test` sets it for all it runs, else the first snapshot makes one). ansible-test passes
# none of our variables to the targets, but it keeps PATH: an empty directory named after the marker, put on PATH,
# carries it to setup_sandbox/sandbox.sh, which exports it again. One per run, so runs side by side keep theirs.
LLMD_VERIFY_LEFTOVER_RUN=$(python3 "${checker}" snapshot "${snapshot}")
export LLMD_VERIFY_LEFTOVER_RUN
marker_dir="${TMPDIR:-/tmp}/llmd-verify-run.${LLMD_VERIFY_LEFTOVER_RUN}"
mkdir -p "${marker_dir}"
export PATH="${marker_dir}:${PATH}"
trap 'rm -f "${snapshot}"; rmdir "${marker_dir}" 2>/dev/null || true' EXIT
failed=()
for target in "${targets[@]}"; do
  python3 "${checker}" snapshot "${snapshot}" >/dev/null
  status=0
  timeout -k 60 "${LLMD_VERIFY_TARGET_TIMEOUT:-1800}" \
    "${ansible_test}" integration --local --python "${python_version}" --color no "${run_options[@]}" "${target}" || status=$?
  if [ "${status}" -eq 124 ] || [ "${status}" -eq 137 ]; then
    echo "integration target ${target} timed out after ${LLMD_VERIFY_TARGET_TIMEOUT:-1800} s"
  fi
  python3 "${checker}" check "${snapshot}" --label "integration target ${target}" ${kill_option} || status=$(( status ? status : 1 ))
  if [ "${status}" -ne 0 ]; then
    failed+=("${target}")
    [ -n "${continue_on_error}" ] || break
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "integration targets that failed or left something running: ${failed[*]}"
  exit 1
fi
echo "integration: ${#targets[@]} target(s) passed, none left anything running"
