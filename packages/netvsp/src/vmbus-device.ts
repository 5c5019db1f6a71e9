import { NetvscError } from "@ivm/netvsc-protocol";
import {
  type HostChannel,
  type HostDevice,
  type HostReadResult,
  type HostVmbusServer,
  offerSubChannel,
  rescindSubChannels,
} from "@ivm/vmbus/host";
import type { Netvsp } from "./netvsp.js";
import type { HostGpadlView, HostGuestMemory, NetvspPorts } from "./ports.js";

const EMPTY: HostReadResult = { kind: "empty" };

/** A GPADL of the NIC, reached through the host's visibility-gated view (the primary's GPADLs). */
function gpadlView(ch: HostChannel, handle: number): HostGpadlView | undefined {
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
}

/** The ring ports of one open channel: the host channel signals the guest itself (the kernel's rules). */
function ringPorts(ch: HostChannel, gpadlOwner: HostChannel, guestMemory?: HostGuestMemory): NetvspPorts {
  const ring = {
    // Netvsp handles each packet before it reads the next: the endpoint's reused copy serves.
    readPacket: (): HostReadResult => ch.endpoint?.readPacketTransient() ?? EMPTY,
    commitRead: () => {
      ch.commitRead();
      return { signal: false };
    },
    send: (packet: Uint8Array) => ch.send(packet),
    sendCompletion: (transId: bigint, payload: Uint8Array) => ch.sendCompletion(transId, payload),
  };
  return {
    ring,
    gpadl: (handle) => gpadlView(gpadlOwner, handle),
    ...(guestMemory ? { guestMemory } : {}),
  };
}

/**
 * Plugs a Netvsp into the VMBus host server as the synthetic NIC's device: on OPENCHANNEL it gets the
 * channel's ring endpoint and a GPADL lookup over the host's visibility-gated view; every round it polls.
 * The SUBCHANNEL request is answered by offering sub-channels on `server` (same if_type and if_instance,
 * index 1..n), each served by the same Netvsp as one more queue; when the guest closes the primary the
 * host rescinds them, as Hyper-V withdraws a closed NIC's sub-channels.
 */
export function netvspVmbusDevice(netvsp: Netvsp, guestMemory?: HostGuestMemory): HostDevice {
  return {
    onOpen(ch) {
      const server: HostVmbusServer = ch.server;
      let offered = 0;
      netvsp.open({
        ...ringPorts(ch, ch, guestMemory),
        offerSubChannels: (count) => {
          for (let i = 0; i < count; i++)
            offerSubChannel(server, ch, ++offered, netvspQueueDevice(netvsp, ch, offered, guestMemory));
          return count;
        },
      });
      return 0;
    },
    onClose(ch) {
      netvsp.close();
      rescindSubChannels(ch.server, ch);
    },
    poll() {
      return netvsp.poll();
    },
  };
}

/** One sub-channel of the NIC: its ring is queue `index` of the primary's Netvsp (which polls it). */
function netvspQueueDevice(
  netvsp: Netvsp,
  primary: HostChannel,
  index: number,
  guestMemory?: HostGuestMemory,
): HostDevice {
  return {
    onOpen(ch) {
      netvsp.openQueue(index, ringPorts(ch, primary, guestMemory));
      return 0;
    },
    onClose() {
      netvsp.closeQueue(index);
    },
  };
}
