-- Pure functions (no Neovim API): the buffer's bytes vs the file's text, and the edits typed
-- since the last doc.edit folded into one list of edits against the text that edit left.
--
-- The buffer vs the text. on_bytes counts a buffer as its lines, EACH ending in a line break
-- (an empty buffer is one empty line: "\n"). A file need not end in one, so a binding keeps
-- `eol`: true when the text is exactly the buffer's bytes (it ends in "\n"), false when the
-- text is the buffer's bytes less the final "\n" (an empty file, or one without a final line
-- break). Only a change that touches that final line break needs translating.
--
-- Pending edits. The editor protocol takes a list of edits that all refer to the text at one
-- base, LSP-style (no overlaps), but keystrokes arrive one after another, each against the text
-- the previous one left. `Pending` keeps the text typed since the base as pieces: runs of the
-- base text (by range) and inserted strings. A keystroke splits and replaces pieces; `edits()`
-- reads the gaps between the base runs back as disjoint edits, in order. Positions are bytes
-- (the binding opens its documents with encoding "utf-8").

local M = {}

--- A change on_bytes reported (buffer bytes: where, bytes deleted, bytes inserted) as an edit of
--- the text: position, delete, and the length of the insert, which is read from the buffer when
--- the edit is sent (bytes_inserted); nil when the change cannot come from Neovim.
function M.buffer_to_text(eol, text_len, position, delete, inserted)
  if eol or position + delete <= text_len then
    return position, delete, inserted
  end
  if position == text_len + 1 then -- appended after the final (unwritten) line break: "\n" .. all but the last
    return text_len, 0, inserted
  end
  if inserted > 0 then -- replaced text up to and with the final line break by text ending in one
    return position, delete - 1, inserted - 1
  end
  if position >= 1 then -- deleted the last line(s) and the break before them
    return position - 1, delete, 0
  end
  return nil
end

--- A remote patch of the text as a change of the buffer's bytes: position, delete, insert, and
--- the new `eol`. The buffer keeps its final line break in place, so nothing is ever written
--- past the last line.
function M.text_to_buffer(eol, text_len, position, delete, insert)
  local reaches_end = position + delete == text_len
  if not eol then
    if reaches_end and insert:sub(-1) == "\n" then -- the text gains a final break: the buffer's is it
      return position, delete, insert:sub(1, -2), true
    end
    return position, delete, insert, false
  end
  if not reaches_end then
    return position, delete, insert, true
  end
  local keeps_break = insert:sub(-1) == "\n"
  local body = keeps_break and insert:sub(1, -2) or insert
  if position < text_len then -- up to and with the text's final line break
    return position, delete - 1, body, keeps_break
  end
  return text_len - 1, 0, "\n" .. body, keeps_break -- appended after the final line break
end

local Pending = {}
Pending.__index = Pending

--- Nothing typed yet on a base text of `base_len` bytes.
function M.pending(base_len)
  local pieces = {}
  if base_len > 0 then
    pieces[1] = { from = 0, to = base_len }
  end
  return setmetatable({ base_len = base_len, pieces = pieces, changed = false }, Pending)
end

local function piece_len(piece)
  return piece.typed or piece.to - piece.from
end

-- The piece's bytes [from, to) (relative to the piece) as a piece; nil when empty.
local function slice(piece, from, to)
  if to <= from then return nil end
  if piece.typed then return { typed = to - from } end
  return { from = piece.from + from, to = piece.from + to }
end

local function append(pieces, piece)
  local last = pieces[#pieces]
  if piece.typed and last and last.typed then
    last.typed = last.typed + piece.typed
  else
    pieces[#pieces + 1] = piece
  end
end

--- Apply one edit of the current text (the base with everything so far applied): `delete`
--- bytes at `position` replaced by `inserted` new ones.
function Pending:apply(position, delete, inserted)
  if delete == 0 and inserted == 0 then return end
  local stop = position + delete
  local pieces, after, offset = {}, {}, 0
  for _, piece in ipairs(self.pieces) do
    local len = piece_len(piece)
    local head = slice(piece, 0, math.min(len, position - offset))
    local tail = slice(piece, math.max(0, stop - offset), len)
    if head then append(pieces, head) end
    if tail then after[#after + 1] = tail end
    offset = offset + len
  end
  if stop > offset then
    error(string.format("distspace: edit [%d, %d) outside the text (%d bytes)", position, stop, offset))
  end
  if inserted > 0 then append(pieces, { typed = inserted }) end
  for _, piece in ipairs(after) do
    append(pieces, piece)
  end
  self.pieces = pieces
  self.changed = true
end

--- The edits of the base text that give the current text: disjoint, in order ({} if none).
--- read(from, to) returns the current text's bytes [from, to).
function Pending:edits(read)
  local edits, base_at, at, typed = {}, 0, 0, {}
  local function close_gap(upto)
    local insert = table.concat(typed)
    if upto > base_at or insert ~= "" then
      edits[#edits + 1] = { position = base_at, delete = upto - base_at, insert = insert }
    end
    typed = {}
  end
  for _, piece in ipairs(self.pieces) do
    if piece.typed then
      typed[#typed + 1] = read(at, at + piece.typed)
    else
      close_gap(piece.from)
      base_at = piece.to
    end
    at = at + piece_len(piece)
  end
  close_gap(self.base_len)
  return edits
end

return M
