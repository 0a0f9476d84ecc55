"""Container processes, forked from one Python that has already imported the sandbox's container programs.

Each container is its own process, forked instead of exec'd: a fresh interpreter spends ~0.3 s of CPU
importing aiohttp, which made `up` of a 7-container scenario take seconds on 2 shared cores. The child
enters its pod's network namespace (setns), then either runs the sandbox's own program for the image
(`llmd_sandbox.containers`) or execs a real binary (`exec` in its config). The zygote dies with the
supervisor (PR_SET_PDEATHSIG) and the containers with the zygote.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import socket
import sys
import traceback
from collections.abc import Callable

from .cluster import die_with_parent

MAX_GRACE_SECONDS = 2.0


class ContainerProcess:
    """A container's process as the zygote forked it: its output pipes, its exit code, signals."""

    def __init__(self, pid: int, stdout: asyncio.StreamReader, stderr: asyncio.StreamReader, exited: asyncio.Future):
        self.pid, self.stdout, self.stderr, self._exited = pid, stdout, stderr, exited
        self.killed_by_us = False

    @property
    def returncode(self) -> int | None:
        return self._exited.result() if self._exited.done() else None

    @property
    def oom_killed(self) -> bool:
        """Died of a SIGKILL nobody here sent: what the kernel's OOM killer leaves."""
        return self.returncode == 137 and not self.killed_by_us

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            if signum == signal.SIGKILL:
                self.killed_by_us = True
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Zygote:
    def __init__(self):
        self.process: asyncio.subprocess.Process | None = None
        self.socket: socket.socket | None = None
        self._started: collections.deque[asyncio.Future] = collections.deque()
        self._exits: dict[int, asyncio.Future] = {}
        self._sending = asyncio.Lock()

    @property
    def pid(self) -> int:
        return self.process.pid

    async def start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "llmd_sandbox.zygote", str(theirs.fileno()),
            pass_fds=(theirs.fileno(),), stdin=asyncio.subprocess.DEVNULL, preexec_fn=die_with_parent)
        theirs.close()
        ours.setblocking(False)
        self.socket = ours
        asyncio.get_running_loop().add_reader(ours, self._on_message)

    async def stop(self) -> None:
        if self.process is None:
            return
        asyncio.get_running_loop().remove_reader(self.socket)
        self.socket.close()  # the zygote exits when its socket closes
        try:
            await asyncio.wait_for(self.process.wait(), MAX_GRACE_SECONDS)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()

    async def spawn(self, config: str) -> ContainerProcess:
        loop = asyncio.get_running_loop()
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        try:
            await self._send(config.encode(), [out_write, err_write])
        except BaseException:
            os.close(out_read)
            os.close(err_read)
            raise
        finally:
            os.close(out_write)
            os.close(err_write)
        # Answers come in the order the requests were sent; none is read before this line (no await since
        # the send), so this request's future is the one its answer finds.
        started = loop.create_future()
        self._started.append(started)
        pid = await started
        readers = []
        for fd in (out_read, err_read):
            reader = asyncio.StreamReader(limit=1024 * 1024)
            await loop.connect_read_pipe(lambda r=reader: asyncio.StreamReaderProtocol(r), os.fdopen(fd, "rb", 0))
            readers.append(reader)
        return ContainerProcess(pid, readers[0], readers[1], self._exit_future(pid))

    async def _send(self, message: bytes, fds: list[int]) -> None:
        """Sends one request, waiting for room while the zygote's queue is full (many containers at once). One
        sender at a time: one waiter for room, and requests leave in the order their answers are expected."""
        loop = asyncio.get_running_loop()
        async with self._sending:
            while True:
                try:
                    socket.send_fds(self.socket, [message], fds)
                    return
                except BlockingIOError:
                    writable = loop.create_future()
                    loop.add_writer(self.socket, lambda: writable.done() or writable.set_result(None))
                    try:
                        await writable
                    finally:
                        loop.remove_writer(self.socket)

    def _exit_future(self, pid: int) -> asyncio.Future:
        if pid not in self._exits:
            self._exits[pid] = asyncio.get_running_loop().create_future()
        return self._exits[pid]

    def _on_message(self) -> None:
        try:
            data = self.socket.recv(4096)
        except BlockingIOError:
            return
        if not data:  # the zygote is gone: nothing it forked is left either
            asyncio.get_running_loop().remove_reader(self.socket)
            return
        message = json.loads(data)
        if "started" in message:
            self._started.popleft().set_result(message["started"])
        else:
            future = self._exit_future(message["exited"])
            if not future.done():
                future.set_result(message["code"])


def _zygote_main(fd: int) -> None:
    """The zygote's loop: fork a container per request, report its pid and, later, its exit code."""
    import importlib
    import select

    from .containers import __main__ as entry

    for _image_fragment, program in entry.PROGRAMS:
        importlib.import_module(f"llmd_sandbox.containers.{program}")
    channel = socket.socket(fileno=fd)
    children = 0
    while True:
        if select.select([channel], [], [], 0.05)[0]:
            config, fds, _flags, _address = socket.recv_fds(channel, 1024 * 1024, 2)
            if not config:
                return
            pid = os.fork()
            if pid == 0:
                _run_container(channel, config, fds, entry.main)
            for descriptor in fds:
                os.close(descriptor)
            children += 1
            channel.send(json.dumps({"started": pid}).encode())
        while children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            children -= 1
            code = os.waitstatus_to_exitcode(status)
            channel.send(json.dumps({"exited": pid, "code": code if code >= 0 else 128 - code}).encode())


def _enter_netns(name: str) -> None:
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        os.setns(fd, os.CLONE_NEWNET)
    finally:
        os.close(fd)


_MS_NOSUID, _MS_NODEV, _MS_REC, _MS_PRIVATE = 0x2, 0x4, 0x4000, 0x40000


def _private_shm() -> None:
    """A /dev/shm of the container's own, as a pod has one, in a mount namespace that ends with it.

    Envoy as the charts run it keeps hot restart on, and so a shared memory region named by its base id
    (/dev/shm/envoy_shared_memory_0) that it leaves behind when it exits. On the host's /dev/shm every pod's
    Envoy of every sandbox would use the same region. (In a pod, its containers share one /dev/shm; here each
    container has its own: none of the sandbox's containers talk through shared memory.)
    """
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    os.unshare(os.CLONE_NEWNS)
    for source, target, kind, flags, data in (
            (None, b"/", None, _MS_REC | _MS_PRIVATE, None),  # nothing mounted here reaches the host's mounts
            (b"shm", b"/dev/shm", b"tmpfs", _MS_NOSUID | _MS_NODEV, b"mode=1777,size=64m")):
        if libc.mount(source, target, kind, flags, data) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"mount {target.decode()}: {os.strerror(error)}")


def _run_container(channel: socket.socket, config: bytes, fds: list[int], main: Callable[[], int]) -> None:
    """In the forked child: become the container (stdout/stderr to the node agent's pipes), never return."""
    code = 1
    try:
        die_with_parent()
        os.setsid()
        channel.close()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(fds[0], 1)
        os.dup2(fds[1], 2)
        for descriptor in (devnull, *fds):
            os.close(descriptor)
        settings = json.loads(config)
        if settings.get("netns"):
            _enter_netns(settings["netns"])
            _private_shm()
        if settings.get("exec"):
            command = settings["exec"]
            env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", **settings.get("env", {})}
            os.execve(command[0], command, env)
        os.environ["LLMD_SANDBOX_CONTAINER"] = config.decode()
        code = main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code or 0)


if __name__ == "__main__":
    _zygote_main(int(sys.argv[1]))
