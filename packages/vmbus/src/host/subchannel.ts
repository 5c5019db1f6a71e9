/**
 * The host's sub-channel offers (OpenVMM vmbus_server's subchannel offers for a device's
 * `enable_subchannels`; Hyper-V's vRSS queues): an offer with the primary's if_type and if_instance
 * and sub_channel_index 1..n, sent at once because the guest has already asked for offers. Closing the
 * primary makes the host withdraw them (a RESCIND_CHANNELOFFER each), so a re-attach asks again and
 * gets fresh relids.
 */
import { bytesEqual } from "../wire/bytes.js";
import type { HostChannel, HostDevice, HostVmbusServer } from "./server.js";

/** Offers sub-channel `index` (1-based) of `primary`, served by `device`. */
export function offerSubChannel(
  server: HostVmbusServer,
  primary: HostChannel,
  index: number,
  device: HostDevice,
): HostChannel {
  if (!Number.isInteger(index) || index < 1 || index > 0xffff)
    throw new RangeError(`sub-channel index ${index} outside 1..65535`);
  return server.registerDevice(
    {
      interfaceType: primary.offer.interfaceType,
      interfaceInstance: primary.offer.interfaceInstance,
      subChannelIndex: index,
    },
    device,
  );
}

/** Rescinds every sub-channel of `primary` the host still offers (state not yet "rescinded"). */
export function rescindSubChannels(server: HostVmbusServer, primary: HostChannel): number {
  let n = 0;
  for (const ch of [...server.channels.values()]) {
    if (ch === primary || ch.state === "rescinded" || ch.offer.subChannelIndex === 0) continue;
    if (!sameInstance(ch, primary)) continue;
    server.rescind(ch.relid);
    n++;
  }
  return n;
}

function sameInstance(a: HostChannel, b: HostChannel): boolean {
  return (
    bytesEqual(a.offer.interfaceType, b.offer.interfaceType) &&
    bytesEqual(a.offer.interfaceInstance, b.offer.interfaceInstance)
  );
}
