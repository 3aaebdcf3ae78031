// Plain calls against tests/apps/basic: a sum, an echo of every serializer type, an Abort with
// its value, a 500, an unknown function, a 422.
import { run, emit, describeError } from './setup.mjs'

run(async (client) => {
  const call = client.__remoteTelefunctionCall
  const attempt = async (name, file, fn, args) => {
    try {
      emit({ name, ok: true, value: await call(file, fn, args) })
    } catch (err) {
      emit({ name, ok: false, error: describeError(err) })
    }
  }
  await attempt('sum', '/calc.telefunc.py', 'add', [2, 3])
  await attempt('abort', '/calc.telefunc.py', 'refuse', ['nope'])
  await attempt('bug', '/calc.telefunc.py', 'crash', [])
  await attempt('unknown', '/calc.telefunc.py', 'does_not_exist', [])
  await attempt('shield', '/calc.telefunc.py', 'add', ['2', 3])
  await attempt('context', '/calc.telefunc.py', 'whoami', [])

  // `undefined` at the top level: an Any parameter gets it back as `undefined`, `int | None` as null.
  const topUndefined = await call('/calc.telefunc.py', 'echo', [undefined])
  const optional = await call('/calc.telefunc.py', 'maybe', [undefined])
  emit({ name: 'undefined', ok: true, echoIsUndefined: topUndefined === undefined, optional })

  // Every serializer type travels to the server and back, and the server describes what it got.
  const sample = {
    u: undefined,
    n: null,
    nan: NaN,
    inf: Infinity,
    ninf: -Infinity,
    d: new Date(5),
    big: 12345678901234567890n,
    re: /a+\/b/gi,
    m: new Map([[1, 'a'], ['k', { x: 1 }]]),
    s: new Set([1, 'two']),
    bytes: new Uint8Array([0, 1, 2, 255]),
    bang: '!bang',
    html: '</script><b>',
    float: 0.1,
    neg0: -0,
    list: [1, undefined, 'x'],
  }
  const echoed = await call('/calc.telefunc.py', 'echo', [sample])
  const described = await call('/calc.telefunc.py', 'describe', [sample])
  const same =
    echoed.u === undefined && 'u' in echoed &&
    echoed.n === null &&
    Number.isNaN(echoed.nan) &&
    echoed.inf === Infinity && echoed.ninf === -Infinity &&
    echoed.d instanceof Date && echoed.d.getTime() === 5 &&
    echoed.big === 12345678901234567890n &&
    echoed.re instanceof RegExp && echoed.re.source === 'a+\\/b' && echoed.re.flags === 'gi' &&
    echoed.m instanceof Map && echoed.m.get(1) === 'a' && echoed.m.get('k').x === 1 &&
    echoed.s instanceof Set && echoed.s.has(1) && echoed.s.has('two') && echoed.s.size === 2 &&
    echoed.bytes instanceof Uint8Array && echoed.bytes.join(',') === '0,1,2,255' &&
    echoed.bang === '!bang' && echoed.html === '</script><b>' &&
    echoed.float === 0.1 && echoed.list.length === 3 && echoed.list[1] === undefined
  emit({ name: 'echo', ok: same, described })
})
