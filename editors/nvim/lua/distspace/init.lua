-- Dist-Space for Neovim: edit a file of a space in a buffer, live with everyone else editing it.
--
--   :DistspaceOpen notes.md [SPACE]   a buffer bound to the file (the node's default space)
--   :DistspaceClose                   send what is unsent, stop following, wipe the buffer
--   :w                                waits until the daemon has every change (they are sent as typed)
--
-- A file opened from a folder the daemon mirrors (`distspace up --folder DIR`) is bound the same
-- way, in its own buffer: typing goes to the space as typed, others' edits appear live, and :w
-- only waits, because the daemon writes the folder's copy itself (two writers of one file would
-- race). g:distspace_follow_mirrors = false turns that off.
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

-- The buffer's text as readfile(name, "b") gives a file's: its lines, then "" if it ends in a
-- newline (how Neovim writes a buffer with 'eol').
local function disk_lines(buf)
  local lines = vim.api.nvim_buf_get_lines(buf, 0, -1, false)
  if vim.bo[buf].eol then table.insert(lines, "") end
  return lines
end

-- A mirrored file's buffer, no longer live, is a plain file again: :w writes it to disk (the
-- daemon's mirror takes the save in when it runs).
local function unbind(bound)
  for _, id in ipairs(bound.autocmds or {}) do
    pcall(vim.api.nvim_del_autocmd, id)
  end
  if bound.mirrored and vim.api.nvim_buf_is_valid(bound.buf) then
    vim.bo[bound.buf].buftype = ""
    -- The daemon rewrote the file while it was live: Neovim would take the next :w for a write
    -- over someone else's change and ask. If the disk holds what the buffer does, it is what
    -- Neovim read: say so by reading it again (no autocommands: the buffer stays as it is).
    local name = vim.api.nvim_buf_get_name(bound.buf)
    local readable, lines = pcall(vim.fn.readfile, name, "b")
    if readable and not vim.bo[bound.buf].modified and vim.deep_equal(lines, disk_lines(bound.buf)) then
      vim.api.nvim_buf_call(bound.buf, function() vim.cmd("silent noautocmd keepjumps edit!") end)
    end
  end
end

local function on_lost(reason)
  state.client = nil
  for _, bound in pairs(state.documents) do
    bound.closed = true
    unbind(bound)
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

-- Bind `buf` to `opened` (a doc.open result): its text replaces the buffer's, :w runs our
-- BufWriteCmd (it waits for the daemon; it never writes a file on disk), wiping it closes.
local function bind(client, buf, opened)
  vim.bo[buf].buftype = "acwrite"
  vim.bo[buf].fileformat = "unix"
  local bound = document.bind(client, buf, opened)
  state.documents[key(opened.space, opened.path)] = bound
  bound.autocmds = {
    vim.api.nvim_create_autocmd("BufWriteCmd", {
      buffer = buf,
      callback = function()
        M.flush(buf)
        vim.bo[buf].modified = false
      end,
    }),
    vim.api.nvim_create_autocmd("BufWipeout", {
      buffer = buf,
      callback = function() M.close(buf, { wipe = false }) end,
    }),
  }
  return bound
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
  vim.bo[buf].swapfile = false
  bind(client, buf, opened)
  vim.api.nvim_set_current_buf(buf)
  vim.cmd("filetype detect")
  return buf
end

-- The mirrored folder (real path) holding `file` (a real path) and the file's path in it, or nil.
local function mirrored(mirrors, file)
  for _, mirror in ipairs(mirrors) do
    local folder = vim.loop.fs_realpath(mirror.folder)
    if folder and file:sub(1, #folder + 1) == folder .. "/" then
      return mirror, file:sub(#folder + 2)
    end
  end
  return nil
end

--- Bind file buffer `buf`, just read, to its file in a space if it lies in a folder the running
--- daemon mirrors and the space holds it; returns the binding or nil. Quiet when there is no
--- daemon, no such folder, or the file is not in the space (ignored, or not ingested yet): a
--- file buffer then stays the plain file it was.
function M.follow_mirrored(buf)
  if vim.g.distspace_follow_mirrors == false or M.document(buf) then return nil end
  local name = vim.api.nvim_buf_get_name(buf)
  local file = name ~= "" and vim.loop.fs_realpath(name) or nil
  if not file or not vim.loop.fs_stat(M.home() .. "/api.sock") then return nil end
  local ok, client = pcall(M.client)
  if not ok then return nil end
  local listed, status = pcall(client.call, client, "mirror.status", vim.empty_dict())
  if not listed then return nil end
  local mirror, path = mirrored(status.mirrors or {}, file)
  if not mirror then return nil end
  local opened_ok, opened = pcall(client.call, client, "doc.open", { space = mirror.space, path = path, encoding = "utf-8" })
  if not opened_ok then return nil end
  local bound = bind(client, buf, opened)
  bound.mirrored = true
  -- The daemon rewrites the file as the space moves; the buffer already holds that text.
  table.insert(bound.autocmds, vim.api.nvim_create_autocmd("FileChangedShell", {
    buffer = buf,
    callback = function() vim.v.fcs_choice = "" end,
  }))
  return bound
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

--- Stop following `buf`'s file (unsent edits are sent first); opts.wipe = false keeps the buffer
--- (a mirrored file's buffer is always kept, as the plain file).
function M.close(buf, opts)
  local bound = M.document(buf)
  if not bound then return end
  for name, each in pairs(state.documents) do
    if each == bound then state.documents[name] = nil end
  end
  bound:close(M.FLUSH_TIMEOUT_MS)
  unbind(bound)
  if not bound.mirrored and (opts == nil or opts.wipe ~= false) and vim.api.nvim_buf_is_valid(bound.buf) then
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
