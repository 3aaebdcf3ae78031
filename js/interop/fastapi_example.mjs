// examples/fastapi driven by the official client: FastAPI's own routes sign the user in (a
// cookie), telefunctions see that user through the context, and FastAPI's routes see what the
// telefunctions stored.
import { emit, attempt } from './setup.mjs'

const [origin] = process.argv.slice(2)
let cookie = ''
// The browser's cookie jar, for Node: remember the session cookie and send it with every request.
const plainFetch = globalThis.fetch.bind(globalThis)
globalThis.fetch = async (input, init = {}) => {
  const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined))
  if (cookie) headers.set('cookie', cookie)
  headers.set('user-agent', 'fastapi-example-test')
  const response = await plainFetch(input, { ...init, headers })
  const set = response.headers.get('set-cookie')
  if (set) cookie = set.split(';')[0]
  return response
}

const { connect } = await import('./setup.mjs')
const client = await connect(origin)
const call = client.__remoteTelefunctionCall
const FILE = '/notes.telefunc.py'
const api = async (path, body) => {
  const response = await fetch(origin + path, body === undefined ? {} : {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  return { status: response.status, body: await response.json() }
}

try {
  await attempt('anonymous', () => call(FILE, 'whoami', []))
  await attempt('anonymous_add', () => call(FILE, 'add_note', ['x']))
  emit({ name: 'bad_login', value: await api('/api/login', { user: 'ada', password: 'nope' }) })
  emit({ name: 'login', value: await api('/api/login', { user: 'ada', password: 'lovelace' }) })
  await attempt('whoami', () => call(FILE, 'whoami', []))
  await attempt('user_agent', () => call(FILE, 'user_agent', []))
  await attempt('add', () => call(FILE, 'add_note', ['milk']))
  await attempt('add_again', () => call(FILE, 'add_note', ['eggs']))
  emit({ name: 'me', value: await api('/api/me') })
  emit({ name: 'notes', value: await api('/api/notes') })
  process.exit(0)
} catch (err) {
  console.error(err?.stack ?? String(err))
  process.exit(1)
}
