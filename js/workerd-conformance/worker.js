// JS twin of the telefunc.testing emulator scenarios (tests/cloudflare_emulator/test_conformance.py).
import { DurableObject } from "cloudflare:workers";

export class Counter extends DurableObject {
  async increment() {
    const n = ((await this.ctx.storage.get("n")) ?? 0) + 1;
    await this.ctx.storage.put("n", n);
    return n;
  }
  async incrementWithKvInBetween() {
    const n = (await this.ctx.storage.get("n")) ?? 0;
    await this.env.KV.get("anything"); // non-storage I/O: the input gate opens here
    await this.ctx.storage.put("n", n + 1);
    return n + 1;
  }
  async getN() {
    return (await this.ctx.storage.get("n")) ?? 0;
  }
  async fetch(request) {
    const [client, server] = Object.values(new WebSocketPair());
    this.ctx.acceptWebSocket(server);
    return new Response(null, { status: 101, webSocket: client });
  }
  async webSocketMessage(ws, message) {
    ws.send(typeof message === "string" ? `len:${message.length}` : `len:${message.byteLength}`);
  }
}

async function errorOf(promise) {
  try {
    await promise;
    return null;
  } catch (e) {
    return String(e && e.message);
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const name = url.searchParams.get("name") ?? "c";
    const stub = env.COUNTER.getByName(name);
    switch (url.pathname) {
      case "/gates": {
        const n = Number(url.searchParams.get("n") ?? "50");
        const method = url.searchParams.get("race") ? "incrementWithKvInBetween" : "increment";
        await Promise.all(Array.from({ length: n }, () => stub[method]()));
        return Response.json({ final: await stub.getN() });
      }
      case "/kv-errors": {
        return Response.json({
          expirationTtl: await errorOf(env.KV.put("k", "v", { expirationTtl: 10 })),
          cacheTtl: await errorOf(env.KV.get("k", { cacheTtl: 5 })),
          ok: await errorOf(env.KV.put("k", "v", { expirationTtl: 60 })),
        });
      }
      case "/ws":
        return stub.fetch(request);
      case "/cf":
        return Response.json({ colo: request.cf?.colo ?? null });
    }
    return new Response("not found", { status: 404 });
  },
};
