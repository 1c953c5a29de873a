"""asyncpg on boucle against a real PostgreSQL (started by ci/integration-setup.sh)."""
import asyncio
import io
import time

import pytest

from .integration_helpers import boucle, need, run

asyncpg = need("asyncpg")


def test_queries_and_types(pg_dsn):
    async def main():
        conn = await asyncpg.connect(pg_dsn, timeout=10)
        try:
            assert await conn.fetchval("SELECT 1 + 1") == 2
            row = await conn.fetchrow(
                "SELECT $1::int AS i, $2::text AS t, $3::float8 AS f, $4::bytea AS b, "
                "$5::int[] AS a, now() AS ts, NULL::text AS n", 7, "héllo", 1.5, b"\x00\xff", [1, 2, 3])
            assert (row["i"], row["t"], row["f"], row["b"], row["a"], row["n"]) == \
                (7, "héllo", 1.5, b"\x00\xff", [1, 2, 3], None)
            await conn.execute("CREATE TEMP TABLE t (id serial PRIMARY KEY, name text, v int)")
            await conn.executemany("INSERT INTO t (name, v) VALUES ($1, $2)",
                                   [("n%d" % i, i) for i in range(500)])
            assert await conn.fetchval("SELECT count(*) FROM t") == 500
            assert await conn.fetchval("SELECT sum(v) FROM t") == sum(range(500))
            # A large result set (many socket reads).
            rows = await conn.fetch("SELECT g, repeat('x', 100) FROM generate_series(1, 50000) g")
            assert len(rows) == 50000 and rows[-1][0] == 50000
            # Transactions: rollback and commit.
            with pytest.raises(ZeroDivisionError):
                async with conn.transaction():
                    await conn.execute("DELETE FROM t")
                    raise ZeroDivisionError
            assert await conn.fetchval("SELECT count(*) FROM t") == 500
            async with conn.transaction():
                await conn.execute("DELETE FROM t WHERE v >= 100")
            assert await conn.fetchval("SELECT count(*) FROM t") == 100
            # Server errors map to exceptions, the connection stays usable.
            with pytest.raises(asyncpg.UndefinedTableError):
                await conn.fetch("SELECT * FROM no_such_table")
            with pytest.raises(asyncpg.UniqueViolationError):
                await conn.execute("INSERT INTO t (id, name, v) VALUES (1, 'dup', 0)")
            assert await conn.fetchval("SELECT 'still ok'") == "still ok"
        finally:
            await conn.close()
    run(main())


def test_prepared_statements_and_cursor(pg_dsn):
    async def main():
        conn = await asyncpg.connect(pg_dsn, timeout=10)
        try:
            stmt = await conn.prepare("SELECT $1::int * 2 AS d, $2::text || '!' AS s")
            assert [a.name for a in stmt.get_attributes()] == ["d", "s"]
            for i in range(200):
                assert tuple(await stmt.fetchrow(i, str(i))) == (i * 2, "%d!" % i)
            gen = await conn.prepare("SELECT g FROM generate_series(1, $1::int) g")
            async with conn.transaction():
                seen = [r[0] async for r in gen.cursor(10000, prefetch=333)]
            assert seen == list(range(1, 10001))
        finally:
            await conn.close()
    run(main())


def test_copy(pg_dsn):
    async def main():
        conn = await asyncpg.connect(pg_dsn, timeout=10)
        try:
            await conn.execute("CREATE TEMP TABLE c (id int, name text)")
            records = [(i, "name %d" % i) for i in range(20000)]
            res = await conn.copy_records_to_table("c", records=records)
            assert res == "COPY 20000"
            data = b"".join(b"%d\tfrom file %d\n" % (i, i) for i in range(20000, 30000))
            res = await conn.copy_to_table("c", source=io.BytesIO(data))
            assert res == "COPY 10000"
            assert await conn.fetchval("SELECT count(*) FROM c") == 30000
            out = io.BytesIO()
            res = await conn.copy_from_query("SELECT * FROM c WHERE id < 3 ORDER BY id", output=out)
            assert out.getvalue() == b"0\tname 0\n1\tname 1\n2\tname 2\n"
            out = io.BytesIO()
            await conn.copy_from_table("c", output=out, format="csv")
            assert out.getvalue().count(b"\n") == 30000
        finally:
            await conn.close()
    run(main())


def test_pool_concurrent_tasks(pg_dsn):
    async def main():
        async with asyncpg.create_pool(pg_dsn, min_size=2, max_size=10, timeout=10) as pool:
            async def worker(i):
                async with pool.acquire() as conn:
                    assert type(asyncio.get_running_loop()) is boucle.Loop
                    v = await conn.fetchval("SELECT $1::int + pg_backend_pid() * 0", i)
                    await conn.execute("SELECT pg_sleep(0.01)")
                    return v
            t0 = time.monotonic()
            got = await asyncio.gather(*(worker(i) for i in range(200)))
            elapsed = time.monotonic() - t0
            assert got == list(range(200))
            # 200 x 10 ms on 10 connections runs in parallel, not serially (2 s);
            # asyncio debug mode (python -X dev) is several times slower.
            if not asyncio.get_running_loop().get_debug():
                assert elapsed < 1.5, elapsed
            assert pool.get_size() <= 10
            pids = await asyncio.gather(*(pool.fetchval("SELECT pg_backend_pid()") for _ in range(30)))
            assert 1 < len(set(pids)) <= 10
    run(main(), timeout=60)


def test_cancel_running_query(pg_dsn):
    """Cancelling a task in pg_sleep sends a CancelRequest; the server stops the query."""
    async def main():
        conn = await asyncpg.connect(pg_dsn, timeout=10)
        watcher = await asyncpg.connect(pg_dsn, timeout=10)
        try:
            pid = conn.get_server_pid()
            t0 = time.monotonic()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(conn.fetchval("SELECT pg_sleep(30)"), 0.3)
            assert time.monotonic() - t0 < 5
            # The connection is reusable at once, and the server is not still sleeping.
            assert await conn.fetchval("SELECT 42") == 42
            active = await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND query LIKE '%pg_sleep(30)%' "
                "AND state = 'active'", pid)
            assert active == 0
            # Explicit task.cancel() as well.
            task = asyncio.ensure_future(conn.execute("SELECT pg_sleep(30)"))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await conn.fetchval("SELECT 'after cancel'") == "after cancel"
            # Server-side statement timeout surfaces as QueryCanceledError.
            with pytest.raises(asyncpg.QueryCanceledError):
                await conn.execute("SET statement_timeout = 100; SELECT pg_sleep(5)")
            await conn.execute("RESET statement_timeout")
            # The `timeout=` argument of asyncpg itself.
            with pytest.raises(asyncio.TimeoutError):
                await conn.fetchval("SELECT pg_sleep(30)", timeout=0.2)
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()
            await watcher.close()
    run(main())
