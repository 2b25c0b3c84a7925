/**
 * The two ways to the daemon, which carry the same JSON texts: the Unix socket HOME/api.sock (one
 * JSON text per line, UTF-8) and the loopback WebSocket (one JSON text per message). Node modules
 * are imported when a transport opens, so the package also loads where there are none (a web
 * IDE in a browser has only the WebSocket).
 */

import { DisconnectedError } from "./errors.js";

/** What a transport tells its connection. */
export interface TransportEvents {
  message(text: string): void;
  /** Once: the other side closed, the connection broke (`error`), or close() was called. */
  closed(error: Error | null): void;
}

/** One open connection that moves texts. */
export interface Transport {
  send(text: string): void;
  close(): void;
}

/** The part of the WHATWG WebSocket this client uses: Node 22's and browsers' global, and `ws`'s. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  onclose: ((event: { code?: number; reason?: string }) => void) | null;
  send(text: string): void;
  close(): void;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Connect to the daemon's Unix socket. */
export async function openUnixSocket(socketPath: string, events: TransportEvents): Promise<Transport> {
  const net = await import("node:net");
  const socket = net.createConnection(socketPath);
  socket.setEncoding("utf8"); // a StringDecoder: a character split across reads stays whole
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", (error: NodeJS.ErrnoException) => {
      reject(new DisconnectedError(`no daemon answers on ${socketPath}: ${error.code ?? error.message}`, { cause: error }));
    });
  });
  let buffer = "";
  let failure: Error | null = null;
  socket.on("data", (chunk: string) => {
    buffer += chunk;
    let end: number;
    while ((end = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + 1);
      if (line.trim()) events.message(line);
    }
  });
  socket.on("error", (error) => {
    failure = new DisconnectedError(`the connection to the daemon broke: ${error.message}`, { cause: error });
  });
  socket.on("close", () => events.closed(failure));
  return {
    send: (text) => {
      socket.write(`${text}\n`);
    },
    close: () => {
      socket.end();
      socket.destroySoon();
    },
  };
}

/** Connect to the daemon's WebSocket (ws://127.0.0.1:PORT/, from HOME/daemon.json). */
export async function openWebSocket(url: string, events: TransportEvents, implementation?: WebSocketConstructor): Promise<Transport> {
  const WebSocketClass = implementation ?? (await defaultWebSocket());
  const websocket = new WebSocketClass(url);
  await new Promise<void>((resolve, reject) => {
    websocket.onopen = () => resolve();
    websocket.onerror = () => reject(new DisconnectedError(`no daemon answers on ${url}`));
    websocket.onclose = (event) => reject(new DisconnectedError(`the daemon refused the WebSocket at ${url} (${event.code ?? "?"})`));
  });
  const decoder = new TextDecoder();
  let failure: Error | null = null;
  websocket.onmessage = (event) => {
    const data = event.data;
    if (typeof data === "string") events.message(data);
    else if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) events.message(decoder.decode(data as ArrayBuffer));
  };
  websocket.onerror = () => {
    failure = new DisconnectedError(`the WebSocket to ${url} broke`);
  };
  websocket.onclose = () => events.closed(failure);
  return {
    send: (text) => websocket.send(text),
    close: () => websocket.close(),
  };
}

/** The runtime's WebSocket (Node 22+, browsers), else the `ws` package's (Node 18 and 20). */
async function defaultWebSocket(): Promise<WebSocketConstructor> {
  const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (global) return global;
  const name = "ws"; // a variable: an optional peer dependency, resolved only when needed
  try {
    const module = (await import(name)) as { WebSocket: WebSocketConstructor };
    return module.WebSocket;
  } catch (error) {
    throw new DisconnectedError("this runtime has no WebSocket: install the ws package, or pass one as the WebSocket option", { cause: error });
  }
}
