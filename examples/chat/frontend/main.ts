// The chat page: the official telefunc@0.2.23 client, calling the Python telefunctions through
// the stubs `telefunc codegen` generates from chat.telefunc.py (frontend/generated/, rebuilt by
// js/scripts/build-example.mjs before bundling).
//
// Per room the page holds two channels:
//   - the room's BroadcastChannel (`join`): every message and "X is typing" event, in the
//     room's order; after a dropped connection the client reconnects and the server replays
//     what the page missed;
//   - the user's own Channel (`connect`): acked sends (the ack is the stored message), typing
//     events, and pings whose acks tell the page it is connected.
// History (`history`) fills in what was said before the page joined. Messages are keyed by
// their id (their number in the room: 1, 2, 3…), so one that arrives twice (history and
// broadcast overlap) is shown once, one that arrives late is put in its place, and a skipped
// number means something was missed: the page then asks `history` for it.
import { NetworkError, config } from 'telefunc/client'
import { connect, history, join, whoami } from './generated/chat.telefunc'
import type { Message, MessageEvent, TypingEvent } from './generated/chat.telefunc'

// A ClientChannel types acks as `unknown` (the wire does not say what a listener returns), so
// the ack of a send is checked at run time: the stored Message, or chat.telefunc.py's Rejected.
type Rejected = { error: string }

type RoomChannel = Awaited<ReturnType<typeof join>>
type UserChannel = Awaited<ReturnType<typeof connect>>

const PING_EVERY_MS = 1500 // how often the page checks its channel with an acked ping
const PING_LATE_MS = 2500 // an unanswered ping older than this: show "reconnecting…"
const TYPING_SEND_EVERY_MS = 1500 // the server relays one typing event a second at most anyway
const TYPING_SHOWN_MS = 3500 // "X is typing…" disappears this long after X's last keystroke
const RETRY_MAX_MS = 5000

const params = new URLSearchParams(location.search)
const room = (params.get('room') || 'lobby').trim().slice(0, 40) || 'lobby'
// The client's default is SSE first, upgrading to WebSocket; `?transport=ws` (or `sse`) pins
// one, e.g. to watch it in the browser's network panel (the browser test runs both).
const transport = params.get('transport')
if (transport === 'ws' || transport === 'sse') config.channel.transports = [transport]

function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id)
  if (!found) throw new Error(`#${id} is missing from index.html`)
  return found as T
}
const $messages = el<HTMLUListElement>('messages')
const $status = el('status')
const $typing = el('typing')
const $notice = el('notice')
const $form = el<HTMLFormElement>('form')
const $text = el<HTMLInputElement>('text')
const $outbox = el<HTMLUListElement>('outbox')

let me = ''

// ── the message list ──────────────────────────────────────────────────────

const shown = new Map<number, HTMLLIElement>()
let lastId = 0
let historyLoaded = false // gaps only mean something once the room's history is on the page

// `via` (kept on the item as data-via) says how the message reached the page.
type Via = 'broadcast' | 'history' | 'ack'

function show(message: Message, via: Via): void {
  if (shown.has(message.id)) return
  if (historyLoaded && message.id > lastId + 1) void fillGap()
  const li = document.createElement('li')
  li.dataset.id = String(message.id)
  li.dataset.via = via
  // The time is CSS-generated content (`::after`), so the item's text stays "author: text".
  li.dataset.time = new Date(message.at * 1000).toLocaleTimeString([], {
    hour: '2-digit',
    minute: '2-digit',
  })
  if (message.author === me) li.classList.add('mine')
  const who = document.createElement('b')
  who.textContent = message.author + ': '
  li.append(who, document.createTextNode(message.text))
  // Ids only grow, so a message older than the newest shown one goes before the first newer one.
  let before: HTMLLIElement | null = null
  if (message.id < lastId) {
    for (const [id, item] of shown) {
      if (id > message.id && (!before || id < Number(before.dataset.id))) before = item
    }
  }
  $messages.insertBefore(li, before)
  shown.set(message.id, li)
  lastId = Math.max(lastId, message.id)
  stopTyping(message.author)
  if (!before) $messages.scrollTop = $messages.scrollHeight
}

let filling: Promise<void> | null = null

// Loads what the page lacks after its newest message; one request at a time.
function fillGap(): Promise<void> {
  filling ??= (async () => {
    try {
      for (const message of await history(room, lastId)) show(message, 'history')
    } finally {
      filling = null
    }
  })()
  return filling
}

