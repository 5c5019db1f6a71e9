/**
 * A native compare of byte ranges for the lab-frame check: JavaScript has no memcmp, and its fastest loop
 * (4-byte words, or 8-byte doubles, of typed arrays) costs ≈ 0.25–0.4 ns a byte here, and ≈ 1.5 ns a
 * byte when the two ranges are not equally aligned. A small WebAssembly function compares 64 bytes a
 * step with SIMD (8 without) at any alignment: a 1,474-byte payload in ≈ 75 ns instead of 350–2,300.
 * Shorter ranges stay in JavaScript, where the call and the copy into WebAssembly memory cost more than
 * they save.
 *
 * The module owns one memory: reference ranges (the lab-frame streams) are installed into slots of it
 * once, and each range to check is copied (natively, Uint8Array.prototype.set) into its scratch area
 * before the compare. Where WebAssembly is missing or may not compile, `nativeCompare()` is null and
 * callers keep their own loop.
 *
 * The function, in the text format (`$a`, `$b`: byte addresses; `$n`: length; 1 when equal):
 *
 *   (func (export "eq") (param $a i32) (param $b i32) (param $n i32) (result i32)
 *     (block (loop                                   ;; 64 bytes a step: four vectors
 *       (br_if 1 (i32.lt_u (local.get $n) (i32.const 64)))
 *       (if (v128.any_true (v128.or (v128.or (v128.or
 *             (v128.xor (v128.load offset=0 (local.get $a)) (v128.load offset=0 (local.get $b)))
 *             (v128.xor (v128.load offset=16 …) …)) (v128.xor … 32 …)) (v128.xor … 48 …)))
 *         (then (return (i32.const 0))))
 *       (local.set $a (i32.add (local.get $a) (i32.const 64)))  ;; same for $b; $n -= 64
 *       (br 0)))
 *     (block (loop …))                               ;; then 16 bytes a step: one vector
 *     (block (loop                                   ;; then byte by byte
 *       (br_if 1 (i32.eqz (local.get $n)))
 *       (if (i32.ne (i32.load8_u (local.get $a)) (i32.load8_u (local.get $b)))
 *         (then (return (i32.const 0))))
 *       (local.set $a (i32.add (local.get $a) (i32.const 1)))    ;; same for $b; $n -= 1
 *       (br 0)))
 *     (i32.const 1))
 *
 * The variant without SIMD has one wide loop instead of two: i64.load of each side, i64.ne, 8 bytes a
 * step.
 */

/** Opcodes used below (WebAssembly core 2.0 binary format). */
const OP = {
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  end: 0x0b,
  br: 0x0c,
  brIf: 0x0d,
  return: 0x0f,
  localGet: 0x20,
  localSet: 0x21,
  i64Load: 0x29,
  i32Load8u: 0x2d,
  i32Const: 0x41,
  i32Eqz: 0x45,
  i32Ne: 0x47,
  i32LtU: 0x49,
  i64Ne: 0x52,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  void: 0x40,
  simd: 0xfd,
  v128Load: 0x00,
  v128Or: 0x50,
  v128Xor: 0x51,
  v128AnyTrue: 0x53,
} as const;

const A = 0;
const B = 1;
const N = 2;

/** `local += step` for $a, $b, and `$n -= step`. */
function advance(step: number): number[] {
  return [
    ...[OP.localGet, A, OP.i32Const, ...sleb(step), OP.i32Add, OP.localSet, A],
    ...[OP.localGet, B, OP.i32Const, ...sleb(step), OP.i32Add, OP.localSet, B],
    ...[OP.localGet, N, OP.i32Const, ...sleb(step), OP.i32Sub, OP.localSet, N],
  ];
}

/** v128.xor of the 16 bytes at $a + offset and at $b + offset. */
function xor16(offset: number): number[] {
  return [
    ...[OP.localGet, A, OP.simd, OP.v128Load, 0, offset],
    ...[OP.localGet, B, OP.simd, OP.v128Load, 0, offset],
    ...[OP.simd, OP.v128Xor],
  ];
}

