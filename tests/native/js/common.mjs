// Helpers shared by the interop scripts: hex <-> bytes and a JSON view of a document.
import * as Automerge from "@automerge/automerge"

export { Automerge }

export const toHex = (bytes) => Buffer.from(bytes).toString("hex")
export const fromHex = (hex) => new Uint8Array(Buffer.from(hex, "hex"))

// The document as plain JSON; bytes become {"bytes": hex} since JSON has no bytes type.
export function snapshot(doc) {
  return JSON.parse(
    JSON.stringify(Automerge.toJS(doc), (_key, value) =>
      value instanceof Uint8Array ? { bytes: toHex(value) } : value,
    ),
  )
}

export function summary(doc) {
  return { heads: Automerge.getHeads(doc), doc: snapshot(doc) }
}
