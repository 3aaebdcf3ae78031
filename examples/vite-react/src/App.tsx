// The page: a shared todo list, a live "N people online" line and a streamed report.
// It imports the stubs `telefunc codegen` writes into src/telefunc/ from server/*.telefunc.py;
// each stub calls the Python telefunction through the official `telefunc/client`.
import { useEffect, useState, type FormEvent } from 'react'
import { online, presence, type Online } from './telefunc/presence.telefunc.ts'
import { add_todo, list_todos, report, toggle_todo, type Todo } from './telefunc/todos.telefunc.ts'

export function App() {
  const [todos, setTodos] = useState<Todo[]>([])
  const [text, setText] = useState('')
  const [error, setError] = useState('')
  const [count, setCount] = useState<number | null>(null)
  const [lines, setLines] = useState<string[]>([])
  const [streaming, setStreaming] = useState(false)

  useEffect(() => {
    list_todos().then(setTodos, (err: unknown) => setError(String(err)))
  }, [])

  useEffect(() => usePresence(setCount), [])

  async function onAdd(event: FormEvent) {
    event.preventDefault()
    try {
      const todo = await add_todo(text)
      setTodos((all) => [...all, todo])
      setText('')
      setError('')
    } catch (err) {
      setError(describe(err))
    }
  }

  async function onToggle(id: number) {
    const todo = await toggle_todo(id)
    setTodos((all) => all.map((t) => (t.id === todo.id ? todo : t)))
  }

  async function onReport() {
    setLines([])
    setStreaming(true)
    try {
      for await (const line of await report()) setLines((all) => [...all, line])
    } finally {
      setStreaming(false)
    }
  }

  return (
    <main>
      <h1>Todos</h1>
      <p id="online">{count === null ? 'connecting…' : `${count} ${count === 1 ? 'person' : 'people'} online`}</p>
      <form onSubmit={onAdd}>
        <input id="new-todo" value={text} onChange={(e) => setText(e.target.value)} placeholder="What needs doing?" />
        <button id="add" type="submit">Add</button>
      </form>
      <p id="error">{error}</p>
      <ul id="todos">
        {todos.map((todo) => (
          <li key={todo.id}>
            <label>
              <input type="checkbox" checked={todo.done} onChange={() => onToggle(todo.id)} /> {todo.text}
            </label>
          </li>
        ))}
      </ul>
      <button id="report" onClick={onReport} disabled={streaming}>Stream a report</button>
      <ol id="report-lines">
        {lines.map((line, i) => (
          <li key={i}>{line}</li>
        ))}
      </ol>
      <p id="report-state">{streaming ? 'streaming…' : lines.length ? 'done' : ''}</p>
    </main>
  )
}

/** Holds this page's presence channel and reports the count; returns the effect's cleanup. */
function usePresence(setCount: (count: number) => void): () => void {
  let latest = -1
  let closed = false
  const show = (state: Online) => {
    if (state.version > latest) {
      latest = state.version
      setCount(state.count)
    }
  }
  const channel = presence()
  channel.then(async (ch) => {
    if (closed) return void ch.close()
    ch.subscribe(show)
    show(await online()) // a count published before we subscribed is not replayed to us
  })
  const close = () => {
    closed = true
    void channel.then((ch) => ch.close())
  }
  window.addEventListener('pagehide', close)
  return () => {
    window.removeEventListener('pagehide', close)
    close()
  }
}

function describe(err: unknown): string {
  const abortValue = (err as { abortValue?: { reason?: string } }).abortValue
  return abortValue?.reason ?? (err instanceof Error ? err.message : String(err))
}
