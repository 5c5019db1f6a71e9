import { NetvscError } from "@ivm/netvsc-protocol";
import type { HostChannel, HostDevice } from "@ivm/vmbus/host";
import type { Netvsp } from "./netvsp.js";
import type { HostGpadlView, HostGuestMemory } from "./ports.js";

/**
 * Plugs a Netvsp into the VMBus host server as the synthetic NIC's device: on OPENCHANNEL it gets the
 * channel's ring endpoint and a GPADL lookup over the host's visibility-gated view; every round it polls.
 */
export function netvspVmbusDevice(netvsp: Netvsp, guestMemory?: HostGuestMemory): HostDevice {
  const view = (ch: HostChannel, handle: number): HostGpadlView | undefined => {
    const g = ch.gpadl(handle);
    if (!g) return undefined;
    return {
      size: g.ranges.reduce((sum, r) => sum + r.byteCount, 0),
      read(offset, dst) {
        if (!ch.readGpadl(handle, offset, dst))
          throw new NetvscError("EINVAL", "gpadl-access", `GPADL ${handle} read refused`);
      },
      write(offset, src) {
        if (!ch.writeGpadl(handle, offset, src))
          throw new NetvscError("EINVAL", "gpadl-access", `GPADL ${handle} write refused`);
      },
    };
  };
  return {
    onOpen(ch) {
      // The host channel signals the guest itself (the kernel's rules); netvsp only reads and writes.
      const ring = {
        readPacket: () => ch.readPacket(),
        commitRead: () => {
          ch.commitRead();
          return { signal: false };
        },
        send: (packet: Uint8Array) => ch.send(packet),
      };
      netvsp.open({ ring, gpadl: (handle) => view(ch, handle), ...(guestMemory ? { guestMemory } : {}) });
      return 0;
    },
    onClose() {
      netvsp.close();
    },
    poll() {
      return netvsp.poll();
    },
  };
}
