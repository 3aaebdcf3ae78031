// Mirror of tests/apps/streaming/args.telefunc.py for the official Node server: files, byte
// streams and functions as arguments.
import { createHash } from 'node:crypto'

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex')

export async function describe_files(first, second, third) {
  const out = []
  for (const file of [first, second, third]) {
    const bytes = new Uint8Array(await file.arrayBuffer())
    out.push({
      name: file.name ?? null,
      type: file.type,
      size: file.size,
      lastModified: file.lastModified ?? null,
      sha256: sha256(bytes),
    })
  }
  return out
}

export async function everything(label, stream, fn, file) {
  const chunks = []
  for await (const chunk of stream) chunks.push(chunk)
  return {
    label,
    stream: Buffer.concat(chunks).toString(),
    fn: [await fn(1), await fn(2)],
    file: await file.text(),
  }
}

export async function upload_digest(stream) {
  const hash = createHash('sha256')
  let total = 0
  let chunks = 0
  for await (const chunk of stream) {
    hash.update(chunk)
    total += chunk.byteLength
    chunks += 1
  }
  return { total, chunks, sha256: hash.digest('hex') }
}

export async function map_with(items, fn) {
  const out = []
  for (const item of items) out.push(await fn(item))
  return out
}
