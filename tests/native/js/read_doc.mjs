// Usage: node read_doc.mjs DOC_FILE
// Loads a document saved by another implementation; prints {"heads", "doc"} as JSON.
import { readFileSync } from "node:fs"
import { Automerge, summary } from "./common.mjs"

const doc = Automerge.load(new Uint8Array(readFileSync(process.argv[2])))
console.log(JSON.stringify(summary(doc)))
