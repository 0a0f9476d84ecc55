#!/usr/bin/env bash
# Print the path of the first Python interpreter found among the given X.Y versions.
# Looks on PATH, then in pyenv's versions, so a fresh machine with pyenv needs no shims.
set -euo pipefail
for version in "$@"; do
  # pyenv shims exist for versions that are not selected: only trust one that runs.
  if "python${version}" -c "" >/dev/null 2>&1; then
    command -v "python${version}"
    exit 0
  fi
  root=$(pyenv root 2>/dev/null || echo "${HOME}/.pyenv")
  for candidate in "${root}/versions/${version}".*/bin/"python${version}"; do
    if [ -x "${candidate}" ]; then
      echo "${candidate}"
      exit 0
    fi
  done
done
echo "no Python among: $*" >&2
exit 1
