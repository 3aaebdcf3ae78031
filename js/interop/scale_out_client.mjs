// The official client in Node as one chat member, for the scale-out test (tests/scale_out).
// Node's fetch keeps no cookies, so only the session token pins it to its process.
//
//   node --conditions=browser --experimental-websocket scale_out_client.mjs <origin> <room>
//
// One JSON command per line on stdin, one JSON answer per line on stdout:
//   {"op": "start"}         whoami, then join(room) + subscribe and connect(room); answers once
//                           the user channel's ping is acked: {user, tokens}
//   {"op": "say", "text"}   an acked send on the user channel: the stored message
//   {"op": "state"}         {seen: [[seq, id, text]...], closed: [error name...], tokens}
// `tokens`: the x-telefunc-session values of responses (so the test can find this client's
// requests in the process logs).
import { createInterface } from 'node:readline'
import { connect } from './setup.mjs'

const [origin, room] = process.argv.slice(2)
const tokens = []
const plainFetch = globalThis.fetch.bind(globalThis)
globalThis.fetch = async (input, init) => {
  const response = await plainFetch(input, init)
  const token = response.headers.get('x-telefunc-session')
  if (token && tokens.at(-1) !== token) tokens.push(token)
  return response
}
const client = await connect(origin)
const call = client.__remoteTelefunctionCall
const FILE = '/chat.telefunc.py'
const seen = []
const closed = []
let user = null
let roomChannel = null // held: the client closes a channel nothing references any more

const ops = {
  start: async () => {
    const me = await call(FILE, 'whoami', [])
    // One call first: a client without cookies gets its token (its process) from it; the
    // channels below then ride on that process.
    roomChannel = await call(FILE, 'join', [room])
    roomChannel.subscribe((event, info) => {
      if (event.kind === 'message') seen.push([info.seq, event.message.id, event.message.text])
    })
    roomChannel.onClose((err) => closed.push(err?.constructor?.name ?? String(err)))
    user = await call(FILE, 'connect', [room])
    user.onClose((err) => closed.push(err?.constructor?.name ?? String(err)))
    const pong = await user.send({ kind: 'ping' }, { ack: true })
    return { user: me, pong, tokens }
  },
  say: async (c) => user.send({ kind: 'send', text: c.text }, { ack: true }),
  state: async () => ({ seen, closed, tokens }),
}

const lines = createInterface({ input: process.stdin })
for await (const line of lines) {
  if (!line.trim()) continue
  let answer
  try {
    const command = JSON.parse(line)
    answer = { ok: true, value: (await ops[command.op](command)) ?? null }
  } catch (err) {
    answer = { ok: false, error: String(err?.stack ?? err) }
  }
  process.stdout.write(JSON.stringify(answer) + '\n')
}
process.exit(0)
