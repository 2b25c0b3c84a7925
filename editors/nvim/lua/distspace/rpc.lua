-- JSON-RPC 2.0 over the daemon's Unix socket (HOME/api.sock): one JSON text per line each way.
--
-- libuv calls us back in a "fast" context where no Neovim API may run, so every line read is
-- handed to the main loop with vim.schedule, in arrival order: replies and notifications reach
-- their handlers in the order the daemon sent them, which the editor protocol relies on (a
-- doc.edit's reply comes before the doc.changed that follows it).

local M = {}

-- Local calls finish in milliseconds; a daemon that takes this long is stuck or gone.
M.CALL_TIMEOUT_MS = 10000
-- How often vim.wait re-checks a condition between events (it also wakes on every event).
local WAIT_INTERVAL_MS = 5

local Connection = {}
Connection.__index = Connection

local function fail(message)
  error("distspace: " .. message, 0)
end

--- Connect to `socket_path` and authenticate with `token`; blocks until both are done.
--- on_notification(method, params) and on_lost(reason) run on the main loop.
function M.connect(socket_path, token, on_notification, on_lost)
  local pipe = vim.loop.new_pipe(false)
  local self = setmetatable({
    pipe = pipe,
    next_id = 1,
    waiting = {}, -- request id -> callback(error, result)
    partial = "", -- bytes after the last line break read so far
    closed = false,
    on_notification = on_notification,
    on_lost = on_lost,
  }, Connection)
  local connected, connect_error = false, nil
  pipe:connect(socket_path, function(err)
    connect_error = err
    connected = true
  end)
  if not vim.wait(M.CALL_TIMEOUT_MS, function() return connected end, WAIT_INTERVAL_MS) then
    pipe:close()
    fail("no answer connecting to " .. socket_path)
  end
  if connect_error then
    pipe:close()
    fail("no daemon listens on " .. socket_path .. " (" .. connect_error .. ")")
  end
  pipe:read_start(function(err, chunk) self:_received(err, chunk) end)
  local ok, result = pcall(self.call, self, "auth", { token = token })
  if not ok then
    self:close()
    error(result, 0)
  end
  self.peer_id = result.peer_id
  return self
end

-- Runs in libuv's fast context: split into lines, hand each to the main loop.
function Connection:_received(err, chunk)
  if err or not chunk then
    vim.schedule(function() self:_lost(err or "the daemon closed the connection") end)
    return
  end
  local text = self.partial .. chunk
  local start = 1
  while true do
    local newline = text:find("\n", start, true)
    if not newline then break end
    local line = text:sub(start, newline - 1)
    vim.schedule(function() self:_dispatch(line) end)
    start = newline + 1
  end
  self.partial = text:sub(start)
end

function Connection:_dispatch(line)
  if self.closed or line == "" then return end
  local ok, message = pcall(vim.json.decode, line)
  if not ok or type(message) ~= "table" then
    self:_lost("unreadable message from the daemon: " .. line:sub(1, 200))
    return
  end
  if message.id ~= nil and message.method == nil then
    local callback = self.waiting[message.id]
    self.waiting[message.id] = nil
    if callback then
      if message.error ~= nil then
        callback(message.error, nil)
      else
        callback(nil, message.result)
      end
    end
  elseif message.method ~= nil and self.on_notification then
    self.on_notification(message.method, message.params)
  end
end

function Connection:_lost(reason)
  if self.closed then return end
  self:close()
  local waiting = self.waiting
  self.waiting = {}
  for _, callback in pairs(waiting) do
    callback({ code = -1, message = reason }, nil)
  end
  if self.on_lost then self.on_lost(reason) end
end

--- Send a request; callback(error, result) runs on the main loop with the reply.
function Connection:request(method, params, callback)
  if self.closed then
    callback({ code = -1, message = "not connected" }, nil)
    return
  end
  local id = self.next_id
  self.next_id = id + 1
  self.waiting[id] = callback
  self.pipe:write(vim.json.encode({ jsonrpc = "2.0", id = id, method = method, params = params }) .. "\n")
end

--- A request that blocks (processing other events meanwhile) until its reply; raises on an error.
function Connection:call(method, params, timeout_ms)
  local done, failure, value = false, nil, nil
  self:request(method, params, function(err, result)
    done, failure, value = true, err, result
  end)
  if not vim.wait(timeout_ms or M.CALL_TIMEOUT_MS, function() return done end, WAIT_INTERVAL_MS) then
    fail(method .. ": no reply within " .. (timeout_ms or M.CALL_TIMEOUT_MS) .. " ms")
  end
  if failure then
    fail(method .. ": " .. tostring(failure.message) .. " (" .. tostring(failure.code) .. ")")
  end
  return value
end

function Connection:close()
  if self.closed then return end
  self.closed = true
  if not self.pipe:is_closing() then
    self.pipe:read_stop()
    self.pipe:close()
  end
end

M.wait_interval_ms = WAIT_INTERVAL_MS
return M