/** Each loop's step and its test of one step (nonzero when the step's bytes differ), widest first. */
type Loop = readonly [step: number, differs: readonly number[]];
const BYTE_LOOP: Loop = [
  1,
  [OP.localGet, A, OP.i32Load8u, 0, 0, OP.localGet, B, OP.i32Load8u, 0, 0, OP.i32Ne],
];
const SIMD_LOOPS: readonly Loop[] = [
  // four vectors a step, their differences OR-ed, then one vector a step
  [
    64,
    [
      ...xor16(0),
      ...xor16(16),
      ...[OP.simd, OP.v128Or],
      ...xor16(32),
      ...[OP.simd, OP.v128Or],
      ...xor16(48),
      ...[OP.simd, OP.v128Or, OP.simd, OP.v128AnyTrue],
    ],
  ],
  [16, [...xor16(0), OP.simd, OP.v128AnyTrue]],
  BYTE_LOOP,
];
const I64_LOOPS: readonly Loop[] = [
  [8, [OP.localGet, A, OP.i64Load, 0, 0, OP.localGet, B, OP.i64Load, 0, 0, OP.i64Ne]],
  BYTE_LOOP,
];

/** The function's body: each loop runs while at least its step is left, then `1` (equal). */
function body(loops: readonly Loop[]): number[] {
  const code: number[] = [0]; // no locals beyond the parameters
  for (const [step, differs] of loops) {
    code.push(OP.block, OP.void, OP.loop, OP.void);
    code.push(OP.localGet, N, OP.i32Const, ...sleb(step), OP.i32LtU, OP.brIf, 1);
    code.push(...differs, OP.if, OP.void, OP.i32Const, 0, OP.return, OP.end);
    code.push(...advance(step), OP.br, 0, OP.end, OP.end);
  }
  code.push(OP.i32Const, 1, OP.end);
  return code;
}

/** A signed LEB128 number (i32.const's operand) for 0 <= n < 2^13. */
function sleb(n: number): number[] {
  return n < 64 ? [n] : [(n & 0x7f) | 0x80, n >>> 7];
}

/** An unsigned LEB128 number (sizes and counts). */
function leb(n: number): number[] {
  const out: number[] = [];
  do {
    const byte = n & 0x7f;
    n >>>= 7;
    out.push(n === 0 ? byte : byte | 0x80);
  } while (n !== 0);
  return out;
}

/** A section: its id, then its contents prefixed by their size. */
function section(id: number, contents: readonly number[]): number[] {
  return [id, ...leb(contents.length), ...contents];
}

function moduleBytes(loops: readonly Loop[]): Uint8Array {
  const code = body(loops);
  const name = (s: string): number[] => [s.length, ...[...s].map((c) => c.charCodeAt(0))];
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, [1, 0x60, 3, 0x7f, 0x7f, 0x7f, 1, 0x7f]), // type 0: (i32 i32 i32) -> i32
    ...section(3, [1, 0]), // function 0 has type 0
    ...section(5, [1, 0x00, 1]), // one memory, at least one 64 KiB page
    ...section(7, [2, ...name("mem"), 0x02, 0, ...name("eq"), 0x00, 0]),
    ...section(10, [1, ...leb(code.length), ...code]),
  ]);
}

const WASM_PAGE = 65536;

/**
 * The parts of the WebAssembly JavaScript API used here, declared locally: the package builds against
 * the ECMAScript library alone (no DOM or Node types), and WebAssembly is a global of both platforms.
 */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmInstance {
  readonly exports: { readonly [name: string]: unknown };
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => WasmInstance;
}

/** Byte ranges compared natively: references installed once in slots, ranges to check copied in. */
export class NativeCompare {
  readonly #memory: WasmMemory;
  readonly #eq: (a: number, b: number, n: number) => number;
  readonly #slotBytes: number;
  readonly #slots: number;
  #bytes: Uint8Array;
  /** Where the scratch area starts (after the slots), and its size. */
  readonly #scratch: number;
  #scratchBytes: number;

