// Browser scenario for examples/chat: two users in one room, in Debian's headless Chromium.
//
//   node chat_two_users.mjs <origin> <outdir>
//
// Two browser contexts are two users (each with its own `user` cookie). Both open one fresh
// room; they take turns sending messages and each must see the other's, in order. Then
// alice's context goes offline, bob sends 20 messages, alice comes back and must show all
// 20 once each, in order. Everything is observed through the DOM (`#messages li`,
// `#status`), not the transport, so the scenario survives a change of how messages travel.
//
// Prints one JSON line: {"room", "alice": [...texts], "bob": [...texts], "steps": [...],
// "screenshots": [...], "error"?}. Exits 1 when a wait timed out (the JSON still says what
// each page showed, and the screenshots are still taken, for the Python test to report).
import { chromium } from 'playwright-core'
import { mkdirSync } from 'node:fs'
import path from 'node:path'

const [origin, outdir] = process.argv.slice(2)
if (!origin || !outdir) {
  console.error('usage: node chat_two_users.mjs <origin> <outdir>')
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
  await page.goto(`${origin}/?room=${encodeURIComponent(room)}`)
  await page.locator('#me').filter({ hasText: name }).waitFor()
  await waitStatus(page, 'connected')
  return { name, context, page }
}

const texts = (page) =>
  page.$$eval('#messages li', (items) => items.map((li) => li.textContent.trim()))

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

  await alice.context.setOffline(false)
  await waitLast(alice.page, count, `bob: burst ${OFFLINE_BURST}`)
  await waitStatus(alice.page, 'connected')
  step('alice back online and caught up')

  // A last message from alice is a barrier: once both pages show it, any late duplicate of
  // the burst (e.g. from an overlapping catch-up) would already be on screen.
  count += 1
  await send(alice, 'back online', count)
  await waitLast(bob.page, count, 'alice: back online')
  step('barrier message seen on both pages')
} catch (err) {
  failed = true
  result.error = String(err && err.stack ? err.stack : err).split('\n').slice(0, 6).join('\n')
}

result.screenshots = []
for (const user of [alice, bob]) {
  if (!user) continue
  try {
    result[user.name] = await texts(user.page)
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
