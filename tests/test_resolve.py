"""loop.getaddrinfo / loop.getnameinfo.

asyncio runs socket.getaddrinfo() in the default executor; boucle answers
numeric hosts and ports at once (socket.getaddrinfo with AI_NUMERICHOST |
AI_NUMERICSERV, which never asks a resolver) and sends everything else to
the executor. Every scenario runs on asyncio's own loop and on boucle's (the
``loop`` fixture): the results, and the exceptions, must be socket's."""
import asyncio
import concurrent.futures
import itertools
import logging
import socket

import pytest

S = socket


def run(loop, coro, timeout=60):
    return loop.run_until_complete(asyncio.wait_for(coro, timeout))


def outcome(fn, *args):
    """('ok', result) or ('err', exception type, args)."""
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # noqa: BLE001 - compared as data
        return ("err", type(exc), exc.args)


async def aoutcome(coro):
    try:
        return ("ok", await coro)
    except Exception as exc:  # noqa: BLE001
        return ("err", type(exc), exc.args)


def _lo_ipv6():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


HOSTS = [None, "", "127.0.0.1", "127.1", "0x7f.1", "10", "::1", "fe80::1%lo",
         "fe80::1%1", "::ffff:1.2.3.4", "1.2.3.4 ", "256.1.1.1", b"127.0.0.1",
         "[::1]", "localhost", "1.example.invalid"]
PORTS = [None, 0, 80, "80", "http", "65536", -1, b"443", ""]
FAMILIES = [0, S.AF_INET, S.AF_INET6]
TYPES = [0, S.SOCK_STREAM, S.SOCK_DGRAM]
PROTOS = [0, S.IPPROTO_UDP]
FLAGS = [0, S.AI_PASSIVE, S.AI_CANONNAME, S.AI_NUMERICHOST, S.AI_V4MAPPED | S.AI_ALL]


def _table():
    # the whole product is large: every host and port against a rotating
    # choice of the other arguments, plus the full product for two hosts
    rows = []
    others = list(itertools.product(FAMILIES, TYPES, PROTOS, FLAGS))
    for i, (host, port) in enumerate(itertools.product(HOSTS, PORTS)):
        for j in range(2):
            rows.append((host, port) + others[(i * 7 + j * 31) % len(others)])
    for host in ("127.0.0.1", "::1"):
        for port in (None, 443):
            rows += [(host, port) + o for o in others]
    return rows


TABLE = _table()


def test_results_are_socket_getaddrinfo(loop):
    """Same list (or same exception) as socket.getaddrinfo for every row."""
    async def main():
        diffs = []
        for host, port, family, type_, proto, flags in TABLE:
            if host in ("localhost", "1.example.invalid"):
                continue          # resolver-dependent: covered below
            expected = outcome(socket.getaddrinfo, host, port, family, type_, proto, flags)
            got = await aoutcome(loop.getaddrinfo(host, port, family=family, type=type_,
                                                  proto=proto, flags=flags))
            if got != expected:
                diffs.append(((host, port, family, type_, proto, flags), expected, got))
        return diffs

    assert run(loop, main()) == []


def test_numeric_flags_claim():
    """The fast path's premise: where the numeric-only call succeeds, the
    plain call gives exactly the same list."""
    checked = 0
    for host, port, family, type_, proto, flags in TABLE:
        fast = outcome(socket.getaddrinfo, host, port, family, type_, proto,
                       flags | S.AI_NUMERICHOST | S.AI_NUMERICSERV)
        if fast[0] == "ok":
            checked += 1
            assert outcome(socket.getaddrinfo, host, port, family, type_, proto, flags) == fast
    assert checked > 100


def test_host_names_resolve(loop):
    async def main():
        got = await loop.getaddrinfo("localhost", 80, type=S.SOCK_STREAM)
        assert got == socket.getaddrinfo("localhost", 80, type=S.SOCK_STREAM)
        got = await loop.getaddrinfo("127.0.0.1", "http", type=S.SOCK_STREAM)
        assert got == socket.getaddrinfo("127.0.0.1", "http", type=S.SOCK_STREAM)
        with pytest.raises(socket.gaierror) as ei:
            await loop.getaddrinfo("name.invalid", 80)
        return ei.value.errno

    assert run(loop, main()) in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None),
                                 socket.EAI_AGAIN)


@pytest.mark.skipif(not _lo_ipv6(), reason="no IPv6 loopback")
def test_ipv6_scope_id(loop):
    async def main():
        return await loop.getaddrinfo("fe80::1%lo", 80, type=S.SOCK_DGRAM)

    got = run(loop, main())
    assert got == socket.getaddrinfo("fe80::1%lo", 80, type=S.SOCK_DGRAM)
    assert got[0][4][3] == socket.if_nametoindex("lo")


class CountingExecutor(concurrent.futures.ThreadPoolExecutor):
    def __init__(self):
        super().__init__(max_workers=1)
        self.calls = []

    def submit(self, fn, *args, **kwargs):
        self.calls.append(args[:2])
        return super().submit(fn, *args, **kwargs)


