"""Subprocesses of boucle.Loop.

asyncio's own subprocess transport (unix_events._UnixSubprocessTransport,
which runs subprocess.Popen and connects the pipes through the loop's
connect_read_pipe/connect_write_pipe) is reused as is; what boucle changes is
how the child's exit is noticed: a pidfd watched by the loop itself (Linux
5.3+), so no thread and no SIGCHLD handler are needed and it works in any
thread. Without pidfd_open a thread waits for the child instead.

On 3.10-3.13 a child watcher that the program installed or asked for
(asyncio.set_child_watcher / get_child_watcher) is honoured, exactly as
asyncio's loop does.
"""
import os
import sys
import threading

from asyncio import events, unix_events
from asyncio.log import logger


def _installed_child_watcher():
    # The watcher the policy already holds, if any (asyncio <= 3.13 only).
    # Asking the policy would create its default one, so peek instead.
    if not hasattr(events, "get_child_watcher"):
        return None
    policy = events._event_loop_policy
    watcher = getattr(policy, "_watcher", None) if policy is not None else None
    return watcher


def _returncode(status):
    return os.waitstatus_to_exitcode(status)


class SubprocessMixin:
    __slots__ = ()

    async def _make_subprocess_transport(self, protocol, args, shell,
                                         stdin, stdout, stderr, bufsize,
                                         extra=None, **kwargs):
        watcher = _installed_child_watcher()
        if watcher is None:
            return await self._spawn(self._watch_child, protocol, args, shell,
                                     stdin, stdout, stderr, bufsize, extra,
                                     kwargs)
        # asyncio's own path, for programs that set up a child watcher
        with watcher as entered:
            if sys.version_info < (3, 12):
                # 3.10/3.11 use what the watcher's __enter__ returns
                watcher = entered
            if not watcher.is_active():
                raise RuntimeError("asyncio.get_child_watcher() is not "
                                   "activated, subprocess support is not "
                                   "installed.")

            def watch(pid, transp):
                watcher.add_child_handler(pid, self._child_watcher_callback,
                                          transp)
            return await self._spawn(watch, protocol, args, shell, stdin,
                                     stdout, stderr, bufsize, extra, kwargs)

    async def _spawn(self, watch, protocol, args, shell, stdin, stdout,
                     stderr, bufsize, extra, kwargs):
        waiter = self.create_future()
        transp = unix_events._UnixSubprocessTransport(
            self, protocol, args, shell, stdin, stdout, stderr, bufsize,
            waiter=waiter, extra=extra, **kwargs)
        watch(transp.get_pid(), transp)
        try:
            await waiter
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:
            transp.close()
            await transp._wait()
            raise
        return transp

    def _child_watcher_callback(self, pid, returncode, transp):
        self.call_soon_threadsafe(transp._process_exited, returncode)

    def _watch_child(self, pid, transp):
        try:
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            # no pidfd (old kernel, seccomp): a thread waits for the child
            threading.Thread(target=self._wait_child_in_thread,
                             args=(pid, transp), daemon=True,
                             name=f"boucle-waitpid-{pid}").start()
            return
        self.add_reader(pidfd, self._pidfd_ready, pid, pidfd, transp)

    def _pidfd_ready(self, pid, pidfd, transp):
        self.remove_reader(pidfd)
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            # reaped by somebody else's waitpid()
            returncode = 255
            logger.warning("child process pid %d exit status already read: "
                           " will report returncode 255", pid)
        else:
            returncode = _returncode(status)
        finally:
            os.close(pidfd)
        self.call_soon(transp._process_exited, returncode)

    def _wait_child_in_thread(self, pid, transp):
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            returncode = 255
            logger.warning("Unknown child process pid %d, will report "
                           "returncode 255", pid)
        else:
            returncode = _returncode(status)
        if self.is_closed():
            logger.warning("Loop %r that handles pid %r is closed", self, pid)
            return
        self.call_soon_threadsafe(transp._process_exited, returncode)
