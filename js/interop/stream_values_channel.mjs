// js/interop/stream_values.mjs under the `channel` stream transport, recording the
// Content-Type of every telefunction response (the last output line: {"contentTypes": [...]}).
const contentTypes = []
const realFetch = globalThis.fetch
globalThis.fetch = async (...args) => {
  const response = await realFetch(...args)
  // Only telefunction calls (the client's SSE channel transport uses fetch too).
  const url = String(args[0]?.url ?? args[0])
  if (/[?&]_telefunc=(txt|bin)\b/.test(url)) contentTypes.push(response.headers.get('content-type'))
  return response
}
// stream_values.mjs ends the process with process.exit(); stdout to a pipe is synchronous.
process.on('exit', () => {
  process.stdout.write(JSON.stringify({ name: 'content_types', ok: true, value: contentTypes }) + '\n')
})
process.env.TELEFUNC_STREAM_TRANSPORT = 'channel'
await import('./stream_values.mjs')
