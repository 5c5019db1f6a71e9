/**
 * Which offers an isolated guest accepts: mirrors vmbus_is_valid_offer (drivers/hv/channel_mgmt.c)
 * and the `allowed_in_isolated` column of its vmbus_devs[] table. Only devices that were hardened
 * against a hostile host may bind in an Isolation VM; hv_sock offers are always accepted.
 */
import { bytesEqual, guidFromString } from "./wire/bytes.js";
import { type OfferChannelMessage, VMBUS_CHANNEL_FLAG } from "./wire/channel-message.js";

export interface VmbusDeviceEntry {
  readonly name: string;
  /** guid_t bytes of the offer's if_type. */
  readonly guid: Uint8Array;
  readonly allowedInIsolated: boolean;
  /**
   * vmbus_devs[].perf_device: init_vp_index spreads this device's channels over the CPUs (IDE, SCSI, FC,
   * NIC, ND and PCIe are; the util devices are not). Absent: false, as for an unknown if_type.
   */
  readonly perfDevice?: boolean;
}

/** HV_NIC_GUID {f8615163-df3e-46c5-913f-f2d2f965ed0e}. */
export const HV_NIC_GUID: Uint8Array = guidFromString("f8615163-df3e-46c5-913f-f2d2f965ed0e");
/** HV_SCSI_GUID {ba6163d9-04a1-4d29-b605-72e2ffb1dc7f}. */
export const HV_SCSI_GUID: Uint8Array = guidFromString("ba6163d9-04a1-4d29-b605-72e2ffb1dc7f");
/** HV_IDE_GUID {32412632-86cb-44a2-9b5c-50d1417354f5}. */
export const HV_IDE_GUID: Uint8Array = guidFromString("32412632-86cb-44a2-9b5c-50d1417354f5");

/**
 * The part of vmbus_devs[] the model needs (checked against channel_mgmt.c: IDE not allowed, SCSI
 * and NIC allowed; all three perf_device). Other device types are left for whoever models them.
 */
export const DEFAULT_VMBUS_DEVICES: readonly VmbusDeviceEntry[] = [
  { name: "ide", guid: HV_IDE_GUID, allowedInIsolated: false, perfDevice: true },
  { name: "scsi", guid: HV_SCSI_GUID, allowedInIsolated: true, perfDevice: true },
  { name: "nic", guid: HV_NIC_GUID, allowedInIsolated: true, perfDevice: true },
];

export function isHvsockOffer(offer: OfferChannelMessage): boolean {
  return (offer.chnFlags & VMBUS_CHANNEL_FLAG.TLNPI_PROVIDER_OFFER) !== 0;
}

/** is_co_ring_buffer: the paravisor offers the ring in encrypted memory (no decryption at GPADL time). */
export function isConfidentialRingBuffer(offer: OfferChannelMessage): boolean {
  return (offer.chnFlags & VMBUS_CHANNEL_FLAG.CONFIDENTIAL_RING_BUFFER) !== 0;
}

export function isConfidentialExternalMemory(offer: OfferChannelMessage): boolean {
  return (offer.chnFlags & VMBUS_CHANNEL_FLAG.CONFIDENTIAL_EXTERNAL_MEMORY) !== 0;
}

/**
 * vmbus_is_valid_offer: without isolation every offer is valid; with isolation an hv_sock offer is,
 * and otherwise only an if_type listed with allowedInIsolated. An unknown if_type is rejected.
 */
export function isValidOffer(
  offer: OfferChannelMessage,
  isolation: boolean,
  devices: readonly VmbusDeviceEntry[] = DEFAULT_VMBUS_DEVICES,
): boolean {
  if (!isolation) return true;
  if (isHvsockOffer(offer)) return true;
  for (const d of devices) {
    if (bytesEqual(d.guid, offer.interfaceType)) return d.allowedInIsolated;
  }
  return false;
}

/**
 * hv_is_perf_channel over hv_get_dev_type: an hv_sock offer is HV_UNKNOWN, so is an if_type not in the
 * table; otherwise the entry's perf_device.
 */
export function isPerfChannel(
  offer: OfferChannelMessage,
  devices: readonly VmbusDeviceEntry[] = DEFAULT_VMBUS_DEVICES,
): boolean {
  if (isHvsockOffer(offer)) return false;
  for (const d of devices) {
    if (bytesEqual(d.guid, offer.interfaceType)) return d.perfDevice === true;
  }
  return false;
}
