"""redis-py's asyncio client (redis.asyncio) on boucle against a real redis-server."""
import asyncio

import pytest

from .integration_helpers import boucle, need, run

need("redis")
import redis.asyncio as aioredis  # noqa: E402
from redis.exceptions import ConnectionError as RedisConnectionError  # noqa: E402
from redis.exceptions import TimeoutError as RedisTimeoutError  # noqa: E402


def client(server, **kw):
    kw.setdefault("socket_timeout", 5)
    return aioredis.Redis.from_url(server.url, socket_connect_timeout=5, **kw)


def test_commands(redis_server):
    async def main():
        r = client(redis_server)
        try:
            assert await r.ping() is True
            assert await r.set("k", "v") is True
            assert await r.get("k") == b"v"
            assert await r.incrby("n", 5) == 5
            assert await r.incr("n") == 6
            await r.hset("h", mapping={"a": "1", "b": "2"})
            assert await r.hgetall("h") == {b"a": b"1", b"b": b"2"}
            await r.rpush("l", *range(10))
            assert await r.lrange("l", 0, -1) == [str(i).encode() for i in range(10)]
            big = b"x" * (4 * 1024 * 1024)                      # 4 MiB value
            await r.set("big", big)
            assert await r.get("big") == big
            assert await r.set("ttl", 1, px=100) and await r.pttl("ttl") > 0
            await asyncio.sleep(0.15)
            assert await r.get("ttl") is None
            # Blocking command with a server-side timeout.
            assert await r.blpop(["empty"], timeout=0.2) is None
            assert await r.dbsize() >= 4
        finally:
            await r.aclose()
    run(main())


def test_pipeline_and_transaction(redis_server):
    async def main():
        r = client(redis_server)
        try:
            async with r.pipeline(transaction=False) as p:
                for i in range(1000):
                    p.set("p%d" % i, i)
                for i in range(1000):
                    p.get("p%d" % i)
                res = await p.execute()
            assert res[:1000] == [True] * 1000
            assert res[1000:] == [str(i).encode() for i in range(1000)]
            async with r.pipeline(transaction=True) as p:
                res = await p.incr("t").incr("t").get("t").execute()
            assert res == [1, 2, b"2"]
            # WATCH / MULTI retry loop (optimistic locking).
            await r.set("bal", 100)

            async def withdraw(amount):
                async with r.pipeline() as p:
                    while True:
                        try:
                            await p.watch("bal")
                            bal = int(await p.get("bal"))
                            p.multi()
                            p.set("bal", bal - amount)
                            await p.execute()
                            return
                        except aioredis.WatchError:
                            continue
            await asyncio.gather(*(withdraw(1) for _ in range(10)))
            assert int(await r.get("bal")) == 90
        finally:
            await r.aclose()
    run(main())


def test_pubsub(redis_server):
    async def main():
        r = client(redis_server)
        try:
            ps = r.pubsub()
            await ps.subscribe("chan")
            await ps.psubscribe("pat.*")
            got = []

            async def reader():
                async for msg in ps.listen():
                    if msg["type"] in ("message", "pmessage"):
                        got.append((msg["channel"], msg["data"]))
                        if msg["data"] == b"stop":
                            return
            task = asyncio.ensure_future(reader())
            await asyncio.sleep(0.05)
            for i in range(100):
                assert await r.publish("chan", "m%d" % i) == 1
            assert await r.publish("pat.x", "p") == 1
            await r.publish("chan", "stop")
            await asyncio.wait_for(task, 10)
            assert got[:100] == [(b"chan", b"m%d" % i) for i in range(100)]
            assert got[100:] == [(b"pat.x", b"p"), (b"chan", b"stop")]
            await ps.unsubscribe()
            await ps.punsubscribe()
            await ps.aclose()
        finally:
            await r.aclose()
    run(main())


def test_pool_200_concurrent_tasks(redis_server):
    async def main():
        pool = aioredis.BlockingConnectionPool.from_url(
            redis_server.url, max_connections=20, timeout=60, socket_timeout=10)
        r = aioredis.Redis(connection_pool=pool)
        try:
            async def worker(i):
                for j in range(2):
                    await r.set("w%d:%d" % (i, j), j)
                    assert int(await r.get("w%d:%d" % (i, j))) == j
                    await r.incr("total")
                return i
            assert sorted(await asyncio.gather(*(worker(i) for i in range(200)))) == list(range(200))
            assert int(await r.get("total")) == 200 * 2
            assert len(pool._in_use_connections) == 0
            assert 1 < len(pool._available_connections) + len(pool._in_use_connections) <= 20
            info = await r.info("clients")
            assert info["connected_clients"] <= 21
        finally:
            await r.aclose()
            await pool.aclose()
    run(main(), timeout=120)


def test_server_restart_mid_run(redis_server):
    """Kill redis-server under live traffic, bring it back: the client reconnects."""
    async def main():
        r = client(redis_server, retry_on_timeout=False)
        try:
            assert await r.set("before", 1)
            errors = []
            ok_after = []
            stop = asyncio.Event()

            async def traffic(i):
                while not stop.is_set():
                    try:
                        await r.incr("c%d" % i)
                        if restarted.is_set():
                            ok_after.append(i)
                    except (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError) as exc:
                        errors.append(type(exc).__name__)
                        await asyncio.sleep(0.02)
                    await asyncio.sleep(0)

            restarted = asyncio.Event()
            tasks = [asyncio.ensure_future(traffic(i)) for i in range(10)]
            await asyncio.sleep(0.3)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, redis_server.stop)
            await asyncio.sleep(0.3)
            await loop.run_in_executor(None, redis_server.start)      # same port, empty data
            restarted.set()
            await asyncio.sleep(0.5)
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 10)
            assert errors, "the outage must have been seen by the clients"
            assert set(ok_after) == set(range(10)), "every task works again after the restart"
            assert await r.get("before") is None                      # a fresh server
            assert await r.ping() is True
        finally:
            await r.aclose()
    run(main(), timeout=60)


def test_cancel_blocking_command(redis_server):
    """Cancelling a task stuck in BLPOP: the connection is dropped, the client still works."""
    async def main():
        r = client(redis_server, socket_timeout=None)
        try:
            task = asyncio.ensure_future(r.blpop(["never"], timeout=0))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(r.blpop(["never"], timeout=0), 0.1)
            await r.rpush("q", "item")
            assert await r.blpop(["q"], timeout=1) == (b"q", b"item")
        finally:
            await r.aclose()
    run(main())
