//! The Redis/Valkey backend of the shared state: a few multiplexed connections that reconnect by
//! themselves, the key names, and the commands and the one script the state needs. Not what a
//! failure means for a request (see the parent module): every call here just reports it.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Script, Value};

use crate::policy::RateLimit;

/// Takes `calls` from each bucket of `KEYS`, all or none, as a GCRA (the token bucket stated as
/// one timestamp per bucket: its "theoretical arrival time", TAT). The script runs atomically
/// on the server, on the server's clock, so replicas neither race nor need synchronised clocks.
/// `ARGV` holds, per key: the interval between calls and the period in microseconds, and the
/// calls wanted. Returns `{0, 0}` when taken, else `{i, wait_us}` for the first short bucket
/// (1-based). A bucket's key expires when it would be full again, so idle subjects cost nothing.
const TAKE_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tats = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[3 * i - 2])
  local period = tonumber(ARGV[3 * i - 1])
  local calls = tonumber(ARGV[3 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  local next_tat = tat + interval * calls
  if next_tat - now > period then
    return {i, math.ceil(next_tat - now - period)}
  end
  tats[i] = next_tat
end
for i = 1, #KEYS do
  local ttl_ms = math.ceil((tats[i] - now) / 1000) + 1
  redis.call('SET', KEYS[i], string.format('%.0f', math.ceil(tats[i])), 'PX', ttl_ms)
end
return {0, 0}
";

/// Records a tool's first-use pin unless one is recorded (`HSETNX`), bumping the pins' version
/// so other replicas know to read them again. Returns nil when recorded, else the pin already
/// there, in one round trip: two replicas pinning the same tool cannot both win.
const PIN_SCRIPT: &str = r"
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('INCR', KEYS[2])
  return false
end
return redis.call('HGET', KEYS[1], ARGV[1])
";

/// The pins' version and, unless it is `ARGV[1]` (the version the caller holds), every pin:
/// `{version}` or `{version, {tool, pin, …}}`. Unchanged pins cost one small answer.
const PINS_SCRIPT: &str = r"
local version = tonumber(redis.call('GET', KEYS[2]) or '0')
if version == tonumber(ARGV[1]) then
  return {version}
end
return {version, redis.call('HGETALL', KEYS[1])}
";

/// Connections kept at most: each is multiplexed (requests are pipelined on it), so a few
/// carry any load; more than one keeps a slow reply from holding up every worker.
const MAX_CONNECTIONS: usize = 4;

/// The store: connections to one Redis or Valkey server, and the prefix of every key.
pub struct RedisStore {
    connections: Vec<ConnectionManager>,
    prefix: String,
    take: Script,
    pin: Script,
    pins: Script,
}

impl RedisStore {
    /// Prepares `connections` (at most [`MAX_CONNECTIONS`]) without connecting: they connect
    /// on first use and again after any failure, so a Redis that is down at start-up or
    /// restarts later is picked up without a restart of the proxy. Must run inside a runtime.
    pub fn new(
        client: redis::Client,
        prefix: &str,
        timeout: Duration,
        connections: usize,
    ) -> RedisResult<RedisStore> {
        // The caller bounds each operation by `timeout`; these bounds only keep abandoned
        // attempts from piling up. A lost connection is redialled once, at once, by the next
        // operation and not retried in the background: while Redis refuses connections each
        // request learns so in a round trip instead of waiting out the timeout behind a back-off.
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(timeout))
            .set_connection_timeout(Some(timeout.max(Duration::from_secs(1))))
            .set_number_of_retries(0);
        let connections = (0..connections.clamp(1, MAX_CONNECTIONS))
            .map(|_| ConnectionManager::new_lazy_with_config(client.clone(), config.clone()))
            .collect::<RedisResult<Vec<_>>>()?;
        Ok(RedisStore {
            connections,
            prefix: prefix.to_owned(),
            take: Script::new(TAKE_SCRIPT),
            pin: Script::new(PIN_SCRIPT),
            pins: Script::new(PINS_SCRIPT),
        })
    }

    /// This worker's connection (a cheap handle to a shared one).
    fn connection(&self) -> ConnectionManager {
        self.connections[crate::workers::index() % self.connections.len()].clone()
    }

    /// A rate-limit bucket's key. The subject's length comes first so that no (subject, rule)
    /// pair can spell another's key; the subject is a hash tag, so one subject's buckets share
    /// a cluster slot and the script may take from several of them.
    fn bucket_key(&self, subject: &str, rule: &str) -> String {
        format!("{}rl:{}:{{{subject}}}:{rule}", self.prefix, subject.len())
    }

    /// A handle binding's key: `kind` is `session` or `task`.
    fn handle_key(&self, kind: &str, handle: &str) -> String {
        format!("{}{kind}:{handle}", self.prefix)
    }

    /// Takes the calls of each (rule, limit, calls), all or none (see [`TAKE_SCRIPT`]). On
    /// refusal: the position in `wants` of the first short bucket and the wait until it holds
    /// enough.
    pub async fn take(
        &self,
        subject: &str,
        wants: &[(&str, RateLimit, u32)],
    ) -> RedisResult<Result<(), (usize, Duration)>> {
        let mut invocation = self.take.prepare_invoke();
        for (rule, limit, calls) in wants {
            let period_us = limit.period().as_micros() as f64;
            let interval_us = period_us / f64::from(limit.count.max(1));
            invocation
                .key(self.bucket_key(subject, rule))
                .arg(interval_us)
                .arg(period_us)
                .arg(*calls);
        }
        let (short, wait_us): (usize, u64) =
            invocation.invoke_async(&mut self.connection()).await?;
        Ok(match short {
            0 => Ok(()),
            i => Err((i - 1, Duration::from_micros(wait_us))),
        })
    }

    /// The owner recorded for a handle, its idle time starting again (GETEX).
    pub async fn owner(
        &self,
        kind: &str,
        handle: &str,
        idle: Duration,
    ) -> RedisResult<Option<Vec<u8>>> {
        redis::cmd("GETEX")
            .arg(self.handle_key(kind, handle))
            .arg("PX")
            .arg(millis(idle))
            .query_async(&mut self.connection())
            .await
    }

    /// Records `owner` for a handle unless one is recorded; returns the one already there.
    /// One command (SET NX GET, Redis 7 / Valkey 7.2), so two replicas binding the same handle
    /// cannot both win.
    pub async fn bind(
        &self,
        kind: &str,
        handle: &str,
        owner: &[u8],
        idle: Duration,
    ) -> RedisResult<Option<Vec<u8>>> {
        redis::cmd("SET")
            .arg(self.handle_key(kind, handle))
            .arg(owner)
            .arg("NX")
            .arg("GET")
            .arg("PX")
            .arg(millis(idle))
            .query_async(&mut self.connection())
            .await
    }

    pub async fn release(&self, kind: &str, handle: &str) -> RedisResult<()> {
        redis::cmd("DEL")
            .arg(self.handle_key(kind, handle))
            .query_async::<Value>(&mut self.connection())
            .await
            .map(drop)
    }

    /// Records `key` for `ttl` unless it is recorded: `true` the first time, `false` while it
    /// lasts. What a replay check needs (a DPoP proof's `jti`, seen once across all replicas).
    pub async fn set_if_absent(&self, key: &str, ttl: Duration) -> RedisResult<bool> {
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("{}once:{key}", self.prefix))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut self.connection())
            .await?;
        Ok(set.is_some())
    }
}

