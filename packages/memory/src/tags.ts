/**
 * Owner tags: who holds a page ("vmalloc", "pagetable", "swiotlb", a strategy name...). Interned to small
 * integers so per-page state stays a typed array.
 */
export class TagRegistry {
  readonly #ids = new Map<string, number>();
  readonly #names: string[] = ["none"];

  constructor() {
    this.#ids.set("none", 0);
  }

  id(name: string): number {
    let id = this.#ids.get(name);
    if (id === undefined) {
      id = this.#names.length;
      if (id > 0xffff) throw new Error("too many owner tags");
      this.#names.push(name);
      this.#ids.set(name, id);
    }
    return id;
  }

  /** The id of a tag already interned, without interning it. */
  lookup(name: string): number | undefined {
    return this.#ids.get(name);
  }

  name(id: number): string {
    return this.#names[id] ?? "none";
  }

  get names(): readonly string[] {
    return this.#names;
  }
}
