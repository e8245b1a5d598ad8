--[[
  Sets a key to a new value only if it still holds the value the caller read (an absent key reads as '').

  KEYS[1]  the key
  ARGV[1]  the value the caller read ('' for none)
  ARGV[2]  the new value
  ARGV[3]  TTL of the key, seconds

  Returns 1 when set, 0 when the key changed meanwhile (the caller reads again and retries).
]]
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
