// Loads the official telefunc@0.2.23 browser client inside Node 20 (docs/protocol.md §11) and
// points it at
// a server. Scenario scripts import this, then print one JSON object per line on stdout; the
// Python tests read those lines.
//
// Run with: node --conditions=browser --experimental-websocket <scenario>.mjs <origin> [...]

export async function connect(origin, { transports, streamTransport } = {}) {
  let fetch = globalThis.fetch.bind(globalThis)
  // `telefunc dev --edge`: TELEFUNC_COLO places this client in a Cloudflare colo (HTTP requests
  // carry `x-telefunc-colo`; the WebSocket follows its session token to the same object).
  const colo = process.env.TELEFUNC_COLO
  if (colo) {
    const plain = fetch
    fetch = (input, init = {}) => {
      const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined))
      headers.set('x-telefunc-colo', colo)
      return plain(input, { ...init, headers })
    }
    globalThis.fetch = fetch
  }
  globalThis.window = {
    scrollY: 0,
    location: { href: origin + '/' },
    fetch,
  }
  const client = await import('telefunc/client')
  client.config.telefuncUrl = origin + '/_telefunc'
  if (transports) client.config.channel.transports = transports
  if (streamTransport) client.config.stream.transport = streamTransport
  return client
}

/** Print one result line for the Python side. */
export function emit(value) {
  process.stdout.write(JSON.stringify(value) + '\n')
}

/** Describe an error thrown by a call in a JSON-friendly way. */
export function describeError(err) {
  return {
    name: err?.constructor?.name,
    message: err?.message,
    isAbort: err?.isAbort === true,
    abortValue: err?.abortValue,
    isShieldValidationError: err?.name === 'ShieldValidationError',
  }
}

/** Run scenario `name`: print `{name, ok: true, value}` with what `fn` resolves to, or
 * `{name, ok: false, error}` (see describeError) if it throws; the next scenario runs either way. */
export async function attempt(name, fn) {
  try {
    emit({ name, ok: true, value: await fn() })
  } catch (err) {
    emit({ name, ok: false, error: describeError(err) })
  }
}

/** Run `main(client, args)` and exit non-zero with the error on stderr if it throws. */
export async function run(main) {
  const [origin, ...args] = process.argv.slice(2)
  const options = process.env.TELEFUNC_TRANSPORTS
    ? { transports: process.env.TELEFUNC_TRANSPORTS.split(',') }
    : {}
  if (process.env.TELEFUNC_STREAM_TRANSPORT) options.streamTransport = process.env.TELEFUNC_STREAM_TRANSPORT
  try {
    const client = await connect(origin, options)
    await main(client, args)
    // A write to a pipe may still be pending: exiting now would cut a long line at 64 KiB.
    await new Promise((resolve) => process.stdout.write('', resolve))
    process.exit(0)
  } catch (err) {
    console.error(err?.stack ?? String(err))
    process.exit(1)
  }
}
