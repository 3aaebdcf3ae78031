// Runs the scenario named by TELEFUNC_SCENARIO with a fetch that rejects streaming (duplex)
// uploads, as a runtime or proxy without request streams would: the official client must fall
// back from the SSE stream-request to batch POSTs.
const realFetch = globalThis.fetch
globalThis.fetch = (input, init) =>
  init && init.duplex
    ? Promise.reject(new TypeError('streaming uploads are refused in this test'))
    : realFetch(input, init)

const scenario = process.env.TELEFUNC_SCENARIO
if (!scenario || !/^[\w.-]+\.mjs$/.test(scenario)) throw new Error('set TELEFUNC_SCENARIO')
await import(`./${scenario}`)
