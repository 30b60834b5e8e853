"""exporter/auth.py over real HTTP: bcrypt never blocks the loop, budgets per client address."""

from __future__ import annotations

import asyncio

import bcrypt
import httpx
import pytest

from exporter.app import create_app
from exporter.auth import AddressBudgets, AuthLimits, bcrypt_cost
from exporter.config import load_config
from exporter.schema import ConfigError
from exporter.state import Exporter
from tests.support import scrape_headers, serve_app

PASSWORD = "s3cret-pass"


def make_exporter(cost: int, **web):
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=cost)).decode()
    return Exporter(load_config({"web": {"basic_auth_users": {"prom": hashed}, **web}}, env={}))


async def burst_and_scrape(base: str, bad: int, scrape_timeout: float):
    """`bad` concurrent wrong-password requests, and one valid scrape sent while they land."""
    limits = httpx.Limits(max_connections=bad + 1, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def wrong(i: int) -> int:
            response = await client.get(f"{base}/metrics", auth=("prom", f"wrong-{i}"))
            return response.status_code

        async def valid() -> int:
            await asyncio.sleep(0.2)  # the burst is arriving
            response = await asyncio.wait_for(
                client.get(
                    f"{base}/metrics",
                    auth=("prom", PASSWORD),
                    headers=scrape_headers(scrape_timeout),
                ),
                scrape_timeout,
            )
            return response.status_code

        *codes, scraped = await asyncio.gather(*(wrong(i) for i in range(bad)), valid())
    return codes, scraped


def test_valid_scrape_answers_within_its_timeout_while_200_bad_passwords_arrive():
    # cost 11: about 0.1 s a check here, so 200 checks in a row would take 20 s
    exp = make_exporter(11)
    app = create_app(exp)
    with serve_app(app) as base:
        assert httpx.get(f"{base}/metrics", auth=("prom", PASSWORD)).status_code == 200
        assert app.checks_run == 1  # verified once, remembered from now on
        codes, scraped = asyncio.run(burst_and_scrape(base, 200, scrape_timeout=3.0))
    exp.loaded.engine.close()
    assert scraped == 200
    assert set(codes) <= {401, 429}
    # one address, a budget of 5 checks (one spent on the first verification): 4 bad
    # passwords were checked, the other 196 refused without running bcrypt
    assert codes.count(401) == app.checks_run - 1 == 4
    assert codes.count(429) == 196


def test_unknown_user_runs_bcrypt_and_spends_the_same_budget_as_a_known_one():
    exp = make_exporter(4, basic_auth_checks_burst=2)
    app = create_app(exp)
    with serve_app(app) as base:
        unknown = httpx.get(f"{base}/metrics", auth=("nobody", PASSWORD))
        assert app.checks_run == 1  # a dummy hash of the configured cost was checked
        assert app._current.dummy.startswith(b"$2b$04$")
        known = httpx.get(f"{base}/metrics", auth=("prom", "wrong"))
        assert app.checks_run == 2
        over = httpx.get(f"{base}/metrics", auth=("nobody", "again"))
        right_but_over = httpx.get(f"{base}/metrics", auth=("prom", PASSWORD))
    exp.loaded.engine.close()
    assert unknown.status_code == known.status_code == 401
    assert "www-authenticate" in unknown.headers and "www-authenticate" in known.headers
    assert over.status_code == right_but_over.status_code == 429
    assert over.headers["retry-after"] == "60" and app.checks_run == 2


def test_each_client_address_has_its_own_budget():
    exp = make_exporter(4, basic_auth_checks_burst=1)
    app = create_app(exp)
    with serve_app(app) as base:
        first = httpx.get(f"{base}/metrics", auth=("prom", "wrong"))
        second = httpx.get(f"{base}/metrics", auth=("prom", "wrong"))
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as other:
            elsewhere = other.get(f"{base}/metrics", auth=("prom", PASSWORD))
            again = other.get(f"{base}/metrics", auth=("prom", PASSWORD))
    exp.loaded.engine.close()
    assert (first.status_code, second.status_code) == (401, 429)
    assert elsewhere.status_code == 200 and again.status_code == 200
    assert app.checks_run == 2  # the second valid request was answered from the cache


def test_budget_refills_at_its_rate():
    now = [0.0]
    budgets = AddressBudgets(AuthLimits(burst=2, per_minute=60), clock=lambda: now[0])
    assert budgets.take("a") and budgets.take("a") and not budgets.take("a")
    assert budgets.take("b")
    now[0] = 0.5
    assert not budgets.take("a")
    now[0] = 1.0
    assert budgets.take("a") and not budgets.take("a")
    now[0] = 100.0  # never more than the burst
    assert budgets.take("a") and budgets.take("a") and not budgets.take("a")


def test_malformed_authorization_is_401_without_bcrypt():
    exp = make_exporter(4)
    app = create_app(exp)
    with serve_app(app) as base:
        codes = [
            httpx.get(f"{base}/metrics", headers={"Authorization": value}).status_code
            for value in ("Basic !!!", "Basic " + "cHJvbQ==", "Bearer x", "Basic")
        ]
        checked = app.checks_run
        too_long = httpx.get(f"{base}/metrics", auth=("prom", "x" * 100))
    exp.loaded.engine.close()
    assert codes == [401] * 4 and checked == 0
    assert too_long.status_code == 401  # bcrypt 5 refuses over 72 bytes: a refusal, not a 500


@pytest.mark.parametrize("cost", [15, 31])
def test_a_hash_too_costly_to_check_is_refused_naming_the_user(cost):
    hashed = bcrypt.gensalt(rounds=min(cost, 31)).decode() + "." * 31
    assert bcrypt_cost(hashed) == cost
    with pytest.raises(ConfigError) as info:
        load_config({"web": {"basic_auth_users": {"ok": "$2b$04$" + "." * 53, "slow": hashed}}})
    assert info.value.problems == [
        f"web.basic_auth_users.slow: bcrypt cost {cost} is outside 4-14 "
        "(each step doubles the CPU of a check; 10-12 is usual)"
    ]