  constructor(instance: WasmInstance, slots: number, slotBytes: number) {
    this.#memory = instance.exports.mem as WasmMemory;
    this.#eq = instance.exports.eq as (a: number, b: number, n: number) => number;
    this.#slots = slots;
    this.#slotBytes = slotBytes;
    this.#scratch = slots * slotBytes;
    this.#scratchBytes = 0;
    this.#bytes = new Uint8Array(this.#memory.buffer);
    this.#ensure(this.#scratch + WASM_PAGE);
  }

  /** Copies a reference range (at most one slot's bytes) into slot `slot`. */
  install(slot: number, bytes: Uint8Array): void {
    if (!(Number.isInteger(slot) && slot >= 0 && slot < this.#slots) || bytes.length > this.#slotBytes) {
      throw new RangeError(`slot ${slot} of ${this.#slots} cannot take ${bytes.length} bytes`);
    }
    this.#bytes.set(bytes, slot * this.#slotBytes);
  }

  /**
   * Whether buf[at, at + n) equals bytes [from, from + n) of slot `slot`'s reference. Both ranges must
   * lie inside their buffer and slot (a RangeError otherwise: a range clipped by subarray would compare
   * stale scratch bytes). The range's view for set() is the one object a call makes.
   */
  equal(buf: Uint8Array, at: number, slot: number, from: number, n: number): boolean {
    if (
      !(
        at >>> 0 === at &&
        n >>> 0 === n &&
        at + n <= buf.length &&
        slot >>> 0 === slot &&
        slot < this.#slots &&
        from >>> 0 === from &&
        from + n <= this.#slotBytes
      )
    ) {
      throw new RangeError(`compare of ${n} bytes at ${at} of ${buf.length} with slot ${slot} at ${from}`);
    }
    if (n > this.#scratchBytes) this.#ensure(this.#scratch + n);
    this.#bytes.set(buf.subarray(at, at + n), this.#scratch);
    return this.#eq(this.#scratch, slot * this.#slotBytes + from, n) === 1;
  }

  #ensure(bytes: number): void {
    const have = this.#memory.buffer.byteLength;
    if (bytes > have) {
      this.#memory.grow(Math.ceil((bytes - have) / WASM_PAGE));
      // growing replaced the memory's buffer: the old view is detached
      this.#bytes = new Uint8Array(this.#memory.buffer);
    }
    this.#scratchBytes = this.#memory.buffer.byteLength - this.#scratch;
  }
}

/** The WebAssembly API of this platform, if it has one. */
function wasmApi(): WasmApi | undefined {
  return (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
}

let compiled: object | null | undefined;

/** The compare module, compiled once: the SIMD one, else (an engine without SIMD) the 8-byte one. */
function compareModule(wasm: WasmApi): object | null {
  if (compiled !== undefined) return compiled;
  compiled = null;
  for (const bytes of compareModules()) {
    if (!wasm.validate(bytes)) continue;
    try {
      compiled = new wasm.Module(bytes);
      break;
    } catch {
      // a host that forbids compiling (a content security policy) keeps the JavaScript loop
    }
  }
  return compiled;
}

/**
 * A NativeCompare of its own (its own memory) with `slots` reference slots of `slotBytes` each, or null
 * where WebAssembly cannot run.
 */
export function nativeCompare(slots: number, slotBytes: number): NativeCompare | null {
  const wasm = wasmApi();
  const module = wasm === undefined ? null : compareModule(wasm);
  return wasm === undefined || module === null
    ? null
    : new NativeCompare(new wasm.Instance(module), slots, slotBytes);
}

/**
 * A NativeCompare over the given module bytes (one of compareModules()), or null where WebAssembly
 * cannot run them: for tests of each variant.
 */
export function nativeCompareFrom(bytes: Uint8Array, slots: number, slotBytes: number): NativeCompare | null {
  const wasm = wasmApi();
  if (wasm === undefined || !wasm.validate(bytes)) return null;
  return new NativeCompare(new wasm.Instance(new wasm.Module(bytes)), slots, slotBytes);
}

/** Both modules' bytes, for tests (SIMD first). */
export function compareModules(): readonly Uint8Array[] {
  return [moduleBytes(SIMD_LOOPS), moduleBytes(I64_LOOPS)];
}
