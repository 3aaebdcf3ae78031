// The chat page: the official telefunc@0.2.23 client calling the Python telefunctions.
import { whoami, send_message, last_messages } from './chat.telefunc.js'

const room = new URLSearchParams(location.search).get('room') || 'lobby'
const $ = (id) => document.getElementById(id)
let lastId = 0

function render(messages) {
  for (const m of messages) {
    // A poll and a post-send refresh can overlap and return the same messages: ids only grow,
    // so anything at or below lastId is already on the page.
    if (m.id <= lastId) continue
    lastId = m.id
    const li = document.createElement('li')
    li.dataset.id = m.id
    const who = document.createElement('b')
    who.textContent = m.author + ': '
    li.append(who, document.createTextNode(m.text))
    $('messages').append(li)
  }
}

let refreshing = null

function refresh() {
  // One refresh at a time; callers share the one in flight.
  refreshing ??= poll().finally(() => { refreshing = null })
  return refreshing
}

async function poll() {
  try {
    render(await last_messages(room, lastId))
    $('status').textContent = 'connected'
  } catch (err) {
    $('status').textContent = 'reconnecting…'
  }
}

async function main() {
  if (!document.cookie.includes('user=')) {
    const name = prompt('Your name?') || 'guest'
    document.cookie = 'user=' + encodeURIComponent(name) + '; path=/'
  }
  $('room').textContent = room
  $('me').textContent = await whoami()
  $('form').addEventListener('submit', async (event) => {
    event.preventDefault()
    const text = $('text').value
    $('text').value = ''
    try {
      await send_message(room, text)
    } catch (err) {
      $('status').textContent = err.isAbort ? err.abortValue.error : 'send failed'
    }
    await refresh()
  })
  await refresh()
  setInterval(refresh, 1000)
}

main()
