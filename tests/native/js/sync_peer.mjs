// Usage: node sync_peer.mjs DOC_FILE ACTOR_HEX TEXT_KEY INSERT
// A sync-protocol peer driven over stdin/stdout. Loads DOC_FILE as ACTOR_HEX, appends INSERT
// to the text at TEXT_KEY, then for every stdin line (a sync message as hex, or "-" for none)
// receives it, generates its own next message, and answers one JSON line
// {"message": hex|null, "heads", "doc"}.
import { readFileSync } from "node:fs"
import { createInterface } from "node:readline"
import { Automerge, fromHex, summary, toHex } from "./common.mjs"

const [docFile, actor, textKey, insert] = process.argv.slice(2)
let doc = Automerge.load(new Uint8Array(readFileSync(docFile)), { actor })
doc = Automerge.change(doc, (d) => Automerge.splice(d, [textKey], d[textKey].length, 0, insert))
let state = Automerge.initSyncState()

for await (const line of createInterface({ input: process.stdin })) {
  if (line !== "-") [doc, state] = Automerge.receiveSyncMessage(doc, state, fromHex(line))
  let message
  ;[state, message] = Automerge.generateSyncMessage(doc, state)
  console.log(JSON.stringify({ message: message ? toHex(message) : null, ...summary(doc) }))
}
