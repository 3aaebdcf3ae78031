// Uploads <mb> MiB as a client ReadableStream argument (64 KiB chunks, generated on demand) and
// prints {total, sha256, server}. By default it calls upload_digest() of
// tests/apps/streaming/functions.telefunc.py; `<file> <name> [extra args...]` after <mb> name
// another telefunction, called as name(stream, ...extra) (extra args are sent as numbers).
import { createHash } from 'node:crypto'
import { run, emit } from './setup.mjs'

run(async (client, [mb, file = '/functions.telefunc.py', name = 'upload_digest', ...extra]) => {
  const total = Number(mb) * 1024 * 1024
  const CHUNK = 64 * 1024
  const hash = createHash('sha256')
  let sent = 0
  const stream = new ReadableStream({
    pull(controller) {
      if (sent >= total) return controller.close()
      const n = Math.min(CHUNK, total - sent)
      const chunk = new Uint8Array(n)
      for (let i = 0; i < n; i += 4096) chunk[i] = (sent + i) % 256
      hash.update(chunk)
      sent += n
      controller.enqueue(chunk)
    },
  })
  const server = await client.__remoteTelefunctionCall(file, name, [stream, ...extra.map(Number)])
  emit({ total: sent, sha256: hash.digest('hex'), server })
})
