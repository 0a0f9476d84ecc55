"""Restart a pod with `llmd-sandbox restart-pod` (it returns once the replacement is Ready), then print how
many seconds pass until GET /v1/models through the forward answers 200 again: the reconnect time, measured
without Ansible's own task overhead.

    python reconnect_time.py SANDBOX_DIR NAMESPACE POD URL
"""
import http.client
import subprocess
import sys
import time
import urllib.parse

sandbox_dir, namespace, pod, url = sys.argv[1:5]
target = urllib.parse.urlsplit(url)
subprocess.run(["llmd-sandbox", "restart-pod", "--dir", sandbox_dir, "-n", namespace, pod], check=True, timeout=120,
               stdout=subprocess.DEVNULL)
ready = time.monotonic()
while time.monotonic() - ready < 10:
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=2)
    try:
        connection.request("GET", "/v1/models")
        if connection.getresponse().status == 200:
            break
    except OSError:
        pass
    finally:
        connection.close()
    time.sleep(0.05)
print("%.3f" % (time.monotonic() - ready))
