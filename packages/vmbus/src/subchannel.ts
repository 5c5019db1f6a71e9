/**
 * Sub-channels (multi-queue devices, VMBus 3.0+): mirrors the sub-channel half of vmbus_process_offer
 * and vmbus_add_channel_work (drivers/hv/channel_mgmt.c), vmbus_set_sc_create_callback, and the
 * sub-channel loop of vmbus_disconnect_ring (drivers/hv/channel.c).
 *
 * The host offers a sub-channel with the primary's if_type and if_instance and a non-zero
 * sub_channel_index. The guest finds the primary by the two GUIDs: a match with index 0 is a
 * duplicate primary (the kernel frees it with a WARN), a match with a non-zero index joins the
 * primary's sc_list and is handed to the driver's sc_creation_callback (netvsc_sc_open), never probed
 * as a device. No match makes the offer a new primary whatever its index (fnew): the kernel creates a
 * device for it. Each sub-channel is opened by the ordinary vmbus_open path, with its own rings, ring
 * GPADL, request table and OPENCHANNEL; closing the primary closes every open sub-channel first.
 */
import type { VmbusChannel } from "./channel.js";
import { bytesEqual } from "./wire/bytes.js";
import type { OfferChannelMessage } from "./wire/channel-message.js";

/** What vmbus_process_offer makes of an offer, given the channels already known. */
export type OfferPlacement =
  | { readonly kind: "primary" }
  | { readonly kind: "sub-channel"; readonly primary: VmbusChannel }
  | { readonly kind: "duplicate-primary"; readonly primary: VmbusChannel };

/** Same device: if_type and if_instance both equal (guid_equal twice in vmbus_process_offer). */
export function sameDevice(a: OfferChannelMessage, b: OfferChannelMessage): boolean {
  return bytesEqual(a.interfaceType, b.interfaceType) && bytesEqual(a.interfaceInstance, b.interfaceInstance);
}

/**
 * vmbus_process_offer's lookup over chn_list (primaries only: sub-channels live on their primary's
 * sc_list, so they are never matched themselves).
 */
export function placeOffer(offer: OfferChannelMessage, channels: Iterable<VmbusChannel>): OfferPlacement {
  for (const ch of channels) {
    if (ch.primaryChannel !== undefined || ch.released) continue;
    if (!sameDevice(ch.offer, offer)) continue;
    return { kind: offer.subChannelIndex === 0 ? "duplicate-primary" : "sub-channel", primary: ch };
  }
  return { kind: "primary" };
}

/**
 * vmbus_disconnect_ring's first half: close every open sub-channel of `primary` (each through
 * vmbus_close_internal and vmbus_free_ring, i.e. its own CLOSECHANNEL and ring-GPADL teardown) before
 * the primary itself is closed. Returns how many were closed and how many of those closes failed.
 */
export function closeSubChannels(primary: VmbusChannel): {
  readonly closed: number;
  readonly failed: number;
} {
  let closed = 0;
  let failed = 0;
  for (const sc of primary.subChannels.slice()) {
    if (sc.state !== "opened") continue;
    const r = sc.close();
    closed++;
    if (!r.ok) failed++;
  }
  return { closed, failed };
}
