-- Dist-Space for Neovim: edit a file of a space in a buffer, live with everyone else editing it.
--
--   :DistspaceOpen notes.md [SPACE]   a buffer bound to the file (the node's default space)
--   :DistspaceClose                   send what is unsent, stop following, wipe the buffer
--   :w                                waits until the daemon has every change (they are sent as typed)
--
-- The node is found as the CLI finds it: g:distspace_home, else $DISTSPACE_HOME, else
-- $XDG_DATA_HOME/distspace, else ~/.local/share/distspace; the plugin talks to its running
-- daemon (`distspace up`) over HOME/api.sock with the token of HOME/api.token. One connection
-- serves every bound buffer; it opens documents with encoding "utf-8", so the byte offsets
-- on_bytes reports are the protocol's positions as they are.

local rpc = require("distspace.rpc")
local document = require("distspace.document")

local M = {}

local state = {
  client = nil,
  documents = {}, -- key(space, path) -> Document
}

-- A bound buffer waits this long at :DistspaceClose and :w for its unsent edits to be taken.
M.FLUSH_TIMEOUT_MS = 10000

-- Documents are keyed as the daemon names them (space id, normalised path): doc.changed does too.
local function key(space_id, path)
  return space_id .. "\0" .. path
end

function M.home()
  local home = vim.g.distspace_home
  if home == nil or home == "" then home = vim.env.DISTSPACE_HOME end
  if home == nil or home == "" then
    local data = vim.env.XDG_DATA_HOME
    if data == nil or data == "" then data = vim.fn.expand("~/.local/share") end
    home = data .. "/distspace"
  end
  return home
end

local function read_token(home)
  local file = io.open(home .. "/api.token", "r")
  if not file then error("distspace: no token at " .. home .. "/api.token: has the node started once?", 0) end
  local token = file:read("*a")
  file:close()
  return vim.trim(token)
end

local function on_notification(method, params)
  if method ~= "doc.changed" then return end
  local bound = state.documents[key(params.space, params.path)]
  if bound then bound:changed(params) end
end

local function on_lost(reason)
  state.client = nil
  for _, bound in pairs(state.documents) do
    bound.closed = true
  end
  state.documents = {}
  vim.notify("distspace: lost the daemon: " .. reason .. "; the buffers are no longer live", vim.log.levels.ERROR)
end

--- The connection to the daemon, made (and authenticated) on first use.
function M.client()
  if state.client == nil or state.client.closed then
    local home = M.home()
    state.client = rpc.connect(home .. "/api.sock", read_token(home), on_notification, on_lost)
  end
  return state.client
end

--- Open `path` of `space` (nil: the node's default) in a new buffer; returns its number. A path
--- already open goes to its buffer.
function M.open(path, space)
  for _, bound in pairs(state.documents) do
    if bound.path == path and (space == nil or space == bound.space) then
      vim.api.nvim_set_current_buf(bound.buf)
      return bound.buf
    end
  end
  local client = M.client()
  local params = { path = path, encoding = "utf-8" }
  if space then params.space = space end
  local opened = client:call("doc.open", params)
  if opened.encoding ~= "utf-8" then
    error("distspace: the daemon opened " .. path .. " as " .. tostring(opened.encoding) .. ", not utf-8", 0)
  end
  local buf = vim.api.nvim_create_buf(true, false)
  vim.api.nvim_buf_set_name(buf, "distspace://" .. (space and (space .. "/") or "") .. opened.path)
  vim.bo[buf].buftype = "acwrite" -- :w runs our BufWriteCmd, never writes a file on disk
  vim.bo[buf].swapfile = false
  vim.bo[buf].fileformat = "unix"
  local bound = document.bind(client, buf, opened)
  state.documents[key(opened.space, opened.path)] = bound
  vim.api.nvim_create_autocmd("BufWriteCmd", {
    buffer = buf,
    callback = function()
      M.flush(buf)
      vim.bo[buf].modified = false
    end,
  })
  vim.api.nvim_create_autocmd("BufWipeout", {
    buffer = buf,
    callback = function() M.close(buf, { wipe = false }) end,
  })
  vim.api.nvim_set_current_buf(buf)
  vim.cmd("filetype detect")
  return buf
end

--- The binding of `buf` (default: the current buffer), or nil.
function M.document(buf)
  buf = (buf == nil or buf == 0) and vim.api.nvim_get_current_buf() or buf
  for _, bound in pairs(state.documents) do
    if bound.buf == buf then return bound end
  end
  return nil
end

local function bound_or_fail(buf)
  local bound = M.document(buf)
  if not bound then error("distspace: this buffer is not a file of a space (:DistspaceOpen PATH)", 0) end
  return bound
end

--- Wait until the daemon has every change of `buf`; true if it has.
function M.flush(buf, timeout_ms)
  local bound = bound_or_fail(buf)
  bound:flush()
  return vim.wait(timeout_ms or M.FLUSH_TIMEOUT_MS, function() return bound:idle() end, rpc.wait_interval_ms)
end

--- Stop following `buf`'s file (unsent edits are sent first); opts.wipe = false keeps the buffer.
function M.close(buf, opts)
  local bound = M.document(buf)
  if not bound then return end
  for name, each in pairs(state.documents) do
    if each == bound then state.documents[name] = nil end
  end
  bound:close(M.FLUSH_TIMEOUT_MS)
  if (opts == nil or opts.wipe ~= false) and vim.api.nvim_buf_is_valid(bound.buf) then
    vim.api.nvim_buf_delete(bound.buf, { force = true })
  end
end

--- What a test or :DistspaceStatus reads: the file's text as the buffer holds it, and the binding's state.
function M.status(buf)
  local bound = bound_or_fail(buf)
  return {
    path = bound.path,
    text = bound:text(),
    idle = bound:idle(),
    confirmed = bound.confirmed,
    edits_sent = bound.edits_sent,
    dropped = bound.dropped,
    resyncs = bound.resyncs,
  }
end

return M
