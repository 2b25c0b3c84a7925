// One automerge-repo peer for benchmarks/automerge_repo.py: a Repo with NodeFS storage in a
// directory and a WebSocket server on 127.0.0.1 (any port), dialling other peers when told.
// Commands arrive on stdin and replies and events leave on stdout, one JSON object a line, so
// the Python side timestamps edits and receipts with one clock. Every reply echoes the
// command's "op"; unasked events carry "ev":
//   {"ev":"change","heads":[...],"tokens":[...]} when the document's heads change (tokens: the
//     numbers of "<000123>" markers inserted by that change, from its patches)
//   {"ev":"peer","peer":id} / {"ev":"peer-disconnected","peer":id}
// Bytes sent are the CBOR-encoded repo messages handed to WebSocket send (sync messages and
// their envelopes); WebSocket framing and TCP are not counted.
import { createInterface } from "node:readline"
import { parseArgs } from "node:util"
import * as A from "@automerge/automerge"
import { Repo } from "@automerge/automerge-repo"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"
import {
  WebSocketClientAdapter,
  WebSocketServerAdapter,
} from "@automerge/automerge-repo-network-websocket"
import WebSocket, { WebSocketServer } from "ws"

// stdout carries the protocol; automerge-repo logs some errors with console.log.
console.log = console.info = (...items) => console.error("[automerge-repo peer]", ...items)

const { values: args } = parseArgs({ options: { dir: { type: "string" } } })
const LETTERS = "abcdefghijklmnopqrstuvwxyz ,.;()"
const TOKEN = /<(\d{6})>/g

let bytesSent = 0
const send = WebSocket.prototype.send
WebSocket.prototype.send = function (data, ...rest) {
  bytesSent += data.byteLength ?? data.length
  return send.call(this, data, ...rest)
}

const say = object => process.stdout.write(JSON.stringify(object) + "\n")
const heads = handle => A.getHeads(handle.doc()).sort()

// The server adapter counts as ready only once a client has connected, and find() waits for
// every adapter to be ready: a peer that nobody has dialled yet (it both listens and dials)
// would wait forever. Listening is ready at once here; sync itself is unchanged.
class ListeningAdapter extends WebSocketServerAdapter {
  isReady() {
    return true
  }
  whenReady() {
    return Promise.resolve()
  }
}

const server = new WebSocketServer({ host: "127.0.0.1", port: 0 })
await new Promise(resolve => server.once("listening", resolve))
const repo = new Repo({
  storage: new NodeFSStorageAdapter(args.dir),
  network: [new ListeningAdapter(server)],
})
repo.networkSubsystem.on("peer", ({ peerId }) => say({ ev: "peer", peer: peerId }))
repo.networkSubsystem.on("peer-disconnected", ({ peerId }) =>
  say({ ev: "peer-disconnected", peer: peerId })
)
const dialled = []
const handles = {} // by name: "main" is reported on, others (a warm-up) only answer commands
let reporting = true // off while this peer makes many changes of its own, which nobody awaits

function watch(handle, doc) {
  handles[doc] = handle
  if (doc !== "main") return { doc, heads: heads(handle) }
  handle.on("heads-changed", () => reporting && say({ ev: "change", heads: heads(handle) }))
  handle.on("change", ({ patches }) => {
    if (!reporting) return
    const tokens = []
    for (const patch of patches)
      if (patch.action === "splice")
        for (const match of patch.value.matchAll(TOKEN)) tokens.push(Number(match[1]))
    if (tokens.length) say({ ev: "change", heads: heads(handle), tokens })
  })
  return { doc, heads: heads(handle) }
}

// A small seeded generator, so both sides' offline typing is reproducible.
function random(seed) {
  let state = seed >>> 0
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0
    return state / 2 ** 32
  }
}

const yieldToLoop = () => new Promise(resolve => setImmediate(resolve))

const commands = {
  async create({ text, doc = "main" }) {
    const handle = repo.create({ text })
    return { url: handle.url, ...watch(handle, doc) }
  },
  async open({ url, doc = "main" }) {
    return watch(await repo.find(url), doc)
  },
  async dial({ port }) {
    const adapter = new WebSocketClientAdapter(`ws://127.0.0.1:${port}`, 1000)
    dialled.push(adapter)
    repo.networkSubsystem.addNetworkAdapter(adapter)
    return {}
  },
  async hangup() {
    for (const adapter of dialled.splice(0)) repo.networkSubsystem.removeNetworkAdapter(adapter)
    return {}
  },
  async splice({ position, text }) {
    handles.main.change(doc => A.splice(doc, ["text"], position, 0, text))
    return null // no reply: the edit is timed from when it was sent
  },
  async type({ count, seed }) {
    const handle = handles.main
    // Random letters at random places, one change each, as a person typing offline.
    const next = random(seed)
    let length = handle.doc().text.length
    for (let i = 0; i < count; i++) {
      const position = Math.floor(next() * (length + 1))
      const letter = LETTERS[Math.floor(next() * LETTERS.length)]
      handle.change(doc => A.splice(doc, ["text"], position, 0, letter))
      length += 1
    }
    return { heads: heads(handle) }
  },
  async burst({ count, group, doc = "main" }) {
    const handle = handles[doc]
    // Single-letter changes as fast as possible, yielding to the event loop after each group.
    const started = performance.now()
    for (let i = 0; i < count; i++) {
      handle.change(doc => A.splice(doc, ["text"], 0, 0, LETTERS[i % LETTERS.length]))
      if ((i + 1) % group === 0) await yieldToLoop()
    }
    return { doc, heads: heads(handle), commit_s: (performance.now() - started) / 1000 }
  },
  async report({ on }) {
    reporting = on
    return {}
  },
  async heads({ doc = "main" }) {
    return { doc, heads: heads(handles[doc]) }
  },
  async bytes() {
    return { sent: bytesSent }
  },
  async quit() {
    await repo.flush()
    await repo.shutdown()
    server.close()
    say({ op: "quit" })
    process.exit(0)
  },
}

say({ ev: "ready", port: server.address().port, peer: repo.peerId })
for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line)
  const reply = await commands[command.op](command)
  if (reply !== null) say({ op: command.op, ...reply })
}
process.exit(0)
