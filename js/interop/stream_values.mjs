// Streaming return values against tests/apps/streaming, with the official telefunc@0.2.23 client.
// The stream transport comes from TELEFUNC_STREAM_TRANSPORT (binary-inline | sse-inline).
// Prints one JSON line per scenario: {name, ok, value|error}.
import { run, attempt, describeError } from './setup.mjs'

const FILE = '/stream.telefunc.py'

run(async (client) => {
  const call = client.__remoteTelefunctionCall
  const collect = async (gen) => {
    const items = []
    for await (const item of gen) items.push(item)
    return items
  }

  await attempt('countdown', async () => collect(await call(FILE, 'countdown', [3])))
  // The call's promise is itself async-iterable (no `await` before iterating).
  await attempt('countdown_direct', async () => collect(call(FILE, 'countdown', [2])))
  await attempt('empty', async () => collect(await call(FILE, 'empty', [])))
  await attempt('two', async () => {
    const { letters, squares, label } = await call(FILE, 'two', [])
    // Read both at once: the frames are multiplexed in one body.
    const [l, s] = await Promise.all([collect(letters), collect(squares)])
    return { label, letters: l, squares: s }
  })
  await attempt('byte_stream', async () => {
    const { stream, size } = await call(FILE, 'byte_stream', [100000])
    const isReadableStream = stream instanceof ReadableStream
    let total = 0
    let okBytes = true
    for await (const chunk of stream) {
      if (!(chunk instanceof Uint8Array)) okBytes = false
      for (let i = 0; i < chunk.length; i++) {
        if (chunk[i] !== (total + i) % 251) okBytes = false
      }
      total += chunk.length
    }
    return { isReadableStream, size, total, okBytes }
  })
  await attempt('promise', async () => {
    const { promise } = await call(FILE, 'promise', ['yes'])
    return { isPromise: promise instanceof Promise, value: await promise }
  })
  await attempt('abort_mid', async () => {
    const seen = []
    try {
      for await (const item of await call(FILE, 'abort_mid', ['stop'])) seen.push(item)
      return { seen, threw: false }
    } catch (err) {
      return { seen, threw: true, error: describeError(err) }
    }
  })
  await attempt('bug_mid', async () => {
    const seen = []
    try {
      for await (const item of await call(FILE, 'bug_mid', [])) seen.push(item)
      return { seen, threw: false }
    } catch (err) {
      return { seen, threw: true, error: describeError(err) }
    }
  })
  // Leaving a `for await` early: the client cancels the body, the server's `finally` runs.
  await attempt('break_early', async () => {
    const runId = 'break-' + Math.random().toString(36).slice(2)
    const seen = []
    for await (const item of await call(FILE, 'ticker', [runId])) {
      seen.push(item)
      if (seen.length === 3) break
    }
    const events = await call(FILE, 'events_of', [runId, 'on_close', 15])
    return { seen, events }
  })
  // close(gen) from 'telefunc/client'.
  await attempt('close_gen', async () => {
    const runId = 'close-' + Math.random().toString(36).slice(2)
    const gen = await call(FILE, 'ticker', [runId])
    const first = await gen.next()
    await client.close(gen)
    const events = await call(FILE, 'events_of', [runId, 'on_close', 15])
    return { first: first.value, events }
  })
  await attempt('echo_file', async () => {
    const sent = new File(['hello file '.repeat(10000)], 'a.txt', { type: 'text/plain', lastModified: 7 })
    const { label, file: filePromise } = await call(FILE, 'echo_file', ['echo', sent])
    // A returned File revives as a promise of a File, settled before the call resolves.
    const file = await filePromise
    const text = await file.text()
    return {
      label,
      isFile: file instanceof File,
      name: file.name,
      type: file.type,
      lastModified: file.lastModified,
      size: file.size,
      same: text === 'hello file '.repeat(10000),
    }
  })
  await attempt('blob_download', async () => {
    const { blob } = await call(FILE, 'blob_download', ['hello blob'])
    return { type: blob.type, size: blob.size, name: blob.name ?? null, text: await blob.text() }
  })
})
