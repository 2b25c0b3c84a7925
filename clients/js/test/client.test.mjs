// The API client against a real daemon: auth, typed errors, calls, notifications, both transports.

import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, test } from "node:test";

import { connect, DisconnectedError, InvalidParamsError, RpcError, StoreError, UnauthorizedError } from "../dist/index.js";
import { daemonHome, nextEvent, ownPath } from "./helpers.mjs";

const home = daemonHome();
const daemon = JSON.parse(await readFile(join(home, "daemon.json"), "utf8"));

for (const transport of ["unix", "websocket"]) {
  describe(`over the ${transport} transport`, () => {
    test("connect authenticates with the home's token and learns the peer id", async () => {
      const client = await connect({ home, transport });
      try {
        assert.equal(client.peerId, daemon.peer_id);
      } finally {
        client.close();
      }
    });

    test("a wrong token is an UnauthorizedError with the JSON-RPC code and name", async () => {
      const wrong = "x".repeat(43);
      const options = transport === "unix" ? { socketPath: daemon.api.unix, token: wrong } : { url: daemon.api.websocket, token: wrong };
      await assert.rejects(connect(options), (error) => {
        assert.ok(error instanceof UnauthorizedError);
        assert.ok(error instanceof RpcError);
        assert.equal(error.code, -32001);
        assert.equal(error.errorName, "Unauthorized");
        assert.match(error.message, /wrong token/);
        return true;
      });
    });

    test("fs.write then fs.read round-trips text, non-ASCII included", async (t) => {
      const client = await connect({ home, transport });
      try {
        const path = ownPath(t, `${transport}.md`);
        const text = "héllo 🌍 wörld\nline two\n";
        const written = await client.call("fs.write", { path, text, parents: true });
        assert.ok(Number.isInteger(written.version));
        const read = await client.call("fs.read", { path });
        assert.equal(read.text, text);
        assert.equal(read.encoding, "text");
        assert.equal(read.path, path);
      } finally {
        client.close();
      }
    });

    test("a subscription's notification arrives as an event", async (t) => {
      const client = await connect({ home, transport });
      try {
        const path = ownPath(t, `${transport}.txt`);
        await client.call("fs.write", { path, text: "one\n", parents: true });
        const subscribed = await client.call("subscribe.file", { path });
        assert.equal(subscribed.text, "one\n");
        const changed = nextEvent((deliver) => client.on("file.changed", deliver), "file.changed");
        await client.call("fs.splice", { path, position: 4, insert: "two\n" });
        const change = await changed;
        assert.equal(change.subscription, subscribed.subscription);
        assert.equal(change.path, path);
        assert.deepEqual(change.edits, [{ index: 4, delete: 0, insert: "two\n" }]);
      } finally {
        client.close();
      }
    });

    test("errors are typed by code: a missing file is a StoreError, a bad param InvalidParams", async (t) => {
      const client = await connect({ home, transport });
      try {
        await assert.rejects(client.call("fs.read", { path: ownPath(t, "absent.txt") }), (error) => {
          assert.ok(error instanceof StoreError);
          assert.equal(error.errorName, "NotFound");
          assert.ok(error.code >= 1000 && error.code < 1100);
          return true;
        });
        await assert.rejects(client.request("fs.read", { path: 7 }), (error) => {
          assert.ok(error instanceof InvalidParamsError);
          assert.equal(error.code, -32602);
          assert.match(error.message, /path/);
          return true;
        });
      } finally {
        client.close();
      }
    });
  });
}

test("space.list names the daemon's space", async () => {
  const client = await connect({ home });
  try {
    const { spaces } = await client.call("space.list");
    assert.deepEqual(
      spaces.map((space) => space.name),
      ["main"],
    );
  } finally {
    client.close();
  }
});

test("calls after close reject with DisconnectedError, and so do calls cut off by it", async () => {
  const client = await connect({ home });
  const cutOff = client.call("node.status");
  client.close();
  await assert.rejects(cutOff, DisconnectedError);
  await assert.rejects(client.call("space.list"), DisconnectedError);
  assert.equal(await client.closed, null);
});

test("connect to a socket where no daemon listens is a DisconnectedError", async () => {
  await assert.rejects(connect({ socketPath: join(home, "no-such.sock"), token: "t" }), DisconnectedError);
});
