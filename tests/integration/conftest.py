"""Fixtures for tests/integration (a package, so that this conftest and its
helpers in integration_helpers.py never shadow tests/conftest.py)."""
import shutil
import tempfile

import pytest

from .integration_helpers import PG_DSN, RedisServer, need, run, unavailable  # noqa: E402


@pytest.fixture
def redis_server():
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server not installed (run ci/integration-setup.sh)")
    with tempfile.TemporaryDirectory(prefix="boucle-redis-") as d:
        server = RedisServer(binary, d)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def pg_dsn():
    asyncpg = need("asyncpg")

    async def probe():
        conn = await asyncpg.connect(PG_DSN, timeout=5)
        await conn.close()
    try:
        run(probe(), timeout=10)
    except Exception as exc:  # noqa: BLE001 - any failure: server not there
        unavailable("no PostgreSQL at %s (%r); run ci/integration-setup.sh" % (PG_DSN, exc))
    return PG_DSN


@pytest.fixture
def curl():
    path = shutil.which("curl")
    if path is None:
        unavailable("curl not installed")
    return path


# pytest-asyncio >= 1.4 takes loop factories from this hook; older versions
# only honour the event_loop_policy fixture (overridden in test_frameworks.py).
try:
    from pytest_asyncio.plugin import PytestAsyncioSpecs as _PAS  # noqa: F401
except ImportError:
    _PAS = None

if _PAS is not None and hasattr(_PAS, "pytest_asyncio_loop_factories"):
    def pytest_asyncio_loop_factories(config, item):
        import boucle
        return {"boucle": boucle.new_event_loop}
