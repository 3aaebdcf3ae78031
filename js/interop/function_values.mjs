// Functions across the wire and small byte-stream arguments, against tests/apps/streaming,
// with the official telefunc@0.2.23 client. Prints one JSON line per scenario: {name, ok, value|error}.
import { run, attempt, describeError } from './setup.mjs'

const FILE = '/functions.telefunc.py'

run(async (client) => {
  const call = client.__remoteTelefunctionCall
  const settle = async (promise) => {
    try {
      return { ok: true, value: await promise }
    } catch (err) {
      return { ok: false, error: describeError(err) }
    }
  }

  await attempt('counter', async () => {
    const { increment, peek, label } = await call(FILE, 'counter', [10])
    const values = [await increment(1), await increment(5), await increment(-2)]
    return { label, values, peek: await peek(), isFunction: typeof increment === 'function' }
  })
  await attempt('map_with', async () => {
    const seen = []
    const result = await call(FILE, 'map_with', [[1, 2, 3], async (x) => { seen.push(x); return x * 10 }])
    return { result, seen }
  })
  await attempt('call_after_close', async () => call(FILE, 'call_after_close', [async (x) => x + 100]))
  await attempt('shield', async () => {
    const double = await call(FILE, 'typed_fn', [])
    return { good: await settle(double(21)), bad: await settle(double('nope')) }
  })
  await attempt('abort_fn', async () => {
    const { fail } = await call(FILE, 'aborting_fn', [])
    return await settle(fail('because'))
  })
  await attempt('on_close_after_fn', async () => {
    const runId = 'watched-' + Math.random().toString(36).slice(2)
    const res = await call(FILE, 'watched', [runId])
    const pinged = await res.ping(1)
    // The HTTP call is over, but the returned function's channel is open: no on_close yet.
    const before = await call(FILE, 'fn_events_of', [runId, 'ping 1', 15])
    await client.close(res)
    const after = await call(FILE, 'fn_events_of', [runId, 'on_close', 15])
    return { pinged, before, after }
  })
  // A function argument's channel closes once the telefunction dropped it (after returning);
  // only then does the call's on_close fire.
  await attempt('map_watched', async () => {
    const runId = 'mapw-' + Math.random().toString(36).slice(2)
    const total = await call(FILE, 'map_watched', [runId, [1, 2, 3], async (x) => x * x])
    const events = await call(FILE, 'fn_events_of', [runId, 'on_close', 15])
    return { total, events }
  })
  await attempt('upload_text', async () => {
    const parts = ['hello', ' ', 'stream']
    const stream = new ReadableStream({
      pull(controller) {
        if (parts.length === 0) controller.close()
        else controller.enqueue(new TextEncoder().encode(parts.shift()))
      },
    })
    return call(FILE, 'upload_text', ['got', stream])
  })
  await attempt('upload_digest_small', async () => {
    const data = new Uint8Array(300000).map((_, i) => i % 251)
    let offset = 0
    const stream = new ReadableStream({
      pull(controller) {
        if (offset >= data.length) return controller.close()
        controller.enqueue(data.slice(offset, offset + 7000))
        offset += 7000
      },
    })
    const { createHash } = await import('node:crypto')
    const sha256 = createHash('sha256').update(data).digest('hex')
    return { server: await call(FILE, 'upload_digest', [stream]), sha256 }
  })
})
