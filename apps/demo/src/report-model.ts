/** Everything the HTML report shows, collected by the demo run (plain data, JSON-serialisable). */

/** Guest physical memory summarised into cells of `pagesPerCell` pages each. */
export interface MemoryPicture {
  readonly pages: number;
  readonly pagesPerCell: number;
  /** Owner category of each cell (index into `categories`): the category holding most of its pages. */
  readonly cellOwner: number[];
  /** Host-visible pages in each cell. */
  readonly cellVisible: number[];
  readonly categories: readonly string[];
  /** vTOM as a byte address (the shared alias of page p is p | vTOM). */
  readonly vtom: number;
}

/** One vmalloc-range mapping of a strategy's buffer. */
export interface MappingView {
  readonly start: string;
  readonly bytes: number;
  readonly tag: string;
  readonly kind: string;
  /** Which alias the mapping's PTEs reach. */
  readonly alias: "private" | "shared" | "mixed";
  readonly firstPfn: number;
}

export interface TimelineEvent {
  readonly kind: "hypercall" | "gpadl" | "channel" | "nvsp";
  readonly label: string;
  readonly count: number;
}

/** One finding as the report lists it (the kernel's record, and the strategy whose run found it). */
export interface FindingView {
  readonly id: string;
  readonly profile: string;
  readonly invariant: string;
  readonly what: string;
  readonly where: string;
  readonly strategy: string;
}

export interface StrategyReport {
  readonly strategy: string;
  readonly era: string;
  /** The kernel profile the guest booted. */
  readonly kernel: string;
  readonly ran: boolean;
  readonly skipReason?: string;
  /** The named fault armed, if any, and whether it fired. */
  readonly fault?: { readonly name: string; readonly fired: boolean; readonly detail: string };
  readonly findings: readonly FindingView[];
  readonly picture?: MemoryPicture;
  readonly mappings: readonly MappingView[];
  readonly timeline: readonly TimelineEvent[];
  readonly counters: Readonly<Record<string, number | string>>;
}

export interface ReportModel {
  readonly title: string;
  readonly generated: string;
  readonly settings: Readonly<Record<string, string | number>>;
  readonly strategies: readonly StrategyReport[];
}
