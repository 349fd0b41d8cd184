"""The per-sender and per-address rate limiters against a real Redis server (two clients standing in for two
`kefu run` processes)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import uuid

import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.crc import key_slot

from bot.sessions.connect import client_for_socket, client_for_url
from bot.sessions.rate_limit import RateLimiter, RateRule, client_key, parse_rate, rate_key
from bot.sessions.round_trips import counting_round_trips
from bot.settings import Settings

pytestmark = pytest.mark.integration


def sender() -> str:
    return f"user-{uuid.uuid4().hex}"


def address_v4() -> str:
    """An address of its own in 10/8 (buckets outlive a test run when REDIS_URL names a lasting server)."""
    return str(ipaddress.IPv4Address((10 << 24) + uuid.uuid4().int % 2**24))


def network_v6() -> int:
    """A /64 of its own in 2001:db8::/32, as an integer."""
    return (0x20010DB8 << 96) + (uuid.uuid4().int % 2**32 << 64)


async def test_a_burst_goes_through_then_the_sender_waits_one_interval(redis_client: aioredis.Redis) -> None:
    limiter = RateLimiter(redis_client, RateRule(count=3, period_s=60, burst=3))
    user = sender()
    verdicts = [await limiter.check("rest", user) for _ in range(4)]
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert 19 < verdicts[-1].retry_after_s <= 20  # one message every 60/3 s once the burst is spent
    again = await limiter.check("rest", user)
    assert not again.allowed and again.retry_after_s <= verdicts[-1].retry_after_s  # a refusal costs nothing


async def test_a_smaller_burst_refuses_sooner(redis_client: aioredis.Redis) -> None:
    limiter = RateLimiter(redis_client, RateRule(count=30, period_s=60, burst=2))
    user = sender()
    assert [(await limiter.check("web", user)).allowed for _ in range(3)] == [True, True, False]


async def test_the_bucket_refills_at_the_rate(redis_client: aioredis.Redis) -> None:
    limiter = RateLimiter(redis_client, RateRule(count=2, period_s=1, burst=2))
    user = sender()
    assert (await limiter.check("api", user)).allowed and (await limiter.check("api", user)).allowed
    refused = await limiter.check("api", user)
    assert not refused.allowed and 0 < refused.retry_after_s <= 0.5
    await asyncio.sleep(refused.retry_after_s + 0.05)
    assert (await limiter.check("api", user)).allowed


async def test_senders_and_channels_have_limits_of_their_own(redis_client: aioredis.Redis) -> None:
    limiter = RateLimiter(redis_client, RateRule(count=1, period_s=60, burst=1))
    user, other = sender(), sender()
    assert (await limiter.check("wechat", user)).allowed
    assert not (await limiter.check("wechat", user)).allowed
    assert (await limiter.check("wechat", other)).allowed
    assert (await limiter.check("wecom", user)).allowed  # the same id on another platform is another person


async def test_two_processes_share_one_limit(redis_client: aioredis.Redis, redis_target: str) -> None:
    second = (
        client_for_socket(redis_target.removeprefix("unix://"))
        if redis_target.startswith("unix://")
        else client_for_url(redis_target)
    )
    rule = RateRule(count=3, period_s=60, burst=3)
    first_process, second_process = RateLimiter(redis_client, rule), RateLimiter(second, rule)
    user = sender()
    try:
        assert (await first_process.check("rest", user)).allowed
        assert (await second_process.check("rest", user)).allowed
        assert (await first_process.check("rest", user)).allowed
        assert not (await second_process.check("rest", user)).allowed
    finally:
        await second.aclose()


async def test_the_key_is_one_slot_expires_and_does_not_hold_the_sender(redis_client: aioredis.Redis) -> None:
    limiter = RateLimiter(redis_client, RateRule(count=2, period_s=60, burst=2))
    phone = f"wx:+86139{uuid.uuid4().int % 10**8:08d}{{x}}"
    await limiter.check("rest", phone)
    key = rate_key("rest", phone)
    assert key.startswith("kefu:rate:{rest:") and "139" not in key
    assert key_slot(key.encode()) == key_slot(key[key.index("{") + 1 : key.index("}")].encode())
    assert 0 < await redis_client.pttl(key) <= 30_000  # gone once the bucket would be full again


async def test_when_redis_is_down_messages_go_through_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    client = client_for_url("redis://127.0.0.1:1/0")
    one = RateRule(count=1, period_s=60, burst=1)
    limiter = RateLimiter(client, one, per_client=one)
    try:
        with caplog.at_level(logging.WARNING, logger="bot.sessions.rate_limit"):
            verdicts = [await limiter.check("rest", "u", "192.0.2.7") for _ in range(3)]
    finally:
        await client.aclose()
    assert all(v.allowed for v in verdicts)
    warnings = [r for r in caplog.records if r.name == "bot.sessions.rate_limit"]
    assert len(warnings) == 1 and "not enforced" in warnings[0].getMessage()


def test_rules_parse_and_mistakes_say_how_to_write_them() -> None:
    assert parse_rate("30/60") == RateRule(30, 60.0, 30)
    assert parse_rate(" 5 / 0.5 ", burst=2) == RateRule(5, 0.5, 2)
    assert parse_rate("0") is None and parse_rate("OFF") is None
    for wrong in ("30", "30 per minute", "0/60", "5/0", "-1/60"):
        with pytest.raises(ValueError, match="N/SECONDS"):
            parse_rate(wrong)
    assert Settings().rate_rule == RateRule(30, 60.0, 30)
    assert Settings(rate_limit="10/60", rate_limit_burst=3).rate_rule == RateRule(10, 60.0, 3)
    with pytest.raises(ValidationError, match="KEFU_RATE_LIMIT: '30 a minute' is not a rate"):
        Settings(rate_limit="30 a minute")


# --- per network address ---


async def test_one_address_rotating_senders_is_refused_past_its_burst(redis_client: aioredis.Redis) -> None:
    limiter = RateLimiter(redis_client, RateRule(30, 60, 30), per_client=RateRule(count=5, period_s=60, burst=5))
    address, other = address_v4(), address_v4()
    verdicts = [await limiter.check("rest", sender(), address) for _ in range(6)]  # each sender far below 30
    assert [v.allowed for v in verdicts] == [True] * 5 + [False]
    assert verdicts[-1].scope == "client" and 11 < verdicts[-1].retry_after_s <= 12
    assert not (await limiter.check("web", sender(), address)).allowed  # one bucket for every web channel
    assert (await limiter.check("rest", sender(), other)).allowed
    assert (await limiter.check("rest", sender())).allowed  # no address (WeChat): the sender's limit only
    assert limiter.limit("client") == "5 messages per 60 s from one network address"


async def test_ipv6_addresses_share_the_bucket_of_their_64(redis_client: aioredis.Redis) -> None:
    limiter = RateLimiter(redis_client, None, per_client=RateRule(count=2, period_s=60, burst=2))
    network = network_v6()
    first, second = ipaddress.IPv6Address(network + 1), ipaddress.IPv6Address(network + 0xFFFF_0000_1234_5678)
    elsewhere = ipaddress.IPv6Address(network + 2**64 + 1)  # the next /64
    assert (await limiter.check("web", sender(), str(first))).allowed
    assert (await limiter.check("web", sender(), second.exploded)).allowed
    assert not (await limiter.check("web", sender(), str(first))).allowed
    assert (await limiter.check("web", sender(), str(elsewhere))).allowed
    assert client_key("::ffff:192.0.2.9") == client_key("192.0.2.9")  # a dual-stack socket's view of IPv4
    assert client_key("testclient") != client_key("testclient2")  # not an address: used as is
    assert client_key(str(first)).startswith("kefu:rate:{addr:")


async def test_the_limit_that_waits_longer_answers_and_names_itself(redis_client: aioredis.Redis) -> None:
    limiter = RateLimiter(redis_client, RateRule(1, 60, 1), per_client=RateRule(1, 10, 1))
    user, address = sender(), address_v4()
    assert (await limiter.check("api", user, address)).allowed
    both = await limiter.check("api", user, address)
    assert not both.allowed and both.scope == "sender" and 59 < both.retry_after_s <= 60
    only_address = await limiter.check("api", sender(), address)
    assert not only_address.allowed and only_address.scope == "client" and only_address.retry_after_s <= 10


async def test_both_limits_cost_one_round_trip(redis_client: aioredis.Redis) -> None:
    limiter = RateLimiter(redis_client, RateRule(30, 60, 30), per_client=RateRule(300, 60, 300))
    before = await script_commands(redis_client)
    with counting_round_trips() as trips:
        assert (await limiter.check("rest", sender(), address_v4())).allowed
    assert trips.count == 1
    assert await script_commands(redis_client) == before  # no SCRIPT EXISTS or LOAD: trips the count misses
    with counting_round_trips() as trips:
        assert (await RateLimiter(redis_client, None, per_client=RateRule(1, 60, 1)).check("rest", "u")).allowed
    assert trips.count == 0  # nothing to check without an address


async def script_commands(client: aioredis.Redis) -> int:
    """SCRIPT commands the server ran so far ("cmdstat_script" before Redis 7, "cmdstat_script|exists" etc. since)."""
    stats = await client.info("commandstats")
    return sum(int(row["calls"]) for name, row in stats.items() if name.startswith("cmdstat_script"))


def test_the_address_limit_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEFU_RATE_LIMIT_CLIENT", raising=False)
    assert Settings().rate_rule_client == RateRule(300, 60.0, 300)
    monkeypatch.setenv("KEFU_RATE_LIMIT_CLIENT", "20/10")
    assert Settings().rate_rule_client == RateRule(20, 10.0, 20)
    monkeypatch.setenv("KEFU_RATE_LIMIT_CLIENT", "off")
    assert Settings().rate_rule_client is None
    monkeypatch.setenv("KEFU_RATE_LIMIT_CLIENT", "lots")
    with pytest.raises(ValidationError, match="KEFU_RATE_LIMIT_CLIENT: 'lots' is not a rate: write N/SECONDS"):
        Settings()
