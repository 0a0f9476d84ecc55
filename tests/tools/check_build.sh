#!/usr/bin/env bash
# The collection as users get it: build the tarball, install it offline into an empty path, and check that
# ansible-doc lists every module, lookup and role of the tree.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT
ansible-galaxy collection build --force --output-path "${work}" . >/dev/null
cd "${work}"
ANSIBLE_COLLECTIONS_PATH="${work}/installed" ansible-galaxy collection install --offline -p "${work}/installed" llmd-verify-*.tar.gz >/dev/null
cd - >/dev/null
export ANSIBLE_COLLECTIONS_PATH="${work}/installed" ANSIBLE_CONFIG="${work}/none.cfg"
touch "${ANSIBLE_CONFIG}"
for kind in module lookup; do
  dir=$([ "${kind}" = module ] && echo modules || echo lookup)
  want=$(find "plugins/${dir}" -name '*.py' ! -name '__init__.py' -printf '%f\n' | sed 's/\.py$//' | sort)
  got=$(cd "${work}" && ansible-doc -t "${kind}" -l llmd.verify | awk '{print $1}' | sed 's/^llmd\.verify\.//' | sort)
  if [ "${want}" != "${got}" ]; then
    echo "ansible-doc lists other ${kind}s than the tree has:"; diff <(echo "${want}") <(echo "${got}") || true; exit 1
  fi
  echo "installed tarball: ansible-doc lists all $(echo "${want}" | wc -l) ${kind}s"
done
roles=$(cd "${work}" && ansible-doc -t role -l llmd.verify | grep -c '^llmd\.verify\.')
[ "${roles}" -eq "$(find roles -mindepth 1 -maxdepth 1 -type d | wc -l)" ] || { echo "ansible-doc lists ${roles} roles"; exit 1; }
echo "installed tarball: ansible-doc lists all ${roles} roles"
