import { HypercallError } from "./errors.js";

/** CPUID leaves the guest reads to learn its isolation (hvgdk_mini.h). */
export const HYPERV_CPUID_FEATURES = 0x40000003;
export const HYPERV_CPUID_ISOLATION_CONFIG = 0x4000000c;
/** HV_ISOLATION in the privilege mask (EBX of 0x40000003, "priv_high"). */
export const HV_ISOLATION: number = 1 << 22;
/** isolation_config_a bit 0. */
export const HV_PARAVISOR_PRESENT: number = 1;

export const HvIsolationType = { None: 0, Vbs: 1, Snp: 2, Tdx: 3 } as const;

/** The raw register values of the two leaves, as a host advertises them. */
export interface IsolationCpuid {
  /** EBX of 0x40000003. */
  readonly privHigh: number;
  /** EAX of 0x4000000C (isolation_config_a). */
  readonly configA: number;
  /** EBX of 0x4000000C (isolation_config_b). */
  readonly configB: number;
}

/** What ms_hyperv_init_platform derives from the leaves. */
export interface IsolationConfig {
  readonly isolated: boolean;
  /** HV_ISOLATION_TYPE, kept as a number so unknown types stay representable. */
  readonly isolationType: number;
  readonly paravisorPresent: boolean;
  readonly sharedGpaBoundaryActive: boolean;
  readonly sharedGpaBoundaryBits: number;
  /** ms_hyperv.shared_gpa_boundary in bytes: BIT(bits) when active, else 0. */
  readonly sharedGpaBoundary: number;
}

/**
 * Decodes the leaves as the kernel does: leaf 0x4000000C is read only when priv_high has HV_ISOLATION; the
 * boundary stays 0 unless the ACTIVE bit (EBX bit 5) is set; its position is EBX bits 11:6.
 */
export function isolationFromCpuid(cpuid: IsolationCpuid): IsolationConfig {
  if ((cpuid.privHigh & HV_ISOLATION) === 0) {
    return {
      isolated: false,
      isolationType: HvIsolationType.None,
      paravisorPresent: false,
      sharedGpaBoundaryActive: false,
      sharedGpaBoundaryBits: 0,
      sharedGpaBoundary: 0,
    };
  }
  const isolationType = cpuid.configB & 0xf;
  const active = (cpuid.configB & (1 << 5)) !== 0;
  const bits = (cpuid.configB >>> 6) & 0x3f;
  if (active && bits > 52) {
    throw new HypercallError(
      "EINVAL",
      "boundary-bits",
      `shared GPA boundary bit ${bits} is beyond a 52-bit GPA`,
    );
  }
  return {
    isolated: isolationType !== HvIsolationType.None,
    isolationType,
    paravisorPresent: (cpuid.configA & HV_PARAVISOR_PRESENT) !== 0,
    sharedGpaBoundaryActive: active,
    sharedGpaBoundaryBits: bits,
    sharedGpaBoundary: active ? 2 ** bits : 0,
  };
}

export interface IsolationRequest {
  readonly type: "none" | "snp" | "vbs" | "tdx";
  /** Guest physical address width; vTOM is its top bit (47 bits → vTOM at bit 46). Default 47. */
  readonly addressBits?: number;
  readonly paravisor?: boolean;
}

/** The leaves a Hyper-V host would advertise for an SNP vTOM guest (or none). */
export function cpuidFor(request: IsolationRequest): IsolationCpuid {
  if (request.type === "none") return { privHigh: 0, configA: 0, configB: 0 };
  const bits = (request.addressBits ?? 47) - 1;
  const type = { snp: HvIsolationType.Snp, vbs: HvIsolationType.Vbs, tdx: HvIsolationType.Tdx }[request.type];
  const boundary = request.type === "snp" ? (1 << 5) | (bits << 6) : 0;
  return {
    privHigh: HV_ISOLATION,
    configA: request.paravisor === false ? 0 : HV_PARAVISOR_PRESENT,
    configB: (type | boundary) >>> 0,
  };
}
