// Channels over WebSocket against tests/apps/channels: welcome, 1,000 awaited sends echoed in
// order, ack values both ways, a 1 MiB binary echo, server abort(value), close() -> 0.
import { run, emit, describeError } from './setup.mjs'

const FILE = '/chat.telefunc.py'

function deferred() {
  let resolve
  const promise = new Promise((r) => (resolve = r))
  return { promise, resolve }
}

run(async (client) => {
  const call = client.__remoteTelefunctionCall

  // 1. welcome + 1,000 awaited sends echoed in order
  {
    const ch = await call(FILE, 'welcome', [])
    const got = []
    const done = deferred()
    ch.listen((msg) => {
      got.push(msg)
      if (got.length === 1001) done.resolve()
    })
    for (let i = 0; i < 1000; i++) await ch.send(i)
    await done.promise
    const welcome = got[0]
    const echoes = got.slice(1)
    emit({
      name: 'echo',
      welcome,
      count: echoes.length,
      inOrder: echoes.every((v, i) => v === i),
    })
    emit({ name: 'client_close', result: await ch.close() })
  }

  // 2. ack values, both directions
  {
    const ch = await call(FILE, 'acked', [])
    const answered = deferred()
    ch.listen((msg) => {
      if (msg === 'question') return 'client-answer'
      answered.resolve(msg)
    })
    const ack = await ch.send(21)
    const noAck = await ch.send(5, { ack: false })
    emit({ name: 'ack', ack, noAck: noAck === undefined ? 'undefined' : noAck, fromServer: await answered.promise })
    await ch.close()
  }

  // 3. 1 MiB binary echo
  {
    const ch = await call(FILE, 'binary_echo', [])
    const size = 1024 * 1024
    const data = new Uint8Array(size)
    for (let i = 0; i < size; i++) data[i] = (i * 7 + (i >> 8)) & 0xff
    const back = deferred()
    ch.listenBinary((b) => back.resolve(b))
    await ch.sendBinary(data)
    const got = await back.promise
    let same = got.byteLength === size
    for (let i = 0; same && i < size; i++) if (got[i] !== data[i]) same = false
    emit({ name: 'binary', size: got.byteLength, same })
    await ch.close()
  }

  // 4. server abort(value) reaches onClose
  {
    const ch = await call(FILE, 'aborter', [{ reason: 'bye', n: 7 }])
    const closed = deferred()
    ch.onClose((err) => closed.resolve(err))
    const err = await closed.promise
    emit({ name: 'abort', error: describeError(err), isClosed: ch.isClosed })
  }

  // 5. server close() resolves 0; the client sees a clean close
  {
    const ch = await call(FILE, 'closer', [])
    const closed = deferred()
    ch.onClose((err) => closed.resolve(err))
    ch.onOpen(() => ch.send('close-now'))
    const err = await closed.promise
    emit({ name: 'server_close', clientError: err === undefined ? null : describeError(err) })
  }

  // 6. a listener raising Abort aborts the channel; the acked send rejects
  {
    const ch = await call(FILE, 'listener_abort', [])
    try {
      await ch.send('x')
      emit({ name: 'listener_abort', ok: true })
    } catch (err) {
      emit({ name: 'listener_abort', ok: false, error: describeError(err) })
    }
  }

  emit({ name: 'report', report: await call(FILE, 'server_report', []) })
})
