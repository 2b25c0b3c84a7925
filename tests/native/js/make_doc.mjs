// Usage: node make_doc.mjs OUT_DIR
// Two JS actors edit one document concurrently, then merge. Writes OUT_DIR/doc.automerge
// (the saved merge) and OUT_DIR/changes.json (every change, hex, in causal order); prints
// {"heads", "doc", "conflict_values"} as JSON. Plain JS strings become text objects, so the
// conflicting title is an ImmutableString: a scalar, like a str put by the binding.
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { Automerge, summary, toHex } from "./common.mjs"

const outDir = process.argv[2]
let alice = Automerge.from({ text: "Hello world", meta: { title: new Automerge.ImmutableString("draft") } }, { actor: "aa".repeat(16) })
let bob = Automerge.clone(alice, { actor: "bb".repeat(16) })

alice = Automerge.change(alice, (d) => {
  Automerge.splice(d, ["text"], 0, 5, "Howdy")
  d.meta.title = new Automerge.ImmutableString("alice's title")
})
bob = Automerge.change(bob, (d) => {
  Automerge.splice(d, ["text"], 11, 0, ", from Bob")
  d.meta.title = new Automerge.ImmutableString("bob's title")
  d.meta.count = 3
})
bob = Automerge.change(bob, (d) => {
  Automerge.updateText(d, ["text"], d.text + "!")
})

const merged = Automerge.merge(alice, bob)
writeFileSync(join(outDir, "doc.automerge"), Automerge.save(merged))
writeFileSync(join(outDir, "changes.json"), JSON.stringify(Automerge.getAllChanges(merged).map(toHex)))
const conflicts = Automerge.getConflicts(merged.meta, "title") ?? {}
console.log(JSON.stringify({ ...summary(merged), conflict_values: Object.values(conflicts).sort() }))
