// Browser scenario for examples/chat: two users in one room, in Debian's headless Chromium.
//
//   node chat_two_users.mjs <origin> <outdir> [ws|sse] [expire]
//
// `ws`/`sse` is passed to the page as `?transport=`, pinning the client's channel transport;
// without it the page uses the client's default (SSE, upgrading to WebSocket). `expire` keeps
// alice offline until her page gave up its channels (the server's reconnect timeout passed, so
// nothing is replayed: the page starts a new session and catches up from the room's history).
//
// Two browser contexts are two users (each with its own `user` cookie). Both open one fresh
// room; they take turns sending messages and each must see the other's, in order. Then
// alice's context goes offline, bob sends 20 messages, alice comes back and must show all
// 20 once each, in order. Last, alice types (bob's page must say "alice is typing…") and
// sends a final message that both pages show. Everything is observed through the DOM
// (`#messages li`, `#status`, `#typing`, `data-via`, `body[data-session]`), not the transport,
// so the scenario survives a change of how messages travel.
//
// Prints one JSON line: {"room", "alice": [...texts], "bob": [...texts], "alice_via": [...],
// "bob_via": [...] (how each message reached the page), "bob_typing",
// "alice_status", "bob_status", "steps": [...],
// "screenshots": [...], "error"?}. Exits 1 when a wait timed out (the JSON still says what
// each page showed, and the screenshots are still taken, for the Python test to report).
import { chromium } from 'playwright-core'
import { mkdirSync } from 'node:fs'
import path from 'node:path'

const [origin, outdir, ...options] = process.argv.slice(2)
const transport = options.find((o) => o === 'ws' || o === 'sse')
const expire = options.includes('expire')
if (!origin || !outdir) {
  console.error('usage: node chat_two_users.mjs <origin> <outdir> [ws|sse]')
  process.exit(2)
}
mkdirSync(outdir, { recursive: true })

const WAIT_MS = Number(process.env.CHAT_WAIT_MS || 20000)
const ROUNDS = 3
const OFFLINE_BURST = 20
const room = `room-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`
const steps = []
const step = (name) => steps.push(name)

// Debian's Chromium, never a downloaded one. Playwright's launch() already gives the
// browser a new empty temporary profile (its own --user-data-dir), removed on close; the
// background-networking flags stop Chromium phoning home, which this closed network refuses.
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
})

async function openUser(name) {
  const context = await browser.newContext({ viewport: { width: 900, height: 700 } })
  // The cookie is set before navigation so the page never prompts for a name.
  await context.addCookies([{ name: 'user', value: name, url: origin }])
  const page = await context.newPage()
  page.on('dialog', (dialog) => dialog.accept(name))
  page.setDefaultTimeout(WAIT_MS)
  const query = new URLSearchParams({ room })
  if (transport) query.set('transport', transport)
  await page.goto(`${origin}/?${query}`)
  await page.locator('#me').filter({ hasText: name }).waitFor()
  await waitStatus(page, 'connected')
  return { name, context, page }
}

const texts = (page) =>
  page.$$eval('#messages li', (items) => items.map((li) => li.textContent.trim()))

// How each listed message reached the page (the chat keeps it in `data-via`: broadcast,
// history or ack).
const vias = (page) => page.$$eval('#messages li', (items) => items.map((li) => li.dataset.via))

function waitStatus(page, text) {
  return page.waitForFunction((t) => document.getElementById('status')?.textContent === t, text)
}

// Waits until the page lists at least `count` messages and its last one is `lastText`.
function waitLast(page, count, lastText) {
  return page.waitForFunction(
    ([n, last]) => {
      const items = document.querySelectorAll('#messages li')
      return items.length >= n && items[items.length - 1].textContent.trim() === last
    },
    [count, lastText],
  )
}

