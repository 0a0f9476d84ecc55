#!/usr/bin/env bash
# Faults and the soak, on one `faults` sandbox (scenarios/faults.yaml: the sim stack with a fault sidecar in its
# decode pod): soak.py runs playbooks/verify.yml 50 times (LLMD_VERIFY_SOAK_RUNS), a seeded random fault in each
# (LLMD_VERIFY_SOAK_SEED replays a sequence), asserts each fault's outcome and prints what was left behind
# (0 processes, listening ports, network namespaces, state files, tracebacks, secrets). First the secrets check
# of setup_secrets with the sandbox's admin token and an API key, -vvv. It restarts pods and the API server, so
# it needs the sandbox.
set -eux

source ../setup_sandbox/sandbox.sh
sandbox_only "restarts pods and the API server, and injects faults"

collection_root
work=$(mktemp -d)
trap 'rm -rf "${work}"; sandbox_down' EXIT
sandbox_up faults

# Secrets: the forward's state (0600 in 0700), loopback only, and no key, token or Authorization value anywhere.
runtime="${work}/runtime"
mkdir -m 700 "${runtime}"
# Written by Python, so that neither value passes through this shell's trace (set -x) into the target's output.
(umask 077; python -c '
import json, secrets, sys
state, work = sys.argv[1:]
key = "llmd-test-key-" + secrets.token_hex(16)
with open(work + "/secrets", "w") as out:
    out.write("%s\n%s\n" % (key, json.load(open(state))["tokens"]["admin"]))
with open(work + "/api_key.json", "w") as out:
    json.dump({"api_key": key}, out)
' "${SANDBOX_STATE}" "${work}")
XDG_RUNTIME_DIR="${runtime}" timeout -k 5 300 ansible-playbook -vvv ../setup_secrets/secrets.yml -i localhost, -c local \
  -e "kubeconfig=${KUBECONFIG} namespace=${SANDBOX_NAMESPACE} secrets_file=${work}/secrets" \
  -e "state_dir=${runtime}/llmd_verify/port_forward" -e "@${work}/api_key.json" \
  > "${work}/secrets.log" 2>&1 || { tail -n 60 "${work}/secrets.log"; exit 1; }
python ../setup_secrets/secret_scan.py scan "${work}/secrets" "${work}/secrets.log" "${runtime}"
[ -z "$(ls -A "${runtime}/llmd_verify/port_forward")" ] || { ls -la "${runtime}/llmd_verify/port_forward"; exit 1; }

# The soak (its own API key and -vvv in every run, scanned after each).
timeout -k 10 1200 python soak.py "${SANDBOX_DIR}" "${work}/soak" --runs "${LLMD_VERIFY_SOAK_RUNS:-50}"
