"""A check that a test run left the machine's shared Redis as it found it.

Other developers keep data in the shared Redis (127.0.0.1:6379). At the start of a run the
guard writes one sentinel key of its own into every db and notes up to `SAMPLE` keys per db
that have no expiry; at the end it reports every db whose sentinel is gone (flushed) and every
noted key that no longer exists (deleted), then deletes its sentinels. Keys with an expiry are
left out of the comparison: they may lapse on their own during the run.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import redis

DATABASES = 16
#: Keys without expiry noted per db (a bound on the guard's own cost on a big server).
SAMPLE = 1000
#: Sentinels expire on their own if a run is killed before it can delete them.
SENTINEL_TTL_SECONDS = 24 * 3600


@dataclass
class Snapshot:
    sentinel: str
    #: db -> keys without expiry seen at the start
    persistent: dict[int, list[bytes]] = field(default_factory=dict)


def plant(client_for_db: dict[int, redis.Redis]) -> Snapshot:
    """Write the sentinels and note the keys that must still exist at the end."""
    snapshot = Snapshot(f"afx_guard:{uuid.uuid4().hex}")
    for db, client in client_for_db.items():
        keys = [key for key, _ in zip(client.scan_iter(count=1000), range(SAMPLE), strict=False)]
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.ttl(key)
        ttls = pipe.execute()
        snapshot.persistent[db] = [key for key, ttl in zip(keys, ttls, strict=True) if ttl == -1]
        client.set(
            snapshot.sentinel, "written by tests/shared_redis_guard.py", ex=SENTINEL_TTL_SECONDS
        )
    return snapshot


def problems(client_for_db: dict[int, redis.Redis], snapshot: Snapshot) -> list[str]:
    """What the run destroyed: flushed dbs and deleted keys (key names shortened)."""
    found = []
    for db, client in client_for_db.items():
        if not client.exists(snapshot.sentinel):
            found.append(
                f"db {db} was flushed during the test run (its sentinel key is gone; by this run "
                "or by another client of the shared server)"
            )
        pipe = client.pipeline(transaction=False)
        for key in snapshot.persistent.get(db, ()):
            pipe.exists(key)
        gone = [
            key
            for key, exists in zip(snapshot.persistent.get(db, ()), pipe.execute(), strict=True)
            if not exists
        ]
        if gone:
            sample = ", ".join(repr(key[:40]) for key in gone[:5])
            found.append(
                f"db {db}: {len(gone)} key(s) that existed before the run are gone: {sample}"
            )
    return found


def remove(client_for_db: dict[int, redis.Redis], snapshot: Snapshot) -> None:
    for client in client_for_db.values():
        client.delete(snapshot.sentinel)
        client.close()


def clients(host: str, port: int) -> dict[int, redis.Redis]:
    return {
        db: redis.Redis(host=host, port=port, db=db, socket_timeout=10) for db in range(DATABASES)
    }
