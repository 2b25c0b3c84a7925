// js-libp2p 3 uses Promise.withResolvers (Node >= 22); this machine's Node is 20. Imported
// before libp2p so its modules find it; a no-op on a Node that has it.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers () {
    let resolve, reject
    const promise = new Promise((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}
