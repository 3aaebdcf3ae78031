// The official client when the server drops one of its broadcast subscriptions as a slow
// consumer (tests/channels/test_outbound_attacks.py, app tests/apps/outbound): a publish larger
// than twice config.limits.max_connection_buffer reaches a subscriber. Prints what the room
// channel's onClose got, and whether a plain channel on the same connection still answers.
// Args: <origin> <key>
import { run, emit, describeError } from './setup.mjs'

const FILE = '/outbound.telefunc.py'

run(async (client, args) => {
  const [key] = args
  const call = client.__remoteTelefunctionCall
  const room = await call(FILE, 'room', [key])
  const echo = await call(FILE, 'echo', [])
  let received = 0
  room.subscribe(() => received++)
  const closed = new Promise((resolve) => room.onClose((err) => resolve(err)))
  await room.publish('small') // comes back before its receipt: subscribed
  await call(FILE, 'publish', [key, 1, 5000])
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('room never closed')), 30000))
  const err = await Promise.race([closed, timeout])
  const answer = await echo.send('still here', { ack: true })
  emit({ name: 'result', received, error: err ? describeError(err) : null, answer })
  await echo.close()
})
