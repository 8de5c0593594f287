-- ctxkit-redis: one GCRA decision on one bucket, atomically (a script runs alone on its
-- Redis), with Redis's own clock. The model and its names are those of ctxkit's
-- `rate/gcra.rs`: the bucket is one instant, `zero`, at which it would hold no tokens.
--
--   tokens(now) = min(burst, (now - zero) / interval)
--   take n:      from = max(zero, now - tau); end = from + n * interval; ready if end <= now
--
-- All instants and durations are integer microseconds (Redis's TIME, in Unix time). Lua
-- numbers are doubles, exact for integers below 2^53; the client keeps every value below
-- 2^51 plus the current time (see `limits` in `script.rs`), so nothing here is rounded.
--
-- KEYS[1]  the bucket's key: its value is `zero`, written as a decimal integer; no key is a
--          full bucket (zero = 0)
-- ARGV[1]  mode: 0 all or nothing (allow_n), 1 at most n (allow_at_most), 2 reserve if ready
--          within ARGV[5] (wait_n), 3 give a reservation back (a canceled wait), 4 all of n
--          or nothing, and up to ARGV[5] more if they are there (allow_n with a lease)
-- ARGV[2]  interval: microseconds per token, >= 1
-- ARGV[3]  burst, >= 1
-- ARGV[4]  n (modes 0-2), or the reservation's `prev` (mode 3)
-- ARGV[5]  max_wait in microseconds (mode 2), the reservation's `end` (mode 3), or the
--          most tokens to take beyond n (mode 4)
--
-- Reply, eight integers:
--   granted      tokens taken (mode 3: 1 if the reservation was given back, else 0; mode
--                4: 0, or n and the extra ones)
--   remaining    whole tokens left after the decision, 0..burst
--   retry_after  microseconds until the tokens not granted would be there; -1 if all were
--   reset_after  microseconds until the bucket is full again, if nobody takes
--   delay        microseconds until the granted tokens may be used (mode 2), else 0
--   prev         `zero` before the decision (0: no key)
--   end          mode 2: the reservation's `end` (where `zero` went); else `zero` after
--   now          Redis's TIME, microseconds
--
-- The key's expiry is the instant its bucket is full again (`zero + tau`), rounded up to the
-- millisecond: a key that vanished is a full bucket, so no decision changes by it.

-- Redis 3.2 to 4 replicate a script that reads TIME only as its effects; from 5 on, that is
-- the default and this call does nothing.
if redis.replicate_commands ~= nil then
    redis.replicate_commands()
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local mode = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local tau = interval * burst

local stored = redis.call('GET', KEYS[1])
local zero = 0
if stored then
    zero = tonumber(stored)
    if zero == nil then
        return redis.error_reply('ctxkit-redis: key ' .. KEYS[1] .. ' does not hold a bucket')
    end
end

-- Writes `z` as the bucket's state, to expire when the bucket is full again.
local function store(z)
    local ttl = z + tau - now
    if ttl <= 0 then
        redis.call('DEL', KEYS[1])
    else
        redis.call('SET', KEYS[1], string.format('%.0f', z), 'PX', math.ceil(ttl / 1000))
    end
end

local function remaining(z)
    local r = math.floor((now - z) / interval)
    if r < 0 then return 0 end
    if r > burst then return burst end
    return r
end

local function reset_after(z)
    local r = z + tau - now
    if r < 0 then return 0 end
    return r
end

if mode == 3 then
    local prev = tonumber(ARGV[4])
    local fin = tonumber(ARGV[5])
    -- Only the top of the stack of takes goes back (nothing was taken after it), and only
    -- before its time to act.
    if stored and zero == fin and now <= fin then
        store(prev)
        return {1, remaining(prev), -1, reset_after(prev), 0, zero, prev, now}
    end
    return {0, remaining(zero), -1, reset_after(zero), 0, zero, zero, now}
end

local n = tonumber(ARGV[4])
local from = math.max(zero, now - tau)
local fin = from + n * interval
local granted = 0
local after = zero
local delay = 0

if mode == 0 then
    if fin <= now then
        granted = n
        after = fin
    end
elseif mode == 1 then
    local avail = math.floor((now - from) / interval)
    if avail < 0 then avail = 0 end
    granted = math.min(n, avail)
    after = from + granted * interval
elseif mode == 2 then
    local wait = fin - now
    if wait < 0 then wait = 0 end
    if wait <= tonumber(ARGV[5]) then
        granted = n
        after = fin
        delay = wait
    end
elseif mode == 4 then
    -- All n, or nothing; with them, up to ARGV[5] more that are there now (a lease).
    local avail = math.floor((now - from) / interval)
    if avail >= n then
        granted = math.min(n + tonumber(ARGV[5]), avail)
        after = from + granted * interval
    end
else
    return redis.error_reply('ctxkit-redis: unknown mode ' .. ARGV[1])
end

if granted > 0 then
    store(after)
end

local retry = -1
if granted < n then
    -- The bucket as this decision left it holds the missing n - granted tokens at `fin`.
    retry = fin - now
end
local last = after
if mode == 2 and granted > 0 then last = fin end
return {granted, remaining(after), retry, reset_after(after), delay, zero, last, now}
