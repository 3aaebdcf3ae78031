// Channel.abort(value, message) against tests/apps/channels: a server abort's value and message,
// and a client abort(value, message), as the official client sees and causes them.
import { run, emit, describeError } from './setup.mjs'

const FILE = '/chat.telefunc.py'

const closedWith = (ch) => new Promise((resolve) => ch.onClose((err) => resolve(err)))

// What the server's on_close recorded for channel `id`, polled until it is there (bounded).
async function serverClosed(call, id) {
  for (let i = 0; i < 500; i++) {
    const report = await call(FILE, 'server_report', [id])
    if ('closed' in report) return report
    await new Promise((r) => setTimeout(r, 10))
  }
  throw new Error(`the server never recorded the close of ${id}`)
}

run(async (client) => {
  const call = client.__remoteTelefunctionCall
  for (const [name, value, message] of [
    ['object', { message: 'room closed', code: 4 }, 'server side text'],
    ['string', 'kicked', null],
    ['plain', { code: 5 }, null],
  ]) {
    const ch = await call(FILE, 'abort_with_message', [value, message])
    const err = await closedWith(ch)
    const server = await serverClosed(call, ch.id)
    emit({ name: `server_${name}`, error: describeError(err), server })
  }
  {
    const ch = await call(FILE, 'watch_close', [])
    await ch.send('hello', { ack: true })
    const closed = closedWith(ch)
    ch.abort({ why: 'bye' }, 'client side text')
    const err = await closed
    const server = await serverClosed(call, ch.id)
    emit({ name: 'client', error: describeError(err), server })
  }
})
