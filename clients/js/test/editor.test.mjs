// EditorDocument against a real daemon: the editor protocol (doc.*) and the CLIENT RULE.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";

import { connect, EditorDocument, EditRejectedError, InvalidParamsError, transformPosition } from "../dist/index.js";
import { daemonHome, exitCode, nextEvent, ownPath, peerHome as peerDaemonHome } from "./helpers.mjs";

const home = daemonHome();
const peerHome = peerDaemonHome();

function sameHeads(a, b) {
  return JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());
}

/** Wait until every document is idle and holds its daemon's text (`readers[i]` reads doc i's) at its heads, all alike. */
async function converged(docs, readers, path) {
  for (;;) {
    const changed = nextEvent((deliver) => {
      const stops = docs.map((doc) => doc.onRemoteChange(deliver));
      return () => stops.forEach((stop) => stop());
    }, "remote change on the way to convergence");
    changed.catch(() => {}); // unused once converged
    const now = await Promise.all(readers.map((reader) => reader.call("fs.read", { path })));
    if (docs.every((doc, i) => doc.idle && doc.text === now[i].text && sameHeads(doc.confirmed, now[i].heads) && doc.text === now[0].text)) return now[0];
    await changed.catch((error) => {
      const state = { daemons: now.map(({ text, heads }) => ({ text, heads })), docs: docs.map(({ idle, text, confirmed }) => ({ idle, text, confirmed })) };
      throw new Error(`${error.message}; not converged: ${JSON.stringify(state)}`);
    });
  }
}

/** Wait until a peer's daemon holds `path` with `text` (written on another daemon). */
async function arrived(client, path, text) {
  const tree = nextEvent((deliver) => client.on("tree.changed", (change) => change.changes.some((each) => each.path === path) && deliver()), "the file's tree change");
  tree.catch(() => {});
  await client.call("subscribe.tree");
  if (!(await client.call("fs.stat", { path }).catch(() => null))) await tree;
  for (;;) {
    const content = nextEvent((deliver) => client.on("file.changed", deliver), "the file's content");
    content.catch(() => {});
    await client.call("subscribe.file", { path });
    const read = await client.call("fs.read", { path }).catch(() => null);
    if (read?.text === text) return;
    await content;
  }
}

async function withClients(count, body) {
  const clients = await Promise.all(Array.from({ length: count }, (_, i) => connect({ home, transport: i % 2 ? "websocket" : "unix" })));
  try {
    return await body(...clients);
  } finally {
    for (const client of clients) client.close();
  }
}

test("doc.open gives the text and heads fs.read does; a local edit reaches the store and is not echoed", async (t) => {
  await withClients(1, async (client) => {
    const path = ownPath(t);
    await client.call("fs.write", { path, text: "hello\n", parents: true });
    const doc = await EditorDocument.open(client, { path });
    const read = await client.call("fs.read", { path });
    assert.equal(doc.text, "hello\n");
    assert.ok(sameHeads(doc.confirmed, read.heads));
    const echoes = [];
    doc.onRemoteChange((change) => echoes.push(change));
    doc.edit(5, 0, ", world");
    doc.edit(0, 1, "H");
    assert.equal(doc.text, "Hello, world\n"); // the buffer has it at once
    await doc.settled();
    const after = await client.call("fs.read", { path });
    assert.equal(after.text, "Hello, world\n");
    assert.ok(sameHeads(doc.confirmed, after.heads));
    await doc.close();
    assert.deepEqual(echoes, []);
  });
});

test("a remote write arrives as patches applied to the buffer", async (t) => {
  await withClients(2, async (editor, other) => {
    const path = ownPath(t);
    await other.call("fs.write", { path, text: "one\nthree\n", parents: true });
    const doc = await EditorDocument.open(editor, { path });
    const changed = nextEvent((deliver) => doc.onRemoteChange(deliver), "remote change");
    await other.call("fs.write", { path, text: "one\ntwo\nthree\n" });
    const change = await changed;
    assert.equal(doc.text, "one\ntwo\nthree\n");
    assert.equal(change.text, doc.text);
    const read = await other.call("fs.read", { path });
    assert.ok(sameHeads(change.toHeads, read.heads));
    await doc.close();
  });
});

test("positions are UTF-16 code units: edits after astral characters land where JS counts them", async (t) => {
  await withClients(2, async (editor, other) => {
    const path = ownPath(t);
    await other.call("fs.write", { path, text: "🌍🌍\n", parents: true });
    const doc = await EditorDocument.open(editor, { path });
    doc.edit(2, 0, "é"); // between the two globes: after 2 code units, 1 code point
    await doc.settled();
    assert.equal((await other.call("fs.read", { path })).text, "🌍é🌍\n");
    const changed = nextEvent((deliver) => doc.onRemoteChange(deliver), "remote change");
    await other.call("fs.splice", { path, position: 2, insert: "!" }); // code points: after the é
    const change = await changed;
    assert.deepEqual(change.patches, [{ position: 3, delete: 0, insert: "!" }]);
    assert.equal(doc.text, "🌍é!🌍\n");
    await doc.close();
  });
});