def test_executor_use(loop, loop_factory):
    ex = CountingExecutor()
    loop.set_default_executor(ex)

    async def main():
        await loop.getaddrinfo("127.0.0.1", 80)
        await loop.getaddrinfo(None, 0, flags=S.AI_PASSIVE)
        await loop.getaddrinfo("::1", "8080", type=S.SOCK_STREAM)
        numeric = list(ex.calls)
        await loop.getaddrinfo("localhost", 80)
        await loop.getaddrinfo("127.0.0.1", "http")
        return numeric, ex.calls[len(numeric):]

    numeric, named = run(loop, main())
    ex.shutdown()
    # names always go to the executor; numeric answers skip it on boucle,
    # except in debug mode, where asyncio's logging path is kept
    assert named == [("localhost", 80), ("127.0.0.1", "http")]
    fast = loop_factory.is_boucle and not loop.get_debug()
    assert numeric == ([] if fast
                       else [("127.0.0.1", 80), (None, 0), ("::1", "8080")])


def test_getaddrinfo_lets_other_callbacks_run(loop):
    async def main():
        ran = []
        loop.call_soon(ran.append, "cb")
        await loop.getaddrinfo("127.0.0.1", 80)
        return ran

    assert run(loop, main()) == ["cb"]


def test_getaddrinfo_cancelled(loop):
    async def main():
        task = asyncio.ensure_future(loop.getaddrinfo("127.0.0.1", 80))
        await asyncio.sleep(0)          # the task is now waiting
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(loop, main())


def test_debug_mode_logs(loop, caplog):
    loop.set_debug(True)

    async def main():
        return await loop.getaddrinfo("127.0.0.1", 80, type=S.SOCK_STREAM)

    with caplog.at_level(logging.DEBUG, logger="asyncio"):
        got = run(loop, main())
    assert got == socket.getaddrinfo("127.0.0.1", 80, type=S.SOCK_STREAM)
    msgs = [r.getMessage() for r in caplog.records]
    assert "Get address info 127.0.0.1:80, type=<SocketKind.SOCK_STREAM: 1>" in msgs
    assert any(m.startswith("Getting address info 127.0.0.1:80, type=") for m in msgs)


def test_patched_socket_getaddrinfo_is_called_as_is(loop, monkeypatch):
    calls = []

    def fake(*args):
        calls.append(args)
        return [("fake",)]

    monkeypatch.setattr(socket, "getaddrinfo", fake)

    async def main():
        return await loop.getaddrinfo("127.0.0.1", 80, flags=S.AI_PASSIVE)

    assert run(loop, main()) == [("fake",)]
    assert calls == [("127.0.0.1", 80, 0, 0, 0, S.AI_PASSIVE)]


def test_after_executor_shutdown(loop):
    async def main():
        await loop.shutdown_default_executor()
        with pytest.raises(RuntimeError, match="Executor shutdown has been called"):
            await loop.getaddrinfo("127.0.0.1", 80)

    run(loop, main())


def test_bad_arguments(loop):
    async def main():
        out = []
        for args in [("127.0.0.1", 1.5), ("127.0.0.1", [80]), (1234, 80),
                     ("127.0.0.1", 80, -1), ("127.0.0.1", 80, 0, 0, 0, -1)]:
            host, port, *rest = args
            kw = dict(zip(("family", "type", "proto", "flags"), rest))
            expected = outcome(socket.getaddrinfo, *args)
            got = await aoutcome(loop.getaddrinfo(host, port, **kw))
            out.append((expected, got))
        return out

    for expected, got in run(loop, main()):
        assert expected[0] == "err"
        assert got == expected


def test_getnameinfo(loop):
    async def main():
        a = await loop.getnameinfo(("127.0.0.1", 80), S.NI_NUMERICHOST | S.NI_NUMERICSERV)
        b = await loop.getnameinfo(("127.0.0.1", 80))
        return a, b

    a, b = run(loop, main())
    assert a == ("127.0.0.1", "80")
    assert b == socket.getnameinfo(("127.0.0.1", 80), 0)


def test_repeated_lookups_return_fresh_lists(loop):
    async def main():
        first = await loop.getaddrinfo("127.0.0.1", 80, type=S.SOCK_STREAM)
        first.append("mutated by the caller")
        second = await loop.getaddrinfo("127.0.0.1", 80, type=S.SOCK_STREAM)
        third = await loop.getaddrinfo("127.0.0.1", "80", family=S.AF_INET, type=S.SOCK_STREAM)
        return second, third

    second, third = run(loop, main())
    assert second == socket.getaddrinfo("127.0.0.1", 80, type=S.SOCK_STREAM)
    assert third == socket.getaddrinfo("127.0.0.1", "80", S.AF_INET, S.SOCK_STREAM)


def test_float_arguments_are_refused_like_socket(loop):
    # 2.0 == 2 as a dict key: a cached answer must not leak to a call that
    # socket.getaddrinfo refuses
    async def main():
        await loop.getaddrinfo("127.0.0.1", 80, family=S.AF_INET)
        return await aoutcome(loop.getaddrinfo("127.0.0.1", 80, family=2.0))

    assert run(loop, main()) == outcome(socket.getaddrinfo, "127.0.0.1", 80, 2.0)
