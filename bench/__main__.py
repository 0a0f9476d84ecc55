"""Run every benchmark in this package (`make bench`), or those named: `python -m bench port_forward`."""
import importlib
import pkgutil
import sys
import time

import bench


def main(argv):
    names = argv or sorted(info.name for info in pkgutil.iter_modules(bench.__path__) if not info.name.startswith("_"))
    for name in names:
        module = importlib.import_module("bench.%s" % name)
        print("== %s ==" % name, flush=True)
        started = time.monotonic()
        module.main()
        print("(%s took %.1f s)\n" % (name, time.monotonic() - started), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
