/**
 * An editor's buffer of one file in a space, kept in step with the daemon over the editor
 * protocol (node/editor.py): `doc.open`, `doc.edit`, `doc.changed`, `doc.close`.
 *
 * ```ts
 * const doc = await EditorDocument.open(client, { path: "greet.py" });
 * doc.onRemoteChange(({ patches }) => view.apply(patches)); // never our own edits echoed back
 * doc.edit(cursor, 0, "x"); // a keystroke: applied to doc.text at once, sent when it may be
 * await doc.settled();
 * ```
 *
 * The CLIENT RULE, which makes this lose and duplicate no character without transforming edits:
 * keep the `confirmed` heads (what the daemon knows the buffer holds); at most ONE doc.edit in
 * flight; keystrokes typed meanwhile are buffered and sent as one doc.edit whose base is the heads
 * that reply returned (its positions are in the text the buffer had when the edit went, which is
 * the text at those heads). A `doc.changed` is applied only when nothing is in flight or buffered
 * and its `from_heads` equal `confirmed`; any other is dropped: the daemon moved its idea of our
 * buffer to our edit's change when it took the edit, and sends the remote changes again from
 * there. Positions are UTF-16 code units (the encoding this class asks for at doc.open), which is
 * how JS strings count and LSP's default.
 *
 * Undo is per author: `undo()` reverts this document's last edit (never another author's) in the
 * space, made at that edit's version and merged so that what others wrote since stays; the buffer
 * gets it like a remote change (onRemoteChange). It is not an edit of the buffer, so the rule
 * above is untouched.
 */

import type { Client } from "./client.js";
import { DistspaceError } from "./errors.js";
import { applyPatches, PendingEdits, type TextEdit } from "./pending_edits.js";

export type { TextEdit } from "./pending_edits.js";

/** The encoding this class asks for: JS strings' own units. */
export const ENCODING = "utf-16";

export interface OpenOptions {
  path: string;
  /** The space: its name, id or a unique id prefix; the node's default space when absent. */
  space?: string;
}

/** Remote edits, applied to `text` already: an editor applies `patches` to its view, in order. */
export interface RemoteChange {
  patches: TextEdit[];
  fromHeads: string[];
  toHeads: string[];
  /** The buffer after the patches. */
  text: string;
}

interface DocOpenResult {
  path: string;
  text: string;
  heads: string[];
  encoding: string;
  space?: string;
}

interface DocChangedParams {
  path: string;
  space?: string;
  from_heads: string[];
  to_heads: string[];
  patches: TextEdit[];
}

/** What doc.undo and doc.redo answer: the change reverted and the change that reverted it (hex), nulls when there was nothing to revert. */
export interface UndoResult {
  undone: string | null;
  change: string | null;
}

/** A doc.edit failed: the buffer holds edits the daemon does not; open the document again. */
export class EditRejectedError extends DistspaceError {
  override name = "EditRejectedError";
}

export class EditorDocument {
  readonly path: string;
  /** The space's id (hex), as doc.open answered it; calls after it name the space by it. */
  readonly space: string | undefined;
  private buffer: string;
  private confirmedHeads: string[];
  /** Keystrokes not yet sent, over `pendingBase`: the buffer when the last edit went. */
  private pending: PendingEdits;
  private inFlight = false;
  private flushQueued = false;
  private failure: Error | null = null;
  /**
   * The doc.changed that came while an edit was in flight, in order. The reply's continuation
   * runs after every message of the chunk it came in, so the doc.changed the daemon sent right
   * after the reply (from the reply's heads) may come first: they are looked at again once the
   * reply is in.
   */
  private held: DocChangedParams[] = [];
  private readonly remoteListeners = new Set<(change: RemoteChange) => void>();
  private readonly waiters: Array<{ resolve(): void; reject(error: Error): void }> = [];
  private readonly stopListening: () => void;

  private constructor(
    private readonly client: Client,
    options: OpenOptions,
    opened: DocOpenResult,
  ) {
    this.path = opened.path ?? options.path;
    this.space = opened.space ?? options.space;
    this.buffer = opened.text;
    this.confirmedHeads = [...opened.heads];
    this.pending = new PendingEdits(this.buffer.length);
    this.stopListening = client.on("doc.changed", (params) => this.remoteChanged(params as unknown as DocChangedParams));
  }

  /** Open a text file for editing: its text and heads now, then its remote changes. */
  static async open(client: Client, options: OpenOptions): Promise<EditorDocument> {
    const params = { path: options.path, encoding: ENCODING, ...(options.space === undefined ? {} : { space: options.space }) };
    const opened = (await client.request("doc.open", params)) as DocOpenResult;
    return new EditorDocument(client, options, opened);
  }

  /** The buffer: every local keystroke, and the remote changes applied so far. */
  get text(): string {
    return this.buffer;
  }

