# -*- coding: utf-8 -*-
# Copyright: Contributors to the llmd.verify project
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write report files atomically, only when their content changes, honouring check mode."""

from __future__ import annotations

import os
import tempfile

from ansible.module_utils.common.text.converters import to_bytes


def write_if_changed(module, path, content):
    """Write content to path atomically (mode 0644); return whether the file changed (or would, in check mode)."""
    data = to_bytes(content)
    if os.path.exists(path):
        with open(path, "rb") as handle:
            if handle.read() == data:
                return False
    if module.check_mode:
        return True
    handle, temp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".report-")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.chmod(temp, 0o644)
    module.atomic_move(temp, path)
    return True


def write_files(module, dest, contents):
    """Write {filename: content} into directory dest (created, mode 0755, when missing).

    Returns (changed, {filename: path}).
    """
    changed = False
    if not os.path.isdir(dest):
        changed = True
        if not module.check_mode:
            os.makedirs(dest, 0o755)
    paths = {}
    for filename, content in contents.items():
        path = os.path.join(dest, filename)
        paths[filename] = path
        changed = write_if_changed(module, path, content) or changed
    return changed, paths
