// The campaign's sub-channel actions (issue #19): the fuzz world's NIC is multi-queue, and at any step
// the host may rescind one of its sub-channels, offer one nobody asked for, or answer an ethtool -L
// re-attach with any sub-channel count. The guest must keep its invariants, count what it refuses, and
// carry traffic on the channels it still has.

import { sameDevice } from "@ivm/vmbus";
import { type HostChannel, offerSubChannel } from "@ivm/vmbus/host";
import type { SubchannelOp } from "./actions.js";
import { bump } from "./tally.js";
import type { FuzzWorld } from "./world.js";

/** The host's live sub-channels of the NIC whose primary is `primary`. */
function liveSubChannels(world: FuzzWorld, primary: HostChannel): HostChannel[] {
  return [...world.vm.server.channels.values()].filter(
    (ch) =>
      ch !== primary &&
      ch.state !== "rescinded" &&
      ch.offer.subChannelIndex > 0 &&
      sameDevice(ch.offer, primary.offer),
  );
}

export function applySubchannel(world: FuzzWorld, op: SubchannelOp): void {
  const nic = world.nic;
  const { vm } = world;
  const primary = nic === undefined ? undefined : vm.server.channels.get(nic.relid);
  if (nic === undefined || primary === undefined || primary.state === "rescinded") return;
  switch (op.o) {
    case "rescind": {
      const subs = liveSubChannels(world, primary);
      const ch = subs[op.nth % Math.max(1, subs.length)];
      if (ch === undefined) return;
      vm.server.rescind(ch.relid);
      bump(world.tally, "subchannel:rescinded");
      // Frames in flight on that queue are lost with it (the host stops serving the ring).
      world.dataSafe = false;
      break;
    }
    case "offer":
      // A bare device: the guest may attach it (its index decides whether netvsc opens it).
      offerSubChannel(vm.server, primary, op.index, {});
      bump(world.tally, "subchannel:unsolicited-offer");
      break;
    case "queues": {
      if (op.grant !== undefined) nic.host.adversary = { ...nic.host.adversary, subchannelGrant: op.grant };
      const r = nic.device.setChannels(op.count);
      bump(world.tally, r.ok ? "subchannel:set-channels-ok" : `subchannel:set-channels:${r.error.reason}`);
      if (op.grant !== undefined && nic.host.adversary !== undefined) {
        const { subchannelGrant: _, ...rest } = nic.host.adversary;
        nic.host.adversary = rest;
      }
      break;
    }
  }
  world.runIdle();
  bump(world.tally, "subchannel:channels-open", nic.device.channels.filter((c) => c.opened).length);
}
