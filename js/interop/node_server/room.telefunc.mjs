// Mirror of the parts of tests/apps/broadcast/room.telefunc.py the Python client tests use.
import { Broadcast, BroadcastChannel } from 'telefunc'

export async function room(key) {
  return new BroadcastChannel({ key })
}

export async function server_publish(key, n, who) {
  const receipts = []
  for (let i = 0; i < n; i++) {
    const receipt = await Broadcast.publish(key, { kind: 'msg', who, i })
    receipts.push([receipt.seq, i, receipt.timestamp])
    await new Promise((r) => setImmediate(r))
  }
  return receipts
}
