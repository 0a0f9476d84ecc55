#!/usr/bin/env bash
# Sourced by integration targets' runme.sh: start a sandbox scenario (or use a real cluster) and
# clean up on exit.
#
#   source ../setup_sandbox/sandbox.sh
#   sandbox_up inference-scheduling        # exports KUBECONFIG, SANDBOX_DIR, SANDBOX_NAMESPACE, SANDBOX_STATE
#   ansible-playbook -i ../../inventory playbook.yml -e "kubeconfig=${KUBECONFIG} namespace=${SANDBOX_NAMESPACE}"
#
# Against a real cluster: export LLMD_VERIFY_KUBECONFIG (and LLMD_VERIFY_NAMESPACE); sandbox_up then
# uses it, and targets that need sandbox-only powers call sandbox_only to skip themselves.
#
# A target that starts something in the background gives it an owner and a lifetime:
#   run_in_session PIDFILE timeout -k 5 90 ansible-playbook ... &   # PIDFILE gets the session's id
#   trap '...; kill_session "$(cat PIDFILE)"' EXIT                   # ends it on success, failure and timeout

# Targets run their playbooks with `-i localhost,`: give them the interpreter ansible-test chose (it has
# the kubernetes client), else the python on PATH, instead of ansible-test's "set it in the inventory".
ANSIBLE_PYTHON_INTERPRETER="${ANSIBLE_TEST_PYTHON_INTERPRETER:-$(command -v python)}"
export ANSIBLE_PYTHON_INTERPRETER

# The run marker of tests/tools/check_leftovers.py: ansible-test passes none of our variables through, so
# tests/tools/integration.sh puts it on PATH as a directory llmd-verify-run.MARKER; what a target starts carries it.
if [ -z "${LLMD_VERIFY_LEFTOVER_RUN:-}" ]; then
  IFS=: read -r -a _path_entries <<< "${PATH}"
  for _entry in "${_path_entries[@]}"; do
    case "${_entry}" in
      */llmd-verify-run.?*)
        LLMD_VERIFY_LEFTOVER_RUN=${_entry##*/llmd-verify-run.}
        export LLMD_VERIFY_LEFTOVER_RUN
        break ;;
    esac
  done
fi

# ansible-test runs a copy of a target elsewhere: COLLECTION_ROOT is the collection where Ansible finds it.
collection_root() {
  local base collection_paths
  COLLECTION_ROOT=""
  IFS=: read -r -a collection_paths <<< "${ANSIBLE_COLLECTIONS_PATH:-}"
  for base in "${collection_paths[@]}"; do
    if [ -d "${base}/ansible_collections/llmd/verify/playbooks" ]; then
      COLLECTION_ROOT="${base}/ansible_collections/llmd/verify"
      break
    fi
  done
  [ -n "${COLLECTION_ROOT}" ] || { echo "set ANSIBLE_COLLECTIONS_PATH to where llmd.verify is installed"; exit 1; }
  export COLLECTION_ROOT
}

sandbox_up() {
  local scenario=$1
  shift
  if [ -n "${LLMD_VERIFY_KUBECONFIG:-}" ]; then
    export KUBECONFIG="${LLMD_VERIFY_KUBECONFIG}"
    export SANDBOX_NAMESPACE="${LLMD_VERIFY_NAMESPACE:-llm-d}"
    export SANDBOX_DIR="" SANDBOX_STATE=""
    return 0
  fi
  SANDBOX_DIR=$(mktemp -d "${TMPDIR:-/tmp}/llmd-sandbox-${scenario}.XXXXXX")
  export SANDBOX_DIR
  trap 'sandbox_down' EXIT
  # It stops when this shell is gone (llmd-sandbox watches its caller) or after its lifetime, whichever is first.
  llmd-sandbox up --scenario "${scenario}" --dir "${SANDBOX_DIR}" --lifetime "${SANDBOX_LIFETIME:-1800}" "$@" >/dev/null
  export KUBECONFIG="${SANDBOX_DIR}/kubeconfig"
  export SANDBOX_STATE="${SANDBOX_DIR}/state.json"
  SANDBOX_NAMESPACE=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["namespace"])' "${SANDBOX_STATE}")
  export SANDBOX_NAMESPACE
  export KUBECACHEDIR="${SANDBOX_DIR}/kube-cache"
}

sandbox_down() {
  if [ -n "${SANDBOX_DIR:-}" ] && [ -d "${SANDBOX_DIR}" ]; then
    llmd-sandbox down --dir "${SANDBOX_DIR}" >/dev/null 2>&1 || true
    rm -rf "${SANDBOX_DIR}"
  fi
}

# Skip the calling target against a real cluster (it needs to restart pods or inject faults).
sandbox_only() {
  if [ -n "${LLMD_VERIFY_KUBECONFIG:-}" ]; then
    echo "skipped: needs the sandbox ($*)"
    exit 0
  fi
}

# run_in_session PIDFILE COMMAND...: run COMMAND in a session of its own (call it with & to background it).
# PIDFILE gets the pid of its session's leader, which is the session's id, as soon as the session exists:
# `setsid` may fork, so $! is not that pid. The leader execs COMMAND, so COMMAND (or its `timeout`) leads.
run_in_session() {
  local pidfile=$1
  shift
  # shellcheck disable=SC2016 # $$ and $@ are the session's sh's
  setsid --wait sh -c 'echo $$ > "$0"; exec "$@"' "${pidfile}" "$@"
}

# kill_session SID: SIGKILL every process of session SID and every descendant of theirs (Ansible's task workers
# run in sessions of their own), then wait up to 5 s until all of them are gone. Fails naming any survivor.
kill_session() {
  local sid=$1 pids left
  [ -n "${sid}" ] || return 0
  pids=$(ps -eo pid=,ppid=,sid= | awk -v sid="${sid}" '
    { parent[$1] = $2; if ($3 == sid) take[$1] = 1 }
    END { do { grew = 0; for (p in parent) if (!(p in take) && (parent[p] in take)) { take[p] = 1; grew = 1 } } while (grew)
          for (p in take) print p }')
  [ -n "${pids}" ] || return 0
  # shellcheck disable=SC2086 # one pid a word
  kill -KILL ${pids} 2>/dev/null || true
  for _ in $(seq 50); do
    # shellcheck disable=SC2086
    left=$(ps -o pid=,stat=,args= -p "$(echo ${pids} | tr ' ' ,)" | awk '$2 !~ /^Z/' || true)
    [ -z "${left}" ] && return 0
    sleep 0.1
  done
  echo "still running after SIGKILL to session ${sid}:"
  echo "${left}"
  return 1
}
