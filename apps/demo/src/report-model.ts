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

export interface StrategyReport {
  readonly strategy: string;
  readonly era: string;
  readonly ran: boolean;
  readonly skipReason?: string;
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