// Loads the room's history up to now; `show` skips what the page already has.
async function loadHistory(): Promise<void> {
  const messages = await history(room)
  const newest = messages.length ? messages[messages.length - 1].id : 0
  if (newest < lastId) {
    // The room's numbers went back: the server restarted and lost its (in-memory) history.
    // Start the list over rather than hide new messages under old numbers.
    $messages.replaceChildren()
    shown.clear()
    lastId = 0
    say('The server restarted: the room starts over.')
  }
  for (const message of messages) show(message, 'history')
  historyLoaded = true
}

// ── "X is typing…" ────────────────────────────────────────────────────────

const typers = new Map<string, ReturnType<typeof setTimeout>>()

function renderTyping(): void {
  const names = [...typers.keys()]
  $typing.textContent =
    names.length === 0
      ? ''
      : names.length === 1
        ? `${names[0]} is typing…`
        : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]} are typing…`
}

function startTyping(user: string): void {
  if (user === me) return
  clearTimeout(typers.get(user))
  typers.set(user, setTimeout(() => stopTyping(user), TYPING_SHOWN_MS))
  renderTyping()
}

function stopTyping(user: string): void {
  if (!typers.has(user)) return
  clearTimeout(typers.get(user))
  typers.delete(user)
  renderTyping()
}

// ── connection state ──────────────────────────────────────────────────────

type Status = 'connecting…' | 'connected' | 'reconnecting…'

function setStatus(status: Status): void {
  if ($status.textContent === status) return
  $status.textContent = status
  $status.className = status === 'connected' ? 'ok' : 'down'
}

function say(text: string, isError = false): void {
  $notice.textContent = text
  $notice.className = isError ? 'error' : ''
}

// One session = one pair of channels. A lost session is replaced by a new one; events from an
// old session are ignored by comparing its number with `session`.
let session = 0
let roomChannel: RoomChannel | null = null
let userChannel: UserChannel | null = null
let pingSentAt = 0 // when the unanswered ping was sent; 0 when none is outstanding
let pingTimer: ReturnType<typeof setInterval> | undefined
let sessionLive = false // the session's first ping was answered
let retryDelay = 500

async function start(): Promise<void> {
  const gen = ++session
  document.body.dataset.session = String(gen) // for the browser test: sessions started so far
  const [joined, connected] = await Promise.allSettled([join(room), connect(room)])
  if (joined.status === 'rejected' || connected.status === 'rejected') {
    // Don't leave the half that worked open on the server.
    if (joined.status === 'fulfilled') joined.value.abort()
    if (connected.status === 'fulfilled') connected.value.abort()
    const failed = joined.status === 'rejected' ? joined : (connected as PromiseRejectedResult)
    return retry(gen, failed.reason)
  }
  const room_ = joined.value
  const user_ = connected.value
  if (gen !== session) {
    room_.abort()
    user_.abort()
    return
  }
  roomChannel = room_
  userChannel = user_
  retryDelay = 500
  // Subscribe before loading history: anything published from now on arrives on the channel,
  // anything older is in the history, and `show` drops whatever is in both.
  room_.subscribe((event: MessageEvent | TypingEvent) => {
    if (gen !== session) return
    if (event.kind === 'message') show(event.message, 'broadcast')
    else startTyping(event.user)
  })
  user_.listen((notice) => {
    if (gen === session) say(notice.text)
  })
  // The client reconnects by itself for as long as the server allows; a channel closes only
  // when that failed (or the server ended it). Then start over with a new session.
  room_.onClose((err) => lost(gen, err))
  user_.onClose((err) => lost(gen, err))
  pingSentAt = 0
  sessionLive = false
  clearInterval(pingTimer)
  pingTimer = setInterval(() => ping(gen), PING_EVERY_MS)
  void ping(gen)
  try {
    await loadHistory()
  } catch (err) {
    lost(gen, err)
  }
}

// An acked ping on the user's channel: while the connection is down the ping waits in the
// client's replay buffer and its ack is late, so a late ack means "reconnecting…"; the ack that
// finally arrives proves the channel (and the room's, on the same connection) is back.
async function ping(gen: number): Promise<void> {
  const channel = userChannel
  if (gen !== session || !channel) return
  if (pingSentAt) {
    if (Date.now() - pingSentAt > PING_LATE_MS) setStatus('reconnecting…')
    return
  }
  pingSentAt = Date.now()
  try {
    await channel.send({ kind: 'ping' }, { ack: true })
  } catch (err) {
    lost(gen, err)
    return
  }
  if (gen !== session) return
  pingSentAt = 0
  if (!sessionLive) {
    // The first answer of a session: the room subscription (sent before the ping, on the same
    // connection) is live now, so history up to now plus the broadcast from now on leave no
    // hole, even for a message published between the first history load and the subscription.
    try {
      await loadHistory()
    } catch (err) {
      lost(gen, err)
      return
    }
    if (gen !== session) return
    sessionLive = true
  }
  // After a dropped connection within the session nothing is loaded here: the server replays
  // the room's messages the page missed, on the room channel, in order.
  setStatus('connected')
}

function lost(gen: number, err: unknown): void {
  if (gen !== session) return
  // NetworkError: the server no longer knows the channels (e.g. its process died behind a load
  // balancer, examples/scale-out/); the page starts over on whichever process answers now.
  console.info(`chat: channels closed (${err instanceof NetworkError ? 'NetworkError' : err})`)
  session++
  document.body.dataset.session = String(session)
  clearInterval(pingTimer)
  roomChannel?.abort()
  userChannel?.abort()
  roomChannel = userChannel = null
  retry(session, err)
}

function retry(gen: number, err: unknown): void {
  if (gen !== session) return
  setStatus('reconnecting…')
  if (!(err instanceof NetworkError)) console.warn('chat: starting over after', err)
  const delay = retryDelay
  retryDelay = Math.min(retryDelay * 2, RETRY_MAX_MS)
  setTimeout(() => {
    if (gen === session) void start()
  }, delay)
}

// ── sending ───────────────────────────────────────────────────────────────

function isRejected(ack: unknown): ack is Rejected {
  return typeof ack === 'object' && ack !== null && 'error' in ack
}

function isMessage(ack: unknown): ack is Message {
  return typeof ack === 'object' && ack !== null && 'id' in ack && 'text' in ack
}

async function send(text: string): Promise<void> {
  const channel = userChannel
  const pending = document.createElement('li')
  pending.textContent = text
  $outbox.append(pending)
  if (!channel) {
    pending.className = 'failed'
    pending.title = 'not sent: no connection'
    return
  }
  try {
    // Acked: resolves with the stored message once the server has it (after a reconnect, if
    // the connection is down now: the client replays the send).
    const ack: unknown = await channel.send({ kind: 'send', text }, { ack: true })
    if (isRejected(ack)) throw new Error(ack.error)
    if (isMessage(ack)) show(ack, 'ack')
    pending.remove()
  } catch (err) {
    pending.className = 'failed'
    pending.title = 'not sent: ' + (err instanceof Error ? err.message : String(err))
    say(`Not sent: ${pending.title.slice(10)}`, true)
  }
}

let typingSentAt = 0

$text.addEventListener('input', () => {
  const channel = userChannel
  if (!channel || !$text.value.trim() || Date.now() - typingSentAt < TYPING_SEND_EVERY_MS) return
  typingSentAt = Date.now()
  channel.send({ kind: 'typing' }).catch(() => {}) // best effort: a lost typing event is fine
})

$form.addEventListener('submit', (event) => {
  event.preventDefault()
  const text = $text.value.trim()
  if (!text) return
  $text.value = ''
  typingSentAt = 0
  void send(text)
})

// ── start ─────────────────────────────────────────────────────────────────

async function main(): Promise<void> {
  if (!document.cookie.split('; ').some((c) => c.startsWith('user='))) {
    const name = (prompt('Your name?') || '').trim() || `guest-${Math.floor(Math.random() * 1000)}`
    document.cookie = `user=${encodeURIComponent(name)}; path=/; SameSite=Lax`
  }
  el('room').textContent = room
  document.title = `#${room} · telefunc chat`
  for (const a of document.querySelectorAll<HTMLAnchorElement>('#rooms a')) {
    if (a.dataset.room === room) a.classList.add('here')
  }
  setStatus('connecting…')
  for (;;) {
    try {
      me = await whoami()
      break
    } catch {
      setStatus('reconnecting…')
      await new Promise((resolve) => setTimeout(resolve, 1000))
    }
  }
  el('me').textContent = me
  await start()
}

void main()
