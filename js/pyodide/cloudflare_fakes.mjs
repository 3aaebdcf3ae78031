// Small JS fakes of the Cloudflare Workers APIs the telefunc adapter calls, for the Pyodide FFI
// smoke tier. Load with `node run_python.mjs --preload cloudflare_fakes.mjs SCRIPT.py`; Python
// reaches them through `import js` (js.cfFakes, js.WebSocketPair, js.Response, ...).
//
// The fakes are strict where the real runtime is lenient on purpose: an options argument that
// is a `Map` (what a plain `to_js(dict)` produces) or a Python proxy instead of a plain Object is
// a TypeError here, while workerd would silently ignore its fields. That turns the silent
// production bug (a TTL or location hint that never applies) into a test failure.
//
// Request, Headers and ReadableStream are Node's own WHATWG implementations (the same standard
// classes Workers exposes). Response is Node's, extended with what Workers adds: status 101 and
// the `webSocket` init field. `request.cf` is attached by `cfFakes.request(...)`.

const toTag = (v) => Object.prototype.toString.call(v);

/** A JSON-able description of a JS value's shape: its [[Class]] tag, recursively. */
export function describe(v, depth = 0) {
  const t = toTag(v);
  if (depth > 4) return t;
  if (v instanceof Map) return { t, entries: [...v.entries()].map(([k, x]) => [String(k), describe(x, depth + 1)]) };
  if (Array.isArray(v)) return { t, items: v.map((x) => describe(x, depth + 1)) };
  if (v instanceof Uint8Array) return { t, bytes: [...v] };
  if (t === "[object Object]") {
    return { t, props: Object.fromEntries(Object.entries(v).map(([k, x]) => [k, describe(x, depth + 1)])) };
  }
  if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") return { t, value: v };
  return { t };
}

function plainOptions(what, options) {
  if (options === undefined) return {};
  if (toTag(options) !== "[object Object]") {
    throw new TypeError(`${what}: options must be a plain Object, got ${toTag(options)}`);
  }
  return options;
}

/** KV namespace: get/put/delete with the real TTL rule (expirationTtl >= 60). */
export class FakeKVNamespace {
  constructor() {
    this.data = new Map();
    this.calls = [];
  }
  async get(key, type) {
    this.calls.push({ op: "get", key, type: describe(type) });
    const entry = this.data.get(key);
    if (entry === undefined) return null;
    return type === "json" ? JSON.parse(entry.value) : entry.value;
  }
  async put(key, value, options) {
    this.calls.push({ op: "put", key, value: describe(value), options: describe(options) });
    if (typeof key !== "string") throw new TypeError(`KV put: key must be a string, got ${toTag(key)}`);
    if (typeof value !== "string") throw new TypeError(`KV put: value must be a string here, got ${toTag(value)}`);
    const opts = plainOptions("KV put", options);
    const ttl = opts.expirationTtl;
    if (ttl !== undefined && !(typeof ttl === "number" && ttl >= 60)) {
      throw new Error(`Invalid expiration_ttl of ${ttl}. Expiration TTL must be at least 60.`);
    }
    if (opts.metadata !== undefined && toTag(opts.metadata) !== "[object Object]") {
      throw new TypeError(`KV put: metadata must be a plain Object, got ${toTag(opts.metadata)}`);
    }
    this.data.set(key, { value, expirationTtl: ttl ?? null, metadata: opts.metadata ?? null });
  }
  async delete(key) {
    this.calls.push({ op: "delete", key });
    this.data.delete(key);
  }
}

class FakeDurableObjectId {
  constructor(name, jurisdiction) {
    this.name = name;
    this.jurisdiction = jurisdiction;
  }
  toString() {
    return Buffer.from(`${this.jurisdiction ?? ""}:${this.name}`).toString("hex").padEnd(64, "0").slice(0, 64);
  }
  equals(other) {
    return other instanceof FakeDurableObjectId && other.toString() === this.toString();
  }
}

/** The stub of one object: `fetch` answers with a JSON echo of what arrived. */
class FakeDurableObjectStub {
  constructor(id, locationHint, namespace) {
    this.id = id;
    this.locationHint = locationHint;
    this.namespace = namespace;
  }
  async fetch(input, init) {
    const request = new Request(input, init === undefined ? undefined : plainOptions("stub.fetch", init));
    const body = request.body === null ? "" : await request.text();
    this.namespace.calls.push({ op: "fetch", name: this.id.name, url: request.url });
    const echo = {
      object: this.id.name,
      jurisdiction: this.id.jurisdiction,
      locationHint: this.locationHint,
      method: request.method,
      url: request.url,
      headers: Object.fromEntries(request.headers),
      body,
    };
    return new Response(JSON.stringify(echo), {
      status: 200,
      headers: { "content-type": "application/json", "x-object": this.id.name },
    });
  }
}

/** A Durable Object namespace binding: idFromName, get(id, {locationHint}), jurisdiction. */
export class FakeDurableObjectNamespace {
  constructor(jurisdiction = null, calls = []) {
    this._jurisdiction = jurisdiction;
    this.calls = calls;
  }
  idFromName(name) {
    if (typeof name !== "string") throw new TypeError(`idFromName: name must be a string, got ${toTag(name)}`);
    this.calls.push({ op: "idFromName", name });
    return new FakeDurableObjectId(name, this._jurisdiction);
  }
  get(id, options) {
    if (!(id instanceof FakeDurableObjectId)) throw new TypeError(`get: not a DurableObjectId: ${toTag(id)}`);
    const opts = plainOptions("DurableObjectNamespace.get", options);
    this.calls.push({ op: "get", name: id.name, options: describe(options) });
    return new FakeDurableObjectStub(id, opts.locationHint ?? null, this);
  }
  jurisdiction(name) {
    return new FakeDurableObjectNamespace(name, this.calls);
  }
}