test("an edit the daemon refuses (splitting a surrogate pair) fails settled() with the typed cause", async (t) => {
  await withClients(1, async (client) => {
    const path = ownPath(t);
    await client.call("fs.write", { path, text: "🌍\n", parents: true });
    const doc = await EditorDocument.open(client, { path });
    doc.edit(1, 0, "x");
    await assert.rejects(doc.settled(), (error) => {
      assert.ok(error instanceof EditRejectedError);
      assert.ok(error.cause instanceof InvalidParamsError);
      return true;
    });
    assert.throws(() => doc.edit(0, 0, "y"), EditRejectedError);
    assert.equal((await client.call("fs.read", { path })).text, "🌍\n"); // nothing applied
  });
});

// Two editors (one per transport) type into one file at once, an agent too: each at its own line.
const KEYSTROKES = 80;
const AGENT_TEXT = "0123456789".repeat(3);
const START = "=\n+\n-\n";

async function typeAtOnce(t, { clientA, clientB, readers, agentHome }) {
  const path = ownPath(t);
  await readers[0].call("fs.write", { path, text: START, parents: true });
  for (const reader of new Set(readers.slice(1))) if (reader !== readers[0]) await arrived(reader, path, START);
  const docA = await EditorDocument.open(clientA, { path });
  const docB = await EditorDocument.open(clientB, { path });
  let cursorA = 1; // after "="
  let cursorB = 3; // after "+"
  docA.onRemoteChange(({ patches }) => (cursorA = transformPosition(cursorA, patches)));
  docB.onRemoteChange(({ patches }) => (cursorB = transformPosition(cursorB, patches)));
  const agentDone = agentHome
    ? exitCode(spawn(process.env.DISTSPACE_TEST_PYTHON ?? "python3", [process.env.DISTSPACE_TEST_AGENT, agentHome, path, AGENT_TEXT], { stdio: "inherit" }))
    : Promise.resolve(0);
  let typedA = "";
  let typedB = "";
  for (let i = 0; i < KEYSTROKES; i++) {
    const a = "abcdefghij"[i % 10];
    const b = "ABCDEFGHIJ"[i % 10];
    docA.edit(cursorA++, 0, a);
    docB.edit(cursorB++, 0, b);
    typedA += a;
    typedB += b;
    if (i % 3 === 0) await new Promise((resolve) => setImmediate(resolve)); // let replies and remote changes in
  }
  assert.equal(await agentDone, 0, "the agent failed");
  await Promise.all([docA.settled(), docB.settled()]);
  const final = await converged([docA, docB], readers, path);
  assert.equal(final.text.replace(/[^a-j]/g, ""), typedA);
  assert.equal(final.text.replace(/[^A-J]/g, ""), typedB);
  assert.equal(final.text.replace(/[^0-9]/g, ""), agentHome ? AGENT_TEXT : "");
  assert.equal(final.text.replace(/[a-jA-J0-9]/g, ""), START);
  await Promise.all([docA.close(), docB.close()]);
}

test("two editors on two peers' daemons typing at once: every keystroke present, in order, texts equal the daemons'", async (t) => {
  const [clientA, clientB] = await Promise.all([connect({ home }), connect({ home: peerHome, transport: "websocket" })]);
  try {
    await typeAtOnce(t, { clientA, clientB, readers: [clientA, clientB], agentHome: null });
  } finally {
    clientA.close();
    clientB.close();
  }
});

test("two editors and an agent on one daemon typing at once: every keystroke present, in order, texts equal the daemon's", async (t) => {
  await withClients(3, (clientA, clientB, reader) => typeAtOnce(t, { clientA, clientB, readers: [reader, reader], agentHome: home }));
});

test("undo reverts this document's last edit only: another's typing inside it stays, and redo brings it back", async (t) => {
  await withClients(2, async (a, b) => {
    const path = ownPath(t);
    await a.call("fs.write", { path, text: "one two\n", parents: true });
    const [docA, docB] = await Promise.all([EditorDocument.open(a, { path }), EditorDocument.open(b, { path })]);
    docA.edit(0, 0, "😀 ");
    await docA.settled();
    docA.edit(docA.text.indexOf(" two"), 0, " [mine]");
    await converged([docA, docB], [a, b], path);
    docB.edit(docB.text.indexOf("]"), 0, " his");
    await converged([docA, docB], [a, b], path);
    assert.equal(docA.text, "😀 one [mine his] two\n");
    const undone = await docA.undo();
    assert.ok(undone.undone && undone.change);
    assert.equal((await converged([docA, docB], [a, b], path)).text, "😀 one his two\n");
    assert.equal((await docA.redo()).undone, undone.change);
    assert.equal((await converged([docA, docB], [a, b], path)).text, "😀 one [mine his] two\n");
    assert.ok((await docB.undo()).undone); // his one edit, none of hers
    assert.deepEqual(await docB.undo(), { undone: null, change: null });
    assert.equal((await converged([docA, docB], [a, b], path)).text, "😀 one [mine] two\n");
    docA.edit(0, 0, "x"); // undo() sends what is typed first, then undoes it
    assert.ok((await docA.undo()).undone);
    assert.equal((await converged([docA, docB], [a, b], path)).text, "😀 one [mine] two\n");
  });
});
