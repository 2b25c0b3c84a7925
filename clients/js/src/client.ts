/**
 * One authenticated connection to a Dist-Space daemon: typed calls, notifications as events.
 *
 * ```ts
 * const client = await connect({ home: "/home/me/.local/share/distspace" });
 * await client.call("fs.write", { path: "notes.md", text: "hello\n" });
 * client.on("file.changed", (change) => console.log(change.path, change.heads));
 * await client.call("subscribe.file", { path: "notes.md" });
 * ```
 *
 * The protocol is node/rpc.py's JSON-RPC 2.0 with params by name; the first call of a connection
 * is `auth` with the token of HOME/api.token, and a refused token closes the connection
 * (connect() then rejects with an {@link UnauthorizedError}). Calls are answered in order; each
 * returns a promise of its result, or rejects with the {@link RpcError} kind its code names.
 * When the connection ends every pending call rejects with a {@link DisconnectedError}.
 */

import { DisconnectedError, rpcErrorFrom, type RpcError } from "./errors.js";
import type { Methods, Notifications } from "./generated/api.js";
import { openUnixSocket, openWebSocket, type Transport, type WebSocketConstructor } from "./transport.js";

export type MethodName = keyof Methods;
export type Params<M extends MethodName> = Methods[M]["params"];
export type Result<M extends MethodName> = Methods[M]["result"];
export type NotificationName = keyof Notifications;

/** A method whose params are all optional may be called without them. */
type ParamsArgument<M extends MethodName> = Record<string, never> extends Params<M> ? [params?: Params<M>] : [params: Params<M>];

export type ConnectOptions =
  /** A node home: the token from HOME/api.token, the Unix socket HOME/api.sock (or, with
   * `transport: "websocket"`, the WebSocket URL in HOME/daemon.json). No home: the default one. */
  | { home?: string; transport?: "unix" | "websocket"; WebSocket?: WebSocketConstructor }
  | { socketPath: string; token: string }
  | { url: string; token: string; WebSocket?: WebSocketConstructor };

interface Pending {
  resolve(result: unknown): void;
  reject(error: Error): void;
}

/** Connect to a daemon and authenticate; rejects with UnauthorizedError for a refused token. */
export async function connect(options: ConnectOptions = {}): Promise<Client> {
  const { transport, token } = await endpoint(options);
  const client = new Client();
  await client.attach(transport);
  try {
    const auth = await client.call("auth", { token: token.trim() });
    client.peerId = auth.peer_id;
  } catch (error) {
    client.close();
    throw error;
  }
  return client;
}

async function endpoint(options: ConnectOptions): Promise<{ transport: Opener; token: string }> {
  if ("socketPath" in options) return { transport: (events) => openUnixSocket(options.socketPath, events), token: options.token };
  if ("url" in options) return { transport: (events) => openWebSocket(options.url, events, options.WebSocket), token: options.token };
  const { readFile } = await import("node:fs/promises");
  const { join } = await import("node:path");
  const home = options.home ?? (await defaultHome());
  const token = await readFile(join(home, "api.token"), "utf8").catch((error: NodeJS.ErrnoException) => {
    throw new DisconnectedError(`no API token in ${home} (${error.code ?? error.message}): is a daemon running on it?`, { cause: error });
  });
  if (options.transport === "websocket") {
    const daemon = await readFile(join(home, "daemon.json"), "utf8").catch((error: NodeJS.ErrnoException) => {
      throw new DisconnectedError(`no daemon.json in ${home} (${error.code ?? error.message}): is a daemon running on it?`, { cause: error });
    });
    const url = (JSON.parse(daemon) as { api: { websocket: string } }).api.websocket;
    return { transport: (events) => openWebSocket(url, events, options.WebSocket), token };
  }
  const socketPath = join(home, "api.sock");
  return { transport: (events) => openUnixSocket(socketPath, events), token };
}

/** `$DISTSPACE_HOME`, else `$XDG_DATA_HOME/distspace`, else `~/.local/share/distspace` (node/home.py). */
export async function defaultHome(): Promise<string> {
  const explicit = process.env.DISTSPACE_HOME;
  if (explicit) return explicit;
  const { homedir } = await import("node:os");
  const { join } = await import("node:path");
  return join(process.env.XDG_DATA_HOME || join(homedir(), ".local", "share"), "distspace");
}

