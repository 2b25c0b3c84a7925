-- One buffer bound to one file of a space, following the editor protocol's CLIENT RULE
-- (node/editor.py):
--
-- * `confirmed` is the version the daemon knows the buffer holds: the heads of doc.open, then
--   of each doc.edit reply and each doc.changed applied.
-- * At most ONE doc.edit is in flight. What is typed meanwhile is kept in `pending`
--   (edits.lua) and sent as one doc.edit, at base = the heads that reply returned.
-- * A doc.changed is applied only when no edit is in flight (what is pending is sent first) and
--   its from_heads are `confirmed`; otherwise it is dropped: the daemon moves the connection's
--   heads to the edit's own change, so the doc.changed that follows the reply carries those
--   remote edits again. With nothing in flight, other from_heads mean the binding lost step (a
--   bug): it re-reads the file (`resyncs` counts it; the tests require 0).
--
-- Remote patches are applied with nvim_buf_set_text while `applying` tells on_bytes it is
-- hearing its own echo, and every window's cursor is carried across them by offset. They enter
-- Neovim's undo history like any change: `u` may undo someone else's edit (and send that).

local edits = require("distspace.edits")
local rpc = require("distspace.rpc")

local M = {}

local Document = {}
Document.__index = Document

local function same_heads(a, b)
  if #a ~= #b then return false end
  local sorted_a, sorted_b = vim.deepcopy(a), vim.deepcopy(b)
  table.sort(sorted_a)
  table.sort(sorted_b)
  for i = 1, #sorted_a do
    if sorted_a[i] ~= sorted_b[i] then return false end
  end
  return true
end

local function split_lines(text)
  return vim.split(text, "\n", { plain = true })
end

--- Bind `buf` (empty, fresh) to `opened`, a doc.open result, over `client`.
function M.bind(client, buf, opened)
  local self = setmetatable({
    client = client,
    buf = buf,
    space = opened.space, -- the space's id and the normalised path, as the daemon names them
    path = opened.path,
    confirmed = opened.heads,
    in_flight = false,
    send_scheduled = false,
    applying = false,
    closed = false,
    resyncs = 0, -- times the binding lost step and re-read the file (a bug if ever > 0)
    dropped = 0, -- doc.changed notifications dropped by the client rule
    edits_sent = 0,
  }, Document)
  self:_load(opened.text)
  vim.api.nvim_buf_attach(buf, false, {
    on_bytes = function(_, _, _, _, _, offset, _, _, old_len, _, _, new_len)
      return self:_on_bytes(offset, old_len, new_len)
    end,
  })
  return self
end

