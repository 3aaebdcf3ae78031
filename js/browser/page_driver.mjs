// A headless Chromium that a test drives one command at a time, so the test can change files
// between steps (tests/devloop/test_vite_react.py).
//
//   node page_driver.mjs
//
// Reads one JSON command per line on stdin and answers each with one JSON line on stdout,
// `{"ok": true, "value": ...}` or `{"ok": false, "error": "..."}`. Commands (`page` names a
// page; a new name opens a new tab):
//   {"op": "goto", "page", "url"}                      open url, wait for the load event
//   {"op": "fill", "page", "selector", "text"}          type into an input
//   {"op": "click", "page", "selector"}
//   {"op": "wait_text", "page", "selector", "text", "timeout_ms"}
//        wait until the element's innerText contains text; answers that innerText
//   {"op": "texts", "page", "selector"}                 innerText of every match
//   {"op": "screenshot", "page", "path"}
//   {"op": "front", "page"}                           bring the tab to the front
//   {"op": "close_page", "page"}
// Console messages (`<page> console.<type>: text`) and page errors (`<page> pageerror: ...`) of
// every page are collected; `{"op": "logs"}` returns them.
// Debian's Chromium (CHROMIUM, default /usr/bin/chromium), never a downloaded one.
import { chromium } from 'playwright-core'
import { createInterface } from 'node:readline'

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
const context = await browser.newContext()
const pages = new Map()
const logs = []

async function page(name) {
  if (!pages.has(name)) {
    const p = await context.newPage()
    p.on('console', (m) => logs.push(`${name} console.${m.type()}: ${m.text()}`))
    p.on('pageerror', (e) => logs.push(`${name} pageerror: ${e.message}`))
    pages.set(name, p)
  }
  return pages.get(name)
}

const ops = {
  goto: async (c) => void (await (await page(c.page)).goto(c.url, { waitUntil: 'load' })),
  fill: async (c) => (await page(c.page)).fill(c.selector, c.text),
  click: async (c) => (await page(c.page)).click(c.selector),
  wait_text: async (c) => {
    const p = await page(c.page)
    await p.waitForFunction(
      ([selector, text]) => document.querySelector(selector)?.innerText.includes(text),
      [c.selector, c.text],
      { timeout: c.timeout_ms ?? 10000, polling: 50 },
    )
    return p.innerText(c.selector)
  },
  texts: async (c) => (await page(c.page)).locator(c.selector).allInnerTexts(),
  screenshot: async (c) => void (await (await page(c.page)).screenshot({ path: c.path })),
  front: async (c) => (await page(c.page)).bringToFront(),
  close_page: async (c) => {
    await pages.get(c.page)?.close({ runBeforeUnload: true })
    pages.delete(c.page)
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
