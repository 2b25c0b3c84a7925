// PendingEdits without a daemon: keystrokes read back as base-relative edits reproduce the buffer.

import assert from "node:assert/strict";
import { test } from "node:test";

import { applyPatches, PendingEdits, transformPosition } from "../dist/index.js";

/** Base-relative, non-overlapping edits applied from the last to the first, as the server does. */
function applyAtBase(base, edits) {
  let text = base;
  for (const edit of [...edits].sort((a, b) => b.position - a.position)) {
    text = text.slice(0, edit.position) + edit.insert + text.slice(edit.position + edit.delete);
  }
  return text;
}

/** A small deterministic generator (mulberry32): the same keystrokes on every run. */
function random(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test("random keystrokes over a base read back as edits that turn the base into the buffer", () => {
  const next = random(14);
  for (let round = 0; round < 300; round++) {
    const base = "0123456789".slice(0, Math.floor(next() * 11));
    const pending = new PendingEdits(base.length);
    let buffer = base;
    const keystrokes = 1 + Math.floor(next() * 8);
    for (let k = 0; k < keystrokes; k++) {
      const position = Math.floor(next() * (buffer.length + 1));
      const deleteCount = Math.floor(next() * (buffer.length - position + 1) * (next() < 0.5 ? 0 : 1));
      const insert = "xyz".slice(0, Math.floor(next() * 4));
      buffer = buffer.slice(0, position) + insert + buffer.slice(position + deleteCount);
      pending.apply(position, deleteCount, insert);
    }
    const edits = pending.edits();
    assert.equal(applyAtBase(base, edits), buffer, JSON.stringify({ base, edits }));
    for (let i = 1; i < edits.length; i++) assert.ok(edits[i - 1].position + edits[i - 1].delete <= edits[i].position, "edits overlap");
    assert.equal(pending.changed, buffer !== base || edits.length > 0);
  }
});

test("typing at two places sends two edits, not one range over the text between", () => {
  const pending = new PendingEdits(10);
  pending.apply(8, 0, "B");
  pending.apply(1, 0, "A");
  assert.deepEqual(pending.edits(), [
    { position: 1, delete: 0, insert: "A" },
    { position: 8, delete: 0, insert: "B" },
  ]);
});

test("a character typed and deleted again is no change", () => {
  const pending = new PendingEdits(3);
  pending.apply(1, 0, "x");
  pending.apply(1, 1, "");
  assert.equal(pending.changed, false);
  assert.deepEqual(pending.edits(), []);
});

test("patches apply in order and a cursor follows them", () => {
  const patches = [
    { position: 0, delete: 0, insert: "ab" },
    { position: 5, delete: 2, insert: "" },
  ];
  assert.equal(applyPatches("0123456", patches), "ab01256"); // "34" deleted after "ab" went in
  assert.equal(transformPosition(2, patches), 4); // moved by the insert before it
  assert.equal(transformPosition(4, patches), 5); // inside the deleted range: its start
  assert.equal(transformPosition(6, patches), 6); // moved by both
  assert.equal(transformPosition(0, [{ position: 0, delete: 0, insert: "x" }]), 1); // past an insert at it
});
