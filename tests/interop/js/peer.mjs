// A js-libp2p peer (TCP + Noise + yamux, identify, ping) that dials one distspace daemon.
//
// Usage: node peer.mjs MULTIADDR   (the daemon's address, ending in /p2p/<peer id>)
// Prints one JSON line: the remote's identify answer (protocols, agent, listen addresses)
// and ping round trips, or {"error": ...} with exit code 1. tests/node/test_interop_js.py
// drives it on 127.0.0.1 only.
import './polyfill.mjs'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

const PINGS = 3
const TIMEOUT_MS = 20000

const target = multiaddr(process.argv[2])
const node = await createLibp2p({
  addresses: { listen: [] }, // dial only: nothing of the host's network is opened to anyone
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: { identify: identify(), ping: ping() },
})

const timer = setTimeout(() => { console.log(JSON.stringify({ error: `no answer within ${TIMEOUT_MS} ms` })); process.exit(1) }, TIMEOUT_MS)
try {
  // js-libp2p identifies every new connection itself (one identify stream at a time):
  // wait for that result instead of asking a second time.
  const identifiedEvent = new Promise((resolve) => {
    node.addEventListener('peer:identify', (event) => resolve(event.detail))
  })
  const connection = await node.dial(target)
  const identified = await identifiedEvent
  const rtts = []
  for (let i = 0; i < PINGS; i++) rtts.push(await node.services.ping.ping(target))
  console.log(JSON.stringify({
    peer_id: connection.remotePeer.toString(),
    encryption: connection.encryption,
    multiplexer: connection.multiplexer,
    agent: identified.agentVersion,
    protocol_version: identified.protocolVersion,
    protocols: identified.protocols,
    listen_addrs: identified.listenAddrs.map((a) => a.toString()),
    observed_addr: identified.observedAddr ? identified.observedAddr.toString() : null,
    ping_ms: rtts,
  }))
  clearTimeout(timer)
  await node.stop()
  process.exit(0)
} catch (error) {
  console.log(JSON.stringify({ error: String(error && error.stack ? error.stack : error) }))
  process.exit(1)
}
