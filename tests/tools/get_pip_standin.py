"""Offline stand-in for ansible-test's downloaded get-pip bootstrap script.

ansible-test runs this file as ``__main__`` inside a fresh virtual environment, with
get-pip's arguments: pip options, ``--no-setuptools``/``--no-wheel`` and the packages to
install (``pip==X``). There is no route to the download host here, so we bootstrap pip
from the interpreter's bundled wheel (ensurepip) and install the requested packages from
the configured indexes. ensurepip runs in a subprocess: in-process it would hide
/etc/pip.conf and with it the certificate settings.
"""
import subprocess
import sys

GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}


def main():
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
    subprocess.check_call([sys.executable, "-m", "pip", "install"] + args)


if __name__ == "__main__":
    main()
