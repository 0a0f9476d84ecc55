#!/usr/bin/env bash
# port_forward against the sandbox's sim scenario, for both backends: start, idempotence, port conflicts,
# reconnect after `llmd-sandbox restart-pod`, kubectl's behaviour without reconnect, lifetime and idle
# timeout, stop, and that no credential reaches a state file or a command line. It restarts pods, so it
# needs the sandbox.
set -eux

source ../setup_sandbox/sandbox.sh
sandbox_only "restarts pods"
sandbox_up sim
# The interpreter ansible-test chose (it has the kubernetes client), else the python on PATH.
python_interpreter=${ANSIBLE_TEST_PYTHON_INTERPRETER:-$(command -v python)}

# A private state directory for this run, so that `all: true` only meets forwards started here.
XDG_RUNTIME_DIR=$(mktemp -d "${TMPDIR:-/tmp}/port-forward-test.XXXXXX")
export XDG_RUNTIME_DIR
state_dir="${XDG_RUNTIME_DIR}/llmd_verify/port_forward"
play_sid=""
# On success, failure or timeout: the killed play's session (if it still runs), every forward, the sandbox.
trap 'kill_session "${play_sid}" || true
      ansible localhost -c local -e "ansible_python_interpreter=${python_interpreter}" -m llmd.verify.port_forward \
        -a "state=absent all=true" >/dev/null 2>&1 || true;
      rm -rf "${XDG_RUNTIME_DIR}"; sandbox_down' EXIT

for backend in python kubectl; do
  ansible-playbook -i localhost, -c local playbook.yml -e "kubeconfig=${KUBECONFIG} namespace=${SANDBOX_NAMESPACE}" \
    -e "ansible_python_interpreter=${python_interpreter}" -e "backend=${backend} sandbox_dir=${SANDBOX_DIR} state_dir=${state_dir}" \
    "$@"
done

alive() {  # whether PID runs (a zombie does not)
  [ -n "$(ps -o stat= -p "$1" | grep -v '^Z' || true)" ]
}

listens() {  # whether something accepts connections on 127.0.0.1:PORT
  python -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 2).close()' "$1" 2>/dev/null
}

# A play that is killed leaves a forward that still ends by its lifetime.
for backend in python kubectl; do
  rm -f "${XDG_RUNTIME_DIR}/port" "${XDG_RUNTIME_DIR}/play.sid"
  # In a session of its own, whose id it writes itself, so that the kill below reaches the play and its task
  # workers for certain; `timeout` ends it if this script dies before it kills it.
  run_in_session "${XDG_RUNTIME_DIR}/play.sid" timeout -k 5 90 \
    ansible-playbook -i localhost, -c local killed_play.yml -e "kubeconfig=${KUBECONFIG} namespace=${SANDBOX_NAMESPACE}" \
    -e "ansible_python_interpreter=${python_interpreter}" -e "backend=${backend} port_file=${XDG_RUNTIME_DIR}/port" "$@" &
  waiter=$!
  for _ in $(seq 150); do [ -s "${XDG_RUNTIME_DIR}/port" ] && break; sleep 0.2; done
  [ -s "${XDG_RUNTIME_DIR}/port" ] || { echo "the killed play never wrote its port"; exit 1; }
  play_sid=$(cat "${XDG_RUNTIME_DIR}/play.sid")
  port=$(cat "${XDG_RUNTIME_DIR}/port")
  forward_pid=$(python -c 'import glob, json, sys; print(*[json.load(open(f))["pid"] for f in glob.glob(sys.argv[1] + "/*.json")])' "${state_dir}")
  if [ -z "${forward_pid}" ] || [ "${forward_pid}" != "${forward_pid%% *}" ]; then
    echo "not one forward in ${state_dir}: '${forward_pid}'"; exit 1
  fi
  killed_at=$(date +%s)
  kill_session "${play_sid}"
  wait "${waiter}" || true
  # The play is gone: no process of its session runs (a zombie is dead), nor any descendant (kill_session checked).
  left=$(ps -o pid=,stat=,args= -s "${play_sid}" | awk '$2 !~ /^Z/' || true)
  if [ -n "${left}" ]; then
    echo "the killed play's session ${play_sid} still has processes:"; echo "${left}"; exit 1
  fi
  play_sid=""
  # Its forward is not: it still answers, and then ends by its lifetime (10 s from its start, before the kill).
  listens "${port}" || { echo "the forward of the killed play died with it (port ${port})"; exit 1; }
  alive "${forward_pid}" || { echo "the forward's daemon ${forward_pid} died with the play"; exit 1; }
  while listens "${port}" || alive "${forward_pid}"; do
    if [ $(( $(date +%s) - killed_at )) -gt 20 ]; then
      echo "the forward of the killed play (pid ${forward_pid}) still runs or listens on ${port} 20 s after the kill"; exit 1
    fi
    sleep 0.5
  done
done
if pgrep -f -- "--kubeconfig ${KUBECONFIG} port-forward" >/dev/null; then
  echo "a kubectl port-forward outlived its daemon"; exit 1
fi
