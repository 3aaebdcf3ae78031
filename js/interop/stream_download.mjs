// A large file download: reads it chunk by chunk (never all in memory) and hashes it.
// Usage: stream_download.mjs <origin> <path on the server> <name>
import { createHash } from 'node:crypto'
import { run, emit } from './setup.mjs'

run(async (client, [path, name]) => {
  const file = await client.__remoteTelefunctionCall('/stream.telefunc.py', 'file_download', [path, name])
  const hash = createHash('sha256')
  let total = 0
  let chunks = 0
  for await (const chunk of file.stream()) {
    hash.update(chunk)
    total += chunk.length
    chunks++
  }
  emit({
    name: file.name,
    type: file.type,
    size: file.size,
    lastModified: file.lastModified,
    total,
    chunks,
    sha256: hash.digest('hex'),
  })
})