  /** The heads the daemon knows this buffer's last confirmed state by. */
  get confirmed(): readonly string[] {
    return this.confirmedHeads;
  }

  /** True when no edit is in flight or waiting: the buffer is the text at `confirmed`. */
  get idle(): boolean {
    return !this.inFlight && !this.pending.changed;
  }

  /**
   * A keystroke: delete `deleteCount` units at `position` of the buffer, insert `insert` there.
   *
   * @throws RangeError the range is outside the buffer. EditRejectedError an earlier edit failed.
   */
  edit(position: number, deleteCount: number, insert: string): void {
    if (this.failure) throw this.failure;
    if (!Number.isInteger(position) || !Number.isInteger(deleteCount) || position < 0 || deleteCount < 0 || position + deleteCount > this.buffer.length) {
      throw new RangeError(`edit ${position}+${deleteCount} is outside the buffer (${this.buffer.length} units)`);
    }
    this.buffer = this.buffer.slice(0, position) + insert + this.buffer.slice(position + deleteCount);
    this.pending.apply(position, deleteCount, insert);
    if (!this.flushQueued) {
      this.flushQueued = true; // keystrokes of one tick (a multi-cursor edit) go as one doc.edit
      queueMicrotask(() => {
        this.flushQueued = false;
        this.send();
      });
    }
  }

  /** Listen to remote changes (applied to `text` before listeners run); returns the stopper. */
  onRemoteChange(listener: (change: RemoteChange) => void): () => void {
    this.remoteListeners.add(listener);
    return () => {
      this.remoteListeners.delete(listener);
    };
  }

  /** Resolves once every keystroke so far is confirmed by the daemon; rejects if an edit failed. */
  settled(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.idle) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /**
   * Undo this document's last edit that is not undone (sent first, if it is still being typed).
   * Resolves once the daemon made the undo; the buffer shows it with the doc.changed that follows.
   */
  async undo(): Promise<UndoResult> {
    return this.revert("doc.undo");
  }

  /** Revert the last undo, if no edit came after it; as `undo()`. */
  async redo(): Promise<UndoResult> {
    return this.revert("doc.redo");
  }

  /** Send what is buffered, then stop following the file (doc.close). */
  async close(): Promise<void> {
    try {
      await this.settled();
    } finally {
      this.stopListening();
      const params = { path: this.path, ...(this.space === undefined ? {} : { space: this.space }) };
      await this.client.request("doc.close", params);
    }
  }

  private async revert(method: "doc.undo" | "doc.redo"): Promise<UndoResult> {
    await this.settled();
    const params = { path: this.path, ...(this.space === undefined ? {} : { space: this.space }) };
    return (await this.client.request(method, params)) as UndoResult;
  }

  private send(): void {
    if (this.inFlight || this.failure || !this.pending.changed) return;
    const edits = this.pending.edits();
    const base = this.confirmedHeads;
    this.pending = new PendingEdits(this.buffer.length); // keystrokes from now on go over this text
    this.inFlight = true;
    const params = { path: this.path, base, edits, ...(this.space === undefined ? {} : { space: this.space }) };
    this.client.request("doc.edit", params).then(
      (result) => {
        this.inFlight = false;
        const heads = [...(result as { heads: string[] }).heads];
        const fresh = !sameHeads(heads, base); // [C]: no doc.changed sent before the reply starts there
        this.confirmedHeads = heads;
        const held = this.held.splice(0);
        if (this.pending.changed) this.send();
        else {
          if (fresh) for (const change of held) this.remoteChanged(change); // those from before the reply cannot start at [C]
          this.wakeWaiters();
        }
      },
      (error: Error) => {
        this.inFlight = false;
        this.held = [];
        this.failure = new EditRejectedError(`doc.edit of ${this.path} failed: ${error.message}`, { cause: error });
        this.wakeWaiters();
      },
    );
  }

  private remoteChanged(change: DocChangedParams): void {
    if (change.path !== this.path || (change.space !== undefined && change.space !== this.space)) return;
    if (this.inFlight) this.held.push(change);
    if (!this.idle || this.failure || !sameHeads(change.from_heads, this.confirmedHeads)) return; // the CLIENT RULE: dropped
    this.buffer = applyPatches(this.buffer, change.patches);
    this.confirmedHeads = [...change.to_heads];
    this.pending = new PendingEdits(this.buffer.length);
    const remote: RemoteChange = { patches: change.patches, fromHeads: change.from_heads, toHeads: change.to_heads, text: this.buffer };
    for (const listener of this.remoteListeners) listener(remote);
  }

  private wakeWaiters(): void {
    for (const waiter of this.waiters.splice(0)) {
      if (this.failure) waiter.reject(this.failure);
      else waiter.resolve();
    }
  }
}

function sameHeads(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const sorted = [...b].sort();
  return [...a].sort().every((head, index) => head === sorted[index]);
}
