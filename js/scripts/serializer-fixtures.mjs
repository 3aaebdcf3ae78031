// Golden fixtures for the Python port of @brillout/json-serializer (src/telefunc/wire/serializer.py).
//
// Usage: node scripts/serializer-fixtures.mjs <out.json>
// Writes {caseName: serializedText} produced by the real npm `stringify()` (0.5.27). The Python
// test tests/unit/test_serializer.py defines the equivalent Python value for every name and
// checks byte equality both ways; keep the two lists in sync.
import { writeFileSync } from 'node:fs'
import { stringify } from '@brillout/json-serializer/stringify'

const utcDate = (y, mo, d, h = 0, mi = 0, s = 0, ms = 0) => {
  const date = new Date(0)
  // setUTCFullYear: Date.UTC() would map years 0-99 to 1900-1999
  date.setUTCFullYear(y, mo - 1, d)
  date.setUTCHours(h, mi, s, ms)
  return date
}

let controlChars = ''
for (let c = 0; c < 0x20; c++) controlChars += String.fromCharCode(c)
controlChars += '\x7f\u2028\u2029\u0085'

const allBytes = new Uint8Array(256)
for (let i = 0; i < 256; i++) allBytes[i] = i

// A stand-in for a telefunc streaming value: the replacer turns it into a placeholder.
class Marker {
  constructor(id) {
    this.id = id
  }
}
const placeholderReplacer = (_key, value) =>
  value instanceof Marker
    ? { replacement: '!TelefuncChannel:' + JSON.stringify({ channelId: value.id }), resolved: true }
    : undefined

/** @type {Record<string, [unknown, object?]>} */
const cases = {
  null: [null],
  undefined: [undefined],
  true: [true],
  false: [false],
  int_zero: [0],
  int_negative: [-42],
  int_max_safe: [Number.MAX_SAFE_INTEGER],
  int_min_safe: [Number.MIN_SAFE_INTEGER],
  float_simple: [3.14],
  float_negative: [-0.1],
  float_negative_zero: [-0],
  float_integral: [1.0],
  float_1e21: [1e21],
  float_1e20: [1e20],
  float_1e16: [1e16],
  float_2_53: [2 ** 53],
  float_2_60: [2 ** 60],
  float_1e_7: [1e-7],
  float_1e_6: [1e-6],
  float_1_5e_5: [1.5e-5],
  float_1_23e_18: [1.23e-18],
  float_min_subnormal: [5e-324],
  float_max: [1.7976931348623157e308],
  float_neg_big_exp: [-1.2345e100],
  nan: [NaN],
  infinity: [Infinity],
  negative_infinity: [-Infinity],
  bigint_zero: [0n],
  bigint_small: [10n],
  bigint_above_safe: [2n ** 53n],
  bigint_negative_huge: [-123456789012345678901234567890n],
  string_empty: [''],
  string_plain: ['hello world'],
  string_bang: ['!bang'],
  string_bang_only: ['!'],
  string_double_bang: ['!!x'],
  string_undefined_lookalike: ['!undefined'],
  string_date_lookalike: ['!Date:1970-01-01T00:00:00.000Z'],
  string_html: ['</script><script>alert(1)</script>'],
  string_slashes: ['a/b//c\\/d'],
  string_quotes_backslash: ['say "hi" \\ \\\\ back'],
  string_unicode: ['héllo wörld ✓ 日本語 😀 \u00a0'],
  string_lone_surrogates: ['\ud800 x \udfff y \udbff'],
  string_control_chars: [controlChars],
  date_epoch: [new Date(0)],
  date_ms: [utcDate(2024, 2, 29, 13, 45, 7, 89)],
  date_before_epoch: [new Date(-1)],
  date_year_1: [utcDate(1, 1, 1)],
  date_year_9999: [utcDate(9999, 12, 31, 23, 59, 59, 999)],
  uint8array_empty: [new Uint8Array([])],
  uint8array_1: [new Uint8Array([255])],
  uint8array_2: [new Uint8Array([251, 255])],
  uint8array_3: [new Uint8Array([1, 2, 3])],
  uint8array_4: [new Uint8Array([0, 0, 0, 0])],
  uint8array_all_bytes: [allBytes],
  regexp_simple: [/a+/g],
  regexp_all_flags: [/x/dgimsuy],
  regexp_slash: [new RegExp('a/b')],
  regexp_empty: [new RegExp('')],
  regexp_class: [/[/\]]+<\/x>/i],
  map_empty: [new Map()],
  map_int_keys: [
    new Map([
      [1, 'a'],
      [2, 'b'],
    ]),
  ],
  map_string_keys: [new Map([['a', 1], ['!b', '!c']])],
  map_object_key: [new Map([[{ a: 1 }, 'x'], [[1, 2], 'y']])],
  map_colliding_keys: [new Map([[1, 'one'], [true, 'yes']])],
  map_nested: [new Map([['outer', new Map([['inner', new Map([[1, 'say "<hi>" \\ /']])]])]])],
  map_undefined_value: [new Map([[undefined, undefined]])],
  set_empty: [new Set()],
  set_single: [new Set(['x'])],
  set_mixed: [new Set([1, 'a', null])],
  set_unhashable: [new Set([[1], [1], { a: 1 }])],
  set_colliding: [new Set([true, 1])],
  set_of_sets: [new Set([new Set([1]), new Set(['</script>'])])],
  nested_map_in_set_in_object: [{ outer: new Set([new Map([['k', new Set(['</x>'])]]), 2]) }],
  object_empty: [{}],
  object_key_order: [{ b: 1, a: 2, 10: 3, 2: 4, '-1': 5, '01': 6, '4294967295': 7, '4294967294': 8 }],
  object_undefined_value: [{ a: undefined, b: 1 }],
  object_bang_and_html_keys: [{ '!k': '!v', '</script>': 'a/b' }],
  array_empty: [[]],
  array_with_undefined: [[1, undefined, null]],
  array_nested: [[[[]], [1, [2, [3]]]]],
  telefunc_mixed_response: [
    {
      ret: {
        msg: 'Hello Bob',
        u: undefined,
        d: new Date(0),
        big: 10n,
        s: '!bang',
        m: new Map([[1, 'a']]),
        set: new Set([1]),
        nan: NaN,
        inf: -Infinity,
        re: /a+/g,
        bytes: new Uint8Array([1, 2, 3]),
      },
    },
  ],
  replacer_placeholder: [
    { ch: new Marker('c1'), s: '!x', inner: new Map([[1, new Marker('c2')]]) },
    { replacer: placeholderReplacer },
  ],
  no_script_safe: [{ html: '</script>', m: new Map([['a/b', '<']]) }, { htmlScriptSafe: false }],
}

const out = process.argv[2]
if (!out) {
  console.error('usage: node scripts/serializer-fixtures.mjs <out.json>')
  process.exit(2)
}
const golden = {}
for (const [name, [value, options]] of Object.entries(cases)) {
  golden[name] = stringify(value, options)
}
writeFileSync(out, JSON.stringify(golden, null, 2) + '\n')
console.log(`wrote ${Object.keys(golden).length} cases to ${out}`)