type Opener = (events: { message(text: string): void; closed(error: Error | null): void }) => Promise<Transport>;
type Listener = (params: never) => void;

export class Client {
  /** The daemon's peer id, from its answer to auth. */
  peerId = "";
  /** Resolves once the connection has ended: with the reason, or null for a clean close. */
  readonly closed: Promise<Error | null>;
  private transport: Transport | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Map<string, Set<Listener>>();
  private ended: Error | null = null;
  private isClosed = false;
  private markClosed!: (reason: Error | null) => void;

  /** Use {@link connect}: a Client is made by it, authenticated. */
  constructor() {
    this.closed = new Promise((resolve) => (this.markClosed = resolve));
  }

  /** @internal */
  async attach(open: Opener): Promise<void> {
    this.transport = await open({ message: (text) => this.receive(text), closed: (error) => this.end(error) });
  }

  /** Run one method; resolves with its result, rejects with the RpcError kind of its code. */
  call<M extends MethodName>(method: M, ...params: ParamsArgument<M>): Promise<Result<M>> {
    return this.request(method, params[0] ?? {}) as Promise<Result<M>>;
  }

  /** Run a method the generated types do not list (a newer daemon's): untyped. */
  request(method: string, params: object = {}): Promise<unknown> {
    if (this.isClosed || this.transport === null) {
      return Promise.reject(this.ended ?? new DisconnectedError("the connection is closed"));
    }
    const id = this.nextId++;
    const text = JSON.stringify({ jsonrpc: "2.0", id, method, params });
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.transport!.send(text);
    });
  }

  /** Listen to one notification; returns the function that stops listening. */
  on<N extends NotificationName>(method: N, listener: (params: Notifications[N]) => void): () => void;
  on(method: string, listener: (params: Record<string, unknown>) => void): () => void;
  on(method: string, listener: (params: never) => void): () => void {
    let set = this.listeners.get(method);
    if (!set) this.listeners.set(method, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
    };
  }

  /** Close the connection; pending calls reject with a DisconnectedError. */
  close(): void {
    if (this.isClosed) return;
    this.end(null, "the connection is closed");
    this.transport?.close();
  }

  private receive(text: string): void {
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      this.fail(new DisconnectedError(`the daemon sent a message that is not JSON: ${text.slice(0, 80)}`));
      return;
    }
    for (const member of Array.isArray(message) ? message : [message]) this.dispatch(member);
  }

  private dispatch(message: unknown): void {
    if (typeof message !== "object" || message === null) return;
    const fields = message as { id?: unknown; method?: unknown; params?: unknown; result?: unknown; error?: unknown };
    if (!("id" in fields)) {
      if (typeof fields.method === "string") this.emit(fields.method, fields.params ?? {});
      return;
    }
    if (fields.id === null) {
      // refused before the daemon read a request (an auth timeout, a message too large): it
      // closes the connection next, so the error is every pending call's answer
      if ("error" in fields) this.fail(rpcErrorFrom(fields.error));
      return;
    }
    const pending = this.pending.get(fields.id as number);
    if (!pending) return;
    this.pending.delete(fields.id as number);
    if ("error" in fields) pending.reject(rpcErrorFrom(fields.error));
    else pending.resolve(fields.result);
  }

  private emit(method: string, params: unknown): void {
    for (const listener of this.listeners.get(method) ?? []) {
      try {
        (listener as (params: unknown) => void)(params);
      } catch (error) {
        queueMicrotask(() => {
          throw error; // a listener's bug surfaces as an uncaught error, and the others still run
        });
      }
    }
  }

  private fail(error: RpcError | DisconnectedError): void {
    this.ended ??= error;
    for (const pending of this.pending.values()) pending.reject(error);
    this.pending.clear();
  }

  /** The connection is over: `error` why it broke, or null with what ended it (`by`). */
  private end(error: Error | null, by = "the daemon closed the connection"): void {
    if (this.isClosed) return;
    this.isClosed = true;
    const reason = this.ended ?? error; // an error answered to no call (auth timeout...) comes first
    this.fail(reason ?? new DisconnectedError(by));
    this.markClosed(reason);
  }
}
