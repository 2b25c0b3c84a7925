// An agent typing into a file while people edit it in their editors: an EditorDocument (the
// editor protocol's CLIENT RULE) over a daemon's Unix socket. tests/editors/test_nvim_plugin.py
// runs it beside two Neovims; build the package first (npm run build: dist/).
//
//   node examples/typing_agent.mjs '{"home": "/path/to/home", "path": "notes.txt", "keys": "abc",
//                                    "before": "\n", "seed": 1, "pause_ms": 20}'
//
// It opens `path` and prints {"ready": true}; types each character of `keys` just before the last
// occurrence of `before` in its buffer (the end of the last line, for "\n"), in bursts of 1 to 4
// with random pauses of up to `pause_ms` (seeded: the same bursts every run), remote changes
// arriving meanwhile; once all it typed is confirmed it prints {"typed": n}. Then, on a line
// "report" on stdin (sent when the others are done), it waits until its buffer is the daemon's
// text at the daemon's heads and prints {"text", "heads"}. One JSON object a line.

import { createInterface } from "node:readline";

import { connect, EditorDocument } from "../dist/index.js";

// Everything here happens on loopback; a step that takes longer is stuck (the test that runs this
// waits 30 s for each of its lines: it hears why first).
const STEP_TIMEOUT_MS = 20_000;

const { home, path, keys, before = "\n", seed = 1, pause_ms: pauseMs = 20 } = JSON.parse(process.argv[2]);

/** A small seeded PRNG (mulberry32): the agent's bursts and pauses are the same each run. */
function random(state) {
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function print(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

function sameHeads(a, b) {
  return JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());
}

/** The next remote change applied to `doc`, or a rejection after STEP_TIMEOUT_MS. */
function nextRemoteChange(doc, why) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`no remote change within ${STEP_TIMEOUT_MS} ms while ${why}`));
    }, STEP_TIMEOUT_MS);
    const stop = doc.onRemoteChange((change) => {
      clearTimeout(timer);
      stop();
      resolve(change);
    });
  });
}

async function main() {
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const client = await connect({ home, transport: "unix" });
  try {
    const doc = await EditorDocument.open(client, { path });
    print({ ready: true });
    const next = random(seed);
    const characters = [...keys]; // code points: an astral character is one keystroke of two UTF-16 units
    for (let at = 0; at < characters.length; ) {
      const burst = characters.slice(at, at + 1 + Math.floor(next() * 4)).join("");
      at += [...burst].length;
      const spot = doc.text.lastIndexOf(before);
      if (spot < 0) throw new Error(`${JSON.stringify(before)} is not in the buffer: ${JSON.stringify(doc.text)}`);
      doc.edit(spot, 0, burst);
      await new Promise((resolve) => setTimeout(resolve, next() * pauseMs)); // a typing pace, not a wait for anything
    }
    await doc.settled();
    print({ typed: characters.length });
    const { value: command } = await lines.next();
    if (command !== "report") throw new Error(`expected "report" on stdin, got ${JSON.stringify(command)}`);
    for (;;) {
      const changed = nextRemoteChange(doc, "catching up with the daemon");
      changed.catch(() => {}); // unused once caught up
      const now = await client.call("fs.read", { path });
      if (doc.idle && doc.text === now.text && sameHeads(doc.confirmed, now.heads)) {
        print({ text: doc.text, heads: [...doc.confirmed].sort() });
        return;
      }
      await changed.catch((error) => {
        const state = { idle: doc.idle, text: doc.text, confirmed: doc.confirmed, daemon: { text: now.text, heads: now.heads } };
        throw new Error(`${error.message}: ${JSON.stringify(state)}`);
      });
    }
  } finally {
    client.close();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`typing_agent: ${error.stack ?? error}\n`);
    process.exit(1);
  },
);
