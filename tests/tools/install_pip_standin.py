"""Install the get-pip stand-in under every name the given ansible-test asks for."""
import os
import re
import shutil
import sys

import ansible_test

source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "get_pip_standin.py")
req_file = os.path.join(os.path.dirname(ansible_test.__file__), "_internal", "python_requirements.py")
with open(req_file, encoding="utf-8") as handle:
    versions = set(re.findall(r"pip='([0-9.]+)'", handle.read()))
if not versions:
    sys.exit("cannot find the pip version ansible-test bootstraps in %s" % req_file)
cache = os.path.expanduser("~/.ansible/test/cache")
os.makedirs(cache, exist_ok=True)
for version in sorted(versions):
    target = os.path.join(cache, "get_pip_%s.py" % version.replace(".", "_"))
    shutil.copyfile(source, target)
    print("pip bootstrap stand-in: %s" % target)
