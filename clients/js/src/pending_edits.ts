/**
 * Keystrokes typed since a known text, kept as the edits that turn that text into the buffer.
 *
 * The buffer is a list of pieces: ranges of the base text that are still there, in order, and
 * inserted strings. A keystroke cuts and splices pieces; `edits()` reads them back as one list of
 * non-overlapping edits, all at positions of the base text — what `doc.edit` takes (LSP's
 * TextEdit[] rule). Kept this way rather than as a diff of the two texts, a buffer that typed at
 * two places sends two small edits, not one range spanning both that would overwrite what others
 * typed between them. Positions are UTF-16 code units, as JS strings count.
 */

/** Delete `delete` units at `position`, then insert `insert` there. */
export interface TextEdit {
  position: number;
  delete: number;
  insert: string;
}

type Piece = { start: number; end: number } | { text: string };

function pieceLength(piece: Piece): number {
  return "text" in piece ? piece.text.length : piece.end - piece.start;
}

function slice(piece: Piece, from: number, to: number): Piece {
  return "text" in piece ? { text: piece.text.slice(from, to) } : { start: piece.start + from, end: piece.start + to };
}

export class PendingEdits {
  private pieces: Piece[];

  /** No edits yet over a base text of `baseLength` units. */
  constructor(private readonly baseLength: number) {
    this.pieces = baseLength > 0 ? [{ start: 0, end: baseLength }] : [];
  }

  /** Whether the keystrokes changed the base text (a character typed and deleted again did not). */
  get changed(): boolean {
    return this.edits().length > 0;
  }

  /** One keystroke, at a position of the buffer as it is now (all earlier keystrokes applied). */
  apply(position: number, deleteCount: number, insert: string): void {
    const end = position + deleteCount;
    const pieces: Piece[] = [];
    let offset = 0;
    let placed = false;
    for (const piece of this.pieces) {
      const length = pieceLength(piece);
      const start = offset;
      offset += length;
      if (start < position) pieces.push(slice(piece, 0, Math.min(length, position - start)));
      if (!placed && position <= offset) {
        if (insert) pieces.push({ text: insert });
        placed = true;
      }
      if (offset > end) pieces.push(slice(piece, Math.max(0, end - start), length));
    }
    if (!placed && insert) pieces.push({ text: insert });
    this.pieces = pieces.filter((piece) => pieceLength(piece) > 0);
  }

  /** The keystrokes as edits at positions of the base text, ascending, none overlapping. */
  edits(): TextEdit[] {
    const edits: TextEdit[] = [];
    let baseCursor = 0;
    let inserted = "";
    const flush = (upTo: number): void => {
      if (upTo > baseCursor || inserted) edits.push({ position: baseCursor, delete: upTo - baseCursor, insert: inserted });
      inserted = "";
    };
    for (const piece of this.pieces) {
      if ("text" in piece) {
        inserted += piece.text;
        continue;
      }
      flush(piece.start);
      baseCursor = piece.end;
    }
    flush(this.baseLength);
    return edits;
  }
}

/** Apply edits in order, each at positions of the text the previous one left (doc.changed's patches). */
export function applyPatches(text: string, patches: readonly TextEdit[]): string {
  for (const patch of patches) {
    text = text.slice(0, patch.position) + patch.insert + text.slice(patch.position + patch.delete);
  }
  return text;
}

/**
 * Where a position (a cursor) is after patches applied in order: moved by what was inserted or
 * deleted before it, to the start of a deleted range it was in, and past text inserted right at it.
 */
export function transformPosition(position: number, patches: readonly TextEdit[]): number {
  for (const patch of patches) {
    if (position >= patch.position + patch.delete) position += patch.insert.length - patch.delete;
    else if (position > patch.position) position = patch.position;
  }
  return position;
}
