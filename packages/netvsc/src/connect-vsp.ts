// netvsc_connect_vsp and negotiate_nvsp_ver (drivers/net/hyperv/netvsc.c): NVSP INIT from the newest
// version down, NDIS_CONFIG, the isolated-guest floor ("hv_netvsc: Restrict configurations on isolated
// guests", Feb 2021), NDIS_VER, then netvsc_init_buf.

import {
  type NetvscResult,
  NVSP_CAPABILITY,
  NVSP_MIN_ISOLATED_VERSION,
  NVSP_PROTOCOL_VERSION,
  NVSP_STATUS,
  NVSP_VERSION_LIST,
  ndisConfigFor,
  ndisVersionFor,
  ok,
} from "@ivm/netvsc-protocol";
import { nvspRequest, sendNvspOneWay } from "./control.js";
import { initBuf } from "./init-buf.js";
import type { NetvscDev } from "./nvdev.js";
import { reject } from "./reasons.js";

/** The MTU netvsc_probe starts with (ETH_DATA_LEN); NDIS_CONFIG carries mtu + ETH_HLEN. */
export const NETVSC_DEFAULT_MTU = 1500;

type Negotiation = "accepted" | "refused";

/**
 * negotiate_nvsp_ver: INIT with min = max = the version; anything but SUCCESS is a refusal (-EINVAL,
 * try the next older version). Above v1 the NDIS_CONFIG follows without waiting; an isolated guest
 * does not advertise SR-IOV.
 */
function negotiateNvspVer(nv: NetvscDev, version: number): NetvscResult<Negotiation> {
  const reply = nvspRequest(
    nv.env,
    { kind: "init", minProtocolVersion: version, maxProtocolVersion: version },
    "nvsp-init",
  );
  if (!reply.ok) return reply;
  // netvsc_send_completion copies any INIT/RECV_BUF/SEND_BUF completion into channel_init_pkt; the
  // model only reads an INIT_COMPLETE as one.
  if (reply.value.kind !== "init-complete" || reply.value.status !== NVSP_STATUS.SUCCESS)
    return ok("refused");
  const config = ndisConfigFor(version, NETVSC_DEFAULT_MTU);
  if (config !== null && config.kind === "send-ndis-config") {
    const capabilities = nv.env.isolated ? config.capabilities & ~NVSP_CAPABILITY.SRIOV : config.capabilities;
    const sent = sendNvspOneWay(nv.env, { ...config, capabilities }, "nvsp-ndis-config-send-failed");
    if (!sent.ok) return sent;
  }
  return ok("accepted");
}

/** netvsc_connect_vsp. On failure the buffers netvsc_init_buf set up are already revoked and torn down. */
export function connectVsp(nv: NetvscDev): NetvscResult<void> {
  let version = 0;
  for (let i = NVSP_VERSION_LIST.length - 1; i >= 0; i--) {
    const v = NVSP_VERSION_LIST[i]!;
    const r = negotiateNvspVer(nv, v);
    // A send error or a host that never answers ends the walk (the kernel would still be asleep).
    if (!r.ok) return r;
    if (r.value === "accepted") {
      version = v;
      break;
    }
  }
  if (version === 0) return reject("EPROTO", "nvsp-no-common-version", "the host accepted no NVSP version");
  nv.nvspVersion = version;
  if (nv.env.isolated && version < NVSP_MIN_ISOLATED_VERSION) {
    return reject(
      "EPROTO",
      "nvsp-version-isolated",
      `Invalid NVSP version 0x${version.toString(16)} (expected >= 0x${NVSP_PROTOCOL_VERSION.V61.toString(16)}) from the host supporting isolation`,
    );
  }
  const ndis = ndisVersionFor(version);
  const sent = sendNvspOneWay(
    nv.env,
    { kind: "send-ndis-version", ndisMajor: ndis.major, ndisMinor: ndis.minor },
    "nvsp-ndis-version-send-failed",
  );
  if (!sent.ok) return sent;
  return initBuf(nv);
}
