// ethtool -G: __netvsc_get_ringparam and the sizing half of netvsc_set_ringparam (netvsc_drv.c). The
// detach/attach half lives in NetvscDevice.

import {
  clampRingParam,
  NETVSC_MIN_RX_SECTIONS,
  NETVSC_MIN_TX_SECTIONS,
  type NetvscResult,
  ok,
  ringParamMax,
} from "@ivm/netvsc-protocol";
import type { DeviceInfo, NetvscDev } from "./nvdev.js";

export interface RingParamState {
  readonly rxPending: number;
  readonly txPending: number;
  readonly rxMaxPending: number;
  readonly txMaxPending: number;
}

/** __netvsc_get_ringparam: the counts in use (host values for rx) and the maxima from the section sizes. */
export function getRingParam(nv: NetvscDev): RingParamState {
  const max = ringParamMax(nv.nvspVersion, nv.recvSectionSize, nv.sendSectionSize);
  return {
    rxPending: nv.recvSectionCnt,
    txPending: nv.sendSectionCnt,
    rxMaxPending: max.rxMaxPending,
    txMaxPending: max.txMaxPending,
  };
}

/**
 * The device info a re-attach uses (netvsc_devinfo_get from the live device: the host's section sizes)
 * with the clamped new counts; null when nothing changes.
 */
export function ringParamPlan(
  nv: NetvscDev,
  rx: number,
  tx: number,
): NetvscResult<{ readonly next: DeviceInfo; readonly orig: DeviceInfo } | null> {
  const cur = getRingParam(nv);
  const newRx = clampRingParam(rx, cur.rxMaxPending, NETVSC_MIN_RX_SECTIONS);
  const newTx = clampRingParam(tx, cur.txMaxPending, NETVSC_MIN_TX_SECTIONS);
  if (newRx === cur.rxPending && newTx === cur.txPending) return ok(null);
  const orig: DeviceInfo = {
    rxSections: cur.rxPending,
    txSections: cur.txPending,
    recvSectionSize: nv.recvSectionSize,
    sendSectionSize: nv.sendSectionSize,
    numChn: nv.numChn,
  };
  return ok({ orig, next: { ...orig, rxSections: newRx, txSections: newTx } });
}