/** One end of a WebSocketPair, with the hibernation-API extras. */
export class FakeWebSocket {
  constructor(label) {
    this.label = label;
    this.accepted = false;
    this.sent = [];
    this.closed = null;
    this.attachment = null;
    this.listeners = {};
  }
  accept() {
    this.accepted = true;
  }
  send(data) {
    if (this.closed) throw new TypeError("WebSocket is closed");
    if (typeof data !== "string" && !(data instanceof Uint8Array) && !(data instanceof ArrayBuffer)) {
      throw new TypeError(`WebSocket.send: expected string, ArrayBuffer or Uint8Array, got ${toTag(data)}`);
    }
    this.sent.push(typeof data === "string" ? data : { binary: [...new Uint8Array(data)] });
  }
  close(code, reason) {
    if (this.closed) throw new TypeError("WebSocket is already closed");
    this.closed = { code, reason };
  }
  serializeAttachment(value) {
    this.attachment = structuredClone(value);
  }
  deserializeAttachment() {
    return this.attachment === null ? null : structuredClone(this.attachment);
  }
  addEventListener(type, callback) {
    (this.listeners[type] ??= []).push(callback);
  }
  dispatch(type, event) {
    for (const callback of this.listeners[type] ?? []) callback(event);
  }
}

/** `new WebSocketPair()` -> `{0: client, 1: server}` like Workers (an object, not an array). */
export class WebSocketPair {
  constructor() {
    this[0] = new FakeWebSocket("client");
    this[1] = new FakeWebSocket("server");
  }
}

/** A Durable Object's `ctx` (state): acceptWebSocket / getWebSockets. */
export class FakeDurableObjectState {
  constructor() {
    this.sockets = [];
  }
  acceptWebSocket(ws) {
    if (!(ws instanceof FakeWebSocket)) throw new TypeError(`acceptWebSocket: not a WebSocket: ${toTag(ws)}`);
    ws.accept();
    this.sockets.push(ws);
  }
  getWebSockets() {
    return [...this.sockets];
  }
}

/** The worker's `ctx`: waitUntil only takes thenables; `drain()` awaits them all. */
export class FakeExecutionContext {
  constructor() {
    this.pending = [];
  }
  waitUntil(promise) {
    if (typeof promise?.then !== "function") throw new TypeError(`waitUntil: not a Promise: ${toTag(promise)}`);
    this.pending.push(Promise.resolve(promise));
  }
  async drain() {
    const results = await Promise.allSettled(this.pending);
    this.pending = [];
    return results.map((r) => (r.status === "fulfilled" ? { ok: r.value ?? null } : { error: String(r.reason) }));
  }
}

const NodeResponse = globalThis.Response;

/** Node's Response plus Workers' status 101 and `webSocket` init field. */
export class WorkersResponse extends NodeResponse {
  constructor(body, init) {
    const opts = plainOptions("Response", init);
    const upgrade = opts.status === 101;
    super(body ?? null, upgrade ? { ...opts, status: 200 } : opts);
    this._upgrade = upgrade;
    this.webSocket = opts.webSocket ?? null;
  }
  get status() {
    return this._upgrade ? 101 : super.status;
  }
}

/** Register every fake into `globalThis` (called by run_python.mjs before Python runs). */
export function install(g) {
  // The runtime's class names: the `workers` SDK picks its binding wrappers by constructor.name.
  for (const [fake, name] of [
    [FakeKVNamespace, "KvNamespace"],
    [FakeDurableObjectNamespace, "DurableObjectNamespace"],
    [FakeDurableObjectState, "DurableObjectState"],
    [FakeExecutionContext, "ExecutionContext"],
    [FakeWebSocket, "WebSocket"],
    [WorkersResponse, "Response"],
  ]) {
    Object.defineProperty(fake, "name", { value: name });
  }
  g.Response = WorkersResponse;
  g.WebSocketPair = WebSocketPair;
  g.cfFakes = {
    describe: (v) => JSON.stringify(describe(v)),
    tagOf: toTag,
    KVNamespace: FakeKVNamespace,
    DurableObjectNamespace: FakeDurableObjectNamespace,
    DurableObjectState: FakeDurableObjectState,
    ExecutionContext: FakeExecutionContext,
    WebSocket: FakeWebSocket,
    json: (v) => JSON.stringify(v),
    /** A Request with `cf` attached, as Workers delivers it. */
    request(url, init, cf) {
      const request = new Request(url, init === undefined ? undefined : plainOptions("Request", init));
      Object.defineProperty(request, "cf", { value: cf ?? undefined, enumerable: true });
      return request;
    },
    /** Helpers for lifetime checks: JS keeps a callback and calls it later. */
    kept: null,
    keep(callback) {
      this.kept = callback;
    },
    callKept(arg) {
      return this.kept(arg);
    },
    later: (value, ms = 5) => new Promise((resolve) => setTimeout(() => resolve(value), ms)),
    failLater: (message, ms = 5) => new Promise((_, reject) => setTimeout(() => reject(new Error(message)), ms)),
    returnNull: () => null,
    returnUndefined: () => undefined,
  };
}
