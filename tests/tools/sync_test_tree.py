"""Mirror the files git sees (tracked and untracked-but-not-ignored) into ansible-test's tree.

ansible-test must run from inside .../ansible_collections/llmd/verify and resolves symlinks, so it
works on a copy. Files are copied only when changed, files gone from the checkout are removed, and
ansible-test's own tests/output is kept between runs.
"""
import os
import shutil
import subprocess
import sys

source, target = os.getcwd(), os.path.abspath(sys.argv[1])
listing = subprocess.run(
    ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
    check=True, capture_output=True,
).stdout.decode().split("\0")
wanted = {path for path in listing if path and os.path.isfile(path)}

for path in sorted(wanted):
    src, dst = os.path.join(source, path), os.path.join(target, path)
    if os.path.exists(dst) and os.path.getmtime(dst) >= os.path.getmtime(src) and os.path.getsize(dst) == os.path.getsize(src):
        continue
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copy2(src, dst)

for root, dirs, files in os.walk(target, topdown=True):
    rel_root = os.path.relpath(root, target)
    if rel_root == os.path.join("tests", "output"):
        dirs[:] = []
        continue
    for name in files:
        rel = os.path.normpath(os.path.join(rel_root, name))
        if rel not in wanted:
            os.remove(os.path.join(root, name))
for root, dirs, files in os.walk(target, topdown=False):
    if root != target and not os.listdir(root) and "output" not in os.path.relpath(root, target).split(os.sep)[:2]:
        os.rmdir(root)
