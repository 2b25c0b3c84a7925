-- Commands of the Dist-Space plugin (lua/distspace/init.lua says what they do).
if vim.g.loaded_distspace then return end
vim.g.loaded_distspace = true

local function run(action)
  local ok, err = pcall(action)
  if not ok then vim.notify(tostring(err), vim.log.levels.ERROR) end
end

vim.api.nvim_create_user_command("DistspaceOpen", function(command)
  run(function() require("distspace").open(command.fargs[1], command.fargs[2]) end)
end, { nargs = "+", desc = "Edit a file of a space: PATH [SPACE]" })

vim.api.nvim_create_user_command("DistspaceClose", function()
  run(function() require("distspace").close(0) end)
end, { nargs = 0, desc = "Send what is unsent, stop following the file and wipe its buffer" })

vim.api.nvim_create_user_command("DistspaceStatus", function()
  run(function() print(vim.inspect(require("distspace").status(0))) end)
end, { nargs = 0, desc = "The bound buffer's state: heads, edits sent, notifications dropped" })

-- A file read from a folder the daemon mirrors becomes live (g:distspace_follow_mirrors = false: never).
vim.api.nvim_create_autocmd("BufReadPost", {
  group = vim.api.nvim_create_augroup("distspace_mirrors", { clear = true }),
  callback = function(event)
    run(function() require("distspace").follow_mirrored(event.buf) end)
  end,
})
