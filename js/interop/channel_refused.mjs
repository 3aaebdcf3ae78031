// A channel another client already owns: the server leaves it out of RECONCILED's `open`, and
// the official client must fail that channel cleanly (onClose with an error, send rejects)
// while its other channels on the same connection keep working.
// Usage: channel_refused.mjs <origin> <shared channel name>
import { run, emit, describeError } from './setup.mjs'

const FILE = '/chat.telefunc.py'

run(async (client, [name]) => {
  const call = client.__remoteTelefunctionCall
  const mine = await call(FILE, 'welcome', [])
  const echoed = new Promise((resolve) => mine.listen((msg) => msg === 'ping' && resolve(msg)))
  const taken = await call(FILE, 'shared_channel', [name])
  const closed = await Promise.race([
    new Promise((resolve) => taken.onClose((err) => resolve(describeError(err)))),
    new Promise((resolve) => setTimeout(() => resolve('timeout'), 15000)),
  ])
  let sendError = null
  try {
    await taken.send('intrusion')
  } catch (err) {
    sendError = describeError(err)
  }
  await mine.send('ping')
  emit({ name: 'refused', closed, isClosed: taken.isClosed, sendError, echo: await echoed })
  await mine.close()
})