-- Replace the whole buffer with `text` (not sent: the daemon's own text) and start afresh.
function Document:_load(text)
  self.eol = text:sub(-1) == "\n"
  self.text_len = #text
  self.pending = edits.pending(#text)
  local body = self.eol and text:sub(1, -2) or text
  self:_quietly(function()
    vim.api.nvim_buf_set_lines(self.buf, 0, -1, false, split_lines(body))
  end)
  vim.bo[self.buf].modified = false
end

function Document:_quietly(change)
  self.applying = true
  local ok, err = pcall(change)
  self.applying = false
  if not ok then error(err, 0) end
end

--- The file's text as the buffer holds it.
function Document:text()
  local lines = vim.api.nvim_buf_get_lines(self.buf, 0, -1, false)
  return table.concat(lines, "\n") .. (self.eol and "\n" or "")
end

--- Nothing in flight, nothing typed and unsent.
function Document:idle()
  return not self.in_flight and not self.pending.changed
end

-- The text inserted is read when the edit is sent, not here: Neovim reports some changes (a
-- join, J) before its lines show them. Their extents are right, and are all the pieces need.
function Document:_on_bytes(offset, old_len, new_len)
  if self.closed then return true end
  if self.applying then return end
  local position, delete, inserted = edits.buffer_to_text(self.eol, self.text_len, offset, old_len, new_len)
  if position == nil then
    vim.schedule(function() self:resync("an unexpected change at the end of the buffer") end)
    return
  end
  self.pending:apply(position, delete, inserted)
  self.text_len = self.text_len - delete + inserted
  self:_schedule_send()
end

-- Several on_bytes of one command (a :substitute, a paste) leave as one doc.edit.
function Document:_schedule_send()
  if self.send_scheduled then return end
  self.send_scheduled = true
  vim.schedule(function()
    self.send_scheduled = false
    self:flush()
  end)
end

--- Send what is pending, unless an edit is in flight (its reply sends the rest).
function Document:flush()
  if self.closed or self.in_flight or not self.pending.changed then return end
  local text = self:text()
  local changes = self.pending:edits(function(from, to) return text:sub(from + 1, to) end)
  self.pending = edits.pending(self.text_len)
  if #changes == 0 then return end -- typed and undone before it left
  self.in_flight = true
  self.edits_sent = self.edits_sent + 1
  local params = { space = self.space, path = self.path, base = self.confirmed, edits = changes }
  self.client:request("doc.edit", params, function(err, result)
    self.in_flight = false
    if self.closed then return end
    if err then
      self:resync("doc.edit failed: " .. tostring(err.message))
      return
    end
    self.confirmed = result.heads
    self:flush()
  end)
end

--- A doc.changed for this file: applied or dropped by the client rule.
function Document:changed(params)
  if self.closed then return end
  self:flush() -- what is typed leaves first; typed and undone, it leaves nothing and the buffer is idle
  if self.in_flight then
    self.dropped = self.dropped + 1
    return
  end
  if not same_heads(params.from_heads, self.confirmed) then
    self:resync("a doc.changed from heads the buffer does not hold")
    return
  end
  self:_apply(params.patches)
  self.confirmed = params.to_heads
end

-- Byte offsets are counted over the lines here: nvim_buf_get_offset answers -1 for a buffer
-- Neovim keeps no chunk sizes for (one made by nvim_create_buf, with no swap file).
local function offset_of(lines, row, col)
  local offset = col
  for i = 1, row do
    offset = offset + #lines[i] + 1
  end
  return offset
end

-- (row, col) of a byte offset before the buffer's final line break (or at it).
local function position_of(lines, offset)
  local row = 0
  while row < #lines - 1 and offset > #lines[row + 1] do
    offset = offset - #lines[row + 1] - 1
    row = row + 1
  end
  return row, offset
end

function Document:_lines()
  return vim.api.nvim_buf_get_lines(self.buf, 0, -1, true)
end

-- The byte offset of every window's cursor on this buffer, to carry across a patch.
function Document:_cursors()
  local cursors, lines = {}, self:_lines()
  for _, win in ipairs(vim.fn.win_findbuf(self.buf)) do
    local row, col = unpack(vim.api.nvim_win_get_cursor(win))
    cursors[win] = offset_of(lines, row - 1, col)
  end
  return cursors
end

function Document:_apply(patches)
  local cursors = self:_cursors()
  local keep_last_line = self:_on_empty_last_line()
  -- In insert mode the cursor sits between characters: a remote insert right at it goes after
  -- it (the user keeps typing where they were). In normal mode it sits on a character, and
  -- follows that character.
  local mode = vim.api.nvim_get_mode().mode:sub(1, 1)
  local inserting = mode == "i" or mode == "R"
  self:_quietly(function()
    for _, patch in ipairs(patches) do
      local position, delete, insert, eol =
        edits.text_to_buffer(self.eol, self.text_len, patch.position, patch.delete, patch.insert)
      local lines = self:_lines()
      local start_row, start_col = position_of(lines, position)
      local end_row, end_col = position_of(lines, position + delete)
      vim.api.nvim_buf_set_text(self.buf, start_row, start_col, end_row, end_col, split_lines(insert))
      self.eol = eol
      self.text_len = self.text_len - patch.delete + #patch.insert
      for win, at in pairs(cursors) do
        if at > position or (at == position and not inserting and delete == 0) then
          cursors[win] = math.max(position, at - delete) + (at >= position + delete and #insert or 0)
        end
      end
    end
  end)
  self.pending = edits.pending(self.text_len)
  if not keep_last_line then self:_drop_empty_last_line() end
  local lines = self:_lines()
  for win, at in pairs(cursors) do
    if vim.api.nvim_win_is_valid(win) then
      local row, col = position_of(lines, math.min(at, self.text_len - (self.eol and 1 or 0)))
      vim.api.nvim_win_set_cursor(win, { row + 1, col })
    end
  end
end

-- Whether a cursor is on an empty last line of a text without a final line break: the user's
-- new line, which _drop_empty_last_line leaves alone.
function Document:_on_empty_last_line()
  local count = vim.api.nvim_buf_line_count(self.buf)
  if self.eol or vim.api.nvim_buf_get_lines(self.buf, -2, -1, true)[1] ~= "" then return false end
  for _, win in ipairs(vim.fn.win_findbuf(self.buf)) do
    if vim.api.nvim_win_get_cursor(win)[1] == count then return true end
  end
  return false
end

-- Patches can leave a text that ends in a line break shown as an empty last line (patches
-- deleting up to the end after an insert, say); the buffer shows it as Neovim shows a file.
function Document:_drop_empty_last_line()
  local count = vim.api.nvim_buf_line_count(self.buf)
  if self.eol or count < 2 or vim.api.nvim_buf_get_lines(self.buf, -2, -1, true)[1] ~= "" then return end
  self:_quietly(function()
    vim.api.nvim_buf_set_lines(self.buf, -2, -1, true, {})
  end)
  self.eol = true
end

--- Lost step (an error reply, heads it does not hold): re-read the file from the daemon.
--- Only ever runs with nothing unsent, or with what failed to send: the buffer takes the
--- daemon's text, and the cursors their lines.
function Document:resync(why)
  if self.closed then return end
  self.resyncs = self.resyncs + 1
  vim.notify("distspace: " .. self.path .. ": " .. why .. "; re-reading it", vim.log.levels.WARN)
  local params = { space = self.space, path = self.path, encoding = "utf-8" }
  self.in_flight = true -- nothing leaves until the buffer holds the daemon's text again
  self.client:request("doc.open", params, function(err, opened)
    self.in_flight = false
    if self.closed then return end
    if err then
      vim.notify("distspace: " .. self.path .. ": cannot re-read it: " .. tostring(err.message), vim.log.levels.ERROR)
      return
    end
    local cursors = {}
    for _, win in ipairs(vim.fn.win_findbuf(self.buf)) do
      cursors[win] = vim.api.nvim_win_get_cursor(win)
    end
    self.confirmed = opened.heads
    self:_load(opened.text)
    local lines = vim.api.nvim_buf_line_count(self.buf)
    for win, cursor in pairs(cursors) do
      pcall(vim.api.nvim_win_set_cursor, win, { math.min(cursor[1], lines), cursor[2] })
    end
  end)
end

--- Stop following the file: what is unsent is sent first (waits up to timeout_ms).
function Document:close(timeout_ms)
  if self.closed then return end
  self:flush()
  vim.wait(timeout_ms, function() return self:idle() end, rpc.wait_interval_ms)
  self.closed = true
  self.client:request("doc.close", { space = self.space, path = self.path }, function() end)
end

return M
