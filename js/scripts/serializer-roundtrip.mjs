// Cross-check helper for tests/unit/test_serializer.py.
//
// Reads lines from stdin; each line is a JSON string holding a text serialized by the Python
// port. For each, prints one line: {"ok": stringify(parse(text))} using the real npm
// @brillout/json-serializer 0.5.27, or {"error": message} if the npm side rejects it.
import { createInterface } from 'node:readline'
import { parse } from '@brillout/json-serializer/parse'
import { stringify } from '@brillout/json-serializer/stringify'

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity })
for await (const line of rl) {
  if (!line.trim()) continue
  let result
  try {
    result = { ok: stringify(parse(JSON.parse(line))) }
  } catch (err) {
    result = { error: String(err && err.message ? err.message : err) }
  }
  process.stdout.write(JSON.stringify(result) + '\n')
}