impl RedisStore {
    /// The hash of first-use tool pins (tool name to pin) and the key of its version. Both carry
    /// the hash tag `{pins}`, so on a cluster they share a slot and one script reaches both.
    /// The pins never expire: a restart of every replica keeps trusting the same definitions.
    fn pin_keys(&self) -> [String; 2] {
        [
            format!("{}{{pins}}", self.prefix),
            format!("{}{{pins}}:version", self.prefix),
        ]
    }

    /// Records `pin` as `tool`'s pin unless it has one; `None` when recorded, else the pin
    /// another replica recorded first (see [`PIN_SCRIPT`]).
    pub async fn pin_first(&self, tool: &str, pin: &str) -> RedisResult<Option<String>> {
        let [pins, version] = self.pin_keys();
        let mut invocation = self.pin.prepare_invoke();
        invocation.key(pins).key(version).arg(tool).arg(pin);
        invocation.invoke_async(&mut self.connection()).await
    }

    /// The pins' version, and every (tool, pin) unless the version is still `known`
    /// (see [`PINS_SCRIPT`]).
    pub async fn pins_since(
        &self,
        known: Option<u64>,
    ) -> RedisResult<(u64, Option<Vec<(String, String)>>)> {
        let [pins, version] = self.pin_keys();
        // No version is -1: a fresh store's version 0 must still be read once.
        let known = known.map_or(-1, |v| v as i64);
        let mut invocation = self.pins.prepare_invoke();
        invocation.key(pins).key(version).arg(known);
        let answer: Vec<Value> = invocation.invoke_async(&mut self.connection()).await?;
        let mut answer = answer.into_iter();
        let version: u64 = redis::from_redis_value(answer.next().unwrap_or(Value::Nil))?;
        let pins = match answer.next() {
            Some(all) => Some(redis::from_redis_value(all)?),
            None => None,
        };
        Ok((version, pins))
    }
}

/// Whole milliseconds, at least one (Redis refuses an expiry of 0).
fn millis(duration: Duration) -> u64 {
    (duration.as_millis() as u64).max(1)
}