// Types `text` into the form and waits until the sender's own page shows it.
async function send(user, text, expectedCount) {
  await user.page.fill('#text', text)
  await user.page.press('#text', 'Enter')
  await waitLast(user.page, expectedCount, `${user.name}: ${text}`)
}

let alice
let bob
const result = { room }
let failed = false
try {
  alice = await openUser('alice')
  bob = await openUser('bob')
  step('both pages loaded and connected')

  // Turn-taking: each message must reach the other page before the next one is sent.
  let count = 0
  for (let round = 1; round <= ROUNDS; round++) {
    for (const [from, to] of [
      [alice, bob],
      [bob, alice],
    ]) {
      count += 1
      const text = `hello ${round} from ${from.name}`
      await send(from, text, count)
      await waitLast(to.page, count, `${from.name}: ${text}`)
    }
  }
  step(`exchanged ${count} messages`)

  await alice.context.setOffline(true)
  await waitStatus(alice.page, 'reconnecting…')
  step('alice offline, page shows reconnecting')
  await alice.page.screenshot({ path: path.join(outdir, 'chat-alice-offline.png') })
  const aliceBefore = (await texts(alice.page)).length
  for (let i = 1; i <= OFFLINE_BURST; i++) {
    count += 1
    await send(bob, `burst ${i}`, count)
  }
  // Still offline: alice's page must not have received anything meanwhile.
  result.alice_count_while_offline = (await texts(alice.page)).length
  result.alice_count_before_offline = aliceBefore
  step(`bob sent ${OFFLINE_BURST} while alice was offline`)
  if (expire) {
    // The client closes its channels once its reconnect timeout (the server's) has passed;
    // the page then starts a new session (body[data-session] counts them).
    await alice.page.waitForFunction(() => Number(document.body.dataset.session) >= 2)
    step('alice stayed offline until her page gave up its channels')
  }

  await alice.context.setOffline(false)
  await waitLast(alice.page, count, `bob: burst ${OFFLINE_BURST}`)
  await waitStatus(alice.page, 'connected')
  step('alice back online and caught up')

  // Typing indicator: alice types (real keystrokes, so `input` events fire) without sending;
  // bob's page says so.
  await alice.page.locator('#text').pressSequentially('back online', { delay: 20 })
  await bob.page.locator('#typing').filter({ hasText: 'alice is typing…' }).waitFor()
  result.bob_typing = await bob.page.textContent('#typing')
  await bob.page.screenshot({ path: path.join(outdir, 'chat-bob-typing.png') })
  step('bob sees alice typing')

  // A last message from alice is a barrier: once both pages show it, any late duplicate of
  // the burst (e.g. from an overlapping catch-up) would already be on screen. Her message
  // also ends her "is typing…" line on bob's page.
  count += 1
  await alice.page.press('#text', 'Enter')
  await waitLast(alice.page, count, 'alice: back online')
  await waitLast(bob.page, count, 'alice: back online')
  await bob.page.waitForFunction(() => document.getElementById('typing')?.textContent === '')
  step('barrier message seen on both pages, typing line cleared')
} catch (err) {
  failed = true
  result.error = String(err && err.stack ? err.stack : err).split('\n').slice(0, 6).join('\n')
}

result.screenshots = []
for (const user of [alice, bob]) {
  if (!user) continue
  try {
    result[user.name] = await texts(user.page)
    result[`${user.name}_via`] = await vias(user.page)
    result[`${user.name}_sessions`] = Number(
      await user.page.evaluate(() => document.body.dataset.session),
    )
    result[`${user.name}_status`] = await user.page.textContent('#status')
    const file = path.join(outdir, `chat-${user.name}.png`)
    await user.page.screenshot({ path: file, fullPage: true })
    result.screenshots.push(file)
  } catch (err) {
    failed = true
    result.error = (result.error ? result.error + '\n' : '') + String(err)
  }
}
result.steps = steps
await browser.close()
console.log(JSON.stringify(result))
process.exit(failed ? 1 : 0)
