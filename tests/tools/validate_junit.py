"""Validate JUnit XML files against the schema CI systems read (Jenkins xunit's junit-10.xsd).

The schema is not ours to copy: it is taken from the pytest source distribution on PyPI, which
ships it to validate pytest's own JUnit output, and cached under .cache/.

    python tests/tools/validate_junit.py report/junit.xml [...]
"""
import glob
import os
import subprocess
import sys
import tarfile

import xmlschema

PYTEST_SDIST = "pytest==9.2.0"
CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".cache", "junit-schema")
SCHEMA = os.path.join(CACHE, "junit-10.xsd")


def schema_path():
    if not os.path.exists(SCHEMA):
        os.makedirs(CACHE, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                        PYTEST_SDIST, "-d", CACHE], check=True)
        with tarfile.open(glob.glob(os.path.join(CACHE, "pytest-*.tar.gz"))[0]) as sdist:
            member = next(m for m in sdist.getmembers() if m.name.endswith("testing/example_scripts/junit-10.xsd"))
            with open(SCHEMA, "wb") as out:
                out.write(sdist.extractfile(member).read())
    return SCHEMA


def main(paths):
    schema = xmlschema.XMLSchema(schema_path())
    for path in paths:
        schema.validate(path)
        print("valid JUnit XML: %s" % path)


if __name__ == "__main__":
    main(sys.argv[1:])
