"""The shared-Redis guard (tests/shared_redis_guard.py) catches a flush and a deleted key, on a
private redis-server so the check of the check destroys nothing of anybody's."""

from __future__ import annotations

from tests import shared_redis_guard
from tests.redis_server import private_redis


def test_guard_reports_a_flushed_db_and_a_deleted_key_and_cleans_up(tmp_path):
    with private_redis(tmp_path) as server:
        dbs = shared_redis_guard.clients("127.0.0.1", server.port)
        dbs[3].set("someone:else", "kept")
        dbs[5].set("someone:precious", "kept")
        dbs[5].set("someone:expiring", "may lapse", ex=600)
        snapshot = shared_redis_guard.plant(dbs)
        assert shared_redis_guard.problems(dbs, snapshot) == []
        dbs[3].flushdb()
        dbs[5].delete("someone:precious", "someone:expiring")
        dbs[5].set("someone:new", "added during the run: fine")
        found = shared_redis_guard.problems(dbs, snapshot)
        assert found == [
            "db 3 was flushed during the test run (its sentinel key is gone; by this run or by "
            "another client of the shared server)",
            "db 3: 1 key(s) that existed before the run are gone: b'someone:else'",
            "db 5: 1 key(s) that existed before the run are gone: b'someone:precious'",
        ]
        shared_redis_guard.remove(dbs, snapshot)
        check = server.client(db=5)
        assert check.keys("afx_guard:*") == []
        assert check.get("someone:new") == b"added during the run: fine"
        check.close()
