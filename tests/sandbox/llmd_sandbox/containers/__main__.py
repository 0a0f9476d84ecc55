"""Entry point of every sandbox container: `python -m llmd_sandbox.containers`.

Reads the kubelet's JSON, picks the program by image (ARCHITECTURE.md, "Containers"), runs it, and exits
0 on SIGTERM like a well-behaved container, or with the program's own exit code.
"""

import asyncio
import importlib
import signal
import sys

from .spec import ContainerSpec

# First match wins, so the more specific image names come first.
PROGRAMS = (
    ("llm-d-routing-sidecar", "routing_proxy"),
    ("llm-d-inference-sim", "vllm"),
    ("vllm", "vllm"),
    ("llm-d-inference-scheduler", "epp"),
    ("epp", "epp"),
    ("llmd-sandbox-echo", "echo"),  # the sandbox's own test server (tests/sandbox/tests)
    ("llmd-sandbox-fault", "fault"),  # faults of a gateway or model server (tests/integration/targets/faults)
)


def program_for(image: str) -> str:
    for fragment, program in PROGRAMS:
        if fragment in image:
            return program
    raise SystemExit(f"llmd-sandbox: no container program for image {image!r}")


async def _run(spec: ContainerSpec) -> int:
    module = importlib.import_module(f".{program_for(spec.image)}", __package__)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return await module.run(spec, stop)


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    return asyncio.run(_run(ContainerSpec.from_environ()))


if __name__ == "__main__":
    sys.exit(main())
