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
trap 'ansible localhost -c local -e "ansible_python_interpreter=${python_interpreter}" -m llmd.verify.port_forward \
        -a "state=absent all=true" >/dev/null 2>&1 || true;
      rm -rf "${XDG_RUNTIME_DIR}"; sandbox_down' EXIT

for backend in python kubectl; do
  ansible-playbook -i localhost, -c local playbook.yml -e "kubeconfig=${KUBECONFIG} namespace=${SANDBOX_NAMESPACE}" \
    -e "ansible_python_interpreter=${python_interpreter}" -e "backend=${backend} sandbox_dir=${SANDBOX_DIR} state_dir=${XDG_RUNTIME_DIR}/llmd_verify/port_forward" \
    "$@"
done

# A play that is killed leaves a forward that still ends by its lifetime.
for backend in python kubectl; do
  # In its own session, so that killing it kills its task workers too, as killing a real play would.
  setsid ansible-playbook -i localhost, -c local killed_play.yml -e "kubeconfig=${KUBECONFIG} namespace=${SANDBOX_NAMESPACE}" \
    -e "ansible_python_interpreter=${python_interpreter}" -e "backend=${backend} port_file=${XDG_RUNTIME_DIR}/port" "$@" &
  play=$!
  for _ in $(seq 100); do [ -s "${XDG_RUNTIME_DIR}/port" ] && break; sleep 0.2; done
  kill -9 -- "-${play}"
  wait "${play}" || true
  port=$(cat "${XDG_RUNTIME_DIR}/port")
  rm -f "${XDG_RUNTIME_DIR}/port"
  python -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 2).close()' "${port}"
  sleep 10  # the lifetime is 10 s, counted from before the kill
  if python -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 2).close()' "${port}"; then
    echo "the forward of the killed play still listens on ${port}"; exit 1
  fi
done
if pgrep -f -- "--kubeconfig ${KUBECONFIG} port-forward" >/dev/null; then
  echo "a kubectl port-forward outlived its daemon"; exit 1
fi
