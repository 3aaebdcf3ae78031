// Chat pages in headless Chromium for the scale-out test (tests/scale_out): each page in its own
// browser context, so each has its own cookies (the load balancer's pinning cookie, the chat's
// `user` cookie) like two different people's browsers.
//
//   node scale_out_pages.mjs
//
// One JSON command per line on stdin, one JSON answer per line on stdout (`{"ok": true,
// "value": ...}` or `{"ok": false, "error": "..."}`):
//   {"op": "open", "page", "url", "user"}    new context with cookie user=<user>, open url
//   {"op": "wait_text", "page", "selector", "text", "timeout_ms"}
//   {"op": "say", "page", "text"}              type text into the chat and submit it
//   {"op": "state", "page"}                    {messages, status, session, tokens}
//   {"op": "logs"}                             console lines and page errors of every page
// `tokens` are the x-telefunc-session values the page's responses carried, in order (only so
// the test knows which process log lines are this page's; where requests went is checked in the
// process logs). Debian's Chromium (CHROMIUM, default /usr/bin/chromium).
import { chromium } from 'playwright-core'
import { createInterface } from 'node:readline'

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
})
const pages = new Map()
const logs = []

const ops = {
  open: async (c) => {
    const context = await browser.newContext()
    const url = new URL(c.url)
    await context.addCookies([{ name: 'user', value: c.user, domain: url.hostname, path: '/' }])
    const page = await context.newPage()
    const entry = { page, tokens: [] }
    page.on('console', (m) => logs.push(`${c.page} console.${m.type()}: ${m.text()}`))
    page.on('pageerror', (e) => logs.push(`${c.page} pageerror: ${e.message}`))
    page.on('response', (r) => {
      const token = r.headers()['x-telefunc-session']
      if (token && entry.tokens.at(-1) !== token) entry.tokens.push(token)
    })
    pages.set(c.page, entry)
    await page.goto(c.url, { waitUntil: 'load' })
  },
  wait_text: async (c) => {
    const { page } = pages.get(c.page)
    await page.waitForFunction(
      ([selector, text]) => document.querySelector(selector)?.innerText.includes(text),
      [c.selector, c.text],
      { timeout: c.timeout_ms ?? 20000, polling: 50 },
    )
  },
  say: async (c) => {
    const { page } = pages.get(c.page)
    await page.fill('#text', c.text)
    await page.press('#text', 'Enter')
  },
  state: async (c) => {
    const { page, tokens } = pages.get(c.page)
    return {
      messages: await page.locator('#messages li').allInnerTexts(),
      status: await page.innerText('#status'),
      session: await page.evaluate(() => Number(document.body.dataset.session)),
      tokens,
    }
  },
  logs: async () => logs.splice(0),
}

const lines = createInterface({ input: process.stdin })
for await (const line of lines) {
  if (!line.trim()) continue
  let answer
  try {
    const command = JSON.parse(line)
    const op = ops[command.op]
    if (!op) throw new Error(`unknown op ${command.op}`)
    answer = { ok: true, value: (await op(command)) ?? null }
  } catch (err) {
    answer = { ok: false, error: String(err?.stack ?? err) }
  }
  process.stdout.write(JSON.stringify(answer) + '\n')
}
await browser.close()
