// Mirror of tests/apps/basic/calc.telefunc.py for the official Node server.
import { Abort, shield } from 'telefunc'

const t = shield.type

export const add = shield([t.number, t.number], async function add(a, b) {
  return a + b
})

export async function refuse(reason) {
  throw Abort({ reason })
}

export async function crash() {
  throw new Error('secret detail that must not reach the client')
}

export async function echo(value) {
  return value
}
