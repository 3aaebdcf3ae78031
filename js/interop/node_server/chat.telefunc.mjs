// Mirror of tests/apps/channels/chat.telefunc.py for the official Node server.
import { Abort, Channel } from 'telefunc'

// Latest of any channel (older tests), and per channel id (a test reads only its own channel's).
const REPORT = {}
const REPORT_BY_CHANNEL = {}
const reportFor = (id) => (REPORT_BY_CHANNEL[id] ??= {})

export async function welcome() {
  const ch = new Channel()
  ch.onOpen(() => ch.send({ welcome: true }))
  ch.listen((msg) => {
    ch.send(msg)
  })
  return ch
}

export async function acked() {
  const ch = new Channel({ ack: true })
  ch.listen(async (n) => n * 2)
  ch.onOpen(async () => {
    const answer = await ch.send('question')
    await ch.send({ client_answered: answer }, { ack: false })
  })
  return ch
}

export async function binary_echo() {
  const ch = new Channel()
  ch.listenBinary((data) => {
    ch.sendBinary(data)
  })
  return ch
}

export async function aborter(value) {
  const ch = new Channel()
  ch.onOpen(() => ch.abort(value))
  return ch
}

export async function closer() {
  const ch = new Channel()
  ch.listen(async (msg) => {
    if (msg === 'close-now') {
      const result = await ch.close({ timeout: 5000 })
      REPORT.server_close_result = result
      reportFor(ch.id).server_close_result = result
    }
  })
  ch.onClose((err) => {
    const text = err === undefined ? 'None' : String(err)
    REPORT.closer_on_close = text
    reportFor(ch.id).closer_on_close = text
  })
  return ch
}

export async function listener_abort() {
  const ch = new Channel({ ack: true })
  ch.listen((msg) => {
    throw Abort({ refused: msg })
  })
  return ch
}

export async function both_ways(n) {
  const ch = new Channel()
  const received = []
  ch.listen((msg) => {
    if (msg === 'report') return received
    received.push(msg)
    return undefined
  })
  ch.onOpen(() => {
    void (async () => {
      for (let i = 0; i < n; i++) {
        await ch.send(i)
        if (i % 20 === 0) await new Promise((r) => setTimeout(r, 5))
      }
    })()
  })
  return ch
}

export async function server_report(channelId) {
  if (channelId === undefined) return { ...REPORT }
  return { ...(REPORT_BY_CHANNEL[channelId] ?? {}) }
}

const describeClose = (err) => (err === undefined ? null : { type: err.name, message: err.message })

export async function abort_with_message(value, message) {
  const ch = new Channel()
  ch.onClose((err) => (reportFor(ch.id).closed = describeClose(err)))
  ch.onOpen(() => ch.abort(value, message ?? undefined))
  return ch
}

export async function watch_close() {
  const ch = new Channel()
  ch.onClose((err) => (reportFor(ch.id).closed = describeClose(err)))
  ch.listen((msg) => msg)
  return ch
}
