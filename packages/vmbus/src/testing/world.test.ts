import { describe, expect, it } from "vitest";
import { VM_PKT } from "../wire/packet.js";
import { connectNic, ERAS, makeWorld, RecordingDevice } from "./index.js";

describe("@ivm/vmbus/testing: the layer's world", () => {
  it("boots each era as a VM does (platform, then the bus), not yet connected", () => {
    for (const era of ERAS) {
      const w = makeWorld(era);
      expect(w.memory.isolated).toBe(era !== "none");
      expect(w.memory.vtomMode).toBe(era === "pte-bit" ? "pte-bit" : "address-bit");
      expect(w.memory.phys.pages * 4096).toBe(64 * 2 ** 20);
      expect(w.conn.state).toBe("disconnected");
      expect(w.scheduler.maxRoundsPerWait).toBe(10_000);
    }
    const w = makeWorld("pte-bit", { bytes: 32 * 2 ** 20, maxRoundsPerWait: 7 });
    expect(w.memory.phys.pages * 4096).toBe(32 * 2 ** 20);
    expect(w.scheduler.maxRoundsPerWait).toBe(7);
  });

  it("connects a NIC whose host device records what the guest sends", () => {
    const w = makeWorld("address-bit");
    const { channel, host, device } = connectNic(w);
    expect(device).toBeInstanceOf(RecordingDevice);
    expect(w.conn.state).toBe("connected");
    expect(channel.relid).toBe(host.relid);
    expect(channel.open({ sendRingSize: 4 * 4096, recvRingSize: 4 * 4096 }).ok).toBe(true);
    expect(
      channel.sendPacket(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]), { type: VM_PKT.DATA_INBAND, flags: 0 }).ok,
    ).toBe(true);
    w.scheduler.runIdle();
    expect(device.opened).toBe(1);
    expect(device.packets).toHaveLength(1);
  });

  it("fails loudly when the host refuses every version the guest offers", () => {
    const w = makeWorld("none", { hostMaxVersion: 0 });
    expect(() => connectNic(w)).toThrow();
    expect(w.conn.state).toBe("disconnected");
  });
});
