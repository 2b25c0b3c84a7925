// What the tests share: the daemons they run against (started by tests/clients/test_js_client.py,
// which passes their homes in DISTSPACE_TEST_HOME and DISTSPACE_TEST_PEER_HOME) and a way to wait
// on events with a deadline.

import { once } from "node:events";

/** The home of the running daemon the tests talk to. */
export function daemonHome() {
  const home = process.env.DISTSPACE_TEST_HOME;
  if (!home) throw new Error("DISTSPACE_TEST_HOME is not set: run these tests through tests/clients/test_js_client.py");
  return home;
}

/** The home of a second daemon, a peer of the first sharing its space "main". */
export function peerHome() {
  const home = process.env.DISTSPACE_TEST_PEER_HOME;
  if (!home) throw new Error("DISTSPACE_TEST_PEER_HOME is not set: run these tests through tests/clients/test_js_client.py");
  return home;
}

// Anything a daemon does on loopback finishes far inside this; a hang fails instead of stalling.
export const STEP_TIMEOUT_MS = 20_000;

/** A unique path per test, so tests sharing a daemon do not collide. */
export function ownPath(t, name = "file.txt") {
  return `${t.name.replace(/[^\w.-]+/g, "_")}/${name}`;
}

/** Resolve with the first value `subscribe(resolve)` delivers, or reject after `timeoutMs`. */
export function nextEvent(subscribe, what, timeoutMs = STEP_TIMEOUT_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`no ${what} within ${timeoutMs} ms`));
    }, timeoutMs);
    timer.unref(); // a wait given up on does not hold the run open
    const stop = subscribe((value) => {
      clearTimeout(timer);
      stop();
      resolve(value);
    });
  });
}

/** Wait for a child process to exit; its exit code. */
export async function exitCode(child) {
  const [code] = await once(child, "exit");
  return code;
}
