"""Subprocesses: asyncio.create_subprocess_* and loop.subprocess_* on both loops."""
import asyncio
import gc
import os
import signal
import subprocess
import sys
import threading

import pytest

PY = sys.executable


def open_fds():
    return sorted(os.listdir("/proc/self/fd"))


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, 30))


def test_communicate_pipes_and_returncode(loop):
    async def main():
        p = await asyncio.create_subprocess_exec(
            PY, "-c", "import sys; d = sys.stdin.read(); sys.stdout.write(d.upper()); "
                      "sys.stderr.write('err'); sys.exit(3)",
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await p.communicate(b"hello")
        return out, err, p.returncode
    assert run(loop, main()) == (b"HELLO", b"err", 3)


def test_shell_stderr_to_stdout(loop):
    async def main():
        p = await asyncio.create_subprocess_shell(
            "echo out; echo err 1>&2; exit 4",
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        data = await p.stdout.read()
        return sorted(data.split()), await p.wait()
    assert run(loop, main()) == ([b"err", b"out"], 4)


def test_devnull_fd_and_file_forms(loop, tmp_path):
    target = tmp_path / "out.txt"

    async def main():
        with open(target, "wb") as f:
            p = await asyncio.create_subprocess_exec(
                PY, "-c", "print('to file')", stdin=subprocess.DEVNULL,
                stdout=f.fileno(), stderr=subprocess.DEVNULL)
            await p.wait()
        with open(target, "ab") as f:
            p = await asyncio.create_subprocess_exec(PY, "-c", "print('again')", stdout=f)
            await p.wait()
    run(loop, main())
    assert target.read_text().split() == ["to", "file", "again"]


def test_signals_to_child(loop):
    async def main():
        codes = []
        for action in ("terminate", "kill", "send_signal"):
            p = await asyncio.create_subprocess_exec("sleep", "30")
            if action == "send_signal":
                p.send_signal(signal.SIGINT)
            else:
                getattr(p, action)()
            codes.append(await p.wait())
        return codes
    assert run(loop, main()) == [-signal.SIGTERM, -signal.SIGKILL, -signal.SIGINT]


def test_subprocess_transport_api(loop):
    class Proto(asyncio.SubprocessProtocol):
        def __init__(self):
            self.data = []
            self.exited = loop.create_future()

        def pipe_data_received(self, fd, data):
            self.data.append((fd, data))

        def process_exited(self):
            self.exited.set_result(True)

    async def main():
        transport, proto = await loop.subprocess_exec(
            Proto, PY, "-c", "print('x')", stdin=None, stderr=None)
        pid = transport.get_pid()
        assert isinstance(pid, int) and pid > 0
        assert transport.get_pipe_transport(1) is not None
        assert transport.get_pipe_transport(0) is None
        await proto.exited
        rc = transport.get_returncode()
        transport.close()
        return rc, b"".join(d for fd, d in proto.data if fd == 1)
    assert run(loop, main()) == (0, b"x\n")


def test_errors_like_asyncio(loop):
    async def main():
        with pytest.raises(FileNotFoundError):
            await asyncio.create_subprocess_exec("/nonexistent/program")
        with pytest.raises(ValueError, match="text must be False"):
            await asyncio.create_subprocess_exec("true", text=True)
        with pytest.raises(ValueError, match="universal_newlines must be False"):
            await asyncio.create_subprocess_exec("true", universal_newlines=True)
        with pytest.raises(ValueError, match="bufsize must be 0"):
            await asyncio.create_subprocess_exec("true", bufsize=1)
        with pytest.raises(ValueError, match="shell must be False"):
            await loop.subprocess_exec(asyncio.SubprocessProtocol, "true", shell=True)
        with pytest.raises(ValueError, match="shell must be True"):
            await loop.subprocess_shell(asyncio.SubprocessProtocol, "true", shell=False)
        with pytest.raises(ValueError, match="cmd must be a string"):
            await loop.subprocess_shell(asyncio.SubprocessProtocol, ["true"])
    run(loop, main())


def test_no_zombies_no_fd_leaks(loop):
    async def main():
        for _ in range(20):
            p = await asyncio.create_subprocess_exec(
                PY, "-c", "pass", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                stdin=subprocess.PIPE)
            await p.communicate()
            pids.append(p.pid)
    pids = []
    run(loop, main())    # warm-up: imports, executor threads
    gc.collect()
    before = open_fds()
    pids.clear()
    run(loop, main())
    gc.collect()
    # no fd left open by the 20 processes; one closed meanwhile (an earlier
    # test's object collected) is not a leak
    assert set(open_fds()) - set(before) == set()
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)    # already reaped by the loop


def test_loop_in_non_main_thread(loop_factory):
    result = []

    def worker():
        lp = loop_factory()
        try:
            async def main():
                p = await asyncio.create_subprocess_exec(
                    PY, "-c", "print(6 * 7)", stdout=subprocess.PIPE)
                out, _ = await p.communicate()
                return out, p.returncode
            result.append(lp.run_until_complete(asyncio.wait_for(main(), 30)))
        finally:
            lp.close()
    t = threading.Thread(target=worker)
    t.start()
    t.join(60)
    assert result == [(b"42\n", 0)]


def test_many_concurrent_children(loop):
    async def main():
        async def one(i):
            p = await asyncio.create_subprocess_exec(
                PY, "-c", f"import sys; sys.exit({i % 7})")
            return await p.wait()
        return await asyncio.gather(*(one(i) for i in range(20)))
    assert run(loop, main()) == [i % 7 for i in range(20)]
