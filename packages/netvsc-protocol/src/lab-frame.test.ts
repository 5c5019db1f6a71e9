// Lab frames are checked byte for byte wherever they sit: every alignment of the frame in its buffer
// (the compare goes by bytes, 4-byte or 8-byte words depending on it), every single flipped byte.
import { describe, expect, it } from "vitest";
import {
  encodeLabFrame,
  LAB_FRAME_HEADER_SIZE,
  labFrameSeq,
  labFrameSeqAt,
  labFrameStream,
  verifyLabFrame,
  writeLabFrame,
} from "./lab-frame.js";

/** A frame written at byte `offset` of a larger buffer (other bytes 0xee). */
function frameAt(offset: number, length: number, seq: number, seed: number): Uint8Array {
  const buf = new Uint8Array(offset + length + 16).fill(0xee);
  writeLabFrame(buf.subarray(offset, offset + length), { seq, seed });
  return buf;
}

describe("lab frames", () => {
  it("are the same bytes wherever they are written, and check out at every alignment", () => {
    for (const length of [26, 27, 40, 64, 301, 1500]) {
      const ref = encodeLabFrame({ seq: 9, seed: 77, length });
      for (let offset = 0; offset < 8; offset++) {
        const buf = frameAt(offset, length, 9, 77);
        const view = buf.subarray(offset, offset + length);
        expect(Array.from(view)).toEqual(Array.from(ref));
        expect(labFrameSeq(view)).toBe(9);
        expect(labFrameSeqAt(buf, offset, length)).toBe(9);
      }
    }
  });

  it("detect every single corrupted byte of the frame — MACs, EtherType, seq, length, seed, payload — at every alignment", () => {
    for (const length of [64, 301]) {
      for (let offset = 0; offset < 8; offset++) {
        const buf = frameAt(offset, length, 5, 3);
        for (let i = 0; i < length; i++) {
          for (const bit of [0x01, 0x80, 0xff]) {
            buf[offset + i]! ^= bit;
            const seq = labFrameSeqAt(buf, offset, length);
            buf[offset + i]! ^= bit;
            if (seq !== -1)
              throw new Error(`flip ${bit} at ${i} (offset ${offset}, ${length} B) not detected`);
          }
        }
        expect(labFrameSeqAt(buf, offset, length)).toBe(5);
      }
    }
  });

  it("detect any value of one corrupted header byte (MACs and seq), for many frames", () => {
    // The MACs and the seq are checked through where the payload starts: every one of the 255 wrong
    // values of each of those 16 bytes must move it.
    for (let seq = 0; seq < 40; seq++) {
      const frame = encodeLabFrame({ seq: seq * 0x01_0203 + (seq << 24), seed: 1 + seq, length: 64 });
      for (const i of [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 14, 15, 16, 17]) {
        const was = frame[i]!;
        for (let v = 0; v < 256; v++) {
          if (v === was) continue;
          frame[i] = v;
          if (labFrameSeq(frame) !== -1) throw new Error(`seq ${seq}: byte ${i} = ${v} not detected`);
        }
        frame[i] = was;
      }
      expect(labFrameSeq(frame)).toBe((seq * 0x01_0203 + (seq << 24)) >>> 0);
    }
  });

  it("detect a change inside a payload word that reads as a NaN double", () => {
    // Where a frame and the stream are equally aligned modulo 8 the payload is compared as doubles, and a
    // NaN equals nothing: such a word must still match bit for bit. Try frames at buffer offsets 0 and 4
    // (one of the two is the doubles case for each frame) and flip bits in every 8-byte-aligned word
    // that reads as a NaN.
    const seed = 11;
    let tried = 0;
    for (let seq = 0; seq < 100; seq++) {
      for (const offset of [0, 4]) {
        const buf = frameAt(offset, 1500, seq, seed);
        const dv = new DataView(buf.buffer);
        for (let abs = 8; abs + 8 <= offset + 1500; abs += 8) {
          if (abs < offset + LAB_FRAME_HEADER_SIZE || !Number.isNaN(dv.getFloat64(abs, true))) continue;
          tried++;
          for (let i = 0; i < 8; i++) {
            // The lowest bit of each byte: a NaN stays a NaN when its low mantissa bits change.
            buf[abs + i]! ^= 1;
            const r = labFrameSeqAt(buf, offset, 1500);
            buf[abs + i]! ^= 1;
            if (r !== -1) throw new Error(`seq ${seq} offset ${offset}: flip at ${abs + i} not detected`);
          }
          expect(labFrameSeqAt(buf, offset, 1500)).toBe(seq);
        }
      }
    }
    expect(tried).toBeGreaterThan(10);
    expect(labFrameStream(seed).length).toBeGreaterThan(0);
  });

  it("labFrameSeqAt reads only the frame's bytes and refuses a range outside the buffer", () => {
    const buf = frameAt(3, 100, 2, 1);
    expect(labFrameSeqAt(buf, 3, 100)).toBe(2);
    // A length that is not the frame's is a length mismatch, however the bytes around it look.
    expect(labFrameSeqAt(buf, 3, 99)).toBe(-1);
    expect(labFrameSeqAt(buf, 3, LAB_FRAME_HEADER_SIZE - 1)).toBe(-1);
    expect(() => labFrameSeqAt(buf, 3, buf.length)).toThrow(RangeError);
    expect(() => labFrameSeqAt(buf, -1, 10)).toThrow(RangeError);
    expect(verifyLabFrame(buf.subarray(3, 103))).toEqual({ ok: true, seq: 2 });
  });
});
